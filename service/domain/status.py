"""The car status state machine, as one table. Pure."""

from __future__ import annotations

from enum import StrEnum

from service.domain.errors import IllegalTransitionError


class CarStatus(StrEnum):
    AVAILABLE = "available"
    RESERVED = "reserved"
    IN_TRIP = "in_trip"
    CHARGING = "charging"
    MAINTENANCE = "maintenance"
    RETIRED = "retired"


S = CarStatus

# from -> the statuses it may move to. available -> reserved -> in_trip -> available; available <-> charging;
# any live status -> maintenance -> available. Retirement (DELETE) is allowed only from statuses without a
# rider or reservation attached, and retired is final.
TRANSITIONS: dict[CarStatus, frozenset[CarStatus]] = {
    S.AVAILABLE: frozenset({S.RESERVED, S.CHARGING, S.MAINTENANCE, S.RETIRED}),
    S.RESERVED: frozenset({S.IN_TRIP, S.MAINTENANCE}),
    S.IN_TRIP: frozenset({S.AVAILABLE, S.MAINTENANCE}),
    S.CHARGING: frozenset({S.AVAILABLE, S.MAINTENANCE, S.RETIRED}),
    S.MAINTENANCE: frozenset({S.AVAILABLE, S.RETIRED}),
    S.RETIRED: frozenset(),
}


def allowed_moves(from_status: CarStatus) -> frozenset[CarStatus]:
    return TRANSITIONS[from_status]


def check_transition(car_id: str, from_status: CarStatus, to_status: CarStatus) -> None:
    """Raise IllegalTransitionError (naming the allowed moves) unless from -> to is in the table."""
    allowed = TRANSITIONS[from_status]
    if to_status not in allowed:
        raise IllegalTransitionError(car_id, from_status, to_status, (s.value for s in allowed))
