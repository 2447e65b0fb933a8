"""The telemetry message contract: what a car (or the fleet simulator) puts on the telemetry queue.

Producers build a `TelemetryMessage` and send ``message.model_dump_json()`` as the SQS body. The
consumer parses the body with `TelemetryMessage.model_validate_json`; anything that does not
validate is rejected (it is retried, then dead-lettered, never dropped).

Decisions:
- strict types: numbers must be JSON numbers (``"42"`` and ``true`` are rejected), ``ts`` must be an
  ISO-8601 string with a UTC offset (naive datetimes and epoch numbers are rejected);
- extra fields are *forbidden*: a producer that renames or adds a field gets its messages
  dead-lettered (and can redrive them once the consumer understands them), instead of having data
  silently dropped. Deploy consumers before producers when the schema grows;
- NaN and infinities are rejected everywhere.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

MAX_SPEED_KMH = 300.0
"""No robotaxi drives faster; anything above is a sensor or encoding fault."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MODEL_CONFIG = ConfigDict(strict=True, extra="forbid", frozen=True, allow_inf_nan=False)


class Position(BaseModel):
    """WGS-84 coordinates in decimal degrees."""

    model_config = _MODEL_CONFIG

    lat: float = Field(ge=-90.0, le=90.0)
    lon: float = Field(ge=-180.0, le=180.0)


class TelemetryMessage(BaseModel):
    """One telemetry reading of one car (the SQS message body)."""

    model_config = _MODEL_CONFIG

    car_id: str = Field(min_length=1, max_length=128, pattern=r"^\S+$")
    ts: AwareDatetime = Field(description="When the car took the reading (ISO-8601 with offset)")
    position: Position
    battery_level: float = Field(ge=0.0, le=100.0, description="State of charge, percent")
    speed_kmh: float = Field(ge=0.0, le=MAX_SPEED_KMH)

    @property
    def ts_epoch_ms(self) -> int:
        """``ts`` as integer epoch milliseconds (exact, no float rounding)."""
        return (self.ts - _EPOCH) // timedelta(milliseconds=1)
