"""What the use cases need from the outside world: small Protocols, implemented in service/adapters."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from service.domain.car import Car
from service.domain.events import CarEvent
from service.domain.status import CarStatus


@dataclass(frozen=True, kw_only=True)
class ListQuery:
    status: CarStatus | None = None
    model: str | None = None
    limit: int = 50
    next_token: str | None = None


@dataclass(frozen=True, kw_only=True)
class Page:
    items: list[Car]
    next_token: str | None


class CarRepository(Protocol):
    """Cars plus their outbox: every write stores the car change and its event atomically."""

    def get(self, car_id: str) -> Car | None: ...

    def add(self, car: Car, event: CarEvent) -> None:
        """Store a new car and its event; VinAlreadyRegisteredError if the VIN is taken."""

    def update(self, car: Car, *, expected_version: int, event: CarEvent) -> None:
        """Write the inventory fields of `car` (never telemetry) if the stored version is `expected_version`.

        Raises CarNotFoundError or VersionConflictError; then nothing is written.
        """

    def list(self, query: ListQuery) -> Page:
        """Cars in creation order; retired only if asked by status. InvalidCursorError on bad tokens."""


class Clock(Protocol):
    def __call__(self) -> datetime: ...


class IdFactory(Protocol):
    def __call__(self) -> str: ...
