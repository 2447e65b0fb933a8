"""Read-only data access for the dashboard: boto3 in, pandas DataFrames and pydantic models out.

No Streamlit here (`dashboard/data.py` caches these functions). Every AWS or emulator failure is
raised as `QueryError` with a message fit for the page: a missing permission, a missing resource or
an unreachable endpoint never reaches the user as a traceback.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pandas as pd
from boto3.dynamodb.types import TypeDeserializer
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError, NoCredentialsError

from dashboard.target import Target
from monitor.catalog import MetricSpec
from monitor.deployments import PK as DEPLOYMENT_PK
from monitor.deployments import Deployment
from monitor.source import CloudWatchMetricSource, FetchStats, MetricSourceError

_CONFIG = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=60)
_DENIED = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "UnrecognizedClientException"}
_MISSING = {"ResourceNotFoundException", "AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"}
_deserializer = TypeDeserializer()


class QueryError(RuntimeError):
    """A read failed; `str(err)` is a complete sentence for the page, `kind` classifies it."""

    def __init__(self, message: str, *, kind: str = "error") -> None:
        super().__init__(message)
        self.kind = kind  # "denied" | "missing" | "unreachable" | "credentials" | "error"


def explain(err: BaseException, what: str) -> QueryError:
    """Turn a boto3/botocore error into a QueryError that says what could not be read and why."""
    if isinstance(err, QueryError):
        return err
    if isinstance(err, ClientError):
        code = err.response.get("Error", {}).get("Code", "")
        msg = err.response.get("Error", {}).get("Message", "") or str(err)
        if code in _DENIED:
            return QueryError(f"Not allowed to read {what}: {msg} ({code}).", kind="denied")
        if code in _MISSING:
            return QueryError(f"{what} does not exist here: {msg}.", kind="missing")
        return QueryError(f"Reading {what} failed: {code}: {msg}", kind="error")
    if isinstance(err, EndpointConnectionError):
        return QueryError(f"Cannot reach the endpoint for {what}: {err}.", kind="unreachable")
    if isinstance(err, NoCredentialsError):
        return QueryError(
            f"No AWS credentials to read {what}: configure a profile or set AWS_* variables.",
            kind="credentials",
        )
    if isinstance(err, BotoCoreError | OSError):
        return QueryError(f"Reading {what} failed: {err}", kind="unreachable")
    return QueryError(f"Reading {what} failed: {type(err).__name__}: {err}")


def make_client(target: Target, service: str) -> Any:
    """A boto3 client for the target (the sandbox's emulator, or AWS with the standard chain)."""
    return boto3.session.Session().client(service, config=_CONFIG, **target.client_kwargs())  # type: ignore[call-overload]


def aws_client(region: str, service: str) -> Any:
    """A boto3 client for AWS itself (standard credential chain), before the target is known."""
    return boto3.session.Session().client(service, config=_CONFIG, region_name=region)  # type: ignore[call-overload]


# --------------------------------------------------------------------------------------------- metrics


@dataclass
class MetricFrame:
    """Long-format metric data: columns `id`, `timestamp` (UTC), `value`; plus what could not be read."""

    data: pd.DataFrame
    unavailable: dict[str, str] = field(default_factory=dict)

    def series(self, series_id: str) -> pd.Series:
        rows = self.data[self.data["id"] == series_id]
        return pd.Series(rows["value"].to_numpy(), index=pd.DatetimeIndex(rows["timestamp"]), name=series_id)

    def total(self, series_id: str) -> float:
        return float(self.data.loc[self.data["id"] == series_id, "value"].sum())


def _empty_metrics() -> pd.DataFrame:
    return pd.DataFrame(
        {"id": pd.Series(dtype=str), "timestamp": pd.Series(dtype="datetime64[ns, UTC]"), "value": []}
    )


def period_grid(start: datetime, end: datetime, period_s: int) -> pd.DatetimeIndex:
    """The period start times CloudWatch reports between start and end (aligned to the period)."""
    first = pd.Timestamp(start).tz_convert(UTC).ceil(f"{period_s}s")
    last = pd.Timestamp(end).tz_convert(UTC) - pd.Timedelta(seconds=period_s)
    if last < first:
        return pd.DatetimeIndex([], tz=UTC)
    return pd.date_range(first, last, freq=f"{period_s}s")


def align(moment: datetime, period_s: int) -> datetime:
    """Round down to a multiple of the period (so windows line up with CloudWatch's periods)."""
    epoch = int(moment.timestamp())
    return datetime.fromtimestamp(epoch - epoch % period_s, tz=UTC)


def fetch_metrics(
    cloudwatch: Any,
    specs: Sequence[MetricSpec],
    *,
    start: datetime,
    end: datetime,
    period_s: int,
) -> MetricFrame:
    """GetMetricData for every spec at `period_s`, through the monitor's reader (`CloudWatchMetricSource`).

    The reader keeps to GetMetricData's per-call limits and follows every page; the client's standard
    retry mode retries throttling.
    Percentile statistics are read on their own: an endpoint that cannot compute them (plain moto
    answers HTTP 500) loses only those series, reported in `unavailable`. Specs with `fill_zero` get
    0 for periods without datapoints (CloudWatch omits zero counts).
    """
    source = CloudWatchMetricSource(cloudwatch)
    plain = [s for s in specs if not s.statistic.startswith("p")]
    percentile = [s for s in specs if s.statistic.startswith("p")]
    frames: list[pd.DataFrame] = []
    unavailable: dict[str, str] = {}
    for group in (plain, percentile):
        if not group:
            continue
        try:
            frames.append(_read_metrics(source, group, start=start, end=end, period_s=period_s))
        except MetricSourceError as err:
            cause = err.__cause__ if isinstance(err.__cause__, ClientError) else None
            if group is percentile and not (cause and plain_is_denied(cause)):
                reason = explain(cause or err, "percentile statistics").args[0]
                unavailable.update({s.id: reason for s in group})
                continue
            raise explain(cause or err, "CloudWatch metrics") from err
        except (BotoCoreError, OSError) as err:
            raise explain(err, "CloudWatch metrics") from err
    data = pd.concat(frames, ignore_index=True) if frames else _empty_metrics()
    fill = [s.id for s in specs if s.fill_zero and s.id not in unavailable]
    if fill:
        grid = period_grid(start, end, period_s)
        if len(grid):
            filled = []
            for series_id in fill:
                rows = data[data["id"] == series_id].set_index("timestamp")["value"]
                rows = rows[~rows.index.duplicated()]
                full = rows.reindex(grid.union(pd.DatetimeIndex(rows.index)), fill_value=0.0)
                filled.append(
                    pd.DataFrame({"id": series_id, "timestamp": full.index, "value": full.to_numpy()})
                )
            data = pd.concat([data[~data["id"].isin(fill)], *filled], ignore_index=True)
    data = data.sort_values(["id", "timestamp"], ignore_index=True)
    return MetricFrame(data=data, unavailable=unavailable)


def plain_is_denied(err: ClientError) -> bool:
    return err.response.get("Error", {}).get("Code", "") in _DENIED


def _read_metrics(
    source: CloudWatchMetricSource,
    specs: Sequence[MetricSpec],
    *,
    start: datetime,
    end: datetime,
    period_s: int,
) -> pd.DataFrame:
    """The datapoints CloudWatch returns, at the timestamps it gives them (long format)."""
    ids: list[str] = []
    stamps: list[Any] = []
    values: list[float] = []
    results = source.read(
        specs, start=int(start.timestamp()), end=int(end.timestamp()), period_s=period_s, stats=FetchStats()
    )
    for spec, result in results:
        ids.extend([spec.id] * len(result.get("Timestamps", [])))
        stamps.extend(result.get("Timestamps", []))
        values.extend(float(v) for v in result.get("Values", []))
    frame = pd.DataFrame({"id": ids, "timestamp": pd.to_datetime(stamps, utc=True), "value": values})
    # A spec with `each` (the slowest version) returns one value per version and period: keep the largest.
    if not frame.duplicated(["id", "timestamp"]).any():
        return frame
    return frame.groupby(["id", "timestamp"], sort=False)["value"].max().reset_index()


def sum_series(frame: MetricFrame, ids: Iterable[str]) -> pd.Series:
    """Per-period sum of several series; a period missing from one of them counts as 0 there."""
    total: pd.Series | None = None
    for series_id in ids:
        part = frame.series(series_id)
        total = part if total is None else total.add(part, fill_value=0.0)
    if total is None:
        return pd.Series(dtype=float, index=pd.DatetimeIndex([], tz=UTC))
    return total.sort_index().rename(None)


def ratio(frame: MetricFrame, numerator: Iterable[str], denominator: Iterable[str]) -> pd.Series:
    """Per-period sum(numerator)/sum(denominator); NaN where the denominator is 0 (no traffic)."""
    num, den = sum_series(frame, numerator).align(sum_series(frame, denominator), fill_value=0.0)
    return (num / den.replace(0, np.nan)).rename("rate")


# --------------------------------------------------------------------------------------------- cars


CAR_COLUMNS = [
    "car_id",
    "vin",
    "model",
    "year",
    "status",
    "battery_level",
    "lat",
    "lon",
    "seats",
    "bike_rack",
]


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | set):
        return [_plain(v) for v in value]
    return value


