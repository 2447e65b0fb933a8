"""Reliability under hostile input, contention, poison telemetry and an EventBridge outage (the emulator).

One table, ours next to what issue 13 promised:
- generated API requests (schemathesis from /openapi.json, plus every hostile case of
  tests/service/hostile.py) through the real cars-api handler on the emulator's DynamoDB: answers >= 500
  (promised: 0);
- concurrent conflicting PUTs with If-Match on a few cars (16 threads): updates lost, i.e. a car's final
  version differs from 1 + its accepted PUTs, or an accepted PUT has no CarUpdated outbox item (promised 0);
- telemetry with 2 % poison through SQS (redrive policy) and the real ingest handler: applied + stale + DLQ
  against sent (promised: equal);
- changes through the outbox stream and the relay while EventBridge fails 20 % of PutEvents and once for a
  10-minute outage (simulated clock), then the sweeper: events lost or delivered twice (promised 0);
- monitor runs killed at random between their writes (`benchmarks.bench_monitor_kills`, one world of 100
  runs): duplicate and orphaned alerts at the subscriber (promised 0 and 0).

`--scale F` multiplies every count (the full run: 10,000 requests, 1,000 updates, 100,000 messages, 10,000
changes; always 100 monitor runs); `--only ROW` runs one row (repeatable: requests, updates, telemetry,
changes, monitor). The counts run are printed.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import boto3

from contract.topology import Topology, topology

STAGE = "bench"


@dataclass
class Row:
    what: str
    run: str
    ours: str
    promised: str
    ok: bool


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Powertools logs and EMF lines go to a buffer, not the terminal."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield


def _env(topo: Topology) -> None:
    for fn in (topo.cars_api, topo.telemetry_ingest, topo.outbox_relay):
        for key, value in topo.function_environment(fn).items():
            if key != "POWERTOOLS_SERVICE_NAME":
                os.environ[key] = value
    os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
    os.environ["POWERTOOLS_LOG_LEVEL"] = "ERROR"  # before the service modules are imported


def _reset_caches() -> None:
    from service.adapters import aws
    from service.api import dependencies
    from service.relay import handler as relay
    from service.settings import get_settings

    aws.reset_clients()
    for cached in (
        get_settings,
        dependencies.get_car_service,
        dependencies.get_idempotency_store,
        dependencies.get_signing_keys,
        relay.get_outbox,
        relay.get_publisher,
    ):
        cached.cache_clear()


def _call(method: str, path: str, body: str | None = None, headers: dict[str, str] | None = None) -> Any:
    from service.api.handler import lambda_handler
    from tests.service.apigw import call

    return call(lambda_handler, method, path, raw_body=body, headers=headers or {})


def _car_body(n: int) -> dict[str, Any]:
    from service.domain.vin import with_check_digit

    return {
        "vin": with_check_digit(f"1RB{n:014d}"),
        "model": "Robotaxi R1",
        "year": 2025,
        "seats": 4,
        "bike_rack": False,
        "battery_level": 80.0,
        "position": {"lat": 52.52, "lon": 13.405},
    }


_vins = iter(range(random.Random().randrange(10**9), 10**13))


def _register() -> dict[str, Any]:
    created = _call("POST", "/cars", json.dumps(_car_body(next(_vins))), {"Content-Type": "application/json"})
    assert created.status == 201, created.body
    return dict(created.body)


# --- 1. generated and hostile requests -----------------------------------------------------------------


SECTIONS = ("requests", "updates", "telemetry", "changes", "monitor")
MAX_ROUNDS = 20  # rounds of generated requests at most (each asks every operation for its share)


def hostile_requests(total: int) -> Row:
    import schemathesis

    from service.api.handler import openapi_json
    from tests.service.hostile import hostile_requests as hostile

    cars = [_register()["car_id"] for _ in range(3)]
    from contract.telemetry_api import TELEMETRY_PATH

    # the function's operations (the telemetry route is API Gateway's own, tested with the local gateway)
    schema = schemathesis.openapi.from_dict(json.loads(openapi_json())).exclude(path=TELEMETRY_PATH)
    operations = [result.ok() for result in schema.get_all_operations()]
    statuses: list[int] = []
    server_errors: list[str] = []

    def send(method: str, path: str, body: str | None, headers: dict[str, str]) -> None:
        status = _call(method, path, body, headers).status
        statuses.append(status)
        if status >= 500:
            server_errors.append(f"{method} {path} {str(body)[:80]}")

    for case in hostile(openapi_json(), cars[0]):
        send(case.method, case.path, case.raw_body, case.headers)
    # Hypothesis stops early on an operation with few distinct inputs (GET /health): rounds of fresh
    # examples until the count is reached (a full run once sent 8,577 of 10,000 in a single round).
    for _round in range(MAX_ROUNDS):
        if len(statuses) >= total:
            break
        per_operation = max(1, -(-(total - len(statuses)) // len(operations)))
        for operation in operations:
            _generated(operation, per_operation, cars, send)
    return Row(
        "generated + hostile API requests, answers >= 500",
        f"{len(statuses):,} requests",
        f"{len(server_errors)}",
        "0",
        not server_errors,
    )


def _generated(operation: Any, examples: int, cars: list[str], send: Callable[..., None]) -> None:
    """Up to `examples` schemathesis cases of one operation through `send` (a car id of even length is
    one of the registered `cars`, so updates and deletes also reach existing items)."""
    from hypothesis import HealthCheck, given, settings
    from schemathesis.core import NOT_SET

    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(case=operation.as_strategy())
    def run(case: Any) -> None:
        params = dict(case.path_parameters or {})
        if "car_id" in params and len(str(params["car_id"])) % 2 == 0:
            params["car_id"] = cars[len(str(params["car_id"])) % 3]
        path = case.operation.path
        for name, value in params.items():
            path = path.replace("{" + name + "}", str(value))
        query = {k: v for k, v in (case.query or {}).items() if v is not None}
        if query:
            path += "?" + urlencode(query, doseq=True)
        headers = {k: str(v) for k, v in (case.headers or {}).items()}
        body: str | None = None
        if isinstance(case.body, bytes):
            body = case.body.decode("utf-8", "replace")
        elif case.body is not NOT_SET:
            body = json.dumps(case.body)
        if body is not None and case.media_type:
            headers.setdefault("Content-Type", case.media_type)
        send(case.method.upper(), path, body, headers)

    run()


# --- 2. concurrent conflicting updates ---------------------------------------------------------------


def conflicting_updates(total: int, topo: Topology) -> Row:
    """The use case the PUT route calls, from 16 threads at once, on the emulator's DynamoDB (the Powertools
    resolver holds one request at a time per process, as a Lambda environment does, so threads share the
    `CarService` and its boto3 client, not the HTTP handler)."""
    from service.api.dependencies import get_car_service
    from service.domain.car import CarDetails
    from service.domain.errors import VersionConflictError

    cars = [_register() for _ in range(max(1, total // 100))]
    service = get_car_service()
    accepted: dict[str, int] = {c["car_id"]: 0 for c in cars}
    other = 0

    def attempt(n: int) -> int:
        car_id = cars[n % len(cars)]["car_id"]
        version = service.get(car_id).version
        details = CarDetails(model=f"R{n}", year=2024, seats=4, bike_rack=False)  # every PUT is a change
        try:
            service.replace_details(car_id, details, expected_version=version)
        except VersionConflictError:
            return 409
        except Exception as err:
            print(f"unexpected {type(err).__name__}: {err}", file=sys.stderr)
            return 500
        return 200

    with ThreadPoolExecutor(max_workers=16) as pool:
        statuses = list(pool.map(attempt, range(total)))
    for n, status in enumerate(statuses):
        if status == 200:
            accepted[cars[n % len(cars)]["car_id"]] += 1
        elif status != 409:
            other += 1
    ddb = boto3.client("dynamodb")
    lost = 0
    for car_id, count in accepted.items():
        version = int(_call("GET", f"/cars/{car_id}").body["version"])
        events = _scan(
            ddb,
            TableName=topo.outbox_table.name,
            FilterExpression="car_id = :c AND event_type = :t",
            ExpressionAttributeValues={":c": {"S": car_id}, ":t": {"S": "CarUpdated"}},
        )
        # Every accepted PUT is a change: one version bump and one CarUpdated event each.
        lost += abs(count - (version - 1)) + abs(len(events) - (version - 1))
    return Row(
        "concurrent conflicting updates (If-Match), updates lost",
        f"{total:,} updates on {len(cars)} cars ({sum(accepted.values())} won, "
        f"{statuses.count(409)} x 409, {other} other)",
        f"{lost}",
        "0",
        lost == 0 and other == 0,
    )


# --- 3. telemetry with poison --------------------------------------------------------------------------


class CountingRepository:
    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.applied = 0
        self.stale = 0

    def apply(self, message: Any) -> Any:
        from service.ingest.repository import ApplyOutcome

        outcome = self.inner.apply(message)
        if outcome is ApplyOutcome.APPLIED:
            self.applied += 1
        elif outcome is ApplyOutcome.STALE:
            self.stale += 1
        return outcome


def telemetry_with_poison(total: int, topo: Topology) -> Row:
    from sandbox.aws.event_source import SqsEventSource
    from service.ingest import handler as ingest
    from service.ingest.repository import DynamoDbTelemetryRepository
    from tests.ingest.ingest_helpers import create_queue_pair, drain_queue, send_bodies

    sqs, ddb = boto3.client("sqs"), boto3.client("dynamodb")
    queue = create_queue_pair(sqs, f"bench-rel-{uuid.uuid4().hex[:8]}", max_receive_count=3)
    run = uuid.uuid4().hex[:6]
    cars = [f"car-{run}-{i:03d}" for i in range(100)]
    for start in range(0, len(cars), 25):
        ddb.batch_write_item(
            RequestItems={
                topo.cars_table.name: [
                    {"PutRequest": {"Item": {"car_id": {"S": c}, "status": {"S": "available"}}}}
                    for c in cars[start : start + 25]
                ]
            }
        )
    rng = random.Random(13)
    base = datetime.now(UTC) - timedelta(minutes=30)
    bodies: list[str] = []
    poison = 0
    for n in range(total):
        car = cars[n % len(cars)]
        ts = base + timedelta(milliseconds=n * 10 + rng.randrange(-500, 500))  # some out of order
        body = {"car_id": car, "ts": ts.isoformat(), "position": {"lat": 52.5, "lon": 13.4}}
        body |= {"battery_level": 50.0, "speed_kmh": 30.0}
        if rng.random() < 0.02:
            poison += 1
            body = rng.choice([body | {"battery_level": 150}, body | {"car_id": f"ghost-{n}"}, {"x": 1}])
        bodies.append(json.dumps(body))
    counting = CountingRepository(DynamoDbTelemetryRepository(topo.cars_table.name))
    ingest.get_repository.cache_clear()
    original = ingest.get_repository
    ingest.get_repository = lambda: counting  # type: ignore[assignment]
    source = SqsEventSource.from_spec(
        queue.url,
        ingest.lambda_handler,
        spec=topo.telemetry_source,
        function_name=topo.telemetry_ingest.name,
        failure_visibility_timeout_s=0,
        idle_sleep_s=0.02,
        max_batching_window_s=0,
    )
    try:
        with source:
            for start in range(0, total, 30):
                _wait(lambda: sum(source.queue_depth()) < 60, timeout_s=120)
                send_bodies(sqs, queue.url, bodies[start : start + 30])
            _wait(lambda: source.queue_depth() == (0, 0), timeout_s=300)
    finally:
        ingest.get_repository = original  # type: ignore[assignment]
    dead = len(drain_queue(sqs, queue.dlq_url))
    accounted = counting.applied + counting.stale + dead
    return Row(
        "telemetry with 2 % poison: applied + stale + DLQ vs sent",
        f"{total:,} sent ({poison} poison)",
        f"{counting.applied:,} + {counting.stale:,} + {dead} = {accounted:,}",
        f"= {total:,}",
        accounted == total and dead == poison,
    )


def _wait(condition: Callable[[], bool], *, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(0.02)


# --- 4. EventBridge failing 20 %, one 10-minute outage -----------------------------------------------


class FlakyOutagePublisher:
    """The real bus, except 20 % of PutEvents fail and every one fails inside the outage (simulated clock)."""

    def __init__(self, real: Any, clock: Callable[[], datetime], outage: tuple[datetime, datetime]) -> None:
        self.real, self.clock, self.outage = real, clock, outage
        self.rng = random.Random(20)
        self.calls = self.failures = 0

    def publish(self, item: Any) -> None:
        from service.adapters.eventbridge import EventPublishError

        self.calls += 1
        start, end = self.outage
        if start <= self.clock() < end or self.rng.random() < 0.2:
            self.failures += 1
            raise EventPublishError("injected")
        self.real.publish(item)


def outbox_under_failures(total: int, topo: Topology) -> Row:
    from sandbox.aws.stream_source import StreamSource
    from service.adapters.aws import dynamodb_client, events_client
    from service.adapters.eventbridge import EventBridgePublisher
    from service.relay import handler as relay

    sqs, events = boto3.client("sqs"), boto3.client("events")
    name = f"bench-rel-events-{uuid.uuid4().hex[:8]}"
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(
        Name=name, EventBusName=topo.event_bus, EventPattern=json.dumps({"source": [topo.event_source]})
    )
    events.put_targets(Rule=name, EventBusName=topo.event_bus, Targets=[{"Id": "q", "Arn": arn}])
    stream_arn = dynamodb_client().describe_table(TableName=topo.outbox_table.name)["Table"][
        "LatestStreamArn"
    ]
    source = StreamSource.from_spec(
        topo.outbox_source,
        stream_arn=stream_arn,
        handler=relay.lambda_handler,
        function_name=topo.outbox_relay.name,
        retry_delay_s=0,
    )
    source.drain_once()  # earlier sections' events: not part of this one
    # Attempts of the service's TransactWriteItems that botocore retried (a read timeout, a 5xx): each one
    # is repeated with its ClientRequestToken, which DynamoDB (and the emulator) answer without writing again.
    retried = [0]

    def count_retry(caught_exception: Exception | None = None, **_: Any) -> None:
        if caught_exception is not None:
            retried[0] += 1

    dynamodb_client().meta.events.register("needs-retry.dynamodb.TransactWriteItems", count_retry)
    # PutEvents has no idempotency token: an attempt that timed out after the bus took the event, retried
    # by botocore, delivers it twice (at-least-once; consumers deduplicate on detail.event_id).
    put_retried = [0]

    def count_put_retry(caught_exception: Exception | None = None, **_: Any) -> None:
        if caught_exception is not None:
            put_retried[0] += 1

    events_client().meta.events.register("needs-retry.eventbridge.PutEvents", count_put_retry)
    _drain_events(sqs, url)
    now = [datetime.now(UTC)]
    outage = (now[0] + timedelta(minutes=20), now[0] + timedelta(minutes=30))
    publisher = FlakyOutagePublisher(
        EventBridgePublisher(client=events_client(), bus_name=topo.event_bus), lambda: now[0], outage
    )
    relay.get_publisher = lambda: publisher  # type: ignore[assignment]
    cars: list[str] = []
    expected = 0
    minutes = 60
    per_minute = -(-total // minutes)
    for _minute in range(minutes):  # one simulated hour; the outage is minutes 20-30
        for _ in range(per_minute):
            if expected >= total:
                break
            if not cars or len(cars) < 50:
                cars.append(_register()["car_id"])
            else:
                car_id = cars[expected % len(cars)]
                body = {"model": f"R{expected}", "year": 2024, "seats": 4, "bike_rack": False}
                version = _call("GET", f"/cars/{car_id}").body["version"]
                changed = _call(
                    "PUT",
                    f"/cars/{car_id}",
                    json.dumps(body | {"version": version}),
                    {"Content-Type": "application/json"},
                )
                assert changed.status == 200, changed.body
            expected += 1
        source.drain_once()
        now[0] += timedelta(minutes=1)
        if _minute % 5 == 4:
            relay.run_sweep(now[0])
    now[0] += timedelta(minutes=15)
    while relay.run_sweep(now[0]).published:  # after the outage: sweep until nothing is left
        pass
    source.drain_once()
    delivered = [
        e["detail"]["event_id"] for e in _drain_events(sqs, url) if e["detail"]["car_id"] in set(cars)
    ]
    outbox_ids = set()
    ddb = boto3.client("dynamodb")
    for car_id in cars:
        items = _scan(
            ddb,
            TableName=topo.outbox_table.name,
            FilterExpression="car_id = :c",
            ExpressionAttributeValues={":c": {"S": car_id}},
        )
        outbox_ids |= {i["event_id"]["S"] for i in items}
    lost = len(outbox_ids - set(delivered))
    duplicated = len(delivered) - len(set(delivered))
    events.remove_targets(Rule=name, EventBusName=topo.event_bus, Ids=["q"])
    events.delete_rule(Name=name, EventBusName=topo.event_bus)
    sqs.delete_queue(QueueUrl=url)
    return Row(
        "changes, EventBridge failing 20 % + a 10-min outage: lost / duplicated",
        f"{len(outbox_ids):,} changes, {publisher.failures:,} of {publisher.calls:,} PutEvents failed, "
        f"{len(source.failed):,} given up by the stream, {retried[0]} transaction attempts retried, "
        f"{put_retried[0]} PutEvents attempts retried after an error",
        f"{lost} / {duplicated}",
        "0 / 0",
        lost == 0 and duplicated == 0 and len(outbox_ids) == expected,
    )


def _scan(ddb: Any, **kwargs: Any) -> list[dict[str, Any]]:
    """Every item a Scan matches: all its pages (one page holds at most 1 MB of the table)."""
    return [item for page in ddb.get_paginator("scan").paginate(**kwargs) for item in page["Items"]]


def _drain_events(sqs: Any, url: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while True:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            return out
        out += [json.loads(m["Body"]) for m in messages]
        sqs.delete_message_batch(
            QueueUrl=url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
        )


# --- 5. monitor runs killed between their writes ------------------------------------------------------


def monitor_kills(runs: int) -> Row:
    """`benchmarks.bench_monitor_kills` (moto in-process, one scripted world): its figures as a row."""
    from benchmarks.bench_monitor_kills import measure

    r = measure(runs, seeds=1)
    return Row(
        "monitor runs killed at random between writes: duplicate / orphaned alerts",
        f"{r.runs} runs, {r.kills} kills ({r.kills_after_publish} after SNS accepted), "
        f"{r.incidents_opened} incidents, {r.deliveries} alerts delivered",
        f"{r.duplicate_alerts} / {r.orphaned_alerts}",
        "0 / 0",
        r.duplicate_alerts == 0 and r.orphaned_alerts == 0,
    )


# --- main ----------------------------------------------------------------------------------------------


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks bench_reliability")
    parser.add_argument(
        "--scale", type=float, default=1.0, help="multiply every count (default 1 = full run)"
    )
    parser.add_argument("--only", choices=SECTIONS, action="append", help="run only this row (repeatable)")
    args = parser.parse_args(argv)
    counts = {
        k: max(10, int(v * args.scale))
        for k, v in {
            "requests": 10_000,
            "updates": 1_000,
            "telemetry": 100_000,
            "changes": 10_000,
        }.items()
    }
    counts["monitor"] = 100  # not scaled: its world scripts four outages over 100 runs
    from sandbox.aws.provision import provision
    from sandbox.emulator.server import Emulator, aws_environment

    topo = topology(STAGE)
    rows: list[Row] = []
    with Emulator(port=0) as emulator:
        os.environ.update(aws_environment(emulator.endpoint_url))
        provision(topo, session=boto3.Session())
        _env(topo)
        _reset_caches()
        for name, section in (
            ("requests", lambda: hostile_requests(counts["requests"])),
            ("updates", lambda: conflicting_updates(counts["updates"], topo)),
            ("telemetry", lambda: telemetry_with_poison(counts["telemetry"], topo)),
            ("changes", lambda: outbox_under_failures(counts["changes"], topo)),
            ("monitor", lambda: monitor_kills(counts["monitor"])),
        ):
            if args.only and name not in args.only:
                continue
            started = time.perf_counter()
            with quiet():
                row = section()
            print(f"  {name}: {time.perf_counter() - started:.0f} s", flush=True)
            rows.append(row)
    print(f"\ncounts run (scale {args.scale:g}): {counts}")
    width = max(len(r.what) for r in rows)
    print(f"{'check':<{width}}  {'ours':>28}  {'promised':>10}  ok  run")
    for r in rows:
        print(f"{r.what:<{width}}  {r.ours:>28}  {r.promised:>10}  {'yes' if r.ok else 'NO':>3}  {r.run}")
