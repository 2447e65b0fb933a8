"""Telemetry end to end over HTTP: SQS queue with DLQ → SqsEventSource → the real handler → cars table.

1,000 messages, 2% bad (invalid schema and unknown car, mixed in): every good one is acknowledged
(applied, or stale when older than what the car holds), exactly the bad ones end in the DLQ after
``maxReceiveCount`` receives, nothing is lost, and out-of-order readings never overwrite newer state.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import boto3
import pytest
from ingest_helpers import NOW, create_queue_pair, drain_queue, send_bodies, telemetry_body

from sandbox.aws.event_source import SqsEventSource
from sandbox.aws.provision import Provisioned
from service.ingest import handler as ingest_handler
from service.settings import get_settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TOTAL = 1000
BAD_SHARE = 0.02
CARS = 40
WAVE = 30
MAX_BACKLOG = 60


def wait_until(condition: Callable[[], bool], *, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(0.05)


def emf_sum(output: str, name: str) -> float:
    total = 0.0
    for line in output.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            blob = json.loads(line)
            if blob["_aws"]["CloudWatchMetrics"][0]["Dimensions"] != [["service"]]:
                continue  # per-reason breakdowns repeat the totals
            value = blob.get(name, 0.0)
            total += sum(value) if isinstance(value, list) else value
    return total


def test_thousand_messages_two_percent_bad_nothing_lost(
    provisioned: Provisioned, topo: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = random.Random(20261127)
    sqs = boto3.client("sqs")
    ddb = boto3.client("dynamodb")
    table = get_settings().cars_table_name
    # Given a telemetry queue with the topology's redrive policy, and 40 cars in the table
    queue = create_queue_pair(
        sqs, f"pipeline-{uuid.uuid4().hex[:8]}", max_receive_count=topo.telemetry_queue.max_receive_count
    )
    run = uuid.uuid4().hex[:8]
    cars = [f"car-{run}-{i:02d}" for i in range(CARS)]
    for start in range(0, CARS, 25):
        ddb.batch_write_item(
            RequestItems={
                table: [
                    {"PutRequest": {"Item": {"car_id": {"S": c}, "status": {"S": "available"}}}}
                    for c in cars[start : start + 25]
                ]
            }
        )
    # ... 980 good readings: car 0 gets its readings newest first (out of order), the others in order
    good_count = TOTAL - int(TOTAL * BAD_SHARE)
    per_car: dict[str, list[int]] = {c: [] for c in cars}
    for n in range(good_count):
        per_car[cars[n % CARS]].append(n)
    latest: dict[str, tuple[int, float]] = {}
    good: list[str] = []
    for car, seqs in per_car.items():
        stamps = [(seq, NOW - timedelta(minutes=30) + timedelta(seconds=seq)) for seq in seqs]
        if car == cars[0]:
            stamps.reverse()
        for seq, ts in stamps:
            good.append(telemetry_body(car, ts=ts, battery_level=round(seq / 10, 1)))
        newest_seq, newest_ts = max(stamps, key=lambda s: s[1])
        latest[car] = (int(newest_ts.timestamp() * 1000), round(newest_seq / 10, 1))
    # ... 20 bad ones: half with a broken schema, half for cars that do not exist
    bad = [
        telemetry_body(cars[i], battery_level=150) if i % 2 else telemetry_body(f"ghost-{run}-{i}")
        for i in range(int(TOTAL * BAD_SHARE))
    ]
    # ... all interleaved at random, with car 0's readings kept in their (reversed) relative order
    slots = sorted(rng.sample(range(TOTAL), len(bad)))
    bodies: list[str] = []
    good_iter, bad_iter = iter(good), iter(bad)
    for i in range(TOTAL):
        bodies.append(next(bad_iter) if slots and i == slots[0] else next(good_iter))
        if slots and i == slots[0]:
            slots.pop(0)
    # When a producer sends them in waves (keeping the backlog under 60: moto's ReceiveMessage costs
    # O(queue depth) per message) while the event source polls in the background with the real handler
    source = SqsEventSource.from_spec(
        queue.url,
        ingest_handler.lambda_handler,
        spec=topo.telemetry_source,
        function_name=topo.telemetry_ingest.name,
        failure_visibility_timeout_s=0,
        idle_sleep_s=0.05,
        max_batching_window_s=0,  # the sandbox keeps the topology's 1 s window; here it only adds waiting
    )
    ids: list[str] = []
    started = time.perf_counter()
    with source:
        for start in range(0, TOTAL, WAVE):
            wait_until(lambda: sum(source.queue_depth()) < MAX_BACKLOG - WAVE, timeout_s=60)
            ids.extend(send_bodies(sqs, queue.url, bodies[start : start + WAVE]))
        wait_until(lambda: source.queue_depth() == (0, 0), timeout_s=60)
    elapsed = time.perf_counter() - started
    totals = source.stats
    bad_set = set(bad)
    bad_ids = {message_id for message_id, body in zip(ids, bodies, strict=True) if body in bad_set}
    assert len(bad_ids) == len(bad) == 20

    # Then the queue is empty and exactly the bad messages are in the DLQ, each after 3 receives
    assert source.queue_depth() == (0, 0)
    dead = drain_queue(sqs, queue.dlq_url)
    assert {m["MessageId"] for m in dead} == bad_ids
    # (maxReceiveCount receives from the telemetry queue, plus the one that just read it from the DLQ)
    assert {m["Attributes"]["ApproximateReceiveCount"] for m in dead} == {str(queue.max_receive_count + 1)}
    # ... every good message was deleted once, every bad one was tried maxReceiveCount times
    assert totals.deleted == good_count
    assert totals.failed == len(bad) * queue.max_receive_count
    assert totals.handler_errors == 0
    # ... acknowledged + dead-lettered = sent: the handler applied or staled each good one exactly once
    out = capsys.readouterr().out
    applied, stale = emf_sum(out, "TelemetryApplied"), emf_sum(out, "TelemetryStale")
    assert applied + stale == good_count
    assert stale == len(per_car[cars[0]]) - 1  # car 0: only its first (newest) reading applies
    assert emf_sum(out, "TelemetryRejected") == len(bad) * queue.max_receive_count
    # ... and every car holds its newest reading, including the out-of-order one
    for car in cars:
        item = ddb.get_item(TableName=table, Key={"car_id": {"S": car}}, ConsistentRead=True)["Item"]
        assert (int(item["telemetry_ts"]["N"]), float(item["battery_level"]["N"])) == latest[car], car
    # ... while no car was created for the unknown ids
    ghosts = [f"ghost-{run}-{i}" for i in range(0, len(bad), 2)]
    for ghost in ghosts:
        assert "Item" not in ddb.get_item(TableName=table, Key={"car_id": {"S": ghost}})
    print(f"{TOTAL} messages in {elapsed:.1f}s ({TOTAL / elapsed:.0f}/s), {totals.invocations} invocations")
