"""Seed an emulator with what the dashboard reads: cars, status events, incidents, deployments and real
metrics.

Metrics go in through PutMetricData (the emulator's indexed store keeps them), cars and outbox
events through the service's own item models, so the dashboard reads exactly what the service and
the sandbox write. Also used by benchmarks/bench_dashboard.py.
"""

from __future__ import annotations

import json
import math
import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import numpy as np

from contract.metrics import CANARY_NAMESPACE
from contract.resources import ResourceNames
from contract.topology import Topology
from dashboard.specs import catalog, usage_specs
from dashboard.target import Resources
from monitor.canary import VersionMinute, judge
from monitor.catalog import MetricSpec, Severity, build_catalog
from monitor.deployments import Deployment, DeploymentState, DynamoDbDeploymentLog, VerdictRecord
from monitor.incidents import Incident, Member, Transition, incident_id
from monitor.notifier import render
from monitor.store import DynamoDbIncidentStore
from monitor.store import OutboxItem as MonitorOutboxItem
from service.adapters.items import CarItem, OutboxItem
from service.domain.car import Car, Position
from service.domain.events import CarStatusChanged
from service.domain.status import TRANSITIONS, CarStatus
from service.domain.vin import with_check_digit

MODELS = ("Zoox Robotaxi", "Waymo Jaguar I-PACE", "Cruise Origin", "Tesla Cybercab")
STATUSES = (
    [CarStatus.AVAILABLE] * 12
    + [CarStatus.IN_TRIP] * 14
    + [CarStatus.CHARGING] * 6
    + [CarStatus.RESERVED] * 4
    + [CarStatus.MAINTENANCE] * 3
    + [CarStatus.RETIRED]
)
VIN_ALPHABET = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"


def _vin(rng: random.Random) -> str:
    """A VIN with a valid ISO 3779 check digit."""
    return with_check_digit("".join(rng.choice(VIN_ALPHABET) for _ in range(17)))


