"""The car aggregate and the values it is made of. Pure: no I/O, no clock, no boto3."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from service.domain.status import CarStatus
from service.domain.vin import normalize_vin

Vin = Annotated[
    str,
    AfterValidator(normalize_vin),
    Field(description="17-character VIN; the 9th character is the ISO 3779 check digit"),
]
ModelName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
Year = Annotated[int, Field(ge=1990, le=2100)]
Seats = Annotated[int, Field(ge=1, le=9)]
BatteryLevel = Annotated[float, Field(ge=0, le=100, description="state of charge, percent")]

# The fields a PUT may replace. Everything else is read-only for PUT (status via PATCH, telemetry via ingest).
MUTABLE_FIELDS: tuple[str, ...] = ("model", "year", "seats", "bike_rack")


class Position(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


class CarDetails(BaseModel):
    """The inventory facts an operator may change (PUT)."""

    model_config = ConfigDict(frozen=True)

    model: ModelName
    year: Year
    seats: Seats
    bike_rack: bool = False


class NewCar(CarDetails):
    """What registration needs: the details, the VIN and the initial telemetry."""

    vin: Vin
    battery_level: BatteryLevel = 100.0
    position: Position


class Car(BaseModel):
    """A car as the inventory knows it. `version` increases with every inventory change (not telemetry)."""

    model_config = ConfigDict(frozen=True)

    car_id: str
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
    version: int = Field(ge=1)
    # Written by the telemetry ingest (service/ingest), never by the inventory API.
    speed_kmh: float | None = None
    telemetry_at: datetime | None = None

    @property
    def details(self) -> CarDetails:
        return CarDetails(model=self.model, year=self.year, seats=self.seats, bike_rack=self.bike_rack)
