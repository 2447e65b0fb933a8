"""The sandbox orchestrator: the whole of Fleetscope on one machine, no AWS account.

`Sandbox.start()` brings up, in order: the AWS emulator (`sandbox.emulator`) on
127.0.0.1:${FLEETSCOPE_EMULATOR_PORT:-5055}; the resources of the stage from `contract.topology`; the
telemetry sink and the X-Ray daemon; one `LambdaRuntime` per function; the API gateway on
127.0.0.1:${FLEETSCOPE_API_PORT:-3000}; the SQS and DynamoDB-stream event sources; the alert
inbox; the monitor on a schedule; the fleet simulator and the 14-day backfill; optionally the
dashboard. The fleet starts first: for `calibration_s` seconds the sandbox records the latencies it
serves (`sandbox.history.calibration`), and the backfill's latency profile is fitted to them
(`HistoryProfile.calibrated`), with the history ending at the minute the fleet started. The monitor
waits for the history. A function whose handler module is missing, or the dashboard without
Streamlit, is skipped with a log line. Once the API answers it writes the state file
(`sandbox.home.state`) — how the CLI and the dashboard find a running sandbox — and removes it in
`stop()`, which stops everything it started in reverse order (one `contextlib.ExitStack`).
Its settings come from `sandbox.home.settings`; the layers it composes are `sandbox.emulator`,
`sandbox.aws`, `sandbox.traffic` and `sandbox.history`.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import socket
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

from contract.topology import FunctionSpec, Topology, topology
from sandbox.aws.event_source import SqsEventSource
from sandbox.aws.gateway import Gateway, GatewayConfig
from sandbox.aws.inbox import AlertPrinter, Inbox
from sandbox.aws.outbox_sweeper import OutboxSweeper
from sandbox.aws.provision import Provisioned, provision
from sandbox.aws.runtime import PROJECT_ROOT, LambdaRuntime
from sandbox.aws.scheduler import scheduled_event
from sandbox.aws.stream_source import StreamSource, sqs_failure_destination
from sandbox.aws.telemetry import TelemetrySink
from sandbox.aws.telemetry_route import TelemetryRoute
from sandbox.aws.versions import AliasRouter
from sandbox.aws.xray import XRayDaemon
from sandbox.emulator.server import Emulator, EmulatorError, aws_environment, stop_process
from sandbox.history.backfill import HistoryProfile, run_backfill
from sandbox.history.calibration import LatencyRecorder
from sandbox.home.settings import SandboxSettings, SettingsError, read_monitor_overrides, read_settings
from sandbox.home.state import (
    Phase,
    SandboxState,
    StateFileError,
    read_state,
    remove_state,
    state_path,
    write_state,
)
from sandbox.traffic.faults import FileFaultInjector
from sandbox.traffic.fleet import FleetSimulator

log = logging.getLogger("fleetscope.sandbox")

MAX_CALIBRATION_S = 600.0


class SandboxError(RuntimeError):
    """The sandbox cannot start (bad configuration, port in use, ...)."""


class SandboxAlreadyRunningError(SandboxError):
    """Another sandbox (live pid) owns the state file."""


def _settings() -> SandboxSettings:
    try:
        return read_settings()
    except SettingsError as err:
        raise SandboxError(str(err)) from err


def _check_port_free(port: int, what: str, variable: str) -> None:
    if port == 0:
        return
    with socket.socket() as probe:
        # Like the servers that will listen there (werkzeug, streamlit): connections left in
        # TIME_WAIT by a sandbox that just stopped do not make the port busy; a listener does.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as err:
            raise SandboxError(
                f"cannot listen on 127.0.0.1:{port} for the {what}: {err.strerror} "
                f"(another sandbox or program uses it; set {variable} to use another port)"
            ) from err


def floor_minute(t: datetime) -> datetime:
    """`t` (aware) floored to the start of its minute, in UTC."""
    return t.astimezone(UTC).replace(second=0, microsecond=0)


def module_available(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


@dataclass
class SandboxConfig:
    stage: str = "local"
    # Defaults from the environment (`sandbox.home.settings`); an explicit value wins.
    home: Path = field(default_factory=lambda: _settings().home)
    emulator_port: int = field(default_factory=lambda: _settings().emulator_port)
    api_port: int = field(default_factory=lambda: _settings().api_port)
    dashboard_port: int = field(default_factory=lambda: _settings().dashboard_port)
    dashboard: bool = False
    fleet: bool = True
    fleet_size: int = 50
    backfill: bool = True
    backfill_days: int = 14
    # Seconds of live traffic measured to calibrate the backfill's latencies (0: default profile).
    calibration_s: float = field(default_factory=lambda: _settings().calibration_s)
    monitor: bool = True
    monitor_interval_s: float = 60.0
    # The outbox sweeper thread (AWS: a schedule on the relay every 5 min): how often, and how old an
    # unpublished item must be before it sweeps it.
    outbox_sweep_interval_s: float = 60.0
    outbox_sweep_after_s: float = 600.0
    monitor_period_s: int = 60
    tracing: bool = True
    max_environments: int = 4
    api_rate: float = 10_000.0
    api_burst: int = 5_000
    flush_interval_s: float = 2.0
    # How often the emulator publishes the AWS/SQS, AWS/DynamoDB and AWS/Events metrics (AWS: every
    # minute); tests shorten it.
    aws_metrics_interval_s: float = 60.0

    def validate(self) -> None:
        if self.fleet_size < 1:
            raise SandboxError(f"fleet size must be >= 1, got {self.fleet_size}")
        if self.monitor_interval_s < 1:
            raise SandboxError(f"monitor interval must be >= 1 s, got {self.monitor_interval_s}")
        if self.max_environments < 1:
            raise SandboxError(f"max environments must be >= 1, got {self.max_environments}")
        if self.backfill_days < 1:
            raise SandboxError(f"backfill days must be >= 1, got {self.backfill_days}")
        if not 0 <= self.calibration_s <= MAX_CALIBRATION_S:  # NaN fails too
            raise SandboxError(
                f"calibration must be 0 (off) to {MAX_CALIBRATION_S:.0f} s, got {self.calibration_s} "
                "(FLEETSCOPE_CALIBRATION_S)"
            )


class Sandbox:
    """Start with `start()`, stop with `stop()` (or use as a context manager)."""

    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.config = config or SandboxConfig()
        self.config.validate()
        self.topology: Topology = topology(self.config.stage)
        self.emulator: Emulator | None = None
        self.provisioned: Provisioned | None = None
        self.sink: TelemetrySink | None = None
        self.xray: XRayDaemon | None = None
        self.hooks = FileFaultInjector(self.config.home)  # the runtime's FaultHook, the fleet's controls
        self.router = AliasRouter(self.config.home)  # `live` alias routing (`fleetscope deploy`)
        self.runtimes: dict[str, LambdaRuntime] = {}
        self.outbox_sweeper: OutboxSweeper | None = None
        self.gateway: Gateway | None = None
        self.dashboard_process: subprocess.Popen[bytes] | None = None
        self.started_at: datetime | None = None
        self.timings: dict[str, float] = {}
        self.skipped: list[str] = []
        self._stack = contextlib.ExitStack()  # what was started, stopped in reverse order
        self._stop = threading.Event()
        self._state_path = state_path(self.config.home)
        self._wrote_state = False
        self.fleet: FleetSimulator | None = None
        self.history_ready = threading.Event()
        self.fleet_started_at: datetime | None = None  # with a calibrated history: where it ends
        self._state_lock = threading.Lock()
        # What the state file says the sandbox is doing once its API answers (see `set_phase`).
        self.phase: tuple[Phase, float, str] = self._first_phase()

    def _first_phase(self) -> tuple[Phase, float, str]:
        cfg = self.config
        if cfg.backfill and cfg.fleet and cfg.calibration_s > 0:
            return "calibrating", 0.0, f"0 of {cfg.calibration_s:.0f} s"
        if cfg.backfill:
            return "backfilling", 0.0, f"0 of {cfg.backfill_days} days"
        return "live", 1.0, ""

    def set_phase(self, phase: Phase, progress: float, detail: str = "") -> None:
        """Record what the sandbox is doing (and how far it is) in its state file."""
        self.phase = (phase, min(max(progress, 0.0), 1.0), detail)
        self.update_state()

    # ---- urls ---------------------------------------------------------------------------------
    @property
    def emulator_url(self) -> str:
        assert self.emulator is not None
        return self.emulator.endpoint_url

    @property
    def api_url(self) -> str:
        assert self.gateway is not None
        return self.gateway.url

    @property
    def dashboard_url(self) -> str | None:
        if self.dashboard_process is None:
            return None
        return f"http://127.0.0.1:{self.config.dashboard_port}"

    # ---- lifecycle ----------------------------------------------------------------------------
    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> Sandbox:
        try:
            existing = read_state(self.config.home)
        except StateFileError as err:
            raise SandboxError(str(err)) from err
        if existing is not None:
            raise SandboxAlreadyRunningError(
                f"a sandbox is already running (pid {existing.pid}, API {existing.api_url}, "
                f"state file {self._state_path}); stop it first"
            )
        t0 = time.perf_counter()
        try:
            self._start_core()
            self.timings["live_s"] = time.perf_counter() - t0
            self._write_state()
            self._start_extras(t0)
            self.update_state()
        except BaseException:
            self.stop()
            raise
        return self

    def _step(self, name: str, stopper: Callable[[], None]) -> None:
        """`stopper` runs in `stop()`, before the stoppers of earlier steps; its failure is logged."""
        self._stack.callback(_stop_logged, name, stopper)

    def _start_core(self) -> None:
        cfg = self.config
        # Fail fast, before anything starts, on ports another program holds.
        _check_port_free(cfg.emulator_port, "AWS emulator", "FLEETSCOPE_EMULATOR_PORT")
        _check_port_free(cfg.api_port, "API gateway", "FLEETSCOPE_API_PORT")
        self.emulator = Emulator(
            port=cfg.emulator_port, own_session=True, sqs_metrics_interval_s=cfg.aws_metrics_interval_s
        )
        self._step("emulator", self.emulator.stop)
        try:
            self.emulator.start()
        except EmulatorError as err:
            raise SandboxError(
                f"cannot start the AWS emulator on 127.0.0.1:{cfg.emulator_port} "
                f"(set FLEETSCOPE_EMULATOR_PORT to use another port): {err}"
            ) from err
        os.environ.update(aws_environment(self.emulator.endpoint_url))
        session = boto3.Session()
        self.provisioned = provision(self.topology, session=session)
        self.sink = TelemetrySink(session=session, flush_interval_s=cfg.flush_interval_s).start()
        self._step("telemetry", self.sink.stop)
        if cfg.tracing:
            self.xray = XRayDaemon(session=session).start()
            self._step("xray", self.xray.stop)
        for fn in self.topology.functions:
            extra = self._monitor_environment(cfg) if fn.key == "monitor" else {}
            runtime = LambdaRuntime(
                self.topology,
                fn,
                endpoint_url=self.emulator.endpoint_url,
                sink=self.sink,
                hooks=self.hooks,
                xray=self.xray,
                max_environments=cfg.max_environments,
                extra_env=extra,
                router=self.router,
            )
            self.runtimes[fn.key] = runtime
            self._step(f"runtime {fn.key}", runtime.stop)
        api = self.topology.cars_api
        if self._handler_available(api):
            self.timings["cars_api_init_ms"] = self.runtimes[api.key].warm()
        self.gateway = Gateway(
            self.runtimes[api.key],
            GatewayConfig(
                api_name=self.topology.api_name,
                stage=self.topology.api_stage,
                rate=cfg.api_rate,
                burst=cfg.api_burst,
            ),
            sink=self.sink,
            xray=self.xray,
            port=cfg.api_port,
            telemetry=TelemetryRoute(self.provisioned.telemetry_queue_url),
        )
        try:
            self.gateway.start()
        except OSError as err:
            raise SandboxError(
                f"cannot listen on 127.0.0.1:{cfg.api_port} for the API gateway: {err}"
            ) from err
        self._step("gateway", self.gateway.stop)
        log.info("emulator %s · API %s", self.emulator_url, self.api_url)

    def _start_extras(self, t0: float) -> None:
        self._start_event_sources()
        self._start_inbox()
        if self.config.monitor:
            self._start_monitor()
        if self.config.dashboard:
            self._start_dashboard()
        threading.Thread(
            target=self._history_then_fleet, args=(t0,), name="sandbox-traffic", daemon=True
        ).start()

    def _skip(self, what: str) -> None:
        self.skipped.append(what)
        log.info("skipping %s", what)

    def _handler_available(self, fn: FunctionSpec) -> bool:
        module = fn.handler.rpartition(".")[0]
        if module_available(module):
            return True
        self._skip(f"{fn.key}: handler module {module} is not there yet")
        return False

    @staticmethod
    def _monitor_environment(cfg: SandboxConfig) -> dict[str, str]:
        """The monitor's sandbox settings; a variable already set in the environment wins.

        Metrics are flushed every few seconds here, so a minute is complete long before CloudWatch's
        2-minute settle; and history older than the backfill's 1-minute tail is 5-minute data.
        """
        try:
            overrides = read_monitor_overrides()
        except SettingsError as err:
            raise SandboxError(str(err)) from err
        dashboard_url = overrides.dashboard_url
        if dashboard_url is None and cfg.dashboard and cfg.dashboard_port:
            dashboard_url = f"http://127.0.0.1:{cfg.dashboard_port}"
        return ({"MONITOR_DASHBOARD_URL": dashboard_url} if dashboard_url else {}) | {
            "MONITOR_PERIOD_S": str(cfg.monitor_period_s),
            "MONITOR_SETTLE_S": str(10 if overrides.settle_s is None else overrides.settle_s),
            "MONITOR_HISTORY_DAYS": f"{2 if overrides.history_days is None else overrides.history_days:g}",
        }

    def _start_event_sources(self) -> None:
        assert self.provisioned is not None
        topo = self.topology
        ingest = topo.telemetry_ingest
        if self._handler_available(ingest):
            hooks = self.hooks
            source = SqsEventSource.from_spec(
                self.provisioned.telemetry_queue_url,
                None,
                spec=topo.telemetry_source,
                function_name=ingest.name,
                invoke=self.runtimes[ingest.key],
                should_poll=lambda: not hooks.consumer_paused(ingest.key),
            ).start()
            self._step("telemetry event source", source.stop)
        relay = topo.outbox_relay
        if not self.provisioned.outbox_stream_arn:
            self._skip("outbox stream source: the outbox table has no stream")
        elif self._handler_available(relay):
            runtime = self.runtimes[relay.key]
            stream = StreamSource.from_spec(
                topo.outbox_source,
                stream_arn=self.provisioned.outbox_stream_arn,
                handler=lambda event, _context: stream_invoke(runtime, event),
                function_name=relay.name,
                on_failure=sqs_failure_destination(self.provisioned.relay_failures_url),
            ).start()
            self._step("outbox stream source", stream.stop)
            sweeper = OutboxSweeper(
                topo,
                interval_s=self.config.outbox_sweep_interval_s,
                older_than_s=self.config.outbox_sweep_after_s,
                fails=self.hooks.eventbridge_fails,
            ).start()
            self.outbox_sweeper = sweeper
            self._step("outbox sweeper", sweeper.stop)

    def _start_inbox(self) -> None:
        assert self.provisioned is not None
        inbox = Inbox.ensure(
            self.topology, home=self.config.home, topic_arn=self.provisioned.alerts_topic_arn
        )
        printer = AlertPrinter(inbox, out=sys.stderr).start()
        self._step("alert inbox", printer.stop)

    # ---- monitor schedule ---------------------------------------------------------------------
    def _start_monitor(self) -> None:
        fn = self.topology.monitor
        if not self._handler_available(fn):
            return
        thread = threading.Thread(target=self._monitor_loop, name="monitor-schedule", daemon=True)
        thread.start()
        self._step("monitor schedule", lambda: thread.join(timeout=5))

    def run_monitor_once(self) -> Any:
        result = self.runtimes[self.topology.monitor.key].invoke(scheduled_event())
        if result.error is not None:
            log.warning(
                "monitor run failed: %s: %s", result.error.get("errorType"), result.error.get("errorMessage")
            )
        return result

    def _monitor_loop(self) -> None:
        interval = self.config.monitor_interval_s
        # Never before the history is written (or given up on): the monitor would train on part of it.
        while not self.history_ready.wait(0.5):
            if self._stop.is_set():
                return
        # First run once the first minute of live metrics can exist, then on the interval.
        while not self._stop.wait(
            min(interval, 60.0) if not self.timings.get("first_monitor_s") else interval
        ):
            started = time.perf_counter()
            try:
                self.run_monitor_once()
            except RuntimeError as err:  # stopped while running
                log.debug("monitor run skipped: %s", err)
                return
            self.timings.setdefault("first_monitor_s", time.perf_counter() - started)

    # ---- history and traffic ------------------------------------------------------------------
    def _history_then_fleet(self, t0: float) -> None:
        """The fleet and the history; `history_ready` is set when the history is written (or failed).

        With both: the fleet first, then `calibration_s` seconds of measuring what it costs, then the
        backfill with latencies fitted to that, ending at the minute the fleet started.
        """
        cfg = self.config
        try:
            if cfg.backfill and cfg.fleet:
                self._fleet_then_calibrated_history(t0)
                return
            if cfg.backfill:
                self._backfill()
            self._history_done(t0)
            if cfg.fleet and not self._stop.is_set():
                self._start_fleet()
        except Exception:  # a broken piece must not take the platform down
            log.exception("sandbox traffic/backfill failed")
            self.set_phase("live", 1.0, "without history: the backfill failed (see the sandbox's log)")
        finally:
            self.history_ready.set()

    def _history_done(self, t0: float) -> None:
        self.timings["live_with_history_s"] = time.perf_counter() - t0
        self.set_phase("live", 1.0)
        self.history_ready.set()
        if self.config.backfill:
            log.info("live with history %.1f s after start", self.timings["live_with_history_s"])

    def _fleet_then_calibrated_history(self, t0: float) -> None:
        cfg = self.config
        recorder = None
        if cfg.calibration_s > 0 and self.sink is not None:
            recorder = LatencyRecorder(self.topology)
            self.sink.add_observer(recorder)
        fleet_started = self.fleet_started_at = datetime.now(UTC)
        calibration_started = time.perf_counter()
        try:
            try:
                self._start_fleet()
            except Exception:  # no fleet: the history is still written, with what was measured
                log.exception("the fleet failed to start")
            if recorder is not None:
                self._calibrate(calibration_started)
        finally:
            if recorder is not None and self.sink is not None:
                self.sink.remove_observer(recorder)
        if self._stop.is_set():
            return
        profile: HistoryProfile | None = None
        calibration: dict[str, Any] | None = None
        if recorder is not None:
            self.timings["calibration_s"] = time.perf_counter() - calibration_started
            profile, calibration = self._calibrated_profile(recorder.samples())
        self._backfill(end=floor_minute(fleet_started), profile=profile, calibration=calibration)
        self._history_done(t0)

    def _calibrate(self, started: float) -> None:
        """Let the fleet run for `calibration_s` seconds, telling how far along in the state file."""
        total = self.config.calibration_s
        while not self._stop.is_set():
            elapsed = time.perf_counter() - started
            if elapsed >= total:
                return
            self.set_phase("calibrating", elapsed / total, f"{elapsed:.0f} of {total:.0f} s")
            self._stop.wait(min(1.0, total - elapsed))

    def _calibrated_profile(
        self, measured: dict[str, list[float]]
    ) -> tuple[HistoryProfile | None, dict[str, Any] | None]:
        """The backfill profile fitted to `measured` and its report; (None, None) if that fails."""
        try:
            profile, report = HistoryProfile.calibrated(measured)
        except Exception:  # a bad measurement must never stop the sandbox: default history
            log.exception("latency calibration failed; the history uses the default latencies")
            return None, None
        report = {"window_s": round(self.timings.get("calibration_s", 0.0), 1)} | report
        api = report["series"]["api_latency"]
        log.info(
            "latency calibration over %.0f s: API median %.1f ms sigma %.2f (%s, n=%d); calibrated: %s",
            report["window_s"],
            api["median_ms"],
            api["sigma"],
            "measured" if api["calibrated"] else "default",
            api["n"],
            ", ".join(report["calibrated"] + [f"{n} (median raised)" for n in report["median_raised"]])
            or "nothing",
        )
        return profile, report

    def _backfill(self, **calibrated: Any) -> None:
        """Run the backfill; `calibrated` (end, profile, calibration) is passed on when given."""
        days = self.config.backfill_days
        log.info("backfilling %d days of metric history", days)
        self.set_phase("backfilling", 0.0, f"0 of {days} days")
        report = run_backfill(
            self.topology,
            days=self.config.backfill_days,
            session=boto3.Session(),
            home=self.config.home,
            fleet_size=self.config.fleet_size,
            progress=lambda done: self.set_phase(
                "backfilling", done, f"backfilling {int(done * days)} of {days} days"
            ),
            **{key: value for key, value in calibrated.items() if value is not None},
        )
        self.timings["backfill_s"] = report.seconds
        log.info("backfill done: %s datums in %.1fs", report.datums, report.seconds)

    def _start_fleet(self) -> None:
        if not self._handler_available(self.topology.cars_api):
            return
        assert self.provisioned is not None
        self.fleet = FleetSimulator(
            self.api_url,
            size=self.config.fleet_size,
            controls=self.hooks,
            stats_file=self.config.home / "fleet.json",
        )
        self.fleet.start()
        self._step("fleet", self.fleet.stop)
        log.info("fleet of %d robotaxis driving", self.config.fleet_size)

    # ---- dashboard ----------------------------------------------------------------------------
    def _start_dashboard(self) -> None:
        app = PROJECT_ROOT / "dashboard" / "app.py"
        if not app.exists():
            self._skip("dashboard: dashboard/app.py is not there yet")
            return
        if not module_available("streamlit"):
            self._skip("dashboard: streamlit is not installed (pip install -e '.[dashboard]')")
            return
        try:
            _check_port_free(self.config.dashboard_port, "dashboard", "FLEETSCOPE_DASHBOARD_PORT")
        except SandboxError as err:
            self._skip(f"dashboard: {err}")
            return
        cmd = [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(app),
            "--server.address",
            "127.0.0.1",
            "--server.port",
            str(self.config.dashboard_port),
            "--server.headless",
            "true",
            "--browser.gatherUsageStats",
            "false",
        ]
        env = os.environ | {
            "FLEETSCOPE_TARGET": "sandbox",
            "FLEETSCOPE_HOME": str(self.config.home.resolve()),
        }
        self.dashboard_process = subprocess.Popen(
            cmd,
            cwd=str(PROJECT_ROOT),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self._step("dashboard", self._stop_dashboard)

    def _stop_dashboard(self) -> None:
        proc, self.dashboard_process = self.dashboard_process, None
        stop_process(proc)

    # ---- state file ---------------------------------------------------------------------------
    def state(self) -> SandboxState:
        return SandboxState(
            pid=os.getpid(),
            emulator_url=self.emulator_url,
            api_url=self.api_url,
            dashboard_url=self.dashboard_url,
            stage=self.topology.stage,
            started_at=self.started_at or datetime.now(UTC),
            inbox=str((self.config.home / "alerts.jsonl").resolve()),
            xray_daemon=self.xray.address if self.xray else None,
            emulator_pid=self.emulator.pid if self.emulator else None,
            phase=self.phase[0],
            progress=self.phase[1],
            detail=self.phase[2],
        )

    def _write_state(self) -> None:
        with self._state_lock:
            self.started_at = self.started_at or datetime.now(UTC)
            write_state(self.config.home, self.state())
            self._wrote_state = True

    def update_state(self) -> None:
        if self._wrote_state and not self._stop.is_set():
            self._write_state()

    def stop(self) -> None:
        """Stop everything that was started, in reverse order; remove the state file. Idempotent."""
        self._stop.set()
        if self._wrote_state:
            remove_state(self.config.home, os.getpid())
            self._wrote_state = False
        self._stack.close()

    def wait(self) -> None:
        """Block until `request_stop()` (signal handlers call it)."""
        while not self._stop.wait(0.5):
            pass

    def request_stop(self) -> None:
        self._stop.set()


def stream_invoke(runtime: LambdaRuntime, event: dict[str, Any]) -> Any:
    """Invoke `runtime` with a DynamoDB stream batch, recording AWS/Lambda IteratorAge first: the age
    of the batch's last record when the mapping hands it over (ms), as Lambda reports it."""
    records = event.get("Records") or []
    created = (records[-1].get("dynamodb") or {}).get("ApproximateCreationDateTime") if records else None
    if isinstance(created, int | float):
        runtime.record_iterator_age((time.time() - float(created)) * 1000.0)
    return runtime(event)


def _stop_logged(name: str, stopper: Callable[[], None]) -> None:
    try:
        stopper()
    except Exception:
        log.exception("stopping %s failed", name)
