"""DynamoDB item shapes, separate from the domain models.

Cars table (key `car_id`):
- car item: the inventory fields plus `list_pk`/`list_sk` for the GSIs. `list_pk` is present only while the
  car is not retired (the sparse `by_listing` index). Telemetry attributes `battery_level` (N), `position`
  (M {lat N, lon N}), `speed_kmh` (N) and `telemetry_ts` (N, epoch ms) are also written by the telemetry
  ingest with its own conditional UpdateItem, without bumping `version`; the API never overwrites them
  after registration.
- VIN claim item: `car_id` = "vin#<VIN>", `record_type` = "vin_claim", `owner_car_id`. It makes VINs unique
  (written in the registration transaction) and never appears in an index.

Outbox table (key `event_id`, TTL `expires_at`, stream NEW_IMAGE): one item per event, written in the same
transaction as the car change; the relay publishes it. Until it is published the item carries `pending` = "1"
(the key of the sparse `by_pending` index, sorted by `occurred_at`); publishing claims the item
(`claim_until`, epoch s), puts the event on the bus, then sets `published_at` and removes `pending`, so the
sweeper finds exactly the items nobody published (service/relay/outbox.py).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from pydantic import BaseModel, ConfigDict

from service.domain.car import Car, Position
from service.domain.events import EVENT_SOURCE, CarEvent
from service.domain.status import CarStatus

LIST_PK = "CAR"
VIN_CLAIM_PREFIX = "vin#"
OUTBOX_RETENTION = timedelta(days=7)
PENDING = "1"

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def to_attribute_values(data: dict[str, Any]) -> dict[str, Any]:
    """Plain dict (floats allowed, None dropped) -> DynamoDB AttributeValue map."""
    return {k: _serializer.serialize(_decimalize(v)) for k, v in data.items() if v is not None}


def from_attribute_values(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _deserializer.deserialize(v) for k, v in item.items()}


def _decimalize(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, dict):
        return {k: _decimalize(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decimalize(v) for v in value]
    return value


def list_sort_key(created_at: datetime, car_id: str) -> str:
    """Creation order, unique: ISO-8601 UTC timestamp + car id."""
    return f"{created_at.astimezone(UTC).isoformat(timespec='microseconds')}#{car_id}"


class CarItem(BaseModel):
    """A car item as stored. Tolerates attributes other writers add (extra="ignore")."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    car_id: str
    record_type: Literal["car"] = "car"
    vin: str
    model: str
    year: int
    seats: int
    bike_rack: bool
    status: CarStatus
    battery_level: float
    position: Position
    created_at: datetime
    updated_at: datetime
    version: int
    list_pk: str | None = None
    list_sk: str
    speed_kmh: float | None = None
    telemetry_ts: int | None = None

    @classmethod
    def from_car(cls, car: Car) -> CarItem:
        return cls(
            **car.model_dump(exclude={"telemetry_at", "speed_kmh"}),
            list_pk=None if car.status is CarStatus.RETIRED else LIST_PK,
            list_sk=list_sort_key(car.created_at, car.car_id),
        )

    def to_car(self) -> Car:
        telemetry_at = (
            datetime.fromtimestamp(self.telemetry_ts / 1000, tz=UTC)
            if self.telemetry_ts is not None
            else None
        )
        return Car(
            **self.model_dump(exclude={"record_type", "list_pk", "list_sk", "telemetry_ts"}),
            telemetry_at=telemetry_at,
        )

    def to_item(self) -> dict[str, Any]:
        return to_attribute_values(self.model_dump(mode="json"))

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> CarItem:
        return cls.model_validate(from_attribute_values(item))


class VinClaimItem(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    car_id: str
    record_type: Literal["vin_claim"] = "vin_claim"
    owner_car_id: str

    @classmethod
    def for_car(cls, car: Car) -> VinClaimItem:
        return cls(car_id=f"{VIN_CLAIM_PREFIX}{car.vin}", owner_car_id=car.car_id)

    def to_item(self) -> dict[str, Any]:
        return to_attribute_values(self.model_dump(mode="json"))


class OutboxItem(BaseModel):
    """One event waiting to be published. `detail` is the event's JSON, exactly as it will be published."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    event_id: str
    event_type: str
    source: str = EVENT_SOURCE
    detail: str
    car_id: str
    occurred_at: datetime
    expires_at: int
    pending: str | None = PENDING
    published_at: datetime | None = None

    @classmethod
    def from_event(cls, event: CarEvent) -> OutboxItem:
        return cls(
            event_id=event.event_id,
            event_type=event.event_type,
            detail=event.model_dump_json(),
            car_id=event.car_id,
            occurred_at=event.occurred_at,
            expires_at=int((event.occurred_at + OUTBOX_RETENTION).timestamp()),
        )

    def to_item(self) -> dict[str, Any]:
        return to_attribute_values(self.model_dump(mode="json"))

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> OutboxItem:
        return cls.model_validate(from_attribute_values(item))
