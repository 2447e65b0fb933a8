"""In-process stand-ins shaped like the AWS APIs the monitor calls (for tests and benchmarks).

- `FakeCloudWatch.get_metric_data` enforces GetMetricData's per-call limits (500 queries, 100,800
  datapoints returned per page, the rest behind a NextToken), answers `PartialData` for results cut
  by a page, and can be told to throttle. It counts calls and metrics requested, which is what the
  GetMetricData bill is made of. A series is stored for every statistic, or for one (`stat=`, e.g.
  the p50 and the p99 of one latency metric are two stored series); the statistic's own series wins.
- `InMemoryIncidentStore` implements the `IncidentStore` contract with the same conditional
  semantics as `DynamoDbIncidentStore` (which is tested against the emulator).
- `RecordingNotifier` records what would be published and can be told to fail.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from botocore.exceptions import ClientError

from monitor.notifier import NotifierError
from monitor.source import MAX_DATAPOINTS_PER_CALL, MAX_QUERIES_PER_CALL
from monitor.store import LoadedState, OutboxItem, StateConflictError

MetricKey = tuple[str, str, tuple[tuple[str, str], ...]]


def metric_key(namespace: str, name: str, dimensions: Mapping[str, str]) -> MetricKey:
    return (namespace, name, tuple(sorted(dimensions.items())))


@dataclass
class FakeCloudWatch:
    """Stored series per (namespace, metric name, dimensions): epoch seconds -> value, one per period.

    `put_series(..., stat="p99")` stores what that statistic answers; without `stat` the series
    answers every statistic.
    """

    max_queries: int = MAX_QUERIES_PER_CALL
    max_datapoints: int = MAX_DATAPOINTS_PER_CALL
    throttle_next: int = 0  # how many of the next calls raise Throttling
    data: dict[MetricKey, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    by_stat: dict[tuple[MetricKey, str], tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    calls: int = 0
    metrics_requested: int = 0
    requests: list[dict[str, Any]] = field(default_factory=list)

    def put_series(
        self,
        namespace: str,
        name: str,
        dimensions: Mapping[str, str],
        t: Any,
        y: Any,
        *,
        stat: str | None = None,
    ) -> None:
        t_arr = np.asarray(t, dtype=np.int64)
        y_arr = np.asarray(y, dtype=np.float64)
        order = np.argsort(t_arr, kind="stable")
        key = metric_key(namespace, name, dimensions)
        if stat is None:
            self.data[key] = (t_arr[order], y_arr[order])
        else:
            self.by_stat[(key, stat)] = (t_arr[order], y_arr[order])

    def get_metric_data(self, **kwargs: Any) -> dict[str, Any]:
        self.calls += 1
        self.requests.append({k: v for k, v in kwargs.items() if k != "MetricDataQueries"})
        if self.throttle_next > 0:
            self.throttle_next -= 1
            raise client_error("Throttling", "Rate exceeded")
        queries = kwargs["MetricDataQueries"]
        if len(queries) > self.max_queries:
            raise ClientError(
                {
                    "Error": {
                        "Code": "ValidationError",
                        "Message": f"{len(queries)} queries > {self.max_queries}",
                    }
                },
                "GetMetricData",
            )
        start = _epoch(kwargs["StartTime"])
        end = _epoch(kwargs["EndTime"])
        ascending = kwargs.get("ScanBy", "TimestampDescending") == "TimestampAscending"
        token = kwargs.get("NextToken")
        position = json.loads(base64.b64decode(token)) if token else {"q": 0, "o": 0}
        self.metrics_requested += len(queries)  # counted per call, pages included (conservative)
        results: list[dict[str, Any]] = []
        budget = self.max_datapoints
        qi, offset = int(position["q"]), int(position["o"])
        next_token: str | None = None
        while qi < len(queries):
            query = queries[qi]
            stat = query["MetricStat"]
            metric = stat["Metric"]
            dims = {d["Name"]: d["Value"] for d in metric.get("Dimensions", [])}
            period = int(stat["Period"])
            key = metric_key(metric["Namespace"], metric["MetricName"], dims)
            t, y = self.by_stat.get((key, stat["Stat"])) or self.data.get(key, (_EMPTY_T, _EMPTY_Y))
            keep = (t >= start) & (t < end) & ((t - start) % period == 0)
            ts, ys = t[keep], y[keep]
            if not ascending:
                ts, ys = ts[::-1], ys[::-1]
            chunk_t, chunk_y = ts[offset : offset + budget], ys[offset : offset + budget]
            budget -= len(chunk_t)
            done = offset + len(chunk_t) >= len(ts)
            results.append(
                {
                    "Id": query["Id"],
                    "Label": metric["MetricName"],
                    "Timestamps": [datetime.fromtimestamp(int(x), tz=UTC) for x in chunk_t],
                    "Values": [float(v) for v in chunk_y],
                    "StatusCode": "Complete" if done else "PartialData",
                }
            )
            if not done:
                next_token = _token(qi, offset + len(chunk_t))
                break
            qi, offset = qi + 1, 0
            if budget <= 0 and qi < len(queries):
                next_token = _token(qi, 0)
                break
        response: dict[str, Any] = {"MetricDataResults": results, "Messages": []}
        if next_token:
            response["NextToken"] = next_token
        return response

    def list_metrics(self, **kwargs: Any) -> dict[str, Any]:
        """Every stored metric of the namespace and name that has the given dimensions (a dimension
        given without a value matches any value), in one page."""
        wanted = [(d["Name"], d.get("Value")) for d in kwargs.get("Dimensions", [])]
        found = []
        for namespace, name, dims in {*self.data, *(key for key, _ in self.by_stat)}:
            if kwargs.get("Namespace") not in (None, namespace) or kwargs.get("MetricName") not in (
                None,
                name,
            ):
                continue
            have = dict(dims)
            if all(n in have and (v is None or have[n] == v) for n, v in wanted):
                found.append(
                    {
                        "Namespace": namespace,
                        "MetricName": name,
                        "Dimensions": [{"Name": n, "Value": v} for n, v in dims],
                    }
                )
        return {"Metrics": found}


_EMPTY_T = np.zeros(0, dtype=np.int64)
_EMPTY_Y = np.zeros(0, dtype=np.float64)


def client_error(code: str, message: str, operation: str = "GetMetricData") -> ClientError:
    response: Any = {"Error": {"Code": code, "Message": message}}
    return ClientError(response, operation)


def _token(q: int, o: int) -> str:
    return base64.b64encode(json.dumps({"q": q, "o": o}).encode()).decode()


def _epoch(value: Any) -> int:
    if isinstance(value, datetime):
        return int(value.timestamp())
    return int(value)


@dataclass
class InMemoryIncidentStore:
    """The `IncidentStore` contract in memory, with the same conditional semantics as DynamoDB."""

    lease: tuple[str, int] | None = None
    blob: bytes | None = None
    generation: int = 0
    outbox: dict[str, OutboxItem] = field(default_factory=dict)
    incidents: dict[str, dict[str, Any]] = field(default_factory=dict)
    models: dict[str, bytes] = field(default_factory=dict)
    models_ref: str | None = None
    state_writes: list[int] = field(default_factory=list)  # sizes of saved online states
    models_writes: list[int] = field(default_factory=list)  # sizes of saved detector checkpoints

    def acquire_lease(self, owner: str, *, now: int, lease_s: int) -> bool:
        if self.lease is not None and self.lease[0] != owner and self.lease[1] >= now:
            return False
        self.lease = (owner, now + lease_s)
        return True

    def release_lease(self, owner: str) -> None:
        if self.lease is not None and self.lease[0] == owner:
            self.lease = None

    def load_state(self) -> LoadedState | None:
        if self.blob is None:
            return None
        models = self.models.get(self.models_ref) if self.models_ref else None
        return LoadedState(
            blob=self.blob, generation=self.generation, models=models, models_ref=self.models_ref
        )

    def current_generation(self) -> int:
        return self.generation

    def save_state(
        self,
        blob: bytes,
        *,
        expected_generation: int,
        now: int,
        models: bytes | None = None,
        models_ref: str | None = None,
        outbox: Sequence[OutboxItem] = (),
        incidents: Sequence[dict[str, Any]] = (),
    ) -> int:
        if expected_generation != self.generation:
            raise StateConflictError(f"generation {self.generation} != expected {expected_generation}")
        for item in outbox:  # committed with the state, as in one TransactWriteItems
            self.add_to_outbox(item)
        for incident in incidents:
            self.put_incident(incident, now=now)
        if models is not None:
            models_ref = hashlib.sha256(models).hexdigest()
            self.models[models_ref] = models
            self.models_writes.append(len(models))
        self.blob, self.generation, self.models_ref = blob, self.generation + 1, models_ref
        self.state_writes.append(len(blob))
        return self.generation

    def add_to_outbox(self, item: OutboxItem) -> bool:
        if item.dedup_key in self.outbox:
            return False
        self.outbox[item.dedup_key] = item.model_copy(deep=True)
        return True

    def unsent(self) -> list[OutboxItem]:
        items = [i.model_copy(deep=True) for i in self.outbox.values() if i.status != "sent"]
        return sorted(items, key=lambda i: (i.created_at, i.incident_id, i.seq))

    def claim(self, item: OutboxItem, *, now: int, stale_s: int) -> bool:
        current = self.outbox[item.dedup_key]
        stale = current.status == "publishing" and (current.claimed_at or 0) < now - stale_s
        if current.status != "pending" and not stale:
            return False
        current.status, current.claimed_at = "publishing", now
        return True

    def mark_sent(self, item: OutboxItem, *, now: int, message_id: str) -> None:
        current = self.outbox[item.dedup_key]
        current.status, current.sent_at, current.message_id = "sent", now, message_id

    def release_claim(self, item: OutboxItem) -> None:
        current = self.outbox[item.dedup_key]
        if current.status == "publishing":
            current.status = "pending"

    def put_incident(self, incident: dict[str, Any], *, now: int) -> None:
        self.incidents[str(incident["id"])] = incident

    def open_incidents(self) -> list[dict[str, Any]]:
        return [i for i in self.incidents.values() if i.get("status") == "open"]


@dataclass
class RecordingNotifier:
    """Collects published messages; `fail_next` publishes raise NotifierError (SNS down)."""

    published: list[dict[str, Any]] = field(default_factory=list)
    fail_next: int = 0

    def publish(self, message_input: dict[str, Any]) -> str:
        if self.fail_next > 0:
            self.fail_next -= 1
            raise NotifierError("SNS unavailable")
        self.published.append(message_input)
        return f"msg-{len(self.published)}"
