"""Fixtures of the monitor tests: a clean monitor table, an SQS inbox on the alerts topic, settings."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

from contract.topology import Topology
from monitor.settings import get_settings
from sandbox.aws.provision import Provisioned


@dataclass
class Inbox:
    """An SQS queue subscribed to the alerts topic: what a subscriber would receive."""

    url: str
    subscription_arn: str

    def receive_all(self, *, wait_s: int = 1) -> list[dict[str, Any]]:
        sqs = boto3.client("sqs")
        out: list[dict[str, Any]] = []
        while True:
            resp = sqs.receive_message(
                QueueUrl=self.url, MaxNumberOfMessages=10, WaitTimeSeconds=wait_s, VisibilityTimeout=60
            )
            messages = resp.get("Messages", [])
            if not messages:
                return out
            for m in messages:
                out.append(json.loads(m["Body"]))
                sqs.delete_message(QueueUrl=self.url, ReceiptHandle=m["ReceiptHandle"])


@pytest.fixture
def clean_monitor_table(provisioned: Provisioned, topo: Topology) -> Iterator[str]:
    """The monitor table without a lease or model state; outbox and incident items this test adds are
    removed afterwards (items other tests seeded, e.g. the dashboard's incidents, are left alone)."""
    table = boto3.resource("dynamodb").Table(topo.monitor_table.name)

    def keys(pk: str) -> set[tuple[str, str]]:
        out: set[tuple[str, str]] = set()
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": pk},
            "ProjectionExpression": "pk, sk",
        }
        while True:
            page = table.query(**kwargs)
            out |= {(str(i["pk"]), str(i["sk"])) for i in page.get("Items", [])}
            if "LastEvaluatedKey" not in page:
                return out
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def delete(items: set[tuple[str, str]]) -> None:
        with table.batch_writer() as batch:
            for pk, sk in items:
                batch.delete_item(Key={"pk": pk, "sk": sk})

    delete(keys("LEASE") | keys("STATE"))
    before = keys("OUTBOX") | keys("INCIDENT")
    yield topo.monitor_table.name
    delete(keys("LEASE") | keys("STATE") | ((keys("OUTBOX") | keys("INCIDENT")) - before))


@pytest.fixture
def inbox(provisioned: Provisioned) -> Iterator[Inbox]:
    sqs = boto3.client("sqs")
    sns = boto3.client("sns")
    url = sqs.create_queue(QueueName=f"monitor-inbox-{uuid.uuid4().hex[:12]}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sub = sns.subscribe(TopicArn=provisioned.alerts_topic_arn, Protocol="sqs", Endpoint=arn)[
        "SubscriptionArn"
    ]
    try:
        yield Inbox(url=url, subscription_arn=sub)
    finally:
        sns.unsubscribe(SubscriptionArn=sub)
        sqs.delete_queue(QueueUrl=url)


@pytest.fixture
def monitor_env(monkeypatch: pytest.MonkeyPatch, provisioned: Provisioned) -> Iterator[Callable[..., None]]:
    """Set monitor environment variables and reset the cached settings (restored after the test)."""

    def apply(**values: str) -> None:
        for key, value in values.items():
            monkeypatch.setenv(key, value)
        get_settings.cache_clear()

    yield apply
    get_settings.cache_clear()
