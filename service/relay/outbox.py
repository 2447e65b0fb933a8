"""The outbox as the relay, the sweeper and the redrive tool see it: claim an item, publish it, mark it.

Every outbox item is published through `deliver`: a conditional claim (`claim_until` = now + lease, only if
the item exists, is not published and nobody else holds a live claim), PutEvents, then `published_at` set
and `pending` removed. So the stream relay and the sweeper never publish the same item twice, unless a
process dies between PutEvents and the mark (then the item is published again after its claim lapses:
at-least-once, consumers deduplicate on `detail.event_id`). A failed PutEvents releases the claim, so the
stream mapping's retry can claim again at once.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from botocore.exceptions import ClientError
from pydantic import TypeAdapter

from service.adapters.items import PENDING, OutboxItem, from_attribute_values

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

PENDING_INDEX = "by_pending"


class Publisher(Protocol):
    def publish(self, item: OutboxItem) -> None: ...


class Outbox(Protocol):
    def claim(self, event_id: str, *, now: datetime, lease: timedelta) -> OutboxItem | None: ...
    def release(self, event_id: str) -> None: ...
    def mark_published(self, event_id: str, *, now: datetime) -> None: ...
    def unpublished(self, *, occurred_before: datetime) -> Iterator[str]: ...
    def occurred_between(self, start: datetime, end: datetime) -> Iterator[OutboxItem]: ...


_DATETIME: TypeAdapter[datetime] = TypeAdapter(datetime)


def _iso(moment: datetime) -> str:
    """`moment` as the outbox stores `occurred_at` (pydantic's JSON form): strings compare in time order."""
    return str(_DATETIME.dump_python(moment, mode="json"))


class DynamoDbOutbox:
    def __init__(self, *, client: DynamoDBClient, table: str) -> None:
        self._ddb = client
        self._table = table

    def claim(self, event_id: str, *, now: datetime, lease: timedelta) -> OutboxItem | None:
        """The item, now claimed by the caller until now + lease; None if published or claimed by another."""
        try:
            response = self._ddb.update_item(
                TableName=self._table,
                Key={"event_id": {"S": event_id}},
                UpdateExpression="SET claim_until = :until",
                ConditionExpression=(
                    "attribute_exists(event_id) AND attribute_not_exists(published_at)"
                    " AND (attribute_not_exists(claim_until) OR claim_until < :now)"
                ),
                ExpressionAttributeValues={
                    ":until": {"N": str(int((now + lease).timestamp()))},
                    ":now": {"N": str(int(now.timestamp()))},
                },
                ReturnValues="ALL_NEW",
            )
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return None
            raise
        return OutboxItem.from_item(response["Attributes"])

    def release(self, event_id: str) -> None:
        self._ddb.update_item(
            TableName=self._table,
            Key={"event_id": {"S": event_id}},
            UpdateExpression="REMOVE claim_until",
            ConditionExpression="attribute_exists(event_id)",
        )

    def mark_published(self, event_id: str, *, now: datetime) -> None:
        try:
            self._ddb.update_item(
                TableName=self._table,
                Key={"event_id": {"S": event_id}},
                UpdateExpression="SET published_at = :now REMOVE pending, claim_until",
                ConditionExpression="attribute_exists(event_id)",  # never recreate an expired item
                ExpressionAttributeValues={":now": {"S": _iso(now)}},
            )
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise

    def unpublished(self, *, occurred_before: datetime) -> Iterator[str]:
        """Ids of items not yet published that occurred before the cutoff, oldest first."""
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": PENDING_INDEX,
            "KeyConditionExpression": "pending = :p AND occurred_at < :cutoff",
            "ExpressionAttributeValues": {":p": {"S": PENDING}, ":cutoff": {"S": _iso(occurred_before)}},
            "ProjectionExpression": "event_id",
        }
        while True:
            page = self._ddb.query(**kwargs)
            for item in page.get("Items", []):
                yield item["event_id"]["S"]
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def occurred_between(self, start: datetime, end: datetime) -> Iterator[OutboxItem]:
        """Every item (published or not) that occurred in [start, end): a Scan, for the operator's redrive."""
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "FilterExpression": "occurred_at BETWEEN :start AND :end AND occurred_at <> :end",
            "ExpressionAttributeValues": {":start": {"S": _iso(start)}, ":end": {"S": _iso(end)}},
        }
        while True:
            page = self._ddb.scan(**kwargs)
            for item in page.get("Items", []):
                yield OutboxItem.model_validate(from_attribute_values(item))
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def deliver(event_id: str, *, outbox: Outbox, publisher: Publisher, now: datetime, lease: timedelta) -> bool:
    """Publish the item once: True if this call published it, False if it was published or claimed already."""
    item = outbox.claim(event_id, now=now, lease=lease)
    if item is None:
        return False
    try:
        publisher.publish(item)
    except Exception:
        outbox.release(event_id)
        raise
    outbox.mark_published(event_id, now=now)
    return True


class InMemoryOutbox:
    """The `Outbox` port over a dict, with the DynamoDB adapter's claim semantics (tests, benchmarks)."""

    def __init__(self, items: list[OutboxItem] | None = None) -> None:
        self._lock = threading.Lock()
        self.items: dict[str, OutboxItem] = {i.event_id: i for i in items or []}
        self.claims: dict[str, datetime] = {}

    def add(self, item: OutboxItem) -> None:
        with self._lock:
            self.items[item.event_id] = item

    def claim(self, event_id: str, *, now: datetime, lease: timedelta) -> OutboxItem | None:
        with self._lock:
            item = self.items.get(event_id)
            if item is None or item.published_at is not None:
                return None
            if event_id in self.claims and self.claims[event_id] >= now:
                return None
            self.claims[event_id] = now + lease
            return item

    def release(self, event_id: str) -> None:
        with self._lock:
            self.claims.pop(event_id, None)

    def mark_published(self, event_id: str, *, now: datetime) -> None:
        with self._lock:
            if event_id in self.items:
                self.items[event_id] = self.items[event_id].model_copy(
                    update={"published_at": now, "pending": None}
                )
            self.claims.pop(event_id, None)

    def unpublished(self, *, occurred_before: datetime) -> Iterator[str]:
        with self._lock:
            pending = sorted(
                (i for i in self.items.values() if i.pending and i.occurred_at < occurred_before),
                key=lambda i: i.occurred_at,
            )
        return iter([i.event_id for i in pending])

    def occurred_between(self, start: datetime, end: datetime) -> Iterator[OutboxItem]:
        with self._lock:
            return iter([i for i in self.items.values() if start <= i.occurred_at < end])
