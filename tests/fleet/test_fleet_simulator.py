"""The fleet simulator against an in-memory cars API that enforces the service's real status machine.

A `ManualClock` and a seed make a run replayable; rates are compared with the shared demand model.
"""

from __future__ import annotations

import itertools
import json
import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sandbox.aws.telemetry_route import validation_reason
from sandbox.traffic.api import ApiResponse
from sandbox.traffic.clock import ManualClock
from sandbox.traffic.demand import DemandModel
from sandbox.traffic.fleet import CITY_BOUNDS, FleetSimulator
from service.domain.errors import IllegalTransitionError
from service.domain.status import CarStatus, check_transition
from service.domain.vin import normalize_vin
from service.ingest.models import TelemetryMessage

WEDNESDAY_1PM = datetime(2026, 11, 25, 13, 0, tzinfo=UTC)


class InMemoryCarsApi:
    """Just enough of the cars API: register, get, list, PATCH status through the real state machine."""

    def __init__(self) -> None:
        self.cars: dict[str, dict[str, Any]] = {}
        self.log: list[tuple[str, str, int]] = []
        self.illegal: list[str] = []
        self._ids = itertools.count(1)

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: Any = None,
        headers: dict[str, str] | None = None,
    ) -> ApiResponse:
        status, body = self._handle(method, path, json_body, params or {})
        self.log.append((method, path, status))
        return ApiResponse(status, body, 0.001)

    def _handle(self, method: str, path: str, body: Any, params: dict[str, Any]) -> tuple[int, Any]:
        parts = path.strip("/").split("/")
        if method == "POST" and parts == ["cars"]:
            normalize_vin(body["vin"])
            car_id = f"car-{next(self._ids):03d}"
            self.cars[car_id] = {**body, "car_id": car_id, "status": "available"}
            return 201, self.cars[car_id]
        if method == "GET" and parts == ["cars"]:
            items = [c for c in self.cars.values() if params.get("status") in (None, c["status"])]
            return 200, {"items": items[: int(params.get("limit", 50))], "next_token": None}
        car = self.cars.get(parts[1]) if len(parts) > 1 else None
        if car is None:
            return 404, {"title": "not found"}
        if method == "GET":
            return 200, car
        if method == "PATCH" and parts[2:] == ["status"]:
            try:
                check_transition(car["car_id"], CarStatus(car["status"]), CarStatus(body["status"]))
            except IllegalTransitionError as err:
                self.illegal.append(str(err))
                return 409, {"title": "illegal transition"}
            car["status"] = body["status"]
            return 200, car
        return 405, None


class Controls:
    def __init__(self, factor: float = 1.0, poison: float = 0.0) -> None:
        self.factor, self.poison = factor, poison

    def traffic_factor(self) -> float:
        return self.factor

    def poison_fraction(self) -> float:
        return self.poison


def simulate(
    minutes: float, *, seed: int = 11, controls: Controls | None = None, size: int = 50
) -> tuple[FleetSimulator, InMemoryCarsApi, list[str]]:
    api = InMemoryCarsApi()
    sent: list[str] = []

    def sink(bodies: list[str]) -> list[int]:
        """The telemetry route's request model: 400 for what it refuses, else 202 (queued)."""
        statuses = []
        for body in bodies:
            reading = json.loads(body)
            reading.pop("car_id")
            refused = validation_reason(reading) is not None
            statuses.append(400 if refused else 202)
            if not refused:
                sent.append(body)
        return statuses

    clock = ManualClock(WEDNESDAY_1PM)
    sim = FleetSimulator(
        None,
        size=size,
        clock=clock,
        rng=random.Random(seed),
        api=api,
        telemetry_sink=sink,
        controls=controls,
    )
    sim.register_fleet()
    for _ in range(int(minutes * 60 / 0.5)):
        clock.advance(0.5)
        sim.step()
    return sim, api, sent


def test_a_seed_replays_the_same_run() -> None:
    _, api_a, sent_a = simulate(5, seed=3)
    _, api_b, sent_b = simulate(5, seed=3)
    _, api_c, _ = simulate(5, seed=4)
    assert api_a.log == api_b.log
    assert sent_a == sent_b
    assert api_a.log != api_c.log


@pytest.fixture(scope="module")
def half_hour() -> tuple[FleetSimulator, InMemoryCarsApi, list[str]]:
    return simulate(30)


