"""The status state machine, every from -> to pair."""

from __future__ import annotations

import itertools

import pytest

from service.domain.errors import IllegalTransitionError
from service.domain.status import CarStatus, allowed_moves, check_transition

S = CarStatus
# Written out independently of the implementation's table: (from, to) pairs that are legal.
LEGAL = {
    (S.AVAILABLE, S.RESERVED),
    (S.RESERVED, S.IN_TRIP),
    (S.IN_TRIP, S.AVAILABLE),
    (S.AVAILABLE, S.CHARGING),
    (S.CHARGING, S.AVAILABLE),
    (S.AVAILABLE, S.MAINTENANCE),
    (S.RESERVED, S.MAINTENANCE),
    (S.IN_TRIP, S.MAINTENANCE),
    (S.CHARGING, S.MAINTENANCE),
    (S.MAINTENANCE, S.AVAILABLE),
    # Retirement: only without a reservation or rider attached.
    (S.AVAILABLE, S.RETIRED),
    (S.CHARGING, S.RETIRED),
    (S.MAINTENANCE, S.RETIRED),
}


@pytest.mark.parametrize(("from_status", "to_status"), list(itertools.product(S, S)))
def test_every_pair(from_status: CarStatus, to_status: CarStatus) -> None:
    if (from_status, to_status) in LEGAL:
        check_transition("car-1", from_status, to_status)
    else:
        with pytest.raises(IllegalTransitionError) as raised:
            check_transition("car-1", from_status, to_status)
        # The error names the moves that are allowed from here.
        assert raised.value.allowed == sorted(t.value for f, t in LEGAL if f is from_status)
        assert to_status.value in str(raised.value)


def test_retired_is_final() -> None:
    assert allowed_moves(S.RETIRED) == frozenset()
    with pytest.raises(IllegalTransitionError, match=r"allowed: none \(final state\)"):
        check_transition("car-1", S.RETIRED, S.AVAILABLE)
