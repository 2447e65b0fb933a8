"""InMemoryCarRepository: the CarRepository port in a dict, for unit tests and benchmarks.

It follows the DynamoDB adapter's semantics: creation order, retired cars only when asked for by status,
opaque tokens, and every write appends its event to `outbox` atomically (under one lock).
"""

from __future__ import annotations

import threading

from service.adapters.items import list_sort_key
from service.domain.car import Car
from service.domain.errors import (
    CarNotFoundError,
    InvalidCursorError,
    VersionConflictError,
    VinAlreadyRegisteredError,
)
from service.domain.events import CarEvent
from service.domain.pagination import CursorCodec
from service.domain.ports import ListQuery, Page
from service.domain.status import CarStatus


class InMemoryCarRepository:
    def __init__(self, *, cursor_codec: CursorCodec | None = None) -> None:
        self._cars: dict[str, Car] = {}
        self._vins: dict[str, str] = {}
        self._sort_keys: dict[str, str] = {}  # car id -> list_sk (creation order, computed once)
        self._lock = threading.Lock()
        self._cursor = cursor_codec or CursorCodec(b"in-memory")
        self.outbox: list[CarEvent] = []

    def get(self, car_id: str) -> Car | None:
        return self._cars.get(car_id)

    def add(self, car: Car, event: CarEvent) -> None:
        with self._lock:
            if car.vin in self._vins:
                raise VinAlreadyRegisteredError(car.vin)
            if car.car_id in self._cars:
                raise VersionConflictError(car.car_id, 0, self._cars[car.car_id].version)
            self._cars[car.car_id] = car
            self._vins[car.vin] = car.car_id
            self._sort_keys[car.car_id] = list_sort_key(car.created_at, car.car_id)
            self.outbox.append(event)

    def update(self, car: Car, *, expected_version: int, event: CarEvent) -> None:
        with self._lock:
            current = self._cars.get(car.car_id)
            if current is None:
                raise CarNotFoundError(car.car_id)
            if current.version != expected_version:
                raise VersionConflictError(car.car_id, expected_version, current.version)
            # Like the DynamoDB adapter: inventory fields only; telemetry stays as stored.
            self._cars[car.car_id] = car.model_copy(
                update={
                    "battery_level": current.battery_level,
                    "position": current.position,
                    "speed_kmh": current.speed_kmh,
                    "telemetry_at": current.telemetry_at,
                }
            )
            self.outbox.append(event)

    def list(self, query: ListQuery) -> Page:
        status = query.status.value if query.status else None
        filters: dict[str, str | None] = {"status": status, "model": query.model}
        after: str | None = None
        if query.next_token is not None:
            position = self._cursor.decode(query.next_token, filters)
            if set(position) != {"list_sk"}:
                raise InvalidCursorError("next_token does not belong to this listing")
            after = position["list_sk"]
        with self._lock:
            ordered = sorted((self._sort_keys[car_id], car) for car_id, car in self._cars.items())
        matching = [
            (sort_key, car)
            for sort_key, car in ordered
            if (car.status.value == status if status else car.status is not CarStatus.RETIRED)
            and (query.model is None or car.model == query.model)
            and (after is None or sort_key > after)
        ]
        page = matching[: query.limit]
        token = None
        if len(matching) > query.limit:
            token = self._cursor.encode({"list_sk": page[-1][0]}, filters)
        return Page(items=[car for _, car in page], next_token=token)

    def set_telemetry(self, car_id: str, **telemetry: object) -> None:
        """What the telemetry ingest does to a stored car (tests): change telemetry, keep the version."""
        with self._lock:
            self._cars[car_id] = self._cars[car_id].model_copy(update=telemetry)
