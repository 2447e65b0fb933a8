"""TelemetryMessage: the contract producers (the fleet simulator) and the consumer share."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from service.ingest.models import TelemetryMessage


def test_round_trips_through_json_as_producers_send_it() -> None:
    # Given a message built the way the simulator builds one
    message = TelemetryMessage(
        car_id="car-7",
        ts=datetime(2026, 11, 27, 1, 2, 3, 456000, tzinfo=UTC),
        position={"lat": -33.9, "lon": 151.2},
        battery_level=0,
        speed_kmh=120.5,
    )
    # When it is serialised for SQS and parsed by the consumer
    parsed = TelemetryMessage.model_validate_json(message.model_dump_json())
    # Then nothing changes
    assert parsed == message


def test_epoch_milliseconds_are_exact_and_offset_aware() -> None:
    # Given the same instant written with two different UTC offsets
    utc = TelemetryMessage.model_validate_json(
        '{"car_id":"c","ts":"2026-11-27T01:00:00.001Z","position":{"lat":0,"lon":0},'
        '"battery_level":1,"speed_kmh":0}'
    )
    plus2 = utc.model_copy(update={"ts": utc.ts.astimezone(timezone(timedelta(hours=2)))})
    # Then both map to the same epoch milliseconds, with no float rounding
    assert utc.ts_epoch_ms == plus2.ts_epoch_ms == 1_795_741_200_001


def test_python_construction_rejects_naive_datetimes() -> None:
    with pytest.raises(ValidationError, match="timezone"):
        TelemetryMessage(
            car_id="c",
            ts=datetime(2026, 1, 1),
            position={"lat": 0, "lon": 0},
            battery_level=1,
            speed_kmh=0,
        )
