"""Helpers of the telemetry-ingest tests: an in-memory repository, message bodies, SQS events."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sandbox.event_source import build_sqs_event
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
        if car is None:
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
