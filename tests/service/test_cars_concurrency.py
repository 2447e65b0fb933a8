"""Optimistic concurrency under real parallelism: 20 threads updating one car through DynamoDB.

moto's DynamoDB is not atomic across threads: TransactWriteItems checks conditions and writes
without a lock, and a cancelled transaction restores a deep copy of the tables taken when it
started, erasing writes other threads committed meanwhile (we saw two winners for one version and
a lost outbox item). DynamoDB itself serializes writes to an item. So this test runs its own
in-process moto server whose DynamoDB operations are serialized by one lock (the atomicity
DynamoDB guarantees) and checks that OUR code then lets exactly one writer win per version and
loses no update. The shared sandbox emulator needs the same lock; see the README.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest
from moto.dynamodb.models import DynamoDBBackend
from moto.server import ThreadedMotoServer

from infra.topology import Topology
from sandbox.emulator import aws_environment
from sandbox.provision import provision
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
_ATOMIC_OPERATIONS = (
    "get_item",
    "put_item",
    "update_item",
    "delete_item",
    "query",
    "scan",
    "transact_write_items",
    "transact_get_items",
    "batch_write_item",
)


def _serialized(method: Callable[..., Any], lock: threading.RLock) -> Callable[..., Any]:
    def locked(*args: Any, **kwargs: Any) -> Any:
        with lock:
            return method(*args, **kwargs)

    return locked


@pytest.fixture(scope="module")
def atomic_dynamodb(topo: Topology) -> Iterator[CarService]:
    """A CarService over DynamoDB served by an in-process moto whose item writes are atomic."""
    lock = threading.RLock()
    patch = pytest.MonkeyPatch()
    for name in _ATOMIC_OPERATIONS:
        patch.setattr(DynamoDBBackend, name, _serialized(getattr(DynamoDBBackend, name), lock))
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    try:
        with pytest.MonkeyPatch.context() as env:
            for key, value in aws_environment(endpoint).items():
                env.setenv(key, value)
            provision(topo, session=boto3.Session())
        client = boto3.session.Session().client(
            "dynamodb",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        repository = DynamoDbCarRepository(
            client=client,
            cars_table=topo.cars_table.name,
            outbox_table=topo.outbox_table.name,
            cursor_codec=CursorCodec(b"test"),
        )
        service = CarService(repository)
        service.client = client  # type: ignore[attr-defined]
        yield service
    finally:
        server.stop()
        patch.undo()


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
