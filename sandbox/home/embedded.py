"""A sandbox started for someone else (the dashboard): ``fleetscope sandbox up --no-dashboard`` as a
child process with the same home, waited for through the state file, stopped with its owner.

The child runs in its owner's process group, so a Ctrl-C in the owner's terminal reaches both and
each stops cleanly; `stop()` (the owner's exit) sends SIGTERM, which the CLI handles like Ctrl-C.
Its output goes to ``$FLEETSCOPE_HOME/sandbox.log``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sandbox.home.state import SandboxState, StateFileError, read_state, state_path, wait_for_state

LOG_FILE = "sandbox.log"


class EmbeddedSandbox:
    """Start with `start()` (returns the sandbox's state once it is live), stop with `stop()`."""

    def __init__(self, home: Path, *, start_timeout_s: float = 180.0, stop_timeout_s: float = 60.0) -> None:
        self.home = home.resolve()
        self.start_timeout_s = start_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.process: subprocess.Popen[bytes] | None = None
        self.launched_at = 0.0

    @property
    def log_path(self) -> Path:
        return self.home / LOG_FILE

    def start(self) -> SandboxState:
        """Launch and wait (up to `start_timeout_s`) until the sandbox's API answers."""
        self.launch()
        try:
            return wait_for_state(self.home, self.start_timeout_s, give_up=self._exited)
        except StateFileError as err:
            self.stop()
            raise StateFileError(f"{err} (its log: {self.log_path})") from err

    def launch(self) -> None:
        """Start the child process and return at once (`poll()` tells when it is up). Idempotent."""
        if self.process is not None:
            return
        self.home.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "sandbox.cli", "sandbox", "up", "--no-dashboard"]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                command,
                env=os.environ | {"FLEETSCOPE_HOME": str(self.home)},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.launched_at = time.monotonic()

    def poll(self) -> SandboxState | None:
        """The launched sandbox's state once its API answers, None while it starts; `StateFileError`
        (and the child stopped) if it exited or did not come up within `start_timeout_s`."""
        state = read_state(self.home)
        if state is not None and self.process is not None and state.pid == self.process.pid:
            return state
        reason = self._exited()
        if reason is None and time.monotonic() - self.launched_at > self.start_timeout_s:
            reason = f"it did not come up within {self.start_timeout_s:.0f}s"
        if reason is not None:
            self.stop()
            where = state_path(self.home)
            raise StateFileError(f"no sandbox in {where}: {reason} (its log: {self.log_path})")
        return None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def _exited(self) -> str | None:
        code = self.process.poll() if self.process is not None else None
        return None if code is None else f"`fleetscope sandbox up` exited with code {code}"

    def stop(self) -> None:
        """Stop the child as Ctrl-C would (everything it started, in reverse order). Idempotent."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(self.stop_timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
