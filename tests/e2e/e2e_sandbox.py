"""Drive a real `fleetscope sandbox up` subprocess for the end-to-end tests.

The sandbox runs exactly as a user starts it (`fleetscope sandbox up --no-dashboard`), on free
127.0.0.1 ports, with its own FLEETSCOPE_HOME, a monitor every few seconds on 1-minute periods, and
monitor settings shortened for a test (settle 10 s, incident hold-down 60 s, 2 days of history).
Tests talk to it only through its public surfaces: the HTTP API, `fleetscope incident`, the inbox
file `alerts.jsonl` (what `fleetscope alerts` prints), `fleet.json`, and the AWS emulator.

`Fault` is one injected incident and what the alert inbox made of it. Every wait here polls a
condition against a deadline, and every deadline is absolute (counted from the sandbox's start or
the injection), so a test that runs later than another finds its outcome already there.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any

import boto3
import requests

from sandbox.aws.inbox import AlertLog, attribute

ROOT = Path(__file__).resolve().parents[2]
FLEETSCOPE = Path(sys.executable).with_name("fleetscope")

MONITOR_ENV = {
    "MONITOR_SETTLE_S": "10",  # metrics are flushed every 2 s; a minute is complete 10 s after it ends
    "MONITOR_COOLDOWN_S": "60",  # incident hold-down after every member is clear
    "MONITOR_HISTORY_DAYS": "2",  # the backfill's 1-minute part (older history is 5-minute)
}
DETECT_WITHIN = timedelta(minutes=5)
RESOLVE_WITHIN = timedelta(minutes=20)  # 6 clear 1-minute points + 60 s hold-down + settle + schedule


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
        self.figures: dict[str, Any] = {}  # printed as `E2E FIGURES` at the end of the run
        self.health: HealthPoller | None = None  # polls /health from start() to stop()

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
        self.health = HealthPoller(self.api_url, interval_s=15).start()
        return self

    def stop(self) -> None:
        if self.health is not None:
            self.health.stop()
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

    def scored_until(self) -> datetime | None:
        """The end of the last period a successful monitor run scored."""
        runs = [r for r in self.monitor_runs() if r.get("status") == "ok" and r.get("scored_until")]
        return datetime.fromtimestamp(runs[-1]["scored_until"], tz=UTC) if runs else None

    def wait_scored(self, until: datetime, timeout_s: float) -> None:
        """Wait until the monitor has scored every period that starts before `until`."""

        def done() -> bool:
            last = self.scored_until()
            return last is not None and last + timedelta(minutes=1) >= until

        self.wait_for(done, timeout_s, poll_s=5)

    def wait_until(self, condition: Callable[[], bool], deadline: datetime, poll_s: float = 5.0) -> None:
        """`wait_for` with an absolute deadline (at least one check even when it has passed)."""
        self.wait_for(condition, max((deadline - datetime.now(UTC)).total_seconds(), poll_s), poll_s)

    def queue_count(self, name: str) -> int:
        """Visible + in-flight messages of the queue `name`."""
        sqs = self.aws("sqs")
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
        return sum(int(attrs[n]) for n in names)

    def metric_sum(self, name: str, since: datetime, service: str = "telemetry-ingest") -> float:
        """Sum of the business metric `name` of `service` since `since`."""
        metric = {
            "Namespace": "Fleetscope",
            "MetricName": name,
            "Dimensions": [{"Name": "service", "Value": service}],
        }
        result = self.aws("cloudwatch").get_metric_data(
            StartTime=since,
            EndTime=datetime.now(UTC) + timedelta(minutes=1),
            MetricDataQueries=[
                {"Id": "m", "MetricStat": {"Metric": metric, "Period": 86400 * 15, "Stat": "Sum"}}
            ],
        )
        return float(sum(result["MetricDataResults"][0]["Values"]))


def describe(alerts: list[Alert]) -> str:
    return "\n".join(
        f"  {a.at.isoformat()} {a.kind} {a.resource} [{', '.join(a.series)}] {a.subject}" for a in alerts
    )


@dataclass(frozen=True)
class Outcome:
    """What the inbox made of a fault: its group's first OPEN and the RESOLVED that closed it."""

    opened: Alert
    resolved_at: datetime
    window: list[Alert]  # every alert from the injection up to resolved_at

    def opens(self, *, besides: tuple[str, ...] = ()) -> list[str]:
        """The groups OPENed in the window, leaving out `besides` (faults injected alongside)."""
        return [a.resource for a in self.window if a.kind == "OPEN" and a.resource not in besides]


