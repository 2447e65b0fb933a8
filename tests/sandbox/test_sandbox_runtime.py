"""The local Lambda runtime: real worker processes, and what it records in the emulator."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from polling import wait_until

from contract.topology import FunctionSpec, Topology
from sandbox.aws.hooks import FaultAction, NoFaults
from sandbox.aws.runtime import LambdaInvocationError, LambdaRuntime, LambdaThrottledError
from sandbox.aws.telemetry import TelemetrySink, parse_emf
from sandbox.aws.xray import XRayDaemon
from sandbox.emulator.server import Emulator

HERE = Path(__file__).resolve().parent

pytestmark = [pytest.mark.integration, pytest.mark.slow]


class ScriptedFaults(NoFaults):
    """A FaultHook that applies the next queued action once."""

    def __init__(self) -> None:
        self.actions: list[FaultAction] = []
        self.seen: list[str] = []

    def before_invoke(self, function_key: str, event: dict[str, Any]) -> FaultAction:
        self.seen.append(function_key)
        return self.actions.pop(0) if self.actions else FaultAction()


def _spec(*, reserved: int | None = None, timeout_s: int = 5) -> FunctionSpec:
    suffix = uuid.uuid4().hex[:6]
    return FunctionSpec(
        key="fake",
        name=f"fleetscope-test-fake-{suffix}",
        handler="sandbox_fake_handlers.handler",
        service=f"fake-{suffix}",
        memory_mb=128,
        timeout_s=timeout_s,
        reserved_concurrency=reserved,
    )


@pytest.fixture
def sink(emulator: Emulator) -> Iterator[TelemetrySink]:
    sink = TelemetrySink(flush_interval_s=3600)  # flushed explicitly by the tests
    yield sink
    sink.stop()


def _runtime(
    topo: Topology, fn: FunctionSpec, emulator: Emulator, sink: TelemetrySink, **kwargs: Any
) -> LambdaRuntime:
    return LambdaRuntime(
        topo,
        fn,
        endpoint_url=emulator.endpoint_url,
        sink=sink,
        extra_env={"PYTHONPATH": str(HERE)},
        max_environments=2,
        **kwargs,
    )


def _sum(namespace: str, name: str, dims: list[dict[str, str]], stat: str = "Sum") -> list[float]:
    now = datetime.now(UTC)
    response = boto3.client("cloudwatch").get_metric_data(
        MetricDataQueries=[
            {
                "Id": "m",
                "MetricStat": {
                    "Metric": {"Namespace": namespace, "MetricName": name, "Dimensions": dims},
                    "Period": 3600,
                    "Stat": stat,
                },
            }
        ],
        StartTime=now - timedelta(hours=1),
        EndTime=now + timedelta(minutes=5),
    )
    return list(response["MetricDataResults"][0]["Values"])


def test_invocations_record_logs_emf_and_lambda_metrics(
    emulator: Emulator, topo: Topology, sink: TelemetrySink
) -> None:
    # Given a function that logs a line and emits an EMF metric
    fn = _spec()
    runtime = _runtime(topo, fn, emulator, sink)
    namespace = f"Test/{uuid.uuid4().hex[:8]}"
    marker = f"hello-{uuid.uuid4().hex}"
    try:
        # When it is invoked twice OK and once with an error
        event = {"log": [marker], "emf": {"namespace": namespace, "name": "Things", "values": [2, 3]}}
        first = runtime(event)
        runtime(event)
        with pytest.raises(LambdaInvocationError, match="boom"):
            runtime({"fail": "boom"})
    finally:
        runtime.stop()
    sink.flush()
    # Then the handler ran in its own environment, with its own service name and context
    assert first["service"] == fn.service
    assert first["function_name"] == fn.name
    assert 0 < first["remaining_ms"] <= fn.timeout_s * 1000
    # and the log group has its lines, framed like Lambda's
    messages = [
        e["message"] for e in boto3.client("logs").filter_log_events(logGroupName=fn.log_group)["events"]
    ]
    assert messages.count(marker) == 2
    assert sum(m.startswith("START RequestId:") for m in messages) == 3
    assert any(m.startswith("REPORT RequestId:") and "Init Duration" in m for m in messages)
    assert any("[ERROR] ValueError: boom" in m for m in messages)
    # and the EMF values became metrics in their namespace, with their dimensions
    assert _sum(namespace, "Things", [{"Name": "service", "Value": fn.service}]) == [10.0]
    # and AWS/Lambda has what happened
    dims = [{"Name": "FunctionName", "Value": fn.name}]
    assert _sum("AWS/Lambda", "Invocations", dims) == [3.0]
    assert _sum("AWS/Lambda", "Errors", dims) == [1.0]
    assert _sum("AWS/Lambda", "Duration", dims, "SampleCount") == [3.0]
    assert _sum("AWS/Lambda", "ConcurrentExecutions", dims, "Maximum") == [1.0]


def test_environments_stay_warm_and_a_cold_start_fault_reinitialises(
    emulator: Emulator, topo: Topology, sink: TelemetrySink
) -> None:
    faults = ScriptedFaults()
    runtime = _runtime(topo, _spec(), emulator, sink, hooks=faults)
    try:
        first = runtime.invoke({})
        second = runtime.invoke({})
        faults.actions.append(FaultAction(cold_start=True))
        third = runtime.invoke({})
    finally:
        runtime.stop()
    assert first.init_ms is not None  # the first invocation paid the init
    assert second.init_ms is None
    assert second.payload["pid"] == first.payload["pid"]  # warm: same environment
    assert third.init_ms is not None
    assert third.payload["pid"] != first.payload["pid"]  # a new environment
    assert faults.seen == ["fake", "fake", "fake"]


def test_fault_actions_delay_error_and_throttle(
    emulator: Emulator, topo: Topology, sink: TelemetrySink
) -> None:
    faults = ScriptedFaults()
    fn = _spec()
    runtime = _runtime(topo, fn, emulator, sink, hooks=faults)
    try:
        runtime.warm()
        faults.actions += [
            FaultAction(delay_s=0.3),
            FaultAction(raise_error="injected"),
            FaultAction(throttle=True),
        ]
        slow = runtime.invoke({})
        failed = runtime.invoke({})
        throttled = runtime.invoke({})
    finally:
        runtime.stop()
    sink.flush()
    assert slow.ok
    assert slow.duration_ms >= 300
    assert failed.error is not None
    assert failed.error["errorMessage"] == "injected"
    assert throttled.throttled
    dims = [{"Name": "FunctionName", "Value": fn.name}]
    assert _sum("AWS/Lambda", "Throttles", dims) == [1.0]
    assert _sum("AWS/Lambda", "Invocations", dims) == [2.0]  # a throttled invocation never ran


def test_reserved_concurrency_throttles_the_excess(
    emulator: Emulator, topo: Topology, sink: TelemetrySink, tmp_path: Path
) -> None:
    runtime = _runtime(topo, _spec(reserved=1), emulator, sink)
    release = tmp_path / "release"
    outcome: list[Any] = []
    worker = threading.Thread(
        target=lambda: outcome.append(runtime.invoke({"hold_until_exists": str(release)}))
    )
    try:
        runtime.warm()
        # Given the one allowed execution busy until the test releases it
        worker.start()
        wait_until(lambda: runtime.concurrent_executions == 1, what="the first invocation running")
        # Then a second invocation is throttled
        with pytest.raises(LambdaThrottledError):
            runtime({})
    finally:
        release.touch()
        if worker.is_alive():
            worker.join()
        runtime.stop()
    assert outcome[0].ok


def test_a_timeout_kills_the_environment(emulator: Emulator, topo: Topology, sink: TelemetrySink) -> None:
    runtime = _runtime(topo, _spec(timeout_s=1), emulator, sink)
    try:
        timed_out = runtime.invoke({"sleep_s": 5})
        after = runtime.invoke({})
    finally:
        runtime.stop()
    assert timed_out.error is not None
    assert "timed out" in timed_out.error["errorMessage"]
    assert after.ok
    assert after.init_ms is not None  # the next invocation started a fresh environment


def test_a_missing_handler_is_an_init_error(emulator: Emulator, topo: Topology, sink: TelemetrySink) -> None:
    fn = FunctionSpec(
        key="missing", name="fleetscope-test-missing", handler="no_such_module.handler", service="x"
    )
    runtime = _runtime(topo, fn, emulator, sink)
    try:
        result = runtime.invoke({})
    finally:
        runtime.stop()
    assert result.error is not None
    assert result.error["errorType"] == "Runtime.ImportModuleError"


def test_tracing_sets_the_trace_header_and_stores_the_function_segment(
    emulator: Emulator, topo: Topology, sink: TelemetrySink
) -> None:
    daemon = XRayDaemon(flush_interval_s=3600).start()
    runtime = _runtime(topo, _spec(), emulator, sink, xray=daemon)
    root = f"1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]}"
    try:
        result = runtime.invoke({}, trace_header_value=f"Root={root};Parent=aaaaaaaaaaaaaaaa;Sampled=1")
    finally:
        runtime.stop()
        daemon.stop()  # flushes
    assert result.payload["trace"].startswith(f"Root={root};Parent=")
    traces = boto3.client("xray").batch_get_traces(TraceIds=[root])["Traces"]
    assert [t["Id"] for t in traces] == [root]


def test_parse_emf_reads_every_dimension_set_and_value() -> None:
    line = (
        '{"_aws": {"Timestamp": 1700000000000, "CloudWatchMetrics": [{"Namespace": "N", '
        '"Dimensions": [["service"], ["service", "route"]], '
        '"Metrics": [{"Name": "Hits", "Unit": "Count"}]}]}, '
        '"service": "api", "route": "/cars", "Hits": [1, 2]}'
    )
    samples = parse_emf(line)
    assert {(s.dimensions, s.value) for s in samples} == {
        ((("service", "api"),), 1.0),
        ((("service", "api"),), 2.0),
        ((("route", "/cars"), ("service", "api")), 1.0),
        ((("route", "/cars"), ("service", "api")), 2.0),
    }
    assert all(s.timestamp == 1700000000.0 and s.unit == "Count" for s in samples)
    assert parse_emf("plain log line") == []
    assert parse_emf('{"_aws": "broken"}') == []
