"""The robotaxi demand model shared by the live fleet simulator and the history backfill.

One function of time says how busy the city is (`DemandModel.intensity`, 1.0 = the weekday evening
peak): a morning and an evening rush on weekdays, a quiet night, a lower, later and flatter
weekend. `DemandModel` turns it into rates — rider trip requests and back-office reads per minute —
and into the API requests per minute those produce. The simulator draws its actions from these
rates and the backfill writes their expected values (plus noise), so live traffic continues the
history the monitor learned from instead of jumping away from it.

Pure: no I/O, no clock, no randomness (callers pass the time and their own random generator).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

# (centre hour, width in hours, height) of the bumps that make up a day, in the city's local time.
_WEEKDAY_BUMPS: tuple[tuple[float, float, float], ...] = (
    (8.25, 1.1, 0.80),  # morning rush
    (13.0, 2.8, 0.38),  # daytime plateau
    (18.0, 1.4, 0.90),  # evening rush
    (21.5, 1.6, 0.22),  # evening out
)
_WEEKEND_BUMPS: tuple[tuple[float, float, float], ...] = (
    (13.5, 3.0, 0.50),  # late, flat day
    (21.5, 1.8, 0.30),  # nightlife
    (1.0, 1.3, 0.12),  # late night return trips
)
_NIGHT_FLOOR = 0.12  # at 4 am the city is quiet, not dead
_WEEKDAY_PEAK = 1.0
_WEEKEND_PEAK = 0.62

# What one rider request costs, in the simulator's own terms (sandbox/traffic/fleet.py follows these):
# every request lists available cars; half of the riders then look at one car; a served trip moves
# the car reserved -> in_trip -> available, and some trips end in charging or maintenance
# (two more transitions each: there and back).
LOOKUPS_PER_TRIP = 0.5
CHARGE_SHARE = 0.09  # share of trips after which the car must charge (25% threshold, ~6.5% per trip)
MAINTENANCE_SHARE = 0.01
TRANSITIONS_PER_TRIP = 3.0 + 2.0 * (CHARGE_SHARE + MAINTENANCE_SHARE)


def _bump(hour: float, centre: float, width: float) -> float:
    """A Gaussian bump on the 24-hour circle (so a bump near midnight wraps around)."""
    distance = min(abs(hour - centre), 24.0 - abs(hour - centre))
    return math.exp(-0.5 * (distance / width) ** 2)


def _raw_day(hour: float, weekend: bool) -> float:
    bumps = _WEEKEND_BUMPS if weekend else _WEEKDAY_BUMPS
    return _NIGHT_FLOOR + sum(height * _bump(hour, c, w) for c, w, height in bumps)


def _day_max(weekend: bool) -> float:
    return max(_raw_day(h / 20.0, weekend) for h in range(24 * 20))


_MAX = {False: _day_max(False), True: _day_max(True)}


@dataclass(frozen=True, kw_only=True)
class DemandModel:
    """How much a fleet of `fleet_size` robotaxis is asked to do, as a function of time.

    Rates are per real minute at intensity 1.0 (the weekday evening peak) and scale linearly with
    the fleet size and with the intensity of the moment.
    """

    fleet_size: int = 50
    trips_per_car_hour: float = 12.0  # peak rider requests per car per hour
    reads_per_car_hour: float = 30.0  # peak back-office GETs per car per hour
    telemetry_interval_s: float = 20.0  # each car reports this often, whatever the demand
    timezone: str = "Europe/Lisbon"
    trip_success_ratio: float = 0.97  # share of requests that find a car (fleet not saturated)

    def __post_init__(self) -> None:
        if self.fleet_size < 1:
            raise ValueError(f"fleet_size must be >= 1, got {self.fleet_size}")
        for name in ("trips_per_car_hour", "reads_per_car_hour", "telemetry_interval_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        ZoneInfo(self.timezone)  # raises for an unknown zone

    def intensity(self, t: datetime) -> float:
        """City demand at `t` (aware datetime) in (0, 1]; 1.0 is the weekday evening peak."""
        if t.tzinfo is None:
            raise ValueError("DemandModel needs an aware datetime")
        local = t.astimezone(ZoneInfo(self.timezone))
        hour = local.hour + local.minute / 60.0 + local.second / 3600.0
        weekend = local.weekday() >= 5
        peak = _WEEKEND_PEAK if weekend else _WEEKDAY_PEAK
        return peak * _raw_day(hour, weekend) / _MAX[weekend]

    def trip_requests_per_minute(self, t: datetime) -> float:
        return self.fleet_size * self.trips_per_car_hour / 60.0 * self.intensity(t)

    def reads_per_minute(self, t: datetime) -> float:
        # The back office works office hours more than riders do, but never stops entirely.
        return self.fleet_size * self.reads_per_car_hour / 60.0 * (0.3 + 0.7 * self.intensity(t))

    def served_trips_per_minute(self, t: datetime) -> float:
        return self.trip_requests_per_minute(t) * self.trip_success_ratio

    def status_transitions_per_minute(self, t: datetime) -> float:
        return self.served_trips_per_minute(t) * TRANSITIONS_PER_TRIP

    def api_requests_per_minute(self, t: datetime) -> float:
        """Expected API requests per minute: listings, lookups, status PATCHes, back-office reads."""
        served = self.served_trips_per_minute(t)
        return (
            self.trip_requests_per_minute(t)
            + served * LOOKUPS_PER_TRIP
            + self.status_transitions_per_minute(t)
            + self.reads_per_minute(t)
        )

    def telemetry_per_minute(self) -> float:
        return self.fleet_size * 60.0 / self.telemetry_interval_s


def poisson(rng: random.Random, lam: float) -> int:
    """A Poisson draw from `rng` (inversion for small means, a rounded normal for large ones)."""
    if lam <= 0:
        return 0
    if lam > 50:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1
