"""The sandbox measures its own latencies: sink observers and the latency recorder."""

from __future__ import annotations

import pytest
import requests

from contract.topology import Topology, topology
from sandbox.aws.gateway import Gateway, GatewayConfig
from sandbox.aws.runtime import Invocation
from sandbox.aws.telemetry import MetricSample, TelemetrySink, dims
from sandbox.history.calibration import LatencyRecorder


@pytest.fixture(scope="module")
def topo() -> Topology:
    return topology("calibrationtest")


def _sink() -> TelemetrySink:
    """A sink that is never started: samples stay in its buffer, nothing is sent anywhere."""
    return TelemetrySink(flush_interval_s=3600)


def _api(topo: Topology, value: float, *, stage: bool = True, unit: str = "Milliseconds") -> MetricSample:
    names = dims(ApiName=topo.api_name, Stage=topo.api_stage) if stage else dims(ApiName=topo.api_name)
    return MetricSample("AWS/ApiGateway", "Latency", names, value, unit)


def _lambda(name: str, metric: str, value: float, unit: str = "Milliseconds") -> MetricSample:
    return MetricSample("AWS/Lambda", metric, dims(FunctionName=name), value, unit)


def test_observers_see_every_sample_until_removed() -> None:
    # Given a sink with two observers
    sink = _sink()
    first: list[MetricSample] = []
    second: list[MetricSample] = []
    sink.add_observer(first.append)
    sink.add_observer(second.append)
    a = MetricSample("AWS/Lambda", "Invocations", dims(FunctionName="f"), 1.0, "Count")
    b = MetricSample("AWS/Lambda", "Duration", dims(FunctionName="f"), 12.5, "Milliseconds")
    # When samples are added, one observer is removed, and another sample is added
    sink.add_metrics([a, b])
    sink.remove_observer(first.append)
    sink.add_metric(a)
    # Then each observer saw the samples added while it was registered
    assert first == [a, b]
    assert second == [a, b, a]
    # And removing an observer that is not there is harmless
    sink.remove_observer(first.append)


def test_a_failing_observer_is_removed_and_the_sample_is_still_kept(caplog: pytest.LogCaptureFixture) -> None:
    # Given a sink with an observer that raises, and a good one
    sink = _sink()
    calls: list[MetricSample] = []

    def broken(sample: MetricSample) -> None:
        calls.append(sample)
        raise RuntimeError("boom")

    seen: list[MetricSample] = []
    sink.add_observer(broken)
    sink.add_observer(seen.append)
    sample = MetricSample("AWS/Lambda", "Duration", dims(FunctionName="f"), 3.0, "Milliseconds")
    # When two samples are added
    sink.add_metric(sample)
    sink.add_metric(sample)
    # Then the broken observer was called once and dropped, the good one saw both, and the sink
    # still buffered both samples for the flush
    assert len(calls) == 1
    assert seen == [sample, sample]
    assert sum(sum(c.values()) for c in sink._metrics.values()) == 2
    assert "metric observer" in caplog.text


def test_the_recorder_keeps_only_millisecond_latencies_of_the_known_series(topo: Topology) -> None:
    # Given a recorder for the topology
    recorder = LatencyRecorder(topo)
    names = {fn.key: fn.name for fn in topo.functions}
    samples = [
        _api(topo, 21.0),  # kept: API latency, ApiName + Stage
        _api(topo, 21.0, stage=False),  # the same request again under ApiName alone: not twice
        _api(topo, 5.0, unit="Seconds"),  # not milliseconds
        MetricSample(
            "AWS/ApiGateway", "Count", dims(ApiName=topo.api_name, Stage=topo.api_stage), 1.0, "Count"
        ),
        _lambda(names["cars-api"], "Duration", 8.0),
        _lambda(names["cars-api"], "Invocations", 1.0, "Count"),
        _lambda(names["telemetry-ingest"], "Duration", 30.0),
        _lambda(names["outbox-relay"], "Duration", 4.0),
        _lambda(names["outbox-relay"], "Duration", 6.0),
        _lambda(names["monitor"], "Duration", 1500.0),  # the monitor keeps its default
        _lambda("someone-else", "Duration", 99.0),
        MetricSample("Fleetscope", "Latency", dims(service="cars-api"), 7.0, "Milliseconds"),
    ]
    # When they are observed
    for sample in samples:
        recorder(sample)
    # Then it kept the API latency once and the three functions' durations, nothing else
    assert recorder.samples() == {
        "api_latency": [21.0],
        "cars_api_duration": [8.0],
        "ingest_duration": [30.0],
        "relay_duration": [4.0, 6.0],
    }
    # And what it hands out is a copy
    recorder.samples()["api_latency"].append(1.0)
    assert recorder.samples()["api_latency"] == [21.0]


def test_the_recorder_sees_the_gateways_latency_once_per_request(topo: Topology) -> None:
    # Given the real gateway recording into a sink that a recorder observes
    sink = _sink()
    recorder = LatencyRecorder(topo)
    sink.add_observer(recorder)

    class Ok:
        def invoke(self, event: object, *, trace_header_value: str | None = None) -> Invocation:
            return Invocation("r", payload={"statusCode": 200, "body": "{}"})

    gateway = Gateway(
        Ok(), GatewayConfig(api_name=topo.api_name, stage=topo.api_stage), sink=sink, port=0
    ).start()
    try:
        # When five requests are served
        for _ in range(5):
            assert requests.get(f"{gateway.url}/cars", timeout=10).status_code == 200
    finally:
        gateway.stop()
    # Then the recorder has five API latencies, positive and in milliseconds
    latencies = recorder.samples()["api_latency"]
    assert len(latencies) == 5
    assert all(0 < value < 10_000 for value in latencies)
