"""How the sandbox starts its traffic and history: fleet first, measure, then a calibrated backfill.

The fast tests drive `Sandbox._history_then_fleet` with the fleet and the backfill replaced at their
seams (`_start_fleet`, `_backfill`) and a real, never-flushed `TelemetrySink`; the slow one starts a
real in-process sandbox with a tiny fleet and a one-day history.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from polling import wait_until

from sandbox.app import Sandbox, SandboxConfig, floor_minute
from sandbox.aws.telemetry import MetricSample, TelemetrySink, dims
from sandbox.history.backfill import HistoryProfile, read_marker


class Seams:
    """Stands in for the fleet and the backfill; the fleet 'serves' requests into the sink."""

    def __init__(self, sandbox: Sandbox, *, latencies_ms: list[float], fleet_fails: bool = False) -> None:
        self.sandbox = sandbox
        self.latencies_ms = latencies_ms
        self.fleet_fails = fleet_fails
        self.events: list[tuple[str, Any]] = []
        sandbox._start_fleet = self.start_fleet  # type: ignore[method-assign]
        sandbox._backfill = self.backfill  # type: ignore[method-assign]

    def start_fleet(self) -> None:
        self.events.append(("fleet", datetime.now(UTC)))
        if self.fleet_fails:
            raise RuntimeError("could not register car")
        topo, sink = self.sandbox.topology, self.sandbox.sink
        assert sink is not None
        api = dims(ApiName=topo.api_name, Stage=topo.api_stage)
        cars = dims(FunctionName=topo.cars_api.name)
        for value in self.latencies_ms:
            sink.add_metric(MetricSample("AWS/ApiGateway", "Latency", api, value, "Milliseconds"))
            sink.add_metric(MetricSample("AWS/Lambda", "Duration", cars, value * 0.6, "Milliseconds"))

    def backfill(self, **kwargs: Any) -> None:
        assert not self.sandbox.history_ready.is_set()  # the monitor is still waiting
        self.events.append(("backfill", kwargs))


def _sandbox(tmp_path: Path, **config: Any) -> Sandbox:
    settings: dict[str, Any] = {"home": tmp_path, "calibration_s": 0.3, "monitor": False} | config
    sandbox = Sandbox(SandboxConfig(**settings))
    sandbox.sink = TelemetrySink(flush_interval_s=3600)  # never started: nothing is sent
    return sandbox


def test_with_fleet_and_backfill_the_fleet_starts_first_and_the_history_is_fitted_to_it(
    tmp_path: Path,
) -> None:
    # Given a sandbox whose fleet serves API requests in about 20 ms
    sandbox = _sandbox(tmp_path)
    seams = Seams(sandbox, latencies_ms=[18.0 + (i % 5) for i in range(60)])
    # When its traffic and history start
    t0 = time.perf_counter()
    sandbox._history_then_fleet(t0)
    # Then the fleet started first and the backfill came after the calibration window
    (first, fleet_started), (second, kwargs) = seams.events
    assert (first, second) == ("fleet", "backfill")
    assert sandbox.timings["calibration_s"] >= 0.3
    # And the history ends at the minute the fleet started, with latencies fitted to what it served
    assert kwargs["end"] == floor_minute(fleet_started)
    assert kwargs["end"].second == kwargs["end"].microsecond == 0
    profile: HistoryProfile = kwargs["profile"]
    assert profile.api_latency[0] == pytest.approx(20.0, abs=1.0)
    assert profile.cars_api_duration[0] == pytest.approx(12.0, abs=1.0)
    assert profile.ingest_duration == HistoryProfile().ingest_duration  # nothing measured
    calibration = kwargs["calibration"]
    assert calibration["calibrated"] == ["api_latency", "cars_api_duration"]
    assert calibration["window_s"] >= 0.3
    assert calibration["series"]["api_latency"]["n"] == 60
    # And the history is ready, timed, and nobody observes the sink any more
    assert sandbox.history_ready.is_set()
    assert sandbox.timings["live_with_history_s"] >= sandbox.timings["calibration_s"]
    assert sandbox.sink is not None
    assert sandbox.sink._observers == ()


def test_the_state_file_tells_the_phase_calibrating_then_live(tmp_path: Path) -> None:
    # Given a sandbox that records each phase it would write to its state file
    sandbox = _sandbox(tmp_path, calibration_s=2.5)
    Seams(sandbox, latencies_ms=[20.0] * 10)
    phases: list[tuple[str, float, str]] = [sandbox.phase]
    sandbox.update_state = lambda: phases.append(sandbox.phase)  # type: ignore[method-assign]
    # When its traffic and history start
    sandbox._history_then_fleet(time.perf_counter())
    # Then it starts as calibrating, counts the seconds of the window up, and ends live
    assert phases[0] == ("calibrating", 0.0, "0 of 2 s")
    calibrating = [p for p in phases if p[0] == "calibrating"]
    assert len(calibrating) >= 3
    assert [p[1] for p in calibrating] == sorted(p[1] for p in calibrating)
    assert phases[-1] == ("live", 1.0, "")


def test_calibration_off_still_ends_the_history_where_the_fleet_starts(tmp_path: Path) -> None:
    sandbox = _sandbox(tmp_path, calibration_s=0)
    seams = Seams(sandbox, latencies_ms=[20.0] * 60)
    sandbox._history_then_fleet(time.perf_counter())
    (_, fleet_started), (_, kwargs) = seams.events
    assert kwargs["end"] == floor_minute(fleet_started)
    assert kwargs.get("profile") is None  # the default profile, no report
    assert kwargs.get("calibration") is None
    assert "calibration_s" not in sandbox.timings
    assert sandbox.history_ready.is_set()


def test_a_fleet_that_fails_to_start_still_gets_a_history(tmp_path: Path) -> None:
    # Given a fleet whose start raises
    sandbox = _sandbox(tmp_path)
    seams = Seams(sandbox, latencies_ms=[], fleet_fails=True)
    # When the traffic and history start
    sandbox._history_then_fleet(time.perf_counter())
    # Then the history is written anyway, with the default latencies (nothing was measured)
    (_, fleet_started), (_, kwargs) = seams.events
    assert kwargs["end"] == floor_minute(fleet_started)
    assert kwargs["calibration"]["calibrated"] == []
    assert kwargs["profile"].api_latency == HistoryProfile().api_latency
    assert sandbox.history_ready.is_set()


def test_without_a_fleet_the_history_is_the_default_and_without_a_backfill_the_fleet_just_starts(
    tmp_path: Path,
) -> None:
    # No fleet: the backfill runs as before (default profile, ends now), and nothing waits
    sandbox = _sandbox(tmp_path, fleet=False, calibration_s=30)
    seams = Seams(sandbox, latencies_ms=[])
    started = time.perf_counter()
    sandbox._history_then_fleet(started)
    assert seams.events == [("backfill", {})]
    assert time.perf_counter() - started < 5
    assert sandbox.history_ready.is_set()
    # No backfill: the fleet starts, and there is no history to wait for
    sandbox = _sandbox(tmp_path, backfill=False, calibration_s=30)
    seams = Seams(sandbox, latencies_ms=[20.0])
    started = time.perf_counter()
    sandbox._history_then_fleet(started)
    assert [name for name, _ in seams.events] == ["fleet"]
    assert time.perf_counter() - started < 5
    assert sandbox.history_ready.is_set()


def test_a_stop_during_calibration_writes_no_history(tmp_path: Path) -> None:
    # Given a long calibration window
    sandbox = _sandbox(tmp_path, calibration_s=60)
    seams = Seams(sandbox, latencies_ms=[20.0] * 30)
    thread = threading.Thread(target=sandbox._history_then_fleet, args=(time.perf_counter(),))
    thread.start()
    # When the sandbox is stopped while it measures (the fleet has started)
    wait_until(lambda: seams.events, what="the fleet started")
    sandbox.request_stop()
    thread.join(timeout=10)
    # Then it ends promptly, without a backfill, and does not leave the monitor waiting
    assert not thread.is_alive()
    assert [name for name, _ in seams.events] == ["fleet"]
    assert sandbox.history_ready.is_set()


class CountedEvent(threading.Event):
    """A threading.Event that counts the waits on it (how often the monitor loop checked it)."""

    def __init__(self) -> None:
        super().__init__()
        self.waits = 0

    def wait(self, timeout: float | None = None) -> bool:
        self.waits += 1
        return super().wait(timeout)


def test_the_monitor_does_not_run_before_the_history_is_ready(tmp_path: Path) -> None:
    # Given a sandbox whose monitor runs every second, and a history still being written
    sandbox = Sandbox(SandboxConfig(home=tmp_path, monitor_interval_s=1))
    sandbox.history_ready = CountedEvent()
    runs: list[float] = []
    sandbox.run_monitor_once = lambda: runs.append(time.monotonic())  # type: ignore[method-assign]
    thread = threading.Thread(target=sandbox._monitor_loop, daemon=True)
    thread.start()
    # When the loop has checked for the history 4 times (at least 1.5 s: longer than the 1 s interval)
    wait_until(lambda: sandbox.history_ready.waits >= 4, what="the monitor loop waited for the history")
    # Then there was no run
    assert runs == []
    # And once the history is ready, the monitor runs on its interval
    ready = time.monotonic()
    sandbox.history_ready.set()
    wait_until(lambda: len(runs) >= 2, timeout_s=10, interval_s=0.1)
    sandbox.request_stop()
    thread.join(timeout=5)
    assert len(runs) >= 2
    assert runs[0] >= ready + 0.9


def test_a_monitor_waiting_for_the_history_stops_with_the_sandbox(tmp_path: Path) -> None:
    sandbox = Sandbox(SandboxConfig(home=tmp_path, monitor_interval_s=1))
    thread = threading.Thread(target=sandbox._monitor_loop, daemon=True)
    thread.start()
    sandbox.request_stop()
    thread.join(timeout=5)
    assert not thread.is_alive()


# ---- a real sandbox ---------------------------------------------------------------------------


@pytest.fixture
def own_environment() -> Iterator[None]:
    """The sandbox points AWS_ENDPOINT_URL & co. at its own emulator: put the test session's back."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@pytest.mark.integration
