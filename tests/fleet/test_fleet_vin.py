"""The fleet's VIN generator produces VINs the service accepts (checked by the service's own validator)."""

from __future__ import annotations

import random

import pytest

from sandbox.traffic.vins import random_vin
from service.domain.errors import InvalidVinError
from service.domain.vin import check_digit, normalize_vin


def test_known_vin_check_digit() -> None:
    # The textbook example: 1M8GDM9AXKP042788 has check digit X.
    assert check_digit("1M8GDM9A0KP042788") == "X"


def test_generated_vins_pass_the_service_validator() -> None:
    rng = random.Random(42)
    vins = [random_vin(rng, year) for year in (2023, 2024, 2025) for _ in range(300)]
    for vin in vins:
        assert normalize_vin(vin) == vin
        assert not set(vin) & set("IOQ")
    assert len(set(vins)) == len(vins)


def test_a_corrupted_generated_vin_is_rejected() -> None:
    vin = random_vin(random.Random(3))
    wrong = "0" if vin[8] != "0" else "1"
    with pytest.raises(InvalidVinError, match="check digit"):
        normalize_vin(vin[:8] + wrong + vin[9:])


def test_generation_is_deterministic_for_a_seed() -> None:
    assert [random_vin(random.Random(9)) for _ in range(3)] == [
        random_vin(random.Random(9)) for _ in range(3)
    ]
