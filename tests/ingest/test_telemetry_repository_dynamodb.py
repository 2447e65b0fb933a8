"""DynamoDbTelemetryRepository against the emulator's cars table: the conditional update and its outcomes."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import boto3
import pytest
from ingest_helpers import NOW, InMemoryTelemetryRepository

from sandbox.aws.provision import Provisioned
from service.ingest.models import TelemetryMessage
from service.ingest.repository import ApplyOutcome, DynamoDbTelemetryRepository
from service.settings import get_settings

pytestmark = pytest.mark.integration


@pytest.fixture
def ddb(provisioned: Provisioned) -> Any:
    return boto3.client("dynamodb")


@pytest.fixture
def repository(provisioned: Provisioned) -> DynamoDbTelemetryRepository:
    return DynamoDbTelemetryRepository(get_settings().cars_table_name)


def put_car(ddb: Any, *, status: str = "available") -> str:
    """A car item as the cars API stores it: what telemetry reads, plus two attributes it must keep."""
    car_id = f"car-{uuid.uuid4().hex[:12]}"
    ddb.put_item(
        TableName=get_settings().cars_table_name,
        Item={
            "car_id": {"S": car_id},
            "status": {"S": status},
            "version": {"N": "3"},
            "updated_at": {"S": "2026-11-01T00:00:00+00:00"},
        },
    )
    return car_id


def reading(car_id: str, *, seconds: float = 0, battery: float = 50.0) -> TelemetryMessage:
    return TelemetryMessage(
        car_id=car_id,
        ts=NOW + timedelta(seconds=seconds),
        position={"lat": 48.137, "lon": 11.575},
        battery_level=battery,
        speed_kmh=33.3,
    )


def get_car(ddb: Any, car_id: str) -> dict[str, Any]:
    item: dict[str, Any] = ddb.get_item(
        TableName=get_settings().cars_table_name, Key={"car_id": {"S": car_id}}, ConsistentRead=True
    ).get("Item", {})
    return item


def test_applies_telemetry_without_touching_version_or_updated_at(
    ddb: Any, repository: DynamoDbTelemetryRepository
) -> None:
    # Given a car
    car_id = put_car(ddb)
    # When a reading is applied
    outcome = repository.apply(reading(car_id, battery=77.25))
    # Then the telemetry attributes are set with the agreed names and types ...
    assert outcome is ApplyOutcome.APPLIED
    item = get_car(ddb, car_id)
    assert item["position"] == {"M": {"lat": {"N": "48.137"}, "lon": {"N": "11.575"}}}
    assert item["battery_level"] == {"N": "77.25"}
    assert item["speed_kmh"] == {"N": "33.3"}
    assert item["telemetry_ts"] == {"N": str(int(NOW.timestamp() * 1000))}
    # ... and the representation's version and timestamp are untouched
    assert item["version"] == {"N": "3"}
    assert item["updated_at"] == {"S": "2026-11-01T00:00:00+00:00"}


def test_older_or_equal_readings_are_stale_and_change_nothing(
    ddb: Any, repository: DynamoDbTelemetryRepository
) -> None:
    # Given a car holding a reading
    car_id = put_car(ddb)
    repository.apply(reading(car_id, seconds=10, battery=10.0))
    # When an older reading and a duplicate arrive
    older = repository.apply(reading(car_id, seconds=5, battery=20.0))
    same = repository.apply(reading(car_id, seconds=10, battery=30.0))
    # Then both are stale and the newer state stays
    assert (older, same) == (ApplyOutcome.STALE, ApplyOutcome.STALE)
    assert get_car(ddb, car_id)["battery_level"] == {"N": "10.0"}
    # While a newer one applies
    assert repository.apply(reading(car_id, seconds=11, battery=40.0)) is ApplyOutcome.APPLIED
    assert get_car(ddb, car_id)["battery_level"] == {"N": "40.0"}


def test_unknown_car_is_not_created(ddb: Any, repository: DynamoDbTelemetryRepository) -> None:
    car_id = f"ghost-{uuid.uuid4().hex[:8]}"
    assert repository.apply(reading(car_id)) is ApplyOutcome.UNKNOWN_CAR
    assert get_car(ddb, car_id) == {}


def test_retired_car_takes_no_telemetry(ddb: Any, repository: DynamoDbTelemetryRepository) -> None:
    car_id = put_car(ddb, status="retired")
    assert repository.apply(reading(car_id)) is ApplyOutcome.RETIRED
    assert "telemetry_ts" not in get_car(ddb, car_id)


def test_items_that_are_not_cars_take_no_telemetry(ddb: Any, repository: DynamoDbTelemetryRepository) -> None:
    # Given a VIN claim item, which the cars API keeps in the same table
    claim_id = f"vin#{uuid.uuid4().hex[:17].upper()}"
    claim = {"car_id": {"S": claim_id}, "record_type": {"S": "vin_claim"}, "owner_car_id": {"S": "car-x"}}
    ddb.put_item(TableName=get_settings().cars_table_name, Item=claim)
    # When telemetry names it as a car
    outcome = repository.apply(reading(claim_id))
    # Then it is an unknown car and the claim is left as it was
    assert outcome is ApplyOutcome.UNKNOWN_CAR
    assert get_car(ddb, claim_id) == claim


def test_car_items_written_with_a_record_type_take_telemetry(
    ddb: Any, repository: DynamoDbTelemetryRepository
) -> None:
    car_id = put_car(ddb)
    ddb.update_item(
        TableName=get_settings().cars_table_name,
        Key={"car_id": {"S": car_id}},
        UpdateExpression="SET record_type = :car",
        ExpressionAttributeValues={":car": {"S": "car"}},
    )
    assert repository.apply(reading(car_id)) is ApplyOutcome.APPLIED


def test_in_memory_fake_gives_the_same_outcomes_as_dynamodb(
    ddb: Any, repository: DynamoDbTelemetryRepository
) -> None:
    """The handler's unit tests run on the fake; this keeps the fake honest."""
    fake = InMemoryTelemetryRepository()
    live, retired = put_car(ddb), put_car(ddb, status="retired")
    fake.add_car(live)
    fake.add_car(retired, status="retired")
    ghost = f"ghost-{uuid.uuid4().hex[:8]}"
    script = [
        reading(live, seconds=5),
        reading(live, seconds=5),
        reading(live, seconds=1),
        reading(live, seconds=9),
        reading(retired),
        reading(ghost),
    ]
    outcomes = [(fake.apply(message), repository.apply(message)) for message in script]
    assert [real for _, real in outcomes] == [
        ApplyOutcome.APPLIED,
        ApplyOutcome.STALE,
        ApplyOutcome.STALE,
        ApplyOutcome.APPLIED,
        ApplyOutcome.RETIRED,
        ApplyOutcome.UNKNOWN_CAR,
    ]
    assert [mine for mine, _ in outcomes] == [real for _, real in outcomes]


def test_the_ingest_client_gives_up_well_inside_the_function_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the ingest's DynamoDB client (botocore's defaults: 60 s connect + 60 s read, legacy retries)
    from contract.topology import topology
    from service.ingest import repository

    repository.dynamodb_client.cache_clear()
    config = repository.dynamodb_client().meta.config
    repository.dynamodb_client.cache_clear()
    # Then a call that hangs costs at most attempts x (connect + read), well inside the 9 s function
    retries = config.retries or {}
    assert retries.get("mode") == "standard"
    attempts = retries["total_max_attempts"]
    worst_case_s = attempts * (config.connect_timeout + config.read_timeout)
    assert worst_case_s <= topology().telemetry_ingest.timeout_s * 2 / 3, worst_case_s
