"""VIN validation: ISO 3779 check digit."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.domain.errors import InvalidVinError
from service.domain.vin import check_digit, normalize_vin, with_check_digit

VIN_CHARS = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"


@pytest.mark.parametrize(
    "vin",
    [
        "1M8GDM9AXKP042788",  # the textbook example (check digit X)
        "11111111111111111",  # all ones: weights sum 89 -> 1
        "1HGCM82633A004352",  # Honda Accord 2003
    ],
)
def test_valid_vins_are_accepted(vin: str) -> None:
    assert normalize_vin(vin) == vin


def test_vin_is_upper_cased_and_stripped() -> None:
    assert normalize_vin(" 1m8gdm9axkp042788 ") == "1M8GDM9AXKP042788"


@pytest.mark.parametrize(
    ("vin", "reason"),
    [
        ("1M8GDM9A1KP042788", "check digit"),  # X replaced by 1
        ("1M8GDM9AXKP04278", "17 characters"),
        ("1M8GDM9AXKP0427880", "17 characters"),
        ("1M8GDM9AXKP04278I", "except I, O and Q"),
        ("1M8GDM9AXKP04278O", "except I, O and Q"),
        ("1M8GDM9AXKP04278Q", "except I, O and Q"),
        ("1M8GDM9AXKP04278-", "except I, O and Q"),
        ("", "17 characters"),
    ],
)
def test_invalid_vins_are_refused_with_the_reason(vin: str, reason: str) -> None:
    with pytest.raises(InvalidVinError, match=reason):
        normalize_vin(vin)


@given(st.text(alphabet=VIN_CHARS, min_size=17, max_size=17))
def test_any_vin_with_its_check_digit_validates_and_any_other_digit_fails(raw: str) -> None:
    vin = with_check_digit(raw)
    assert normalize_vin(vin) == vin
    for wrong in "0123456789X":
        if wrong != check_digit(vin):
            with pytest.raises(InvalidVinError):
                normalize_vin(vin[:8] + wrong + vin[9:])
