"""VINs for the simulated robotaxis, valid by the service's own check digit (`service.domain.vin`)."""

from __future__ import annotations

import random

from service.domain.vin import with_check_digit

_VIN_ALPHABET = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"  # no I, O, Q
_WMIS = ("5YJ", "1G1", "SAJ", "WBA", "LFV")
_YEAR_CODES = {2021: "M", 2022: "N", 2023: "P", 2024: "R", 2025: "S", 2026: "T"}


def random_vin(rng: random.Random, year: int = 2025) -> str:
    """A valid VIN: a manufacturer prefix, random descriptors, the check digit, the model-year code."""
    wmi = rng.choice(_WMIS)
    vds = "".join(rng.choice(_VIN_ALPHABET) for _ in range(5))
    vis = _YEAR_CODES.get(year, "S") + "".join(rng.choice(_VIN_ALPHABET) for _ in range(7))
    return with_check_digit(wmi + vds + "0" + vis)
