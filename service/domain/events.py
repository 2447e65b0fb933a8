"""Integration events the service publishes on the EventBridge bus: a stable, versioned detail schema.

Each event's EventBridge `detail-type` is its class name and `source` is EVENT_SOURCE. `event_id` is stable
across redeliveries (publishing is at-least-once), so consumers deduplicate on it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from service.domain.car import Car
from service.domain.status import CarStatus

EVENT_SOURCE = "fleetscope.cars"
SCHEMA_VERSION: Literal["1.0"] = "1.0"


class _CarEventBase(BaseModel):
    model_config = ConfigDict(frozen=True)

    schema_version: Literal["1.0"] = SCHEMA_VERSION
    event_id: str
    occurred_at: datetime
    car_id: str
    version: int = Field(description="the car's version after this change")
    car: Car = Field(description="snapshot of the car after this change")


class CarRegistered(_CarEventBase):
    event_type: Literal["CarRegistered"] = "CarRegistered"


class CarUpdated(_CarEventBase):
    event_type: Literal["CarUpdated"] = "CarUpdated"
    changed_fields: list[str]


class CarStatusChanged(_CarEventBase):
    event_type: Literal["CarStatusChanged"] = "CarStatusChanged"
    from_status: CarStatus
    to_status: CarStatus


class CarRetired(_CarEventBase):
    event_type: Literal["CarRetired"] = "CarRetired"
    from_status: CarStatus


CarEvent = Annotated[
    CarRegistered | CarUpdated | CarStatusChanged | CarRetired, Field(discriminator="event_type")
]
CAR_EVENT_ADAPTER: TypeAdapter[CarEvent] = TypeAdapter(CarEvent)


def parse_event(detail: str | bytes) -> CarEvent:
    """Parse an event detail (JSON) into its typed model; raises pydantic.ValidationError on bad input."""
    return CAR_EVENT_ADAPTER.validate_json(detail)
