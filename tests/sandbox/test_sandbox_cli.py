"""`fleetscope`: the second-start guard, status, delegated commands, and `sandbox up` end to end."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from sandbox import app as sandbox_app
from sandbox import cli
from sandbox.app import Sandbox, SandboxAlreadyRunningError, SandboxConfig, SandboxError
from sandbox.home.state import STATE_FILE, pid_alive

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FLEETSCOPE_HOME", str(tmp_path))
    return tmp_path


def _write_state(home: Path, pid: int) -> None:
    state = {
        "pid": pid,
        "emulator_url": "http://127.0.0.1:1",
        "api_url": "http://127.0.0.1:2",
        "stage": "local",
    }
    (home / STATE_FILE).write_text(json.dumps(state))


def test_second_start_while_one_runs_is_refused(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Given a state file owned by a live process (this one)
    _write_state(home, os.getpid())
    # When another sandbox starts
    with pytest.raises(SandboxAlreadyRunningError, match="already running"):
        Sandbox(SandboxConfig(home=home)).start()
    # and through the CLI: a clear message, exit code 1, nothing started
    code = cli.main(["sandbox", "up", "--no-dashboard", "--no-fleet"])
    assert code == 1
    assert "already running" in capsys.readouterr().err
    assert json.loads((home / STATE_FILE).read_text())["pid"] == os.getpid()  # left alone


def test_status_reports_running_and_stale_state(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["sandbox", "status"]) == 1
    assert "no sandbox is running" in capsys.readouterr().err
    _write_state(home, os.getpid())
    assert cli.main(["sandbox", "status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["api_url"] == "http://127.0.0.1:2"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    _write_state(home, dead.pid)
    assert cli.main(["sandbox", "status"]) == 1  # a dead pid is no sandbox


def test_bad_arguments_are_rejected(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (
        ["sandbox", "up", "--fleet-size", "0"],
        ["sandbox", "up", "--monitor-interval", "x"],
        ["nope"],
    ):
        with pytest.raises(SystemExit) as exit_info:
            cli.main(argv)
        assert exit_info.value.code == 2
    assert "must be >= 1" in capsys.readouterr().err


def test_a_bad_stage_says_what_a_stage_may_be(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["sandbox", "up", "--no-dashboard", "--stage", "Bad_Stage!"]) == 2
    err = capsys.readouterr().err
    assert "'Bad_Stage!'" in err
    assert "lowercase letters, digits and '-'" in err


def test_incident_and_alerts_delegate_to_the_fleet_modules(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["incident", "list"]) == 0
    assert "no active or recent injections" in capsys.readouterr().out
    assert cli.main(["incident", "no-such-kind", "--minutes", "1"]) == 2
    assert "unknown incident kind" in capsys.readouterr().err
    assert cli.main(["alerts"]) == 0


def test_missing_delegate_says_not_available(capsys: pytest.CaptureFixture[str]) -> None:
    run = cli._delegate("sandbox.no_such_module", "cli_x", "thing")
    assert run(cli.build_parser().parse_args(["alerts"])) == 2
    assert "not available yet" in capsys.readouterr().err


@pytest.mark.integration
@pytest.mark.slow
def test_sandbox_up_serves_the_api_and_stops_cleanly_on_sigint(tmp_path: Path) -> None:
    env = os.environ | {
        "FLEETSCOPE_HOME": str(tmp_path),
        "FLEETSCOPE_API_PORT": "0",
        "FLEETSCOPE_EMULATOR_PORT": "0",
    }
    env.pop("AWS_ENDPOINT_URL", None)
    command = ["sandbox", "up", "--no-dashboard", "--no-fleet", "--no-backfill", "--no-monitor"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "sandbox.cli", *command],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    state_file = tmp_path / STATE_FILE
    try:
        deadline = time.monotonic() + 120
        while not state_file.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert state_file.exists(), proc.stderr.read() if proc.poll() is not None else "no state file"
        state = json.loads(state_file.read_text())
        assert state["pid"] == proc.pid
        health = requests.get(f"{state['api_url']}/health", timeout=30)
        assert health.status_code == 200
        assert health.json()["status"] == "ok"
        # When interrupted
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # Then it exits 0, removes its state file and leaves no emulator behind
    assert proc.returncode == 0, err
    assert "sandbox stopped" in out
    assert state["api_url"] in out
    assert not state_file.exists()
    assert not pid_alive(state["emulator_pid"])
    assert "Traceback" not in err


def test_busy_ports_are_clear_errors_and_leave_nothing_running(home: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        for config in (
            SandboxConfig(home=home, emulator_port=port, api_port=0),
            SandboxConfig(home=home, emulator_port=0, api_port=port),
        ):
            sandbox = Sandbox(config)
            with pytest.raises(SandboxError, match=f"127.0.0.1:{port}"):
                sandbox.start()
            assert sandbox.emulator is None  # refused before starting anything
            assert not (home / STATE_FILE).exists()


def _port_left_in_time_wait() -> int:
    """A port whose server just closed a connection first (TIME_WAIT), as after a sandbox stops."""
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = int(server.getsockname()[1])
        with socket.create_connection(("127.0.0.1", port)) as client:
            conn, _ = server.accept()
            conn.close()  # the server side closes first, like an HTTP server ending a response
            client.recv(1)
    return port


def test_a_port_in_time_wait_after_a_stop_counts_as_free(home: Path) -> None:
    # A restart right after Ctrl-C must not be refused: the real servers set SO_REUSEADDR,
    # so the start-up probe must too, yet still refuse a port someone listens on.
    port = _port_left_in_time_wait()
    sandbox_app._check_port_free(port, "AWS emulator", "FLEETSCOPE_EMULATOR_PORT")
    with socket.socket() as busy:
        busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        busy.bind(("127.0.0.1", port))
        busy.listen()
        with pytest.raises(SandboxError, match="FLEETSCOPE_EMULATOR_PORT"):
            sandbox_app._check_port_free(port, "AWS emulator", "FLEETSCOPE_EMULATOR_PORT")


def test_output_piped_into_a_reader_that_stops_early_ends_quietly(tmp_path: Path) -> None:
    # `fleetscope alerts | head -1`: the reader goes away; no BrokenPipeError traceback.
    envelope = {"Type": "Notification", "Subject": "[INFO] OPEN x", "Message": json.dumps({"pad": "x" * 300})}
    (tmp_path / "alerts.jsonl").write_text("\n".join(json.dumps(envelope) for _ in range(2000)) + "\n")
    env = os.environ | {"FLEETSCOPE_HOME": str(tmp_path)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "sandbox.cli", "alerts"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    assert proc.stderr is not None
    assert json.loads(proc.stdout.readline())["Subject"] == "[INFO] OPEN x"
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=30) == 0
    assert "Traceback" not in err
    assert "BrokenPipe" not in err
