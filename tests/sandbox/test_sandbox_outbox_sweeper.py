"""The sandbox's outbox sweeper thread against the emulator: it publishes what the relay left unpublished."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import boto3
import pytest

from contract.topology import Topology
from sandbox.aws.outbox_sweeper import OutboxSweeper
from sandbox.aws.provision import Provisioned
from service.adapters import aws
from service.adapters.items import OutboxItem

pytestmark = pytest.mark.integration


def test_the_sweeper_publishes_unpublished_items_once_and_not_during_an_outage(
    provisioned: Provisioned, topo: Topology
) -> None:
    aws.reset_clients()
    sqs, events, ddb = boto3.client("sqs"), boto3.client("events"), boto3.client("dynamodb")
    name = f"test-sweeper-{uuid.uuid4().hex[:8]}"
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    car_id = f"car-{uuid.uuid4().hex[:8]}"
    events.put_rule(
        Name=name,
        EventBusName=topo.event_bus,
        EventPattern=json.dumps({"source": [topo.event_source], "detail": {"car_id": [car_id]}}),
    )
    events.put_targets(Rule=name, EventBusName=topo.event_bus, Targets=[{"Id": "q", "Arn": arn}])
    # Given two outbox items the relay never published, written 20 minutes ago
    occurred = datetime.now(UTC) - timedelta(minutes=20)
    for n in range(2):
        item = OutboxItem(
            event_id=f"{car_id}-{n}",
            event_type="CarRegistered",
            detail=json.dumps({"event_id": f"{car_id}-{n}", "car_id": car_id}),
            car_id=car_id,
            occurred_at=occurred,
            expires_at=int((occurred + timedelta(days=7)).timestamp()),
        )
        ddb.put_item(TableName=topo.outbox_table.name, Item=item.to_item())
    outage = {"on": True}
    sweeper = OutboxSweeper(topo, older_than_s=600, fails=lambda: outage["on"])
    # When it sweeps during an EventBridge outage, nothing is published and the items stay pending
    assert sweeper.sweep_once().published == 0
    # Then once EventBridge is back one sweep publishes both, and the next one nothing
    outage["on"] = False
    assert sweeper.sweep_once().published >= 2
    assert sweeper.sweep_once().published == 0
    bodies = [
        json.loads(m["Body"]) for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    ]
    assert sorted(b["detail"]["event_id"] for b in bodies) == [f"{car_id}-0", f"{car_id}-1"]
    events.remove_targets(Rule=name, EventBusName=topo.event_bus, Ids=["q"])
    events.delete_rule(Name=name, EventBusName=topo.event_bus)
    sqs.delete_queue(QueueUrl=url)
