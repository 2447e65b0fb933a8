"""Use cases over the in-memory repository: events, no-op writes, optimistic concurrency, telemetry safety."""

from __future__ import annotations

import pytest

from service.adapters.memory import InMemoryCarRepository
from service.domain.car import CarDetails, NewCar, Position
from service.domain.cars import CarService
from service.domain.errors import (
    CarNotFoundError,
    CarRetiredError,
    IllegalTransitionError,
    InvalidCursorError,
    VersionConflictError,
    VinAlreadyRegisteredError,
)
from service.domain.events import CarRegistered, CarRetired, CarStatusChanged, CarUpdated, parse_event
from service.domain.pagination import CursorCodec, StaticKeys
from service.domain.ports import ListQuery
from service.domain.status import CarStatus
from tests.service.conftest import StepClock, make_vin


def new_car(**overrides: object) -> NewCar:
    values: dict[str, object] = {
        "vin": make_vin(),
        "model": "R1",
        "year": 2025,
        "seats": 4,
        "position": Position(lat=1, lon=2),
    }
    return NewCar.model_validate(values | overrides)


@pytest.fixture
def repo() -> InMemoryCarRepository:
    return InMemoryCarRepository()


@pytest.fixture
def cars(repo: InMemoryCarRepository) -> CarService:
    return CarService(repo, clock=StepClock())


def test_register_stores_an_available_car_and_one_event(
    cars: CarService, repo: InMemoryCarRepository
) -> None:
    car = cars.register(new_car())
    assert (car.status, car.version) == (CarStatus.AVAILABLE, 1)
    assert cars.get(car.car_id) == car
    [event] = repo.outbox
    assert isinstance(event, CarRegistered)
    assert (event.car_id, event.version, event.car, event.schema_version) == (car.car_id, 1, car, "1.0")
    # The detail round-trips through its JSON schema (what consumers parse).
    assert parse_event(event.model_dump_json()) == event


def test_a_vin_registers_once(cars: CarService, repo: InMemoryCarRepository) -> None:
    vin = make_vin()
    cars.register(new_car(vin=vin))
    with pytest.raises(VinAlreadyRegisteredError):
        cars.register(new_car(vin=vin))
    assert len(repo.outbox) == 1


def test_replace_changes_mutable_fields_bumps_version_and_emits_changed_fields(
    cars: CarService, repo: InMemoryCarRepository
) -> None:
    car = cars.register(new_car())
    updated = cars.replace_details(
        car.car_id, CarDetails(model="R2", year=2025, seats=6, bike_rack=False), expected_version=1
    )
    assert (updated.model, updated.seats, updated.version) == ("R2", 6, 2)
    event = repo.outbox[-1]
    assert isinstance(event, CarUpdated)
    assert event.changed_fields == ["model", "seats"]


def test_replace_without_changes_writes_nothing(cars: CarService, repo: InMemoryCarRepository) -> None:
    car = cars.register(new_car())
    same = cars.replace_details(car.car_id, car.details, expected_version=1)
    assert same == car
    assert len(repo.outbox) == 1  # no phantom CarUpdated


def test_stale_version_is_a_conflict_and_nothing_changes(
    cars: CarService, repo: InMemoryCarRepository
) -> None:
    car = cars.register(new_car())
    cars.replace_details(car.car_id, car.details.model_copy(update={"seats": 2}), expected_version=1)
    with pytest.raises(VersionConflictError) as raised:
        cars.replace_details(car.car_id, car.details.model_copy(update={"seats": 7}), expected_version=1)
    assert raised.value.current == 2
    assert cars.get(car.car_id).seats == 2
    assert len(repo.outbox) == 2


def test_updates_never_clobber_telemetry(cars: CarService, repo: InMemoryCarRepository) -> None:
    car = cars.register(new_car())
    repo.set_telemetry(car.car_id, battery_level=12.5, position=Position(lat=48.1, lon=11.6), speed_kmh=30.0)
    cars.replace_details(car.car_id, car.details.model_copy(update={"seats": 2}), expected_version=1)
    cars.change_status(car.car_id, CarStatus.CHARGING)
    stored = cars.get(car.car_id)
    assert (stored.battery_level, stored.position, stored.speed_kmh) == (
        12.5,
        Position(lat=48.1, lon=11.6),
        30.0,
    )
    assert stored.version == 3  # telemetry did not bump the version


def test_status_change_emits_from_and_to(cars: CarService, repo: InMemoryCarRepository) -> None:
    car = cars.register(new_car())
    result = cars.change_status(car.car_id, CarStatus.RESERVED)
    assert (result.from_status, result.car.status, result.car.version) == ("available", "reserved", 2)
    event = repo.outbox[-1]
    assert isinstance(event, CarStatusChanged)
    assert (event.from_status, event.to_status) == (CarStatus.AVAILABLE, CarStatus.RESERVED)


def test_illegal_move_changes_nothing(cars: CarService, repo: InMemoryCarRepository) -> None:
    car = cars.register(new_car())
    with pytest.raises(IllegalTransitionError):
        cars.change_status(car.car_id, CarStatus.IN_TRIP)
    assert cars.get(car.car_id) == car
    assert len(repo.outbox) == 1


