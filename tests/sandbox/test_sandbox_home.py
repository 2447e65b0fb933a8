"""The sandbox's home: settings from their documented variables only, one state file model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sandbox.home import (
    SandboxSettings,
    SandboxState,
    SettingsError,
    StateFileError,
    read_settings,
    read_state,
    remove_state,
    wait_for_state,
    write_state,
)

VARIABLES = (
    "FLEETSCOPE_HOME",
    "FLEETSCOPE_API_PORT",
    "FLEETSCOPE_EMULATOR_PORT",
    "FLEETSCOPE_DASHBOARD_PORT",
    "FLEETSCOPE_CALIBRATION_S",
)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # a user's home, never the sandbox's
    return monkeypatch


def test_settings_default_to_the_documented_values_whatever_home_is(clean_env: pytest.MonkeyPatch) -> None:
    settings = read_settings()
    assert settings == SandboxSettings.model_validate({})
    assert settings.home == Path(".fleetscope")
    assert (settings.api_port, settings.emulator_port, settings.dashboard_port) == (3000, 5055, 8501)
    assert settings.calibration_s == 8.0


def test_settings_come_from_their_variables_and_empty_means_unset(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    clean_env.setenv("FLEETSCOPE_HOME", str(tmp_path / "fs"))
    clean_env.setenv("FLEETSCOPE_API_PORT", "0")
    clean_env.setenv("FLEETSCOPE_EMULATOR_PORT", "")
    clean_env.setenv("FLEETSCOPE_CALIBRATION_S", "7.5")
    settings = read_settings()
    assert settings.home == tmp_path / "fs"
    assert settings.api_port == 0
    assert settings.emulator_port == 5055
    assert settings.calibration_s == 7.5


@pytest.mark.parametrize("raw", ["abc", "-1", "65536"])
def test_a_bad_port_names_its_variable(clean_env: pytest.MonkeyPatch, raw: str) -> None:
    clean_env.setenv("FLEETSCOPE_API_PORT", raw)
    with pytest.raises(SettingsError, match=f"FLEETSCOPE_API_PORT='{raw}' is not a port number"):
        read_settings()


def test_the_state_file_keeps_its_documented_shape(tmp_path: Path) -> None:
    # Given the state of a running sandbox
    started = datetime(2026, 12, 5, 9, 0, 1, 123456, tzinfo=UTC)
    state = SandboxState(
        pid=os.getpid(),
        emulator_url="http://127.0.0.1:5055",
        api_url="http://127.0.0.1:3000",
        dashboard_url=None,
        stage="local",
        started_at=started,
        inbox=str(tmp_path / "alerts.jsonl"),
        xray_daemon="127.0.0.1:2000",
        emulator_pid=123,
    )
    # When it is written
    path = write_state(tmp_path, state)
    # Then the file has the same keys and formats as before (plus what the sandbox is doing), and
    # reads back equal; a file without a phase (an older sandbox's) reads as live
    assert json.loads(path.read_text()) == {
        "pid": os.getpid(),
        "emulator_url": "http://127.0.0.1:5055",
        "api_url": "http://127.0.0.1:3000",
        "dashboard_url": None,
        "stage": "local",
        "started_at": "2026-12-05T09:00:01.123456+00:00",
        "inbox": str(tmp_path / "alerts.jsonl"),
        "xray_daemon": "127.0.0.1:2000",
        "emulator_pid": 123,
        "phase": "live",
        "progress": 1.0,
        "detail": "",
    }
    assert read_state(tmp_path) == state
    new_keys = ("phase", "progress", "detail")
    older = {k: v for k, v in json.loads(path.read_text()).items() if k not in new_keys}
    path.write_text(json.dumps(older))
    assert read_state(tmp_path) == state


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_only_a_live_owner_counts_and_only_the_owner_removes_the_file(tmp_path: Path) -> None:
    write_state(tmp_path, SandboxState(pid=_dead_pid(), emulator_url="http://127.0.0.1:1"))
    assert read_state(tmp_path) is None  # a dead sandbox's file describes nothing
    write_state(tmp_path, SandboxState(pid=os.getpid(), emulator_url="http://127.0.0.1:1"))
    remove_state(tmp_path, os.getpid() + 1)
    assert read_state(tmp_path) is not None  # someone else's file is left alone
    remove_state(tmp_path, os.getpid())
    assert read_state(tmp_path) is None


def test_a_corrupt_state_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "sandbox.json").write_text('{"pid": "x"}')
    with pytest.raises(StateFileError, match="not a valid sandbox description"):
        read_state(tmp_path)


def test_waiting_for_a_sandbox_stops_as_soon_as_its_starter_gives_up(tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(StateFileError, match="exited with code 1"):
        wait_for_state(tmp_path, 60, poll_s=0.01, give_up=lambda: "exited with code 1")
    assert time.monotonic() - started < 5
