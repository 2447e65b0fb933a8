"""Optimistic concurrency under real parallelism: 20 threads updating one car through DynamoDB.

Runs against the shared emulator over HTTP. moto alone is not atomic across request threads
(TransactWriteItems checks conditions and writes without a lock, and a cancelled transaction
restores a copy of the tables taken when it started); the emulator process serializes DynamoDB
operations (sandbox/emulator/moto_fixes.py), which is the atomicity DynamoDB guarantees. Given that, these
tests check that OUR code lets exactly one writer win per version and loses no update.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest
from botocore.config import Config

from contract.topology import Topology
from sandbox.aws.provision import Provisioned
from service.adapters.dynamodb import DynamoDbCarRepository
from service.adapters.items import OutboxItem
from service.domain.car import CarDetails, NewCar, Position
from service.domain.cars import CarService
from service.domain.errors import VersionConflictError
from service.domain.events import CarUpdated, parse_event
from service.domain.pagination import CursorCodec
from tests.service.conftest import make_vin

pytestmark = [pytest.mark.integration, pytest.mark.slow]
THREADS = 20


@pytest.fixture(scope="module")
def atomic_dynamodb(provisioned: Provisioned, topo: Topology) -> CarService:
    """A CarService over the emulator's DynamoDB, with a connection pool wide enough for 20 threads."""
    client = boto3.session.Session().client("dynamodb", config=Config(max_pool_connections=THREADS + 5))
    repository = DynamoDbCarRepository(
        client=client,
        cars_table=topo.cars_table.name,
        outbox_table=topo.outbox_table.name,
        cursor_codec=CursorCodec(b"test"),
    )
    service = CarService(repository)
    service.client = client  # type: ignore[attr-defined]
    return service


def _outbox_events(service: CarService, topo: Topology, car_id: str) -> list[CarUpdated]:
    client = service.client  # type: ignore[attr-defined]
    items = client.scan(
        TableName=topo.outbox_table.name,
        FilterExpression="car_id = :c",
        ExpressionAttributeValues={":c": {"S": car_id}},
    )["Items"]
    events = [parse_event(OutboxItem.from_item(i).detail) for i in items]
    return [e for e in events if isinstance(e, CarUpdated)]


def test_twenty_writers_on_one_version_exactly_one_wins(atomic_dynamodb: CarService, topo: Topology) -> None:
    cars = atomic_dynamodb
    car = cars.register(
        NewCar(vin=make_vin(), model="R1", year=2025, seats=4, position=Position(lat=1, lon=1))
    )
    barrier = threading.Barrier(THREADS)

    def write(i: int) -> str:
        barrier.wait()
        try:
            cars.replace_details(
                car.car_id, CarDetails(model=f"writer-{i}", year=2025, seats=4), expected_version=1
            )
        except VersionConflictError:
            return "conflict"
        return "won"

    with ThreadPoolExecutor(THREADS) as pool:
        outcomes = list(pool.map(write, range(THREADS)))
    assert outcomes.count("won") == 1
    assert outcomes.count("conflict") == THREADS - 1
    stored = cars.get(car.car_id)
    winner = outcomes.index("won")
    assert (stored.model, stored.version) == (f"writer-{winner}", 2)
    assert [e.car.model for e in _outbox_events(cars, topo, car.car_id)] == [f"writer-{winner}"]


def test_twenty_writers_retrying_lose_no_update(atomic_dynamodb: CarService, topo: Topology) -> None:
    """Each writer retries (re-read, re-apply) until it wins: 20 wins, versions 2..21 each won once."""
    cars = atomic_dynamodb
    car = cars.register(
        NewCar(vin=make_vin(), model="R1", year=2025, seats=4, position=Position(lat=1, lon=1))
    )
    barrier = threading.Barrier(THREADS)

    def write(i: int) -> tuple[int, int]:
        barrier.wait()
        conflicts = 0
        while True:
            current = cars.get(car.car_id)
            try:
                done = cars.replace_details(
                    car.car_id,
                    CarDetails(model=f"writer-{i}", year=2025, seats=4),
                    expected_version=current.version,
                )
            except VersionConflictError:
                conflicts += 1
                continue
            return done.version, conflicts

    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(write, range(THREADS)))
    versions = sorted(v for v, _ in results)
    assert versions == list(range(2, THREADS + 2))  # exactly one winner per version
    assert sum(c for _, c in results) > 0  # the writers really did collide
    events = _outbox_events(cars, topo, car.car_id)
    assert sorted(e.version for e in events) == versions  # one event per winning write, none lost
    assert {e.car.model for e in events} == {f"writer-{i}" for i in range(THREADS)}  # every update landed
    assert cars.get(car.car_id).version == THREADS + 1
