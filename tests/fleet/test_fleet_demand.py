"""The shared demand model: weekday rush hours, quiet nights, lower weekends; rates scale with the fleet."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from sandbox.traffic.demand import DemandModel, poisson

# Lisbon is on UTC in winter: these are local times too. 2026-11-25 is a Wednesday.
WEDNESDAY = datetime(2026, 11, 25, tzinfo=UTC)
SATURDAY = datetime(2026, 11, 28, tzinfo=UTC)


def at(day: datetime, hour: float) -> datetime:
    return day + timedelta(hours=hour)


def test_weekday_rush_hours_are_far_busier_than_the_night() -> None:
    # Given the default model
    model = DemandModel()
    # When we compare the weekday morning and evening rush with 4 am
    night = model.intensity(at(WEDNESDAY, 4))
    morning = model.intensity(at(WEDNESDAY, 8.25))
    evening = model.intensity(at(WEDNESDAY, 18))
    # Then both rushes are several times the night, and the evening is the weekly peak
    assert morning > 4 * night
    assert evening > 4 * night
    assert evening == pytest.approx(1.0, abs=0.02)
    assert 0 < night < 0.2


def test_rush_hours_are_local_peaks_of_a_weekday() -> None:
    model = DemandModel()
    assert model.intensity(at(WEDNESDAY, 8.25)) > model.intensity(at(WEDNESDAY, 11))
    assert model.intensity(at(WEDNESDAY, 18)) > model.intensity(at(WEDNESDAY, 15.5))


def test_weekends_are_lower_and_have_no_morning_rush() -> None:
    model = DemandModel()
    weekday_total = sum(model.intensity(at(WEDNESDAY, h / 4)) for h in range(96))
    weekend_total = sum(model.intensity(at(SATURDAY, h / 4)) for h in range(96))
    assert weekend_total < weekday_total
    assert max(model.intensity(at(SATURDAY, h / 4)) for h in range(96)) < 0.8
    assert model.intensity(at(SATURDAY, 8.25)) < 0.5 * model.intensity(at(WEDNESDAY, 8.25))


def test_the_curve_is_continuous_across_midnight() -> None:
    model = DemandModel()
    before = model.intensity(at(WEDNESDAY, 23.99))
    after = model.intensity(at(WEDNESDAY, 24.0))
    assert abs(before - after) < 0.05


def test_rates_scale_with_fleet_size_and_follow_intensity() -> None:
    small, large = DemandModel(fleet_size=10), DemandModel(fleet_size=100)
    t = at(WEDNESDAY, 18)
    assert large.api_requests_per_minute(t) == pytest.approx(10 * small.api_requests_per_minute(t))
    assert large.api_requests_per_minute(at(WEDNESDAY, 4)) < large.api_requests_per_minute(t) / 3
    assert large.telemetry_per_minute() == pytest.approx(100 * 60 / large.telemetry_interval_s)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"fleet_size": 0},
        {"trips_per_car_hour": 0},
        {"telemetry_interval_s": -1},
        {"timezone": "Mars/Olympus"},
    ],
)
def test_invalid_models_are_rejected(kwargs: dict[str, object]) -> None:
    with pytest.raises((ValueError, KeyError)):
        DemandModel(**kwargs)  # type: ignore[arg-type]


def test_naive_datetimes_are_rejected() -> None:
    with pytest.raises(ValueError, match="aware"):
        DemandModel().intensity(datetime(2026, 11, 25, 8))


@pytest.mark.parametrize("lam", [0.3, 4.0, 120.0])
def test_poisson_draws_have_the_requested_mean(lam: float) -> None:
    rng = random.Random(1)
    draws = [poisson(rng, lam) for _ in range(4000)]
    assert sum(draws) / len(draws) == pytest.approx(lam, rel=0.08)
    assert min(draws) >= 0
