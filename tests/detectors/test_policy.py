"""Per-series alert rule: m-of-n confirmation, direction, volume gate, resolve, cooldown, missing data."""

from __future__ import annotations

import json
import math

import pytest

from monitor.detectors import PROFILES
from monitor.policy import AlertRule, AlertRuleError, SeriesAlertState, default_rule

NAN = math.nan
BAND = {"lower": 0.0, "upper": 10.0}


def run(state: SeriesAlertState, points: list[tuple[float, float]], volume: float | None = None) -> list[str]:
    """Feed (score, value) points; return one letter per point: O opened, R resolved, F firing, . idle."""
    out = []
    for score, value in points:
        d = state.step(score=score, value=value, volume=volume, **BAND)
        out.append("O" if d.opened else "R" if d.resolved else "F" if d.firing else ".")
    return out


HIGH = (0.9, 20.0)  # counts (score above threshold, value above the band)
LOW = (0.1, 5.0)  # does not count


def test_given_two_of_three_rule_when_one_hit_then_no_alert_and_two_hits_open() -> None:
    state = SeriesAlertState(AlertRule(0.5, 2, 3, "both", cooldown_points=0, clear_points=2))
    assert "".join(run(state, [HIGH, LOW, LOW, LOW])) == "...."
    assert "".join(run(state, [HIGH, LOW, HIGH])) == "..O"


def test_given_firing_when_clear_points_quiet_then_resolved_and_cooldown_blocks_reopen() -> None:
    state = SeriesAlertState(AlertRule(0.5, 1, 1, "up", cooldown_points=3, clear_points=2))
    assert "".join(run(state, [HIGH, HIGH, LOW, HIGH, LOW, LOW])) == "OFFFFR"
    # three cooldown points: hits do not reopen; the fourth point may
    assert "".join(run(state, [HIGH, HIGH, HIGH, HIGH])) == "...O"


@pytest.mark.parametrize(
    ("direction", "value", "counts"),
    [
        ("up", 20.0, True),
        ("up", -5.0, False),
        ("down", -5.0, True),
        ("down", 20.0, False),
        ("both", 20.0, True),
        ("both", -5.0, True),
        ("both", 5.0, False),  # high score but inside the band: does not count
    ],
)
def test_direction_counts_only_outside_band_on_the_side_that_matters(
    direction: str, value: float, counts: bool
) -> None:
    rule = AlertRule(0.5, 1, 1, direction, cooldown_points=0, clear_points=1)  # type: ignore[arg-type]
    assert rule.counts(score=0.9, value=value, volume=None, **BAND) is counts
    assert SeriesAlertState(rule).step(score=0.9, value=value, volume=None, **BAND).opened is counts


def test_volume_gate_ignores_low_volume_points() -> None:
    rule = AlertRule(0.5, 1, 1, "up", min_volume=20.0, cooldown_points=0, clear_points=1)
    assert run(SeriesAlertState(rule), [HIGH], volume=3.0) == ["."]
    assert run(SeriesAlertState(rule), [HIGH], volume=None) == ["."]
    assert run(SeriesAlertState(rule), [HIGH], volume=NAN) == ["."]
    assert run(SeriesAlertState(rule), [HIGH], volume=2000.0) == ["O"]


def test_missing_points_neither_open_nor_clear_nor_advance_cooldown() -> None:
    state = SeriesAlertState(AlertRule(0.5, 2, 2, "up", cooldown_points=1, clear_points=2))
    # a NaN value with a high score never counts, and does not break the 2-of-2 run
    assert "".join(run(state, [HIGH, (0.9, NAN), (NAN, 20.0), HIGH])) == "...O"
    # while firing, NaNs do not count as quiet points
    assert "".join(run(state, [LOW, (0.1, NAN), (0.1, NAN), LOW])) == "FFFR"
    assert state.firing is False


def test_state_round_trip_continues_identically() -> None:
    rule = AlertRule(0.5, 2, 3, "both", cooldown_points=2, clear_points=2)
    a = SeriesAlertState(rule)
    run(a, [HIGH, LOW])
    b = SeriesAlertState.from_state(json.loads(json.dumps(a.to_state())))
    tail = [HIGH, LOW, LOW, HIGH, HIGH, HIGH, LOW]
    assert run(a, tail) == run(b, tail)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"threshold": 1.5},
        {"confirm_m": 3, "confirm_n": 2},
        {"confirm_m": 0},
        {"direction": "sideways"},
        {"clear_points": 0},
        {"min_volume": -1.0},
    ],
)
def test_inconsistent_rules_are_rejected(kwargs: dict[str, object]) -> None:
    args: dict[str, object] = {"threshold": 0.5, "confirm_m": 1, "confirm_n": 1, "direction": "up"} | kwargs
    with pytest.raises(AlertRuleError):
        AlertRule(**args)  # type: ignore[arg-type]


def test_every_profile_has_a_rule_and_unknown_profiles_fail() -> None:
    for profile in PROFILES:
        assert 0 < default_rule(profile).threshold < 1
    assert default_rule("rate").min_volume > 0
    with pytest.raises(AlertRuleError):
        default_rule("nope")