def seed_cars(topo: Topology, *, now: datetime, n_events: int = 120, seed: int = 7) -> list[Car]:
    """40 cars around San Francisco in every status, plus their recent status changes in the outbox."""
    rng = random.Random(seed)
    ddb = boto3.client("dynamodb")
    cars: list[Car] = []
    for i, status in enumerate(STATUSES):
        created = now - timedelta(days=20, minutes=i)
        car = Car(
            car_id=f"car-{i:03d}",
            vin=_vin(rng),
            model=MODELS[i % len(MODELS)],
            year=2024 + i % 3,
            seats=4 + i % 3,
            bike_rack=i % 4 == 0,
            status=status,
            battery_level=round(rng.uniform(8, 100), 1),
            position=Position(lat=37.76 + rng.uniform(-0.05, 0.05), lon=-122.44 + rng.uniform(-0.05, 0.05)),
            created_at=created,
            updated_at=now - timedelta(minutes=rng.randint(1, 300)),
            version=3,
        )
        ddb.put_item(TableName=topo.cars_table.name, Item=CarItem.from_car(car).to_item())
        cars.append(car)
    # Status changes over the last 12 hours: for each car a legal chain of moves ending in its status.
    predecessors = {
        status: [p for p, moves in TRANSITIONS.items() if status in moves and p is not CarStatus.RETIRED]
        for status in CarStatus
    }
    live = [c for c in cars if c.status is not CarStatus.RETIRED]
    per_car = max(1, n_events // len(live))
    for car in live:
        status, at = car.status, now - timedelta(minutes=rng.randint(2, 30))
        for _ in range(per_car):
            before = rng.choice(predecessors[status])
            event = CarStatusChanged(
                event_id=str(uuid.UUID(int=rng.getrandbits(128))),
                occurred_at=at,
                car_id=car.car_id,
                version=car.version,
                car=car,
                from_status=before,
                to_status=status,
            )
            ddb.put_item(TableName=topo.outbox_table.name, Item=OutboxItem.from_event(event).to_item())
            status, at = before, at - timedelta(minutes=rng.randint(20, 90))
    return cars


def seed_incidents(topo: Topology, *, now: datetime, inbox: Path | None = None) -> list[str]:
    """One open and one resolved incident written with the monitor's own models and store.

    The incident items, the outbox notification of each transition (rendered by the monitor's
    notifier, marked sent) and, with `inbox`, the delivered messages as the sandbox inbox keeps them.
    """
    cat = build_catalog(ResourceNames.from_topology(topo), period_s=300)
    api = f"api:{topo.api_name}"
    group = cat.get(f"{api}:5xx").group  # incidents are keyed by the service group, as the monitor does
    table = boto3.resource("dynamodb").Table(topo.monitor_table.name)
    store = DynamoDbIncidentStore(topo.monitor_table.name, table=table)
    t_open = int((now - timedelta(minutes=50)).timestamp()) // 300 * 300
    t_old = int((now - timedelta(hours=20)).timestamp()) // 300 * 300

    def member(series_id: str, severity: Severity, since: int, value: float, upper: float) -> Member:
        return Member(
            series_id=series_id, resource=api, severity=severity, since=since, last_anomalous_at=since + 600,
            last_seen=since + 600, value=value, lower=0.0, upper=upper, score=0.8, peak_score=0.9,
        )  # fmt: skip

    opened = Incident(
        id=incident_id(group, t_open),
        resource=group,
        severity=Severity.CRITICAL,
        opened_at=t_open,
        updated_at=t_open,
        seq=1,
        members={f"{api}:5xx": member(f"{api}:5xx", Severity.CRITICAL, t_open, 41.0, 3.0)},
    )
    resolved = Incident(
        id=incident_id(group, t_old),
        resource=group,
        status="resolved",
        severity=Severity.WARNING,
        opened_at=t_old,
        updated_at=t_old + 3600,
        resolved_at=t_old + 3600,
        resolve_reason="all members clear for 900 s",
        seq=2,
        members={f"{api}:latency-p99": member(f"{api}:latency-p99", Severity.WARNING, t_old, 900.0, 200.0)},
    )
    transitions = [
        Transition(incident_id=opened.id, seq=1, kind="OPEN", at=t_open, reason="5XX", incident=opened),
        Transition(
            incident_id=resolved.id, seq=1, kind="OPEN", at=t_old, reason="latency", incident=resolved
        ),
        Transition(
            incident_id=resolved.id,
            seq=2,
            kind="RESOLVED",
            at=t_old + 3600,
            reason="clear",
            incident=resolved,
        ),
    ]
    topic_arn = f"arn:aws:sns:us-east-1:123456789012:{topo.alerts_topic}"
    delivered = []
    for transition in transitions:
        message = render(transition, cat, region="us-east-1", stage=topo.stage).publish_input(topic_arn)
        item = MonitorOutboxItem(
            dedup_key=transition.dedup_key,
            incident_id=transition.incident_id,
            seq=transition.seq,
            kind=transition.kind,
            created_at=transition.at,
            message=message,
        )
        store.add_to_outbox(item)
        message_id = str(uuid.uuid5(uuid.NAMESPACE_URL, transition.dedup_key))
        store.mark_sent(item, now=transition.at + 5, message_id=message_id)
        delivered.append(
            {
                "Type": "Notification",
                "MessageId": message_id,
                "TopicArn": topic_arn,
                "Subject": message.get("Subject"),
                "Message": json.loads(message["Message"]).get("sqs", message["Message"]),
                "Timestamp": datetime.fromtimestamp(transition.at + 5, tz=UTC).isoformat(),
            }
        )
    for incident in (opened, resolved):
        doc = incident.model_dump(mode="json")
        if incident is opened:  # as the monitor stores it when a deployment came just before
            doc["deployments"] = [
                {
                    "deployment_id": "d-seeded",
                    "function": "cars-api",
                    "from_version": "7",
                    "to_version": "8",
                    "state": "ROLLED_BACK",
                    "verdict": "FAIL",
                    "text": "began 2 min after cars-api version 8 took 10 % of traffic "
                    "(rolled back, canary FAIL)",
                }
            ]
        store.put_incident(doc, now=incident.updated_at)
    if inbox is not None:
        inbox.parent.mkdir(parents=True, exist_ok=True)
        inbox.write_text("".join(json.dumps(m) + "\n" for m in delivered))
    return [opened.id, resolved.id]


def seed_deployments(topo: Topology, *, now: datetime) -> list[Deployment]:
    """Two canaries of cars-api as `fleetscope deploy` records them, each judged by the real judge:
    d-seeded (7 -> 8, +2 s on the canary, rolled back on FAIL 2 minutes before the open incident
    opened) and d-clean (6 -> 7, promoted 5 hours ago); plus one unreadable item in their partition."""
    t_open = datetime.fromtimestamp(int((now - timedelta(minutes=50)).timestamp()) // 300 * 300, tz=UTC)
    name = next(f.name for f in topo.functions if f.key == "cars-api")
    base = [
        VersionMinute(invocations=300, errors=i % 2, p50_ms=40 + i, p90_ms=80, p99_ms=150) for i in range(5)
    ]
    slow = [VersionMinute(invocations=34, p50_ms=2040 + i, p90_ms=2300, p99_ms=2600) for i in range(5)]
    clean = [
        VersionMinute(invocations=300, errors=i % 2, p50_ms=41 + i, p90_ms=81, p99_ms=151) for i in range(5)
    ]
    records = []
    for deployment_id, old, new, started, canary, state in (
        ("d-clean", "6", "7", now - timedelta(hours=5), clean, DeploymentState.SUCCEEDED),
        ("d-seeded", "7", "8", t_open - timedelta(minutes=2), slow, DeploymentState.ROLLED_BACK),
    ):
        verdict = judge(base, canary)
        history = [
            VerdictRecord(
                at=started + timedelta(minutes=m),
                minutes=m,
                outcome=(v := judge(base[:m], canary[:m])).outcome,
                canary_invocations=v.canary_invocations,
                baseline_invocations=v.baseline_invocations,
                reasons=v.reasons,
            )
            for m in range(1, 6)
        ]
        records.append(
            Deployment(
                deployment_id=deployment_id,
                function="cars-api",
                function_name=name,
                from_version=old,
                to_version=new,
                canary_percent=10,
                state=state,
                started_at=started,
                ended_at=started + timedelta(minutes=5),
                verdict=verdict.outcome,
                reasons=verdict.reasons,
                metrics=list(verdict.metrics),
                baseline_minutes=base,
                canary_minutes=canary,
                verdicts=history,
            )
        )
    table = boto3.resource("dynamodb").Table(topo.monitor_table.name)
    log = DynamoDbDeploymentLog(table)
    for record in records:
        log.put(record)
    table.put_item(
        Item={"pk": "DEPLOYMENT", "sk": "2026-01-01T00:00:00.000000Z#d-broken", "doc": "{not json"}
    )
    return records


def _shape(spec: MetricSpec, t: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, bool]:
    """A daily-seasonal value per period, and whether it is a latency-like sample distribution."""
    hour = (t % 86400) / 3600
    daily = 1 + 0.6 * np.sin((hour - 9) / 24 * 2 * math.pi)
    name = spec.metric_name
    if name in ("Latency", "Duration"):
        return 40 * (1 + 0.2 * daily) + rng.gamma(2, 3, len(t)), True
    if name == "Invocations" and spec.dimensions.get("FunctionName", "").endswith("-monitor"):
        return np.ones(len(t)), False  # the monitor runs once per period
    if name in (
        "Count",
        "Invocations",
        "NumberOfMessagesSent",
        "NumberOfMessagesReceived",
        "NumberOfMessagesDeleted",
    ):
        return rng.poisson(300 * daily).astype(float), False
    if name in (
        "ConsumedReadCapacityUnits",
        "ConsumedWriteCapacityUnits",
        "TelemetryApplied",
        "StatusTransitions",
    ):
        return rng.poisson(120 * daily).astype(float), False
    if name in ("4XXError", "Errors", "ColdStart", "CarsRegistered", "NumberOfEmptyReceives"):
        return rng.poisson(2 * daily).astype(float), False
    if name == "IncomingBytes":
        return rng.poisson(300 * daily).astype(float) * 400, False
    if name in (
        "ApproximateAgeOfOldestMessage",
        "ApproximateNumberOfMessagesVisible",
        "ConcurrentExecutions",
    ):
        return rng.poisson(3 * daily).astype(float), False
    if name == "NumberOfMessagesPublished":
        return (rng.random(len(t)) < 0.01).astype(float), False
    return rng.poisson(0.2, len(t)).astype(float), False  # 5XX, throttles, DLQ: rare


def metric_specs(resources: Resources, period_s: int = 300) -> list[MetricSpec]:
    """Every distinct metric the dashboard reads (catalog + usage), once per statistic-free identity;
    but not the canary judge's verdict, which exists only while a deployment is judged (the monitor
    reads its absence as zero)."""
    seen: set[tuple[str, str, tuple[tuple[str, str], ...]]] = set()
    out = []
    for spec in [*catalog(resources, period_s).metrics, *usage_specs(resources, period_s)]:
        key = (spec.namespace, spec.metric_name, tuple(sorted(spec.dimensions.items())))
        if key not in seen and spec.namespace != CANARY_NAMESPACE:
            seen.add(key)
            out.append(spec)
    return out


def _datums(
    specs: list[MetricSpec],
    *,
    start: datetime,
    end: datetime,
    period_s: int,
    anomaly_from: datetime | None,
    seed: int,
) -> Iterator[tuple[str, dict[str, Any]]]:
    rng = np.random.default_rng(seed)
    t = np.arange(int(start.timestamp()), int(end.timestamp()), period_s)
    for spec in specs:
        values, latency = _shape(spec, t, rng)
        if anomaly_from is not None and spec.metric_name in ("5XXError", "Errors"):
            values = np.where(t >= anomaly_from.timestamp(), values + 40, values)
        # a series read for `each` version (the slowest version) is written as version 1
        dims = spec.dimension_list() + ([{"Name": spec.each, "Value": "1"}] if spec.each else [])
        for ts, value in zip(t, values, strict=True):
            stamp = datetime.fromtimestamp(int(ts), tz=UTC)
            if latency:
                samples = np.round(value * rng.gamma(4, 0.25, 12), 1)
                datum = {"Values": samples.tolist(), "Counts": [1.0] * len(samples)}
            elif value <= 0 and spec.metric_name not in ("Count", "Invocations"):
                continue  # CloudWatch omits zero counts; the dashboard fills them
            else:
                datum = {"Value": float(value)}
            yield (
                spec.namespace,
                {
                    "MetricName": spec.metric_name,
                    "Dimensions": dims,
                    "Timestamp": stamp,
                    "Unit": "None",
                    **datum,
                },
            )


def seed_metrics(
    resources: Resources,
    *,
    now: datetime,
    days: float = 2.0,
    period_s: int = 300,
    anomaly_minutes: int = 45,
    specs: list[MetricSpec] | None = None,
    seed: int = 11,
) -> int:
    """PutMetricData for `days` of history up to now; returns the number of datapoints written."""
    cw = boto3.client("cloudwatch")
    chosen = specs if specs is not None else metric_specs(resources, period_s)
    end = now - timedelta(seconds=int(now.timestamp()) % period_s)
    start = end - timedelta(days=days)
    batches: dict[str, list[dict[str, Any]]] = {}
    written = 0
    anomaly_from = end - timedelta(minutes=anomaly_minutes) if anomaly_minutes else None
    for namespace, datum in _datums(
        chosen, start=start, end=end, period_s=period_s, anomaly_from=anomaly_from, seed=seed
    ):
        batch = batches.setdefault(namespace, [])
        batch.append(datum)
        if len(batch) == 500:
            cw.put_metric_data(Namespace=namespace, MetricData=batch)
            written += len(batch)
            batch.clear()
    for namespace, batch in batches.items():
        if batch:
            cw.put_metric_data(Namespace=namespace, MetricData=batch)
            written += len(batch)
    return written


def seed_reports(topo: Topology, *, now: datetime, n: int = 50) -> None:
    """Lambda REPORT lines for cars-api, in the format the sandbox runtime (and Lambda) writes them."""
    logs = boto3.client("logs")
    group = topo.cars_api.log_group
    stream = f"{now:%Y/%m/%d}/[$LATEST]dashboardtest"
    logs.create_log_stream(logGroupName=group, logStreamName=stream)
    start_ms = int((now - timedelta(hours=2)).timestamp() * 1000)
    events = [
        {
            "timestamp": start_ms + i * 60_000,
            "message": f"REPORT RequestId: {uuid.UUID(int=i)}\tDuration: {10 + i % 7:.2f} ms\t"
            f"Billed Duration: {11 + i % 7} ms\tMemory Size: {topo.cars_api.memory_mb} MB\t"
            f"Max Memory Used: {80 + i % 9} MB",
        }
        for i in range(n)
    ]
    logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=events)
