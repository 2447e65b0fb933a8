"""Fixtures of the cars-service tests: the handler wired to in-memory adapters, or to the emulator."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aws_lambda_powertools.metrics.provider import cold_start

from contract.topology import Topology, topology
from sandbox.aws.provision import Provisioned
from service.adapters import aws
from service.adapters.idempotency import InMemoryIdempotencyStore
from service.adapters.memory import InMemoryCarRepository
from service.api import dependencies
from service.api.handler import app, lambda_handler
from service.domain.cars import CarService
from service.domain.vin import with_check_digit
from service.settings import get_settings
from tests.service.apigw import HttpResult, call

Api = Callable[..., HttpResult]


class StepClock:
    """A deterministic clock: each call is one millisecond after the previous one."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 27, 1, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=1)
        return self.now


_counter = iter(range(10**9))


def make_vin(seed: int | None = None) -> str:
    """A valid, unique VIN (correct ISO 3779 check digit)."""
    n = next(_counter) if seed is None else seed
    return with_check_digit(f"1FS{n:014d}")


def car_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "vin": make_vin(),
        "model": "Robotaxi R1",
        "year": 2025,
        "seats": 4,
        "bike_rack": False,
        "battery_level": 80.0,
        "position": {"lat": 52.52, "lon": 13.405},
    }
    return body | overrides


@pytest.fixture(autouse=True)
def _service_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The service's env vars (names of the `test` stage) and fresh per-process caches for every test."""
    topo = topology("test")
    for key, value in topo.function_environment(topo.cars_api).items():
        monkeypatch.setenv(key, value)
    cold_start.is_cold_start = False
    caches = (
        get_settings,
        dependencies.get_car_service,
        dependencies.get_idempotency_store,
        dependencies.get_idempotency_config,
        dependencies.get_signing_keys,
    )
    for cached in caches:
        cached.cache_clear()
    yield
    app.dependency_overrides.clear()
    for cached in caches:
        cached.cache_clear()


@pytest.fixture
def memory_repo() -> InMemoryCarRepository:
    return InMemoryCarRepository()


@pytest.fixture
def idempotency_store() -> InMemoryIdempotencyStore:
    store = InMemoryIdempotencyStore()
    app.dependency_overrides[dependencies.get_idempotency_store] = lambda: store
    return store


@pytest.fixture
def memory_service(
    memory_repo: InMemoryCarRepository, idempotency_store: InMemoryIdempotencyStore
) -> CarService:
    """The API handler wired to in-memory cars and idempotency records."""
    service = CarService(memory_repo, clock=StepClock())
    app.dependency_overrides[dependencies.get_car_service] = lambda: service
    return service


@pytest.fixture
def api() -> Api:
    def _api(method: str, path: str, **kwargs: Any) -> HttpResult:
        return call(lambda_handler, method, path, **kwargs)

    return _api


@pytest.fixture
def live(provisioned: Provisioned, topo: Topology) -> Provisioned:
    """The handler against the emulator's `test` stage (real DynamoDB adapter, real idempotency table)."""
    aws.reset_clients()
    return provisioned
