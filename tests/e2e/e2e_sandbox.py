"""Drive a real `fleetscope sandbox up` subprocess for the end-to-end tests.

The sandbox runs exactly as a user starts it (`fleetscope sandbox up --no-dashboard`), on free
127.0.0.1 ports, with its own FLEETSCOPE_HOME, a monitor every few seconds on 1-minute periods, and
monitor settings shortened for a test (settle 10 s, incident hold-down 60 s, 2 days of history).
Tests talk to it only through its public surfaces: the HTTP API, `fleetscope incident`, the inbox
file `alerts.jsonl` (what `fleetscope alerts` prints), `fleet.json`, and the AWS emulator.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import requests

from sandbox.inbox import AlertLog, attribute

ROOT = Path(__file__).resolve().parents[2]
FLEETSCOPE = Path(sys.executable).with_name("fleetscope")

MONITOR_ENV = {
    "MONITOR_SETTLE_S": "10",  # metrics are flushed every 2 s; a minute is complete 10 s after it ends
    "MONITOR_COOLDOWN_S": "60",  # incident hold-down after every member is clear
    "MONITOR_HISTORY_DAYS": "2",  # the backfill's 1-minute part (older history is 5-minute)
}


@dataclass(frozen=True)
class Alert:
    kind: str  # OPEN / UPDATED / RESOLVED
    resource: str  # the incident's group, e.g. service:cars-api
    severity: str
    subject: str
    at: datetime  # SNS Timestamp
    resources: tuple[str, ...] = ()  # the resources whose metrics are members (from the JSON payload)
    series: tuple[str, ...] = ()  # the anomalous series ids (from the JSON payload)

    @classmethod
    def from_envelope(cls, envelope: dict[str, Any]) -> Alert:
        stamp = str(envelope.get("Timestamp", "")).replace("Z", "+00:00")
        try:
            payload = json.loads(envelope.get("Message") or "")
        except ValueError:
            payload = {}
        payload = payload if isinstance(payload, dict) else {}
        return cls(
            resources=tuple(payload.get("resources") or ()),
            series=tuple(a.get("series_id", "") for a in payload.get("anomalies") or ()),
            kind=attribute(envelope, "kind") or "?",
            resource=attribute(envelope, "resource") or "?",
            severity=attribute(envelope, "severity") or "?",
            subject=str(envelope.get("Subject", "")),
            at=datetime.fromisoformat(stamp) if stamp else datetime.now(UTC),
        )


@dataclass
class HealthPoller:
    """GET /health every `interval_s` from a thread; records (time, status or error)."""

    api_url: str
    interval_s: float = 15.0
    results: list[tuple[datetime, int | str]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> HealthPoller:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        session = requests.Session()
        while not self._stop.is_set():
            at = datetime.now(UTC)
            try:
                status: int | str = session.get(f"{self.api_url}/health", timeout=10).status_code
            except requests.RequestException as err:
                status = f"{type(err).__name__}: {err}"
            self.results.append((at, status))
            self._stop.wait(self.interval_s)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(15)


class SandboxProcess:
    def __init__(self, home: Path, *, monitor_interval_s: float = 10.0, fleet_size: int = 50) -> None:
        self.home = home
        self.monitor_interval_s = monitor_interval_s
        self.fleet_size = fleet_size
        self.process: subprocess.Popen[bytes] | None = None
        self.state: dict[str, Any] = {}
        self.log_path = home / "sandbox.log"

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ) | MONITOR_ENV
        env |= {
            "FLEETSCOPE_HOME": str(self.home),
            "FLEETSCOPE_API_PORT": "0",
            "FLEETSCOPE_EMULATOR_PORT": "0",
            "PYTHONUNBUFFERED": "1",
        }
        env.pop("AWS_ENDPOINT_URL", None)  # the sandbox sets its own
        return env

    def start(self, timeout_s: float = 240.0) -> SandboxProcess:
        self.home.mkdir(parents=True, exist_ok=True)
        cmd = [
            str(FLEETSCOPE),
            "sandbox",
            "up",
            "--no-dashboard",
            "--no-tracing",
            "--monitor-interval",
            str(self.monitor_interval_s),
            "--fleet-size",
            str(self.fleet_size),
        ]
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                cmd, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        state_file = self.home / "sandbox.json"
        self.wait_for(
            lambda: state_file.exists() and "api_url" in json.loads(state_file.read_text()), timeout_s
        )
        self.state = json.loads(state_file.read_text())
        # Live with history: the fleet is driving (it starts first, to calibrate the history's latency)
        # and the backfill marker exists (written when the history is complete).
        self.wait_for(lambda: (self.home / "fleet.json").exists(), timeout_s)
        self.wait_for(lambda: (self.home / "backfill.json").exists(), timeout_s)
        return self

    def stop(self) -> None:
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    def wait_for(self, condition: Callable[[], bool], timeout_s: float, poll_s: float = 1.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"sandbox exited ({self.process.returncode}):\n{self.log_tail()}")
            try:
                if condition():
                    return
            except (OSError, ValueError):
                pass
            time.sleep(poll_s)
        raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for the sandbox:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    # -- public surfaces -----------------------------------------------------------------------------

    @property
    def api_url(self) -> str:
        return str(self.state["api_url"])

    def incident(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(FLEETSCOPE), "incident", *argv],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def alerts(self) -> list[Alert]:
        envelopes, problems = AlertLog(self.home).read()
        assert problems == [], problems
        return [Alert.from_envelope(e) for e in envelopes]

    def fleet_stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = json.loads((self.home / "fleet.json").read_text())
        return stats

    def aws(self, service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.state["emulator_url"],
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def monitor_runs(self) -> list[dict[str, Any]]:
        """The `run` summaries the monitor logged (newest last)."""
        logs = self.aws("logs")
        group = f"/aws/lambda/fleetscope-{self.state.get('stage', 'local')}-monitor"
        runs: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"logGroupName": group}
        while True:
            page = logs.filter_log_events(**kwargs)
            for event in page.get("events", []):
                if "monitor run finished" in event["message"]:
                    runs.append(json.loads(event["message"]).get("run", {}))
            if not page.get("nextToken"):
                return runs
            kwargs["nextToken"] = page["nextToken"]