def test_registration_uses_valid_vins_and_the_whole_fleet(half_hour: Any) -> None:
    sim, api, _ = half_hour
    assert len(api.cars) == 50
    assert {normalize_vin(c["vin"]) for c in api.cars.values()} == {c.vin for c in sim.cars}


def test_api_traffic_follows_the_shared_demand_model(half_hour: Any) -> None:
    _, api, _ = half_hour
    demand = DemandModel(fleet_size=50)
    expected = sum(
        demand.api_requests_per_minute(WEDNESDAY_1PM + timedelta(minutes=m + 0.5)) for m in range(30)
    )
    live = sum(1 for method, _, _ in api.log if method != "POST")
    assert live == pytest.approx(expected, rel=0.15)


def test_trips_only_make_legal_status_moves_and_complete(half_hour: Any) -> None:
    sim, api, _ = half_hour
    stats = sim.stats()
    assert api.illegal == []
    assert stats.trips_started > 50
    assert stats.trips_completed > 0.7 * stats.trips_started
    moves = Counter(status for method, path, status in api.log if method == "PATCH")
    assert set(moves) == {200}


def test_telemetry_is_valid_inside_the_city_and_shows_moving_cars(half_hour: Any) -> None:
    sim, _, sent = half_hour
    messages = [TelemetryMessage.model_validate_json(body) for body in sent]
    expected = 50 * 30 * 60 / sim.demand.telemetry_interval_s
    assert len(messages) == pytest.approx(expected, rel=0.05)
    lat0, lat1, lon0, lon1 = CITY_BOUNDS
    assert all(lat0 <= m.position.lat <= lat1 and lon0 <= m.position.lon <= lon1 for m in messages)
    assert any(m.speed_kmh > 5 for m in messages)
    first: dict[str, float] = {}
    drained = False
    for m in messages:
        first.setdefault(m.car_id, m.battery_level)
        drained = drained or m.battery_level < first[m.car_id] - 1
    assert drained
    assert sim.stats().telemetry_valid == len(messages)


def test_the_traffic_factor_scales_rider_and_back_office_traffic() -> None:
    _, normal, _ = simulate(10, seed=5)
    _, dropped, _ = simulate(10, seed=5, controls=Controls(factor=0.2))
    normal_gets = sum(1 for method, _, _ in normal.log if method == "GET")
    dropped_gets = sum(1 for method, _, _ in dropped.log if method == "GET")
    assert dropped_gets == pytest.approx(0.2 * normal_gets, rel=0.3)


def test_poison_telemetry_passes_the_request_model_and_is_what_the_ingest_dead_letters() -> None:
    # Given half the readings broken by buggy firmware, over 5 minutes
    sim, api, queued = simulate(5, controls=Controls(poison=0.5))
    stats = sim.stats()
    # Then the route's request model queued every one (well-formed), none refused
    assert stats.telemetry_refused == 0
    messages = [TelemetryMessage.model_validate_json(body) for body in queued]
    assert stats.telemetry_valid + stats.telemetry_poison == len(messages)
    # And the queued poison is what the ingest dead-letters: a car nobody registered, or a clock more
    # than 1 h behind or 5 min ahead of the simulator's
    now = WEDNESDAY_1PM + timedelta(minutes=5)
    poison = [
        m
        for m in messages
        if m.car_id not in api.cars
        or m.ts < WEDNESDAY_1PM - timedelta(hours=1)
        or m.ts > now + timedelta(minutes=5)
    ]
    assert len(poison) == stats.telemetry_poison
    assert stats.telemetry_poison == pytest.approx(0.5 * len(messages), rel=0.15)
    assert stats.telemetry_send_failed == 0


def test_failed_sends_are_not_counted_as_sent() -> None:
    api = InMemoryCarsApi()
    clock = ManualClock(WEDNESDAY_1PM)
    sim = FleetSimulator(None, size=10, clock=clock, api=api, telemetry_sink=lambda bodies: [0] * len(bodies))
    sim.register_fleet()
    for _ in range(120):
        clock.advance(0.5)
        sim.step()
    stats = sim.stats()
    assert stats.telemetry_sent == 0
    assert stats.telemetry_send_failed >= 10


@pytest.mark.parametrize("kwargs", [{"size": 0}, {"time_scale": 0}, {"time_scale": 50}])
def test_invalid_settings_are_rejected(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        FleetSimulator("http://127.0.0.1:1", **kwargs)
