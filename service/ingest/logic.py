"""Apply one telemetry record: parse, check, store. Pure apart from the repository it is given.

Every reading ends in exactly one of two ways:
- acknowledged: applied, or stale (the car already holds a reading at least as new — duplicates
  and out-of-order deliveries land here, and never overwrite newer state);
- rejected with a `TelemetryRejectedError` (invalid, unknown or retired car, dated more than
  ``MAX_CLOCK_SKEW`` ahead or ``MAX_AGE`` ago): the batch reports the record as failed, SQS retries
  it and, after ``maxReceiveCount`` receives, moves it to the dead-letter queue.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import ClassVar

from pydantic import ValidationError

from service.ingest.models import TelemetryMessage
from service.ingest.repository import ApplyOutcome, TelemetryRepository

MAX_CLOCK_SKEW = timedelta(minutes=5)
"""Readings dated further ahead than this are rejected. One within it is stored as taken when it was received
(its ``ts`` capped at the ingest's clock), so it cannot make the car's next real readings look stale."""
MAX_AGE = timedelta(hours=1)
"""Readings older than this are rejected: a car's position an hour ago is not its telemetry now."""


class TelemetryRejectedError(Exception):
    """A record that must not be acknowledged. ``reason`` is the metric dimension (a small fixed set)."""

    reason: ClassVar[str] = "error"


class InvalidTelemetryError(TelemetryRejectedError):
    reason = "invalid_schema"


class UnknownCarError(TelemetryRejectedError):
    reason = "unknown_car"


class RetiredCarError(TelemetryRejectedError):
    reason = "retired"


class FutureTelemetryError(TelemetryRejectedError):
    reason = "future_ts"


class TooOldTelemetryError(TelemetryRejectedError):
    reason = "too_old"


REJECTION_REASONS: tuple[str, ...] = tuple(
    cls.reason
    for cls in (
        InvalidTelemetryError,
        UnknownCarError,
        RetiredCarError,
        FutureTelemetryError,
        TooOldTelemetryError,
        TelemetryRejectedError,
    )
)


def parse_telemetry(body: str) -> TelemetryMessage:
    """The SQS body as a `TelemetryMessage`, or `InvalidTelemetryError` saying what is wrong."""
    try:
        return TelemetryMessage.model_validate_json(body)
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'body'}: {error['msg']}"
            for error in err.errors(include_url=False)
        )
        raise InvalidTelemetryError(f"invalid telemetry message: {problems}") from err


def apply_telemetry(
    message: TelemetryMessage, repository: TelemetryRepository, *, now: datetime
) -> ApplyOutcome:
    """Store the reading; return APPLIED or STALE, raise `TelemetryRejectedError` otherwise."""
    if message.ts - now > MAX_CLOCK_SKEW:
        raise FutureTelemetryError(
            f"reading of car {message.car_id} is dated {message.ts.isoformat()}, "
            f"more than {MAX_CLOCK_SKEW} ahead of {now.isoformat()}"
        )
    if now - message.ts > MAX_AGE:
        raise TooOldTelemetryError(
            f"reading of car {message.car_id} is dated {message.ts.isoformat()}, "
            f"more than {MAX_AGE} before {now.isoformat()}"
        )
    if message.ts > now:  # a fast clock within MAX_CLOCK_SKEW: ordered as received, not as dated
        message = message.model_copy(update={"ts": now})
    outcome = repository.apply(message)
    if outcome is ApplyOutcome.UNKNOWN_CAR:
        raise UnknownCarError(f"no car {message.car_id!r}")
    if outcome is ApplyOutcome.RETIRED:
        raise RetiredCarError(f"car {message.car_id!r} is retired")
    return outcome
