"""DynamoDbCarRepository: cars in the cars table, each change with its outbox item in ONE transaction."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from service.adapters.items import LIST_PK, CarItem, OutboxItem, VinClaimItem, to_attribute_values
from service.domain.car import Car
from service.domain.errors import (
    CarNotFoundError,
    InvalidCursorError,
    VersionConflictError,
    VinAlreadyRegisteredError,
)
from service.domain.events import CarEvent
from service.domain.pagination import CursorCodec
from service.domain.ports import ListQuery, Page
from service.domain.status import CarStatus
from service.observability import tracer

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

# index name -> (partition key attribute, its value source)
_INDEX_PK = {"by_listing": "list_pk", "by_status": "status", "by_model": "model"}


def _is_car_id(car_id: str) -> bool:
    try:
        uuid.UUID(car_id)
    except ValueError:
        return False
    return True


class DynamoDbCarRepository:
    def __init__(
        self, *, client: DynamoDBClient, cars_table: str, outbox_table: str, cursor_codec: CursorCodec
    ) -> None:
        self._ddb = client
        self._cars = cars_table
        self._outbox = outbox_table
        self._cursor = cursor_codec

    @tracer.capture_method(capture_response=False)
    def get(self, car_id: str) -> Car | None:
        if not _is_car_id(car_id):
            return None
        tracer.put_annotation("car_id", car_id)
        response = self._ddb.get_item(
            TableName=self._cars, Key={"car_id": {"S": car_id}}, ConsistentRead=True
        )
        item = response.get("Item")
        if item is None or item.get("record_type", {}).get("S") != "car":
            return None
        return CarItem.from_item(item).to_car()

    def _outbox_put(self, event: CarEvent) -> dict[str, Any]:
        return {
            "Put": {
                "TableName": self._outbox,
                "Item": OutboxItem.from_event(event).to_item(),
                "ConditionExpression": "attribute_not_exists(event_id)",
            }
        }

    @tracer.capture_method(capture_response=False)
    def add(self, car: Car, event: CarEvent) -> None:
        tracer.put_annotation("car_id", car.car_id)
        items: list[Any] = [
            {
                "Put": {
                    "TableName": self._cars,
                    "Item": CarItem.from_car(car).to_item(),
                    "ConditionExpression": "attribute_not_exists(car_id)",
                }
            },
            {
                "Put": {
                    "TableName": self._cars,
                    "Item": VinClaimItem.for_car(car).to_item(),
                    "ConditionExpression": "attribute_not_exists(car_id)",
                }
            },
            self._outbox_put(event),
        ]
        try:
            self._ddb.transact_write_items(TransactItems=items)
        except ClientError as err:
            reasons = _cancellation_codes(err)
            if len(reasons) > 1 and reasons[1] == "ConditionalCheckFailed":
                raise VinAlreadyRegisteredError(car.vin) from err
            raise

    @tracer.capture_method(capture_response=False)
    def update(self, car: Car, *, expected_version: int, event: CarEvent) -> None:
        tracer.put_annotation("car_id", car.car_id)
        item = CarItem.from_car(car)
        values = to_attribute_values(
            {
                ":model": item.model,
                ":year": item.year,
                ":seats": item.seats,
                ":bike_rack": item.bike_rack,
                ":status": item.status.value,
                ":updated_at": item.updated_at.isoformat(),
                ":version": item.version,
                ":expected": expected_version,
            }
        )
        update = (
            "SET #model = :model, #year = :year, seats = :seats, bike_rack = :bike_rack, "
            "#status = :status, updated_at = :updated_at, version = :version"
        )
        if item.list_pk is None:
            update += " REMOVE list_pk"
        else:
            update += ", list_pk = :list_pk"
            values[":list_pk"] = {"S": LIST_PK}
        operations: list[Any] = [
            {
                "Update": {
                    "TableName": self._cars,
                    "Key": {"car_id": {"S": car.car_id}},
                    "UpdateExpression": update,
                    "ConditionExpression": "attribute_exists(car_id) AND version = :expected",
                    "ExpressionAttributeNames": {"#model": "model", "#year": "year", "#status": "status"},
                    "ExpressionAttributeValues": values,
                }
            },
            self._outbox_put(event),
        ]
        try:
            self._ddb.transact_write_items(TransactItems=operations)
        except ClientError as err:
            reasons = _cancellation_codes(err)
            if reasons and reasons[0] == "ConditionalCheckFailed":
                current = self.get(car.car_id)
                if current is None:
                    raise CarNotFoundError(car.car_id) from err
                raise VersionConflictError(car.car_id, expected_version, current.version) from err
            raise

    @tracer.capture_method(capture_response=False)
    def list(self, query: ListQuery) -> Page:
        status = query.status.value if query.status else None
        filters: dict[str, str | None] = {"status": status, "model": query.model}
        names: dict[str, str] = {}
        values: dict[str, Any] = {}
        filter_parts: list[str] = []
        if query.model is not None:
            index, pk_value = "by_model", query.model
            if status is not None:
                filter_parts.append("#status = :status")
                names["#status"] = "status"
                values[":status"] = {"S": status}
            else:
                filter_parts.append("#status <> :retired")
                names["#status"] = "status"
                values[":retired"] = {"S": CarStatus.RETIRED.value}
        elif status is not None:
            index, pk_value = "by_status", status
        else:
            index, pk_value = "by_listing", LIST_PK
        pk_attr = _INDEX_PK[index]
        names["#pk"] = pk_attr
        values[":pk"] = {"S": pk_value}
        kwargs: dict[str, Any] = {
            "TableName": self._cars,
            "IndexName": index,
            "KeyConditionExpression": "#pk = :pk",
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }
        if filter_parts:
            kwargs["FilterExpression"] = " AND ".join(filter_parts)
        start: dict[str, str] | None = None
        if query.next_token is not None:
            start = self._cursor.decode(query.next_token, filters)
            if set(start) != {"car_id", "list_sk", pk_attr} or start[pk_attr] != pk_value:
                raise InvalidCursorError("next_token does not belong to this listing")

        items: list[Car] = []
        more = True
        while more and len(items) < query.limit:
            if start is not None:
                kwargs["ExclusiveStartKey"] = {k: {"S": v} for k, v in start.items()}
            # Ask for exactly the remainder: if every evaluated item matches, the page ends on an item.
            kwargs["Limit"] = query.limit - len(items)
            response = self._ddb.query(**kwargs)
            items.extend(CarItem.from_item(raw).to_car() for raw in response.get("Items", []))
            last = response.get("LastEvaluatedKey")
            more = last is not None
            if last is not None:
                start = {k: v["S"] for k, v in last.items()}
        token = self._cursor.encode(start, filters) if more and start is not None else None
        return Page(items=items, next_token=token)


def _cancellation_codes(err: ClientError) -> list[str]:
    if err.response.get("Error", {}).get("Code") != "TransactionCanceledException":
        return []
    reasons = err.response.get("CancellationReasons") or []
    return [str(reason.get("Code", "None")) for reason in reasons]
