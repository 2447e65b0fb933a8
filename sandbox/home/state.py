"""The state file ``$FLEETSCOPE_HOME/sandbox.json``: how the CLI and the dashboard find a running sandbox.

`SandboxState` is the file, `write_state` / `remove_state` the running sandbox's side (atomic
replace; only the owner removes it), `read_state` everyone else's (None when there is no file or its
pid is dead) and `wait_for_state` a starter's (poll with a deadline until the sandbox is live).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_serializer

STATE_FILE = "sandbox.json"

# What a sandbox is doing once its API answers: measuring its own latencies, writing the 14 days of
# history, or done (live with history). A file without a phase is a live sandbox.
Phase = Literal["calibrating", "backfilling", "live"]


class StateFileError(RuntimeError):
    """The state file exists but cannot be read or is not a sandbox description."""


class SandboxState(BaseModel):
    """A running sandbox: its process, endpoints, stage and inbox (unknown keys are ignored)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    pid: int
    emulator_url: str = Field(min_length=1)
    api_url: str | None = None
    dashboard_url: str | None = None
    stage: str = "local"
    started_at: datetime | None = None
    inbox: str | None = None
    xray_daemon: str | None = None
    emulator_pid: int | None = None
    phase: Phase = "live"
    progress: float = Field(default=1.0, ge=0.0, le=1.0, description="of the current phase")
    detail: str = Field(default="", description="the phase in words, e.g. 'backfilling 6 of 14 days'")

    @field_serializer("started_at")
    def _iso(self, value: datetime | None) -> str | None:
        return value.isoformat() if value is not None else None


def state_path(home: Path) -> Path:
    return home / STATE_FILE


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (one of another user's counts)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _load(path: Path) -> SandboxState | None:
    try:
        raw = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as err:
        raise StateFileError(f"cannot read {path}: {err}") from err
    try:
        return SandboxState.model_validate_json(raw)
    except ValidationError as err:
        raise StateFileError(
            f"{path} is not a valid sandbox description: {err.errors(include_url=False)[0]['msg']}"
        ) from err


def read_state(home: Path) -> SandboxState | None:
    """The running sandbox of `home`, or None if there is none (no file, or its pid is dead)."""
    state = _load(state_path(home))
    return state if state is not None and pid_alive(state.pid) else None


def write_state(home: Path, state: SandboxState) -> Path:
    """Write (replace atomically) the state file of `home`."""
    home.mkdir(parents=True, exist_ok=True)
    path = state_path(home)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(state.model_dump_json(indent=2) + "\n")
    tmp.replace(path)
    return path


def remove_state(home: Path, pid: int) -> None:
    """Remove the state file of `home` if the sandbox `pid` owns it (another one's is left alone)."""
    path = state_path(home)
    with contextlib.suppress(OSError, StateFileError):
        state = _load(path)
        if state is not None and state.pid == pid:
            path.unlink()


def wait_for_state(
    home: Path,
    timeout_s: float,
    *,
    poll_s: float = 0.5,
    give_up: Callable[[], str | None] = lambda: None,
) -> SandboxState:
    """Poll until a live sandbox describes itself in `home`; `give_up` returns a reason to stop early."""
    deadline = time.monotonic() + timeout_s
    while True:
        state = read_state(home)
        if state is not None:
            return state
        reason = give_up()
        if reason is not None:
            raise StateFileError(f"no sandbox in {state_path(home)}: {reason}")
        if time.monotonic() >= deadline:
            raise StateFileError(f"the sandbox did not write {state_path(home)} within {timeout_s:.0f}s")
        time.sleep(poll_s)
