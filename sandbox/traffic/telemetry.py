"""The robotaxis' telemetry: readings as the service's `TelemetryMessage`, malformed ones as buggy
firmware would send them, and `SqsTelemetry`, which sends batches to the telemetry queue."""

from __future__ import annotations

import json
import logging
import random
from datetime import datetime
from typing import Any

import boto3

from service.ingest.models import Position, TelemetryMessage

log = logging.getLogger(__name__)


def reading(car_id: str, *, lat: float, lon: float, battery: float, speed_kmh: float, now: datetime) -> str:
    """One valid telemetry message (JSON), rounded as a car reports it."""
    message = TelemetryMessage(
        car_id=car_id,
        ts=now,
        position=Position(lat=round(lat, 6), lon=round(lon, 6)),
        battery_level=round(min(100.0, max(0.0, battery)), 1),
        speed_kmh=round(speed_kmh, 1),
    )
    return message.model_dump_json()


def poisoned(rng: random.Random, good: str, now: datetime) -> str:
    """`good` made malformed in one of four ways a buggy car firmware would."""
    kind = rng.randrange(4)
    body = json.loads(good)
    if kind == 0:
        body["battery_level"] = "87%"  # a string where a number belongs
    elif kind == 1:
        body["ts"] = int(now.timestamp())  # epoch seconds instead of ISO-8601
    elif kind == 2:
        del body["position"]
    else:
        body["speed_kmh"] = -12.5
    return json.dumps(body)


class SqsTelemetry:
    """Sends batches of up to 10 bodies to one queue; a client is created on first use."""

    def __init__(self, queue_url: str) -> None:
        self.queue_url = queue_url
        self._sqs: Any = None

    def __call__(self, bodies: list[str]) -> list[bool]:
        """Send one batch; True per message SQS accepted."""
        if self._sqs is None:
            self._sqs = boto3.client("sqs")
        entries = [{"Id": str(i), "MessageBody": body} for i, body in enumerate(bodies)]
        try:
            result = self._sqs.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
        except Exception as err:
            log.warning("fleet: telemetry batch not sent: %s", err)
            return [False] * len(bodies)
        ok = {int(entry["Id"]) for entry in result.get("Successful", [])}
        return [i in ok for i in range(len(bodies))]
