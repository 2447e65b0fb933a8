"""Helpers of the telemetry-ingest tests: an in-memory repository, message bodies, SQS events."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sandbox.aws.event_source import build_sqs_event
from service.ingest.models import TelemetryMessage
from service.ingest.repository import RETIRED_STATUS, ApplyOutcome

QUEUE_ARN = "arn:aws:sqs:us-east-1:123456789012:fleetscope-test-car-telemetry"
NOW = datetime.now(UTC).replace(microsecond=0)


@dataclass
class InMemoryTelemetryRepository:
    """The `TelemetryRepository` contract over a dict: same outcomes as the DynamoDB adapter."""

    cars: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: int = 0

    def add_car(self, car_id: str, *, status: str = "available") -> None:
        self.cars[car_id] = {"car_id": car_id, "status": status}

    def apply(self, message: TelemetryMessage) -> ApplyOutcome:
        self.calls += 1
        car = self.cars.get(message.car_id)
        if car is None or car.get("record_type", "car") != "car":
            return ApplyOutcome.UNKNOWN_CAR
        if car["status"] == RETIRED_STATUS:
            return ApplyOutcome.RETIRED
        if "telemetry_ts" in car and car["telemetry_ts"] >= message.ts_epoch_ms:
            return ApplyOutcome.STALE
        car.update(
            position={"lat": message.position.lat, "lon": message.position.lon},
            battery_level=message.battery_level,
            speed_kmh=message.speed_kmh,
            telemetry_ts=message.ts_epoch_ms,
        )
        return ApplyOutcome.APPLIED


def telemetry_body(car_id: str = "car-1", *, ts: Any = None, **overrides: Any) -> str:
    """A valid message body, with fields replaced by `overrides` (raw JSON values, ``ts`` too)."""
    body: dict[str, Any] = {
        "car_id": car_id,
        "ts": (ts or NOW).isoformat() if ts is None or isinstance(ts, datetime) else ts,
        "position": {"lat": 52.52, "lon": 13.405},
        "battery_level": 81.5,
        "speed_kmh": 42.0,
    }
    body.update(overrides)
    return json.dumps(body)


def sqs_event(*bodies: str, receive_count: int = 1) -> dict[str, Any]:
    """An SQS event built by the event source's own builder from ReceiveMessage-shaped messages."""
    messages: list[Any] = [
        {
            "MessageId": str(uuid.uuid4()),
            "ReceiptHandle": uuid.uuid4().hex,
            "MD5OfBody": hashlib.md5(body.encode()).hexdigest(),
            "Body": body,
            "Attributes": {
                "ApproximateReceiveCount": str(receive_count),
                "SentTimestamp": str(int(NOW.timestamp() * 1000)),
                "SenderId": "AIDAEXAMPLE",
                "ApproximateFirstReceiveTimestamp": str(int(NOW.timestamp() * 1000)),
            },
        }
        for body in bodies
    ]
    return build_sqs_event(messages, queue_arn=QUEUE_ARN)


FUTURE = NOW + timedelta(days=2)


@dataclass(frozen=True)
class QueuePair:
    """A queue and its dead-letter queue, created for one test."""

    url: str
    arn: str
    dlq_url: str
    max_receive_count: int


def create_queue_pair(
    sqs: Any, name: str, *, max_receive_count: int = 3, visibility_timeout_s: int = 30
) -> QueuePair:
    """A queue with a redrive policy to its own DLQ, like the provisioned telemetry queue."""
    dlq_url = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    url = sqs.create_queue(
        QueueName=name,
        Attributes={
            "VisibilityTimeout": str(visibility_timeout_s),
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receive_count)}
            ),
        },
    )["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return QueuePair(url=url, arn=arn, dlq_url=dlq_url, max_receive_count=max_receive_count)


def send_bodies(sqs: Any, queue_url: str, bodies: list[str]) -> list[str]:
    """Send in batches of 10; the message ids, in order."""
    ids: list[str] = []
    for start in range(0, len(bodies), 10):
        chunk = bodies[start : start + 10]
        response = sqs.send_message_batch(
            QueueUrl=queue_url, Entries=[{"Id": str(i), "MessageBody": body} for i, body in enumerate(chunk)]
        )
        assert not response.get("Failed"), response.get("Failed")
        by_entry = {entry["Id"]: entry["MessageId"] for entry in response["Successful"]}
        ids.extend(by_entry[str(i)] for i in range(len(chunk)))
    return ids


def drain_queue(sqs: Any, queue_url: str) -> list[dict[str, Any]]:
    """Receive and delete everything visible in a queue (e.g. a DLQ); the messages."""
    messages: list[dict[str, Any]] = []
    while True:
        batch = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0, MessageSystemAttributeNames=["All"]
        ).get("Messages", [])
        if not batch:
            return messages
        messages.extend(batch)
        sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)],
        )
