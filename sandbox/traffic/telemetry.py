"""The robotaxis' telemetry: readings as the service's `TelemetryMessage`, broken ones as buggy
firmware would send them, and `ApiTelemetry`, which posts them to the cars API's telemetry route (API
Gateway's direct SQS integration; the cars hold no SQS credentials)."""

from __future__ import annotations

import json
import logging
import random
from datetime import datetime, timedelta
from urllib.parse import quote

import requests

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


POISON_KINDS = ("stale_clock", "fast_clock", "unknown_car")
"""How buggy firmware breaks a reading while keeping it well-formed: a clock 2 h behind (too old), 1 h
ahead (in the future), a car id nobody registered. The API's request model cannot tell (it checks the
shape, not the clock or the registry), so the route queues them (202) and the telemetry ingest
dead-letters them. (Malformed bodies are refused by the route, 400, and never queued: the route's own
tests, tests/sandbox/test_sandbox_telemetry_route.py.)"""


def poisoned(rng: random.Random, good: str, now: datetime) -> tuple[str, str]:
    """`good` (a `reading`) broken in one of `POISON_KINDS`: (kind, message JSON)."""
    kind = rng.choice(POISON_KINDS)
    body = json.loads(good)
    if kind == "stale_clock":
        body["ts"] = (now - timedelta(hours=2)).isoformat()
    elif kind == "fast_clock":
        body["ts"] = (now + timedelta(hours=1)).isoformat()
    else:
        body["car_id"] = f"ghost-{rng.randrange(10**9):09d}"
    return kind, json.dumps(body)


class ApiTelemetry:
    """Posts each message to the cars API's ``POST /cars/{car_id}/telemetry`` (the car from the message,
    the rest as the body): the HTTP status per message, 0 if the API was not reached."""

    def __init__(self, api_url: str, *, timeout_s: float = 10.0) -> None:
        self.api_url = api_url.rstrip("/")
        self.timeout_s = timeout_s
        self._session: requests.Session | None = None

    def __call__(self, messages: list[str]) -> list[int]:
        if self._session is None:
            self._session = requests.Session()
        statuses: list[int] = []
        for message in messages:
            body = json.loads(message)
            car_id = str(body.pop("car_id"))
            url = f"{self.api_url}/cars/{quote(car_id, safe='')}/telemetry"
            try:
                response = self._session.post(url, json=body, timeout=self.timeout_s)
            except requests.RequestException as err:
                log.warning("fleet: telemetry not sent: %s", err)
                statuses.append(0)
                continue
            if response.status_code != 202:
                log.debug("fleet: telemetry answered %s: %s", response.status_code, response.text[:200])
            statuses.append(response.status_code)
        return statuses
