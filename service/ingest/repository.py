"""Where telemetry lands: the `TelemetryRepository` Protocol and its DynamoDB adapter.

The adapter writes only the telemetry attributes of a car item (``position``, ``battery_level``,
``speed_kmh``, ``telemetry_ts``) with one conditional ``UpdateItem``; it never touches ``version``
or ``updated_at`` (telemetry is not a change of the car's representation) and never creates a car.
"""

from __future__ import annotations

from enum import StrEnum
from functools import cache
from typing import TYPE_CHECKING, Any, Protocol

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from service.ingest.models import TelemetryMessage

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

RETIRED_STATUS = "retired"
"""Value of the car's ``status`` attribute once it has left the fleet (``CarStatus.RETIRED``)."""
CAR_RECORD_TYPE = "car"
"""The cars table also holds other items (VIN claims, ``record_type`` = "vin_claim"); only car items take
telemetry. Items without ``record_type`` are treated as cars."""


class ApplyOutcome(StrEnum):
    """What became of one reading."""

    APPLIED = "applied"  # the car's telemetry now reflects this reading
    STALE = "stale"  # the car already holds a reading at least as new; nothing written
    UNKNOWN_CAR = "unknown_car"  # no such car; nothing written
    RETIRED = "retired"  # the car is retired; nothing written


class TelemetryRepository(Protocol):
    def apply(self, message: TelemetryMessage) -> ApplyOutcome:
        """Store the reading unless the car is unknown/retired or holds a newer-or-equal reading."""
        ...


class DynamoDbTelemetryRepository:
    """Conditional `UpdateItem` on the cars table (partition key ``car_id``)."""

    _UPDATE = "SET #position = :position, #battery = :battery, #speed = :speed, #ts = :ts"
    _CONDITION = (
        "attribute_exists(#car_id)"
        " AND (attribute_not_exists(#record_type) OR #record_type = :car)"
        " AND (attribute_not_exists(#status) OR #status <> :retired)"
        " AND (attribute_not_exists(#ts) OR #ts < :ts)"
    )
    _NAMES = {
        "#car_id": "car_id",
        "#record_type": "record_type",
        "#status": "status",
        "#position": "position",
        "#battery": "battery_level",
        "#speed": "speed_kmh",
        "#ts": "telemetry_ts",
    }

    def __init__(self, table_name: str, *, client: DynamoDBClient | None = None) -> None:
        self.table_name = table_name
        self._client = client

    @property
    def client(self) -> DynamoDBClient:
        return self._client if self._client is not None else dynamodb_client()

    def apply(self, message: TelemetryMessage) -> ApplyOutcome:
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key={"car_id": {"S": message.car_id}},
                UpdateExpression=self._UPDATE,
                ConditionExpression=self._CONDITION,
                ExpressionAttributeNames=self._NAMES,
                ExpressionAttributeValues={
                    ":position": {
                        "M": {
                            "lat": {"N": _number(message.position.lat)},
                            "lon": {"N": _number(message.position.lon)},
                        }
                    },
                    ":battery": {"N": _number(message.battery_level)},
                    ":speed": {"N": _number(message.speed_kmh)},
                    ":ts": {"N": str(message.ts_epoch_ms)},
                    ":retired": {"S": RETIRED_STATUS},
                    ":car": {"S": CAR_RECORD_TYPE},
                },
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            return _why_not_applied(err.response)
        return ApplyOutcome.APPLIED


def _why_not_applied(response: Any) -> ApplyOutcome:
    old: dict[str, Any] = response.get("Item") or {}
    if not old or old.get("record_type", {}).get("S", CAR_RECORD_TYPE) != CAR_RECORD_TYPE:
        return ApplyOutcome.UNKNOWN_CAR
    if old.get("status", {}).get("S") == RETIRED_STATUS:
        return ApplyOutcome.RETIRED
    return ApplyOutcome.STALE


def _number(value: float) -> str:
    # repr() of a float is the shortest string that round-trips; DynamoDB rejects "nan"/"inf",
    # which the message model already excludes.
    return repr(float(value))


CLIENT_CONFIG = Config(
    connect_timeout=1, read_timeout=2, retries={"mode": "standard", "total_max_attempts": 2}
)
"""A hanging call costs at most 2 x (1 + 2) = 6 s, inside the 9 s function (botocore's defaults, 60 s + 60 s,
would time the whole batch out); DynamoDB answers an UpdateItem in milliseconds, so a slower call is a fault
to retry, and the record is reported failed rather than the batch."""


@cache
def dynamodb_client() -> DynamoDBClient:
    """One client per process; reaches AWS or the emulator through AWS_ENDPOINT_URL."""
    return boto3.client("dynamodb", config=CLIENT_CONFIG)
