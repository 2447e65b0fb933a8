"""What AWS records around the functions: metrics and log events, batched to the emulator.

`TelemetrySink` collects metric samples (from EMF lines, AWS/Lambda and AWS/ApiGateway) and log
events, and a background thread flushes them every `flush_interval_s` seconds: samples of one
series and second are folded into one PutMetricData datum with Values/Counts (so percentiles stay
exact), log events go out with one PutLogEvents call per log stream. Nothing here makes an HTTP call
per invocation or per request.

Observers (`TelemetrySink.add_observer`) see every metric sample as it is added, before batching:
the sandbox uses one to measure its own latencies for a few seconds at start (`sandbox.history.calibration`).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

log = logging.getLogger(__name__)

Dimensions = tuple[tuple[str, str], ...]
MetricObserver = Callable[["MetricSample"], None]
_MAX_VALUES_PER_DATUM = 150
_MAX_DATA_PER_CALL = 1000
_MAX_LOG_BATCH = 10_000
_MAX_LOG_BYTES = 1_000_000


@dataclass(frozen=True)
class MetricSample:
    namespace: str
    name: str
    dimensions: Dimensions
    value: float
    unit: str = "None"
    timestamp: float = 0.0  # epoch seconds; 0 = now


def dims(**names: str) -> Dimensions:
    return tuple(sorted(names.items()))


def parse_emf(line: str) -> list[MetricSample]:
    """The metric samples of one CloudWatch Embedded Metric Format line; [] if it is not EMF."""
    text = line.strip()
    if not text.startswith("{") or '"_aws"' not in text:
        return []
    try:
        doc = json.loads(text)
        meta = doc["_aws"]
        timestamp = float(meta.get("Timestamp", time.time() * 1000)) / 1000.0
        directives = meta["CloudWatchMetrics"]
    except (ValueError, KeyError, TypeError, AttributeError):
        return []
    samples: list[MetricSample] = []
    for directive in directives if isinstance(directives, list) else []:
        namespace = directive.get("Namespace")
        if not isinstance(namespace, str):
            continue
        for dimension_set in directive.get("Dimensions") or [[]]:
            try:
                dimension_values = tuple(sorted((str(k), str(doc[k])) for k in dimension_set))
            except KeyError:
                continue  # a dimension without a value: CloudWatch drops the whole set
            for metric in directive.get("Metrics", []):
                name = metric.get("Name")
                raw = doc.get(name)
                values = raw if isinstance(raw, list) else [raw]
                for value in values:
                    if isinstance(value, int | float) and not isinstance(value, bool):
                        samples.append(
                            MetricSample(
                                namespace,
                                name,
                                dimension_values,
                                float(value),
                                metric.get("Unit", "None"),
                                timestamp,
                            )
                        )
    return samples


class TelemetrySink:
    """Thread-safe buffer of metric samples and log events with a periodic flusher."""

    def __init__(self, *, session: boto3.Session | None = None, flush_interval_s: float = 2.0) -> None:
        self._session = session or boto3.Session()
        self._cloudwatch: Any = None
        self._logs: Any = None
        self.flush_interval_s = flush_interval_s
        # (namespace, name, dims, unit, second) -> Counter(value -> count)
        self._metrics: dict[tuple[str, str, Dimensions, str, int], Counter[float]] = defaultdict(Counter)
        self._log_events: dict[tuple[str, str], list[tuple[int, str]]] = defaultdict(list)
        self._known_streams: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._observers: tuple[MetricObserver, ...] = ()  # replaced, never mutated: read without a lock
        self.flushed_samples = 0
        self.flushed_log_events = 0
        self.errors = 0

    # ---- producers ----------------------------------------------------------------------------
    def add_metric(self, sample: MetricSample) -> None:
        second = int(sample.timestamp or time.time())
        key = (sample.namespace, sample.name, sample.dimensions, sample.unit, second)
        with self._lock:
            self._metrics[key][sample.value] += 1
        for observer in self._observers:
            try:
                observer(sample)
            except Exception:  # an observer must never break the telemetry of the functions
                log.exception("metric observer %r failed; removing it", observer)
                self.remove_observer(observer)

    def add_observer(self, observer: MetricObserver) -> None:
        """Call `observer(sample)` for every metric sample added from now on (on the adding thread).

        It runs outside the sink's lock, on the request or invocation thread, so it must be cheap;
        an observer that raises is logged and removed.
        """
        with self._lock:
            self._observers = (*self._observers, observer)

    def remove_observer(self, observer: MetricObserver) -> None:
        """Stop calling `observer` (no error if it is not registered)."""
        with self._lock:
            self._observers = tuple(o for o in self._observers if o != observer)  # bound methods: ==

    def add_metrics(self, samples: Iterable[MetricSample]) -> None:
        for sample in samples:
            self.add_metric(sample)

    def add_log(self, group: str, stream: str, message: str, timestamp_ms: int | None = None) -> None:
        ts = timestamp_ms if timestamp_ms is not None else int(time.time() * 1000)
        with self._lock:
            self._log_events[(group, stream)].append((ts, message))

    # ---- flushing -----------------------------------------------------------------------------
    def start(self) -> TelemetrySink:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="telemetry-flush", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self.flush()

    def _run(self) -> None:
        while not self._stop.wait(self.flush_interval_s):
            self.flush()

    def flush(self) -> None:
        """Send everything buffered so far (errors are logged and counted, never raised)."""
        with self._flush_lock:
            with self._lock:
                metrics, self._metrics = self._metrics, defaultdict(Counter)
                events, self._log_events = self._log_events, defaultdict(list)
            try:
                self._flush_metrics(metrics)
                self._flush_logs(events)
            except (BotoCoreError, ClientError) as err:
                self.errors += 1
                log.warning("telemetry flush failed: %s", err)

    def _flush_metrics(self, metrics: dict[tuple[str, str, Dimensions, str, int], Counter[float]]) -> None:
        if not metrics:
            return
        if self._cloudwatch is None:
            self._cloudwatch = self._session.client("cloudwatch")
        by_namespace: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for (namespace, name, dimensions, unit, second), counter in metrics.items():
            items = sorted(counter.items())
            for i in range(0, len(items), _MAX_VALUES_PER_DATUM):
                chunk = items[i : i + _MAX_VALUES_PER_DATUM]
                by_namespace[namespace].append(
                    {
                        "MetricName": name,
                        "Dimensions": [{"Name": k, "Value": v} for k, v in dimensions],
                        "Timestamp": float(second),
                        "Values": [value for value, _ in chunk],
                        "Counts": [float(count) for _, count in chunk],
                        "Unit": unit,
                    }
                )
            self.flushed_samples += sum(counter.values())
        for namespace, data in by_namespace.items():
            for i in range(0, len(data), _MAX_DATA_PER_CALL):
                self._cloudwatch.put_metric_data(
                    Namespace=namespace, MetricData=data[i : i + _MAX_DATA_PER_CALL]
                )

    def _flush_logs(self, events: dict[tuple[str, str], list[tuple[int, str]]]) -> None:
        if not events:
            return
        if self._logs is None:
            self._logs = self._session.client("logs")
        for (group, stream), items in events.items():
            self._ensure_stream(group, stream)
            items.sort(key=lambda item: item[0])
            batch: list[dict[str, Any]] = []
            size = 0
            for ts, message in items:
                event_size = len(message.encode()) + 26
                if batch and (len(batch) >= _MAX_LOG_BATCH or size + event_size > _MAX_LOG_BYTES):
                    self._logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=batch)
                    batch, size = [], 0
                batch.append({"timestamp": ts, "message": message})
                size += event_size
            if batch:
                self._logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=batch)
            self.flushed_log_events += len(items)

    def _ensure_stream(self, group: str, stream: str) -> None:
        if (group, stream) in self._known_streams:
            return
        for call, kwargs in (
            (self._logs.create_log_group, {"logGroupName": group}),
            (self._logs.create_log_stream, {"logGroupName": group, "logStreamName": stream}),
        ):
            try:
                call(**kwargs)
            except ClientError as err:
                if err.response["Error"]["Code"] != "ResourceAlreadyExistsException":
                    raise
        self._known_streams.add((group, stream))