def _all_items(dynamodb: Any, operation: str, *, what: str, **kwargs: Any) -> list[dict[str, Any]]:
    """Every item a Scan or Query returns, all pages (boto3's paginator), as plain Python values."""
    try:
        return [
            {k: _plain(_deserializer.deserialize(v)) for k, v in item.items()}
            for page in dynamodb.get_paginator(operation).paginate(**kwargs)
            for item in page.get("Items", [])
        ]
    except (ClientError, BotoCoreError, OSError) as err:
        raise explain(err, what) from err


def scan_table(
    dynamodb: Any, table: str, *, what: str, limit: int = 100_000, **filters: Any
) -> list[dict[str, Any]]:
    """The items of a table (at most `limit`) as plain Python values (Decimal -> float), paginated.

    `filters` are extra Scan arguments (FilterExpression and its values): they cut what comes back,
    not what DynamoDB reads (a Scan always consumes read units for the whole table).
    """
    return _all_items(
        dynamodb, "scan", what=what, TableName=table, PaginationConfig={"MaxItems": limit}, **filters
    )


def cars_frame(items: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """Car items (VIN claims and other records skipped) as one row per car, position split in lat/lon."""
    rows = []
    for item in items:
        if item.get("record_type", "car") != "car" or str(item.get("car_id", "")).startswith("vin#"):
            continue
        position = item.get("position") or {}
        rows.append(
            {
                "car_id": item.get("car_id"),
                "vin": item.get("vin"),
                "model": item.get("model"),
                "year": item.get("year"),
                "status": item.get("status"),
                "battery_level": item.get("battery_level"),
                "lat": position.get("lat") if isinstance(position, dict) else None,
                "lon": position.get("lon") if isinstance(position, dict) else None,
                "seats": item.get("seats"),
                "bike_rack": bool(item.get("bike_rack", False)),
                "speed_kmh": item.get("speed_kmh"),
                "updated_at": item.get("updated_at"),
            }
        )
    frame = pd.DataFrame(rows, columns=[*CAR_COLUMNS, "speed_kmh", "updated_at"])
    for column in ("battery_level", "lat", "lon", "speed_kmh"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    return frame.sort_values("car_id", ignore_index=True)


def list_cars(dynamodb: Any, table: str) -> pd.DataFrame:
    return cars_frame(scan_table(dynamodb, table, what=f"the cars table {table}"))


def status_events(dynamodb: Any, outbox_table: str, *, since: datetime | None = None) -> pd.DataFrame:
    """Status changes recorded in the outbox (columns `at`, `car_id`, `from_status`, `to_status`).

    The outbox keeps each event for 7 days (its TTL); `since` keeps only the events that occurred
    after it (ISO-8601 UTC strings compare in time order).
    """
    filters: dict[str, Any] = {}
    if since is not None:
        filters = {
            "FilterExpression": "occurred_at >= :since",
            "ExpressionAttributeValues": {
                ":since": {"S": since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")}
            },
        }
    rows = []
    for item in scan_table(dynamodb, outbox_table, what=f"the outbox table {outbox_table}", **filters):
        try:
            detail = json.loads(item.get("detail", "{}"))
        except (TypeError, ValueError):
            continue
        kind = detail.get("event_type") or item.get("event_type")
        if kind not in ("CarStatusChanged", "CarRegistered", "CarRetired"):
            continue
        car = detail.get("car") or {}
        rows.append(
            {
                "at": detail.get("occurred_at") or item.get("occurred_at"),
                "car_id": detail.get("car_id") or item.get("car_id"),
                "from_status": detail.get("from_status") if kind != "CarRegistered" else None,
                "to_status": detail.get("to_status")
                or (car.get("status") if kind == "CarRegistered" else "retired"),
            }
        )
    frame = pd.DataFrame(rows, columns=["at", "car_id", "from_status", "to_status"])
    frame["at"] = pd.to_datetime(frame["at"], utc=True, errors="coerce")
    return frame.dropna(subset=["at"]).sort_values("at", ignore_index=True)


def status_mix(cars: pd.DataFrame, events: pd.DataFrame, *, start: datetime, freq: str) -> pd.DataFrame:
    """Cars per status at each `freq` step since `start`, rebuilt backwards from today's counts.

    Walking the recorded transitions back in time from the current statuses gives the fleet's status
    at every earlier moment the outbox still covers. Returns columns `at`, `status`, `cars`.
    """
    now = pd.Timestamp.now(tz=UTC)
    steps = pd.date_range(pd.Timestamp(start).floor(freq), now, freq=freq)
    counts = cars["status"].value_counts().to_dict()
    ordered = events.sort_values("at", ascending=False)
    rows: list[dict[str, Any]] = []
    cursor = 0
    records = ordered.to_dict("records")
    for step in reversed(steps):
        while cursor < len(records) and records[cursor]["at"] > step:
            event = records[cursor]
            to_status, from_status = event["to_status"], event["from_status"]
            if to_status:
                counts[to_status] = counts.get(to_status, 0) - 1
            if from_status:
                counts[from_status] = counts.get(from_status, 0) + 1
            cursor += 1
        rows.extend({"at": step, "status": s, "cars": max(n, 0)} for s, n in counts.items())
    return pd.DataFrame(rows, columns=["at", "status", "cars"]).sort_values(
        ["at", "status"], ignore_index=True
    )


# --------------------------------------------------------------------------------------------- incidents


_TS_KEYS = ("opened_at", "started_at", "first_seen", "start", "created_at")
_END_KEYS = ("resolved_at", "closed_at", "ended_at", "end")


def _incident_document(item: dict[str, Any]) -> dict[str, Any]:
    """The incident fields of an item: top level, or nested as a map / JSON string under a known key."""
    merged = dict(item)
    for key in ("incident", "doc", "document", "data", "body"):
        nested = item.get(key)
        if isinstance(nested, str):
            try:
                nested = json.loads(nested)
            except ValueError:
                continue
        if isinstance(nested, dict) and ("resource" in nested or "opened_at" in nested):
            merged = {**merged, **nested}
    return merged


def incidents_frame(items: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """Incidents from the monitor table (pk/sk) as rows, one per incident (latest version wins)."""
    latest: dict[str, dict[str, Any]] = {}
    for item in items:
        doc = _incident_document(item)
        pk, sk = str(item.get("pk", "")), str(item.get("sk", ""))
        if pk.upper() in ("OUTBOX", "STATE", "LEASE"):
            continue  # the monitor's notification outbox, model state and lease live in the same table
        looks_like = "incident" in pk.lower() or "incident" in sk.lower() or "incident_id" in doc
        if not (looks_like or ("opened_at" in doc and "resource" in doc)):
            continue
        incident_id = str(doc.get("incident_id") or doc.get("id") or sk or pk)
        opened = next((doc[k] for k in _TS_KEYS if doc.get(k) is not None), None)
        if opened is None:
            continue  # a transition or message item without the incident's facts
        resolved = next((doc[k] for k in _END_KEYS if doc.get(k) is not None), None)
        status = str(doc.get("status") or doc.get("state") or ("resolved" if resolved else "open")).lower()
        members = doc.get("members") or {}
        row = {
            "incident_id": incident_id,
            "status": status,
            "severity": str(doc.get("severity", "")),
            "resource": str(doc.get("resource", "")),
            "series": list(members) if isinstance(members, dict) else [str(m) for m in members],
            "reason": str(doc.get("resolve_reason") or doc.get("reason") or ""),
            "opened_at": opened,
            "resolved_at": resolved,
            "rank": (float(doc.get("seq") or 0), str(doc.get("updated_at") or "")),
            "item": doc,
        }
        if incident_id not in latest or row["rank"] >= latest[incident_id]["rank"]:
            latest[incident_id] = row
    columns = [
        "incident_id",
        "status",
        "severity",
        "resource",
        "series",
        "reason",
        "opened_at",
        "resolved_at",
        "item",
    ]
    frame = pd.DataFrame([{k: r[k] for k in columns} for r in latest.values()], columns=columns)
    for column in ("opened_at", "resolved_at"):
        frame[column] = pd.to_datetime(frame[column].map(_to_timestamp), utc=True)
    return frame.sort_values("opened_at", ascending=False, ignore_index=True)


def _to_timestamp(value: Any) -> pd.Timestamp | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, int | float):
        seconds = value / 1000 if value > 1e11 else value
        return pd.Timestamp(seconds, unit="s", tz=UTC)
    try:
        stamp = pd.Timestamp(str(value))
    except ValueError:
        return None
    return stamp.tz_localize(UTC) if stamp.tzinfo is None else stamp.tz_convert(UTC)


def query_partition(
    dynamodb: Any, table: str, pk: str, *, sk_prefix: str | None = None
) -> list[dict[str, Any]]:
    """Every item of one partition of a pk/sk table (optionally one sort-key prefix), as plain values."""
    kwargs: dict[str, Any] = {
        "TableName": table,
        "KeyConditionExpression": "pk = :pk",
        "ExpressionAttributeValues": {":pk": {"S": pk}},
    }
    if sk_prefix is not None:
        kwargs["KeyConditionExpression"] += " AND begins_with(sk, :prefix)"
        kwargs["ExpressionAttributeValues"][":prefix"] = {"S": sk_prefix}
    return _all_items(dynamodb, "query", what=f"the monitor table {table}", **kwargs)


def list_incidents(dynamodb: Any, monitor_table: str) -> pd.DataFrame:
    """The monitor's incidents (partition `INCIDENT`, one item per incident as last seen)."""
    return incidents_frame(query_partition(dynamodb, monitor_table, "INCIDENT"))


DEPLOYMENT_COLUMNS = [
    "deployment_id",
    "function",
    "from_version",
    "to_version",
    "canary_percent",
    "state",
    "verdict",
    "started_at",
    "ended_at",
    "deployment",
]


def deployments_frame(items: Iterable[dict[str, Any]]) -> tuple[pd.DataFrame, list[str]]:
    """Deployment records of the monitor table (`monitor.deployments`), newest first, one row each
    (the record as last written), with the parsed `Deployment` in the `deployment` column; and the
    sort keys of items that are not deployment records (skipped, for the page to say so)."""
    latest: dict[str, Deployment] = {}
    skipped: list[str] = []
    for item in items:
        try:
            deployment = Deployment.model_validate_json(str(item["doc"]))
        except (KeyError, ValueError) as err:
            skipped.append(f"{item.get('sk', '?')}: {type(err).__name__}")
            continue
        latest[deployment.deployment_id] = deployment
    rows = [
        {
            "deployment_id": d.deployment_id,
            "function": d.function,
            "from_version": d.from_version,
            "to_version": d.to_version,
            "canary_percent": d.canary_percent,
            "state": d.state.value,
            "verdict": d.verdict.value if d.verdict else "",
            "started_at": d.started_at,
            "ended_at": d.ended_at,
            "deployment": d,
        }
        for d in latest.values()
    ]
    frame = pd.DataFrame(rows, columns=DEPLOYMENT_COLUMNS)
    for column in ("started_at", "ended_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame.sort_values("started_at", ascending=False, ignore_index=True), skipped


def list_deployments(dynamodb: Any, monitor_table: str) -> tuple[pd.DataFrame, list[str]]:
    """The deployments the judging loops recorded (partition `DEPLOYMENT` of the monitor table)."""
    return deployments_frame(query_partition(dynamodb, monitor_table, DEPLOYMENT_PK))


def incident_notifications(dynamodb: Any, monitor_table: str, incident_id: str) -> list[dict[str, Any]]:
    """The notifications of one incident from the monitor's outbox (`OUTBOX`, sk `<id>#<seq>`), in order.

    Each has `seq`, `kind`, `status` (pending/publishing/sent), `sent_at`, `message_id` and `message`:
    the SNS Publish input exactly as the monitor sent it.
    """
    items = query_partition(dynamodb, monitor_table, "OUTBOX", sk_prefix=f"{incident_id}#")
    out = []
    for item in items:
        message = item.get("message")
        if isinstance(message, str):
            with contextlib.suppress(ValueError):
                message = json.loads(message)
        out.append(
            {
                "seq": item.get("seq"),
                "kind": item.get("kind"),
                "status": item.get("status"),
                "sent_at": _to_timestamp(item.get("sent_at")),
                "message_id": item.get("message_id"),
                "message": message,
            }
        )
    return sorted(out, key=lambda n: float(n["seq"] or 0))


def read_inbox(path: Path, *, limit: int = 500) -> list[dict[str, Any]]:
    """The sandbox's delivered SNS messages, newest first (one JSON object per line)."""
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return []
    except OSError as err:
        raise QueryError(f"Cannot read the alert inbox {path}: {err}") from err
    messages = []
    for line in reversed(lines[-limit:]):
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            messages.append(value)
    return messages


# --------------------------------------------------------------------------------------------- queues


def queue_snapshot(sqs: Any, names: Sequence[str]) -> pd.DataFrame:
    """Current depth of each queue (visible, in flight, delayed)."""
    rows = []
    for name in names:
        try:
            url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
            attrs = sqs.get_queue_attributes(
                QueueUrl=url,
                AttributeNames=[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                    "ApproximateNumberOfMessagesDelayed",
                ],
            )["Attributes"]
        except (ClientError, BotoCoreError, OSError) as err:
            raise explain(err, f"the queue {name}") from err
        rows.append(
            {
                "queue": name,
                "visible": int(attrs.get("ApproximateNumberOfMessages", 0)),
                "in_flight": int(attrs.get("ApproximateNumberOfMessagesNotVisible", 0)),
                "delayed": int(attrs.get("ApproximateNumberOfMessagesDelayed", 0)),
            }
        )
    return pd.DataFrame(rows, columns=["queue", "visible", "in_flight", "delayed"])


# --------------------------------------------------------------------------------------------- cost inputs

_REPORT = re.compile(
    r"Duration:\s*([\d.]+)\s*ms.*?Memory Size:\s*(\d+)\s*MB\s*Max Memory Used:\s*(\d+)\s*MB", re.S
)


def lambda_reports(
    logs: Any, log_group: str, *, start: datetime, end: datetime, limit: int = 2000
) -> pd.DataFrame:
    """Lambda REPORT lines (duration, memory size, max memory used) from a function's log group."""
    rows: list[dict[str, float]] = []
    pages = logs.get_paginator("filter_log_events").paginate(
        logGroupName=log_group,
        startTime=int(start.timestamp() * 1000),
        endTime=int(end.timestamp() * 1000),
        filterPattern="REPORT",
    )
    try:
        for page in pages:
            for event in page.get("events", []):
                match = _REPORT.search(event.get("message", ""))
                if match:
                    rows.append(
                        {
                            "duration_ms": float(match.group(1)),
                            "memory_mb": int(match.group(2)),
                            "max_used_mb": int(match.group(3)),
                        }
                    )
            if len(rows) >= limit:
                break
    except (ClientError, BotoCoreError, OSError) as err:
        raise explain(err, f"the log group {log_group}") from err
    return pd.DataFrame(rows, columns=["duration_ms", "memory_mb", "max_used_mb"])


def count_custom_metrics(cloudwatch: Any, namespace: str) -> int:
    try:
        paginator = cloudwatch.get_paginator("list_metrics")
        return sum(len(page.get("Metrics", [])) for page in paginator.paginate(Namespace=namespace))
    except (ClientError, BotoCoreError, OSError) as err:
        raise explain(err, f"the metric list of {namespace}") from err


MetricKey = tuple[str, str, tuple[tuple[str, str], ...]]  # namespace, name, sorted dimensions


def list_metrics(cloudwatch: Any, namespaces: Iterable[str]) -> list[MetricKey]:
    """Every metric CloudWatch lists in these namespaces (ListMetrics, all pages)."""
    found: list[MetricKey] = []
    try:
        paginator = cloudwatch.get_paginator("list_metrics")
        for namespace in sorted(set(namespaces)):
            for page in paginator.paginate(Namespace=namespace):
                for metric in page.get("Metrics", []):
                    dims = tuple(sorted((d["Name"], d["Value"]) for d in metric.get("Dimensions", [])))
                    found.append((metric["Namespace"], metric["MetricName"], dims))
    except (ClientError, BotoCoreError, OSError) as err:
        raise explain(err, "the CloudWatch metric list") from err
    return found


def count_alarms(cloudwatch: Any, prefix: str) -> dict[str, int]:
    """Alarms whose name starts with the prefix: standard metric alarms, anomaly-band alarms, composites."""
    counts = {"standard": 0, "anomaly": 0, "composite": 0}
    try:
        paginator = cloudwatch.get_paginator("describe_alarms")
        for page in paginator.paginate(AlarmNamePrefix=prefix, AlarmTypes=["MetricAlarm", "CompositeAlarm"]):
            for alarm in page.get("MetricAlarms", []):
                is_band = "ThresholdMetricId" in alarm
                counts["anomaly" if is_band else "standard"] += 1
            counts["composite"] += len(page.get("CompositeAlarms", []))
    except (ClientError, BotoCoreError, OSError) as err:
        raise explain(err, "CloudWatch alarms") from err
    return counts


def cost_explorer_daily(
    ce: Any, *, start: datetime, end: datetime, tag_stage: str | None = None
) -> pd.DataFrame:
    """Unblended daily cost by service from Cost Explorer (columns `day`, `service`, `usd`)."""
    kwargs: dict[str, Any] = {
        "TimePeriod": {"Start": start.date().isoformat(), "End": end.date().isoformat()},
        "Granularity": "DAILY",
        "Metrics": ["UnblendedCost"],
        "GroupBy": [{"Type": "DIMENSION", "Key": "SERVICE"}],
    }
    rows = []
    try:
        while True:  # botocore has no paginator for GetCostAndUsage
            page = ce.get_cost_and_usage(**kwargs)
            for day in page.get("ResultsByTime", []):
                for group in day.get("Groups", []):
                    rows.append(
                        {
                            "day": pd.Timestamp(day["TimePeriod"]["Start"], tz=UTC),
                            "service": group["Keys"][0],
                            "usd": float(group["Metrics"]["UnblendedCost"]["Amount"]),
                        }
                    )
            token = page.get("NextPageToken")
            if not token:
                break
            kwargs["NextPageToken"] = token
    except (ClientError, BotoCoreError, OSError) as err:
        raise explain(err, "Cost Explorer") from err
    return pd.DataFrame(rows, columns=["day", "service", "usd"])


def describe_stacks(cloudformation: Any) -> list[dict[str, Any]]:
    stacks: list[dict[str, Any]] = []
    for page in cloudformation.get_paginator("describe_stacks").paginate():
        stacks.extend(page.get("Stacks", []))
    return stacks


def utcnow() -> datetime:
    return datetime.now(tz=UTC)


def window(end: datetime, hours: float) -> tuple[datetime, datetime]:
    return end - timedelta(hours=hours), end