@pytest.mark.slow
def test_a_real_sandbox_writes_history_fitted_to_its_own_latencies_up_to_the_fleets_start(
    tmp_path: Path, own_environment: None
) -> None:
    # Given a real sandbox with a small fleet, a short calibration and a one-day history
    config = SandboxConfig(
        stage="calibratetest",
        home=tmp_path,
        emulator_port=0,
        api_port=0,
        fleet_size=25,  # 25 registrations: enough API latencies for a fit, whatever the hour
        backfill_days=1,
        calibration_s=4,
        monitor=False,
        tracing=False,
    )
    sandbox = Sandbox(config)
    try:
        sandbox.start()
        # When the history is ready
        assert sandbox.history_ready.wait(timeout=240)
        # Then the fleet drove during the calibration and the history stops at its first minute
        assert sandbox.fleet is not None
        marker = read_marker(tmp_path)
        assert marker is not None, sandbox.skipped
        end = datetime.fromisoformat(marker["end"])
        assert sandbox.fleet_started_at is not None
        assert end == floor_minute(sandbox.fleet_started_at)
        # And the marker says how the latencies were calibrated: the API from the fleet's requests,
        # with the measured figures
        calibration = marker["latency_calibration"]
        assert calibration is not None
        assert calibration["window_s"] >= 4
        api = calibration["series"]["api_latency"]
        assert api["calibrated"] is True, api
        assert api["n"] >= 25
        assert 0 < api["p50"] <= api["p90"] <= api["p99"]
        assert marker["latency"]["api_latency"] == [api["median_ms"], api["sigma"]]
        assert calibration["series"]["monitor_duration"]["reason"] == "not measured"
        assert "live_with_history_s" in sandbox.timings
        # And the history is in the sandbox's emulator, up to that minute
        cw = boto3.client("cloudwatch")
        history = cw.get_metric_statistics(
            Namespace="AWS/ApiGateway",
            MetricName="Count",
            Dimensions=[
                {"Name": "ApiName", "Value": sandbox.topology.api_name},
                {"Name": "Stage", "Value": sandbox.topology.api_stage},
            ],
            StartTime=end - timedelta(hours=6),
            EndTime=end,
            Period=3600,
            Statistics=["Sum"],
        )["Datapoints"]
        assert sum(p["Sum"] for p in history) > 0
    finally:
        sandbox.stop()
