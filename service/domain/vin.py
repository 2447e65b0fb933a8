"""Vehicle identification numbers: ISO 3779 / FMVSS 115 check-digit validation. Pure."""

from __future__ import annotations

import re

from service.domain.errors import InvalidVinError

# Letters map to digits per ISO 3779 (I, O and Q are not allowed in a VIN).
_TRANSLITERATION: dict[str, int] = {
    **{str(d): d for d in range(10)},
    **dict(zip("ABCDEFGH", range(1, 9), strict=True)),
    **dict(zip("JKLMN", range(1, 6), strict=True)),
    "P": 7,
    "R": 9,
    **dict(zip("STUVWXYZ", range(2, 10), strict=True)),
}
_WEIGHTS = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)
_SHAPE = re.compile(r"[A-HJ-NPR-Z0-9]{17}")
CHECK_DIGIT_POSITION = 8  # zero-based: the 9th character


def check_digit(vin: str) -> str:
    """The check digit ('0'-'9' or 'X') that a 17-character VIN must carry at position 9."""
    total = sum(_TRANSLITERATION[char] * weight for char, weight in zip(vin, _WEIGHTS, strict=True))
    remainder = total % 11
    return "X" if remainder == 10 else str(remainder)


def normalize_vin(raw: str) -> str:
    """Upper-case, validate shape and check digit, and return the VIN; raise InvalidVinError otherwise."""
    vin = raw.strip().upper()
    if len(vin) != 17:
        raise InvalidVinError(f"a VIN has 17 characters, got {len(vin)}")
    if not _SHAPE.fullmatch(vin):
        raise InvalidVinError("a VIN uses digits and the letters A-Z except I, O and Q")
    expected = check_digit(vin)
    if vin[CHECK_DIGIT_POSITION] != expected:
        raise InvalidVinError(
            f"VIN check digit (9th character) is {vin[CHECK_DIGIT_POSITION]!r}, expected {expected!r}"
        )
    return vin


def with_check_digit(vin17: str) -> str:
    """Return `vin17` with its 9th character replaced by the correct check digit (test/fixture helper)."""
    vin = vin17.upper()
    return vin[:CHECK_DIGIT_POSITION] + check_digit(vin) + vin[CHECK_DIGIT_POSITION + 1 :]