def test_status_change_revalidates_after_a_concurrent_change(repo: InMemoryCarRepository) -> None:
    """Given a concurrent writer that moves the car to maintenance between our read and our write,
    when we move the car to reserved without an If-Match, then we re-read and refuse (maintenance -> reserved
    is illegal) instead of overwriting the concurrent change."""
    cars = CarService(repo, clock=StepClock())
    car = cars.register(new_car())
    original_update = repo.update
    interfered = []

    def update_after_interference(*args: object, **kwargs: object) -> None:
        if not interfered:
            interfered.append(True)
            cars.change_status(car.car_id, CarStatus.MAINTENANCE)
        original_update(*args, **kwargs)  # type: ignore[arg-type]

    repo.update = update_after_interference  # type: ignore[method-assign]
    with pytest.raises(IllegalTransitionError, match="from maintenance to reserved"):
        cars.change_status(car.car_id, CarStatus.RESERVED)
    assert cars.get(car.car_id).status is CarStatus.MAINTENANCE


def test_retire_hides_the_car_keeps_it_and_is_final(cars: CarService, repo: InMemoryCarRepository) -> None:
    car = cars.register(new_car())
    result = cars.retire(car.car_id)
    assert result.changed
    assert result.car.status is CarStatus.RETIRED
    assert isinstance(repo.outbox[-1], CarRetired)
    assert cars.list(ListQuery()).items == []
    assert [c.car_id for c in cars.list(ListQuery(status=CarStatus.RETIRED)).items] == [car.car_id]
    again = cars.retire(car.car_id)
    assert not again.changed
    assert len(repo.outbox) == 2
    with pytest.raises(CarRetiredError):
        cars.replace_details(car.car_id, car.details.model_copy(update={"seats": 1}), expected_version=2)
    with pytest.raises(IllegalTransitionError):
        cars.change_status(car.car_id, CarStatus.AVAILABLE)


def test_missing_car(cars: CarService) -> None:
    with pytest.raises(CarNotFoundError):
        cars.get("5b0c4f6e-0000-4000-8000-000000000000")


def test_listing_pages_filters_and_rejects_foreign_tokens(cars: CarService) -> None:
    made = [cars.register(new_car(model="R1" if i % 2 else "R2")) for i in range(7)]
    seen, token = [], None
    while True:
        page = cars.list(ListQuery(limit=3, next_token=token))
        seen += [c.car_id for c in page.items]
        token = page.next_token
        if token is None:
            break
    assert seen == [c.car_id for c in made]
    r1 = cars.list(ListQuery(model="R1", limit=2))
    assert [c.model for c in r1.items] == ["R1", "R1"]
    assert r1.next_token
    with pytest.raises(InvalidCursorError, match="other filters"):
        cars.list(ListQuery(model="R2", limit=2, next_token=r1.next_token))


class RotatingKeys:
    """A key source whose key the test rotates; counts how often it is asked to refresh."""

    def __init__(self, *keys: bytes) -> None:
        self.cached = self.latest = keys
        self.refreshes = 0

    def get(self, *, refresh: bool = False) -> tuple[bytes, ...]:
        if refresh:
            self.refreshes += 1
            self.cached = self.latest
        return self.cached


def test_tokens_survive_a_key_rotation_and_a_stale_cache_refreshes_once() -> None:
    filters: dict[str, str | None] = {"status": None, "model": None}
    # Given a token signed with key k1
    keys = RotatingKeys(b"k1")
    codec = CursorCodec(keys)
    old_token = codec.encode({"list_sk": "a"}, filters)
    # When the key is rotated (k2 current, k1 previous) and another environment signs with k2
    keys.latest = (b"k2", b"k1")
    new_token = CursorCodec(StaticKeys(b"k2", b"k1")).encode({"list_sk": "b"}, filters)
    # Then this environment, still caching k1 alone, accepts both: the unknown MAC refreshes its keys once
    assert codec.decode(old_token, filters) == {"list_sk": "a"}
    assert keys.refreshes == 0
    assert codec.decode(new_token, filters) == {"list_sk": "b"}
    assert keys.refreshes == 1
    assert codec.decode(old_token, filters) == {"list_sk": "a"}  # the previous key still verifies
    # and a token under a key the secret never held is refused
    with pytest.raises(InvalidCursorError, match="altered or not issued"):
        codec.decode(CursorCodec(b"guessed").encode({"list_sk": "c"}, filters), filters)


def test_cursor_tampering_is_detected() -> None:
    codec = CursorCodec(b"k")
    token = codec.encode({"list_sk": "a"}, {"status": None, "model": None})
    assert codec.decode(token, {"status": None, "model": None}) == {"list_sk": "a"}
    body, mac = token.split(".")
    forged = CursorCodec(b"other").encode({"list_sk": "b"}, {"status": None, "model": None})
    for bad in (body + "x." + mac, forged, "garbage", "a.b", "é.é", "." * 3, body[:-2] + "." + mac):
        with pytest.raises(InvalidCursorError):
            codec.decode(bad, {"status": None, "model": None})
