"""Request and response models of the cars API (the HTTP boundary)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from service.domain.car import Car, CarDetails, NewCar
from service.domain.status import CarStatus

_EXAMPLE_POSITION: dict[str, JsonValue] = {"lat": 52.52, "lon": 13.405}


class CarRegistrationIn(NewCar):
    """POST /cars. The car starts `available`; battery_level and position are its initial telemetry."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "vin": "1M8GDM9AXKP042788",
                    "model": "Robotaxi R1",
                    "year": 2025,
                    "seats": 4,
                    "bike_rack": True,
                    "battery_level": 87.5,
                    "position": _EXAMPLE_POSITION,
                }
            ]
        },
    )


class CarReplacementIn(CarDetails):
    """PUT /cars/{car_id}: the mutable fields. Accepts what GET returned: its read-only fields are ignored."""

    model_config = ConfigDict(extra="forbid")

    version: int | None = Field(default=None, ge=1, description="the version this change is based on")
    # Read-only here (status via PATCH, telemetry via ingest, the rest by the service); accepted and ignored.
    car_id: JsonValue = None
    vin: JsonValue = None
    status: JsonValue = None
    battery_level: JsonValue = None
    position: JsonValue = None
    speed_kmh: JsonValue = None
    telemetry_at: JsonValue = None
    created_at: JsonValue = None
    updated_at: JsonValue = None

    def details(self) -> CarDetails:
        return CarDetails(model=self.model, year=self.year, seats=self.seats, bike_rack=self.bike_rack)


class StatusChangeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: CarStatus


class CarOut(Car):
    """A car. Its `version` is also the ETag; send it back in If-Match (or the body) to change the car."""

    @classmethod
    def from_car(cls, car: Car) -> CarOut:
        return cls.model_validate(car.model_dump())


class CarListOut(BaseModel):
    items: list[CarOut]
    next_token: str | None = Field(description="pass back to get the next page; null on the last page")


class HealthOut(BaseModel):
    status: Literal["ok"] = "ok"
    stage: str
