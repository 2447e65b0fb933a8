"""Use cases of the car inventory. Pure orchestration over the CarRepository port."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from service.domain.car import MUTABLE_FIELDS, Car, CarDetails, NewCar
from service.domain.errors import CarNotFoundError, CarRetiredError, VersionConflictError
from service.domain.events import CarRegistered, CarRetired, CarStatusChanged, CarUpdated
from service.domain.ports import CarRepository, Clock, IdFactory, ListQuery, Page
from service.domain.status import CarStatus, check_transition

STATUS_CHANGE_ATTEMPTS = 3


def utc_now() -> datetime:
    return datetime.now(UTC)


def new_uuid() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True, kw_only=True)
class StatusChange:
    car: Car
    from_status: CarStatus
    changed: bool


class CarService:
    def __init__(
        self, repository: CarRepository, *, clock: Clock = utc_now, new_id: IdFactory = new_uuid
    ) -> None:
        self.repository = repository
        self._clock = clock
        self._new_id = new_id

    def register(self, new: NewCar) -> Car:
        now = self._clock()
        car = Car(
            car_id=self._new_id(),
            vin=new.vin,
            model=new.model,
            year=new.year,
            seats=new.seats,
            bike_rack=new.bike_rack,
            status=CarStatus.AVAILABLE,
            battery_level=new.battery_level,
            position=new.position,
            created_at=now,
            updated_at=now,
            version=1,
        )
        event = CarRegistered(
            event_id=self._new_id(), occurred_at=now, car_id=car.car_id, version=car.version, car=car
        )
        self.repository.add(car, event)
        return car

    def get(self, car_id: str) -> Car:
        car = self.repository.get(car_id)
        if car is None:
            raise CarNotFoundError(car_id)
        return car

    def list(self, query: ListQuery) -> Page:
        return self.repository.list(query)

    def replace_details(self, car_id: str, details: CarDetails, *, expected_version: int) -> Car:
        """PUT: replace the mutable fields if the car is still at `expected_version`. No change, no event."""
        current = self.get(car_id)
        if current.version != expected_version:
            raise VersionConflictError(car_id, expected_version, current.version)
        if current.status is CarStatus.RETIRED:
            raise CarRetiredError(car_id)
        changed = [name for name in MUTABLE_FIELDS if getattr(details, name) != getattr(current, name)]
        if not changed:
            return current
        now = self._clock()
        car = current.model_copy(
            update={**details.model_dump(), "updated_at": now, "version": current.version + 1}
        )
        event = CarUpdated(
            event_id=self._new_id(),
            occurred_at=now,
            car_id=car_id,
            version=car.version,
            car=car,
            changed_fields=changed,
        )
        self.repository.update(car, expected_version=expected_version, event=event)
        return car

    def change_status(
        self, car_id: str, to_status: CarStatus, *, expected_version: int | None = None
    ) -> StatusChange:
        """PATCH status / DELETE. Conditional on the version read; without an explicit expected version a
        concurrent change is re-read and the move re-validated against the new state (a few times)."""
        attempts = 1 if expected_version is not None else STATUS_CHANGE_ATTEMPTS
        for attempt in range(1, attempts + 1):
            current = self.get(car_id)
            if expected_version is not None and current.version != expected_version:
                raise VersionConflictError(car_id, expected_version, current.version)
            check_transition(car_id, current.status, to_status)
            now = self._clock()
            car = current.model_copy(
                update={"status": to_status, "updated_at": now, "version": current.version + 1}
            )
            common = {
                "event_id": self._new_id(),
                "occurred_at": now,
                "car_id": car_id,
                "version": car.version,
                "car": car,
                "from_status": current.status,
            }
            event = (
                CarRetired(**common)
                if to_status is CarStatus.RETIRED
                else CarStatusChanged(**common, to_status=to_status)
            )
            try:
                self.repository.update(car, expected_version=current.version, event=event)
            except VersionConflictError:
                if attempt == attempts:
                    raise
                continue
            return StatusChange(car=car, from_status=current.status, changed=True)
        raise AssertionError("unreachable")  # pragma: no cover

    def retire(self, car_id: str, *, expected_version: int | None = None) -> StatusChange:
        """DELETE: retire the car (kept for history). Retiring a retired car changes nothing."""
        current = self.get(car_id)
        if current.status is CarStatus.RETIRED:
            return StatusChange(car=current, from_status=current.status, changed=False)
        return self.change_status(car_id, CarStatus.RETIRED, expected_version=expected_version)