@dataclass
class Fault:
    """One injected incident of `kind` whose alerts belong to the incident group `group`."""

    sandbox: SandboxProcess
    kind: str
    group: str
    start: datetime
    end: datetime
    alerts_before: int  # the inbox's length when it was injected

    @classmethod
    def inject(
        cls, sandbox: SandboxProcess, kind: str, group: str, *, minutes: float, intensity: float
    ) -> Fault:
        alerts_before = len(sandbox.alerts())
        result = sandbox.incident(kind, "--minutes", f"{minutes:g}", "--intensity", f"{intensity:g}")
        assert result.returncode == 0, result.stderr
        listed = [json.loads(line) for line in sandbox.incident("list", "--json").stdout.splitlines() if line]
        injection = [i for i in listed if i["kind"] == kind][-1]
        start, end = (datetime.fromisoformat(injection[k]) for k in ("start", "end"))
        return cls(sandbox, kind, group, start, end, alerts_before)

    def alerts(self) -> list[Alert]:
        """Alerts delivered since the injection."""
        return self.sandbox.alerts()[self.alerts_before :]

    def first_open(self) -> Alert | None:
        return next((a for a in self.alerts() if a.kind == "OPEN" and a.resource == self.group), None)

    @cached_property
    def outcome(self) -> Outcome:
        """Wait for the group's OPEN (DETECT_WITHIN of the start, + one schedule) and its RESOLVED
        (RESOLVE_WITHIN of the end); fails with the alert log if either does not come."""
        try:
            self.sandbox.wait_until(
                lambda: self.first_open() is not None, self.start + DETECT_WITHIN + timedelta(seconds=30)
            )
        except AssertionError as err:
            raise AssertionError(
                f"{self.kind}: no OPEN for {self.group}:\n{describe(self.alerts())}\n{err}"
            ) from None
        opened = self.first_open()
        assert opened is not None

        def resolution() -> Alert | None:
            return next(
                (
                    a
                    for a in self.alerts()
                    if a.kind == "RESOLVED" and a.resource == self.group and a.at >= opened.at
                ),
                None,
            )

        try:
            self.sandbox.wait_until(lambda: resolution() is not None, self.end + RESOLVE_WITHIN, poll_s=10)
        except AssertionError as err:
            raise AssertionError(
                f"{self.kind}: {self.group} did not resolve:\n{describe(self.alerts())}\n{err}"
            ) from None
        resolved = resolution()
        assert resolved is not None
        window = [a for a in self.alerts() if a.at <= resolved.at]
        return Outcome(opened=opened, resolved_at=resolved.at, window=window)


def warm_up(sandbox: SandboxProcess) -> list[Alert]:
    """Wait until the monitor has scored the first live minutes (2 minutes on from now, rounded down);
    return the alerts raised so far."""
    live_from = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=2)
    sandbox.wait_scored(live_from, timeout_s=600)
    alerts = sandbox.alerts()
    sandbox.figures["warmup_alerts"] = len(alerts)
    return alerts


def detected_once_and_resolved(fault: Fault, *, besides: tuple[str, ...] = ()) -> None:
    """`fault` was detected within DETECT_WITHIN as exactly one OPEN, its group's incident (groups in
    `besides` belong to faults injected alongside), which resolved after the injection ended."""
    outcome = fault.outcome
    label = fault.kind.replace("-", "_")
    delay = outcome.opened.at - fault.start
    fault.sandbox.figures[f"{label}_detection_s"] = round(delay.total_seconds())
    fault.sandbox.figures[f"{label}_resolved_after_end_s"] = round(
        (outcome.resolved_at - fault.end).total_seconds()
    )
    fault.sandbox.figures[f"{label}_opens"] = outcome.opens()
    log = describe(outcome.window)
    assert delay <= DETECT_WITHIN, log
    assert outcome.opens(besides=besides) == [fault.group], f"expected exactly one OPEN alert:\n{log}"
    assert outcome.resolved_at >= fault.end, log


def ran_their_course(*faults: Fault) -> None:
    """Wait until each fault's incident has resolved, or its own test's deadline has passed."""
    for fault in faults:
        with contextlib.suppress(AssertionError):  # each fault's own test reports why
            fault.outcome  # noqa: B018 (waits; cached)


def assert_api_answered(sandbox: SandboxProcess) -> None:
    """Every /health poll got an HTTP answer (an injected 502 is one; a refused connection or a
    timeout is not), and most of them were 200."""
    assert sandbox.health is not None
    results = list(sandbox.health.results)
    sandbox.figures["health_polls"] = len(results)
    sandbox.figures["health_200"] = sum(1 for _, s in results if s == 200)
    assert len(results) > 10
    failures = [(at, status) for at, status in results if not isinstance(status, int)]
    assert failures == [], failures
    assert all(isinstance(s, int) and s in (200, 502) for _, s in results)
    assert sum(1 for _, s in results if s == 200) > 0.7 * len(results)
