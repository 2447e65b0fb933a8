"""Measure the sandbox's own latencies for a few seconds, to calibrate the backfilled history.

The history the monitor learns from must be about as fast as the sandbox really is on this machine
(`sandbox.history.backfill.HistoryProfile.calibrated` fits it). Every latency the sandbox records goes
through `TelemetrySink.add_metric`: the gateway's AWS/ApiGateway ``Latency`` (ApiName + Stage) and
each runtime's AWS/Lambda ``Duration`` (FunctionName), in milliseconds. A `LatencyRecorder`,
registered as a sink observer, keeps those values per `HistoryProfile` series while the fleet drives.
"""

from __future__ import annotations

import threading

from contract.topology import Topology
from sandbox.aws.telemetry import Dimensions, MetricSample, dims

# HistoryProfile latency field of each measured Lambda function (by topology function key). The
# monitor's duration is not here: it has not run yet when the sandbox calibrates.
FUNCTION_SERIES: dict[str, str] = {
    "cars-api": "cars_api_duration",
    "telemetry-ingest": "ingest_duration",
    "outbox-relay": "relay_duration",
}
API_SERIES = "api_latency"
UNIT = "Milliseconds"


class LatencyRecorder:
    """A `TelemetrySink` observer that keeps the millisecond latencies of the known series.

    Only the gateway's ``Latency`` with the ApiName + Stage dimensions is kept (the gateway records
    each request once more under ApiName alone), and ``Duration`` of the functions in
    `FUNCTION_SERIES`. Everything else is ignored with one dict lookup.
    """

    def __init__(self, topo: Topology) -> None:
        self._series: dict[tuple[str, str, Dimensions], str] = {
            ("AWS/ApiGateway", "Latency", dims(ApiName=topo.api_name, Stage=topo.api_stage)): API_SERIES
        }
        for fn in topo.functions:
            if fn.key in FUNCTION_SERIES:
                key = ("AWS/Lambda", "Duration", dims(FunctionName=fn.name))
                self._series[key] = FUNCTION_SERIES[fn.key]
        self._samples: dict[str, list[float]] = {name: [] for name in self._series.values()}
        self._lock = threading.Lock()

    def __call__(self, sample: MetricSample) -> None:
        series = self._series.get((sample.namespace, sample.name, sample.dimensions))
        if series is None or sample.unit != UNIT:
            return
        with self._lock:
            self._samples[series].append(float(sample.value))

    def samples(self) -> dict[str, list[float]]:
        """A copy of what was recorded so far, per series (every known series, maybe empty)."""
        with self._lock:
            return {name: list(values) for name, values in self._samples.items()}
