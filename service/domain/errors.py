"""Domain errors. The API maps each to one HTTP problem type in service/api/errors.py."""

from __future__ import annotations

from collections.abc import Iterable


class DomainError(Exception):
    """Base class of every error the domain raises on purpose."""


class InvalidVinError(DomainError, ValueError):
    """A VIN is malformed or its check digit is wrong."""


class CarNotFoundError(DomainError):
    def __init__(self, car_id: str) -> None:
        super().__init__(f"car {car_id} does not exist")
        self.car_id = car_id


class VinAlreadyRegisteredError(DomainError):
    def __init__(self, vin: str) -> None:
        super().__init__("a car with this VIN is already registered")
        self.vin = vin


class VersionConflictError(DomainError):
    """The car changed since the caller read it (optimistic concurrency)."""

    def __init__(self, car_id: str, expected: int, current: int | None) -> None:
        detail = f"car {car_id} is at version {current}, not {expected}" if current is not None else ""
        super().__init__(detail or f"car {car_id} changed concurrently")
        self.car_id = car_id
        self.expected = expected
        self.current = current


class IllegalTransitionError(DomainError):
    def __init__(self, car_id: str, from_status: str, to_status: str, allowed: Iterable[str]) -> None:
        self.allowed = sorted(allowed)
        moves = ", ".join(self.allowed) or "none (final state)"
        super().__init__(f"car {car_id} cannot move from {from_status} to {to_status}; allowed: {moves}")
        self.car_id = car_id
        self.from_status = from_status
        self.to_status = to_status


class CarRetiredError(DomainError):
    """A retired car is kept for history only: it can no longer be changed."""

    def __init__(self, car_id: str) -> None:
        super().__init__(f"car {car_id} is retired and can no longer be changed")
        self.car_id = car_id


class InvalidCursorError(DomainError):
    """A pagination token was not issued by us, was altered, or belongs to other filters."""


class PreconditionRequiredError(DomainError):
    """An update did not say which version it is based on."""
