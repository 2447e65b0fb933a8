"""`DynamoDbIncidentStore`: everything the monitor keeps in its table (pk/sk, TTL `expires_at`).

Items:

| pk | sk | what |
|---|---|---|
| `LEASE` | `monitor` | run lease: `owner`, `lease_until`; taken with a conditional write |
| `STATE` | `head` | state head: `generation`, `chunks`, `sha256`, `models_ref` |
| `STATE` | `blob#<generation>#<sha256>#<i>` | online state chunks (Binary, <= 350 KB; expire) |
| `STATE` | `models#<sha256>#<i>` | detector checkpoint chunks (rewritten after training / hourly) |
| `OUTBOX` | `<incident_id>#<seq>` | one notification per incident transition: `status` pending -> sent |
| `INCIDENT` | `<incident_id>` | the incident as last seen (for the dashboard and `fleetscope alerts`) |

Exactly-once-ish notifications: a run's transitions are written to the outbox (dedup key
`incident_id#seq`; an existing item is never overwritten), with the incidents they change, *in the
same* `TransactWriteItems` as the new state head: a run that dies before it leaves nothing behind,
one that dies after it has committed both. When the items do not fit one transaction (100 actions,
4 MB), the first ones go in transactions of their own before the last one with the head; the saved
state lists the outbox keys it refers to, and only those are ever published, so items a dead run
wrote before its head are never sent. An item is then claimed (`pending` -> `publishing`,
conditional, so only one run publishes it), published, and marked `sent`; a claim older than the
lease is taken over by a later run. The only window for a duplicate is a crash between SNS
accepting the message and the `sent` write.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal, Protocol

from boto3.dynamodb.types import Binary
from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

logger = logging.getLogger(__name__)

CHUNK_BYTES = 350 * 1024
TRANSACT_MAX_ITEMS = 100  # DynamoDB TransactWriteItems: actions per call
TRANSACT_MAX_BYTES = 3 * 1024 * 1024  # of the 4 MB per call, with room for names and encoding
OutboxStatus = Literal["pending", "publishing", "sent"]


class StoreError(RuntimeError):
    """The monitor table holds something unusable (corrupt state chunks, malformed items)."""


class StateConflictError(StoreError):
    """Another run saved the model state since this run loaded it."""


class OutboxItem(BaseModel):
    """A notification waiting to be (or already) published; `message` is the SNS Publish input."""

    model_config = ConfigDict(extra="ignore")

    dedup_key: str
    incident_id: str
    seq: int
    kind: str
    status: OutboxStatus = "pending"
    created_at: int
    claimed_at: int | None = None
    sent_at: int | None = None
    message_id: str | None = None
    message: dict[str, Any]

    @field_validator("message", mode="before")
    @classmethod
    def _message_from_json(cls, value: Any) -> Any:
        return json.loads(value) if isinstance(value, str) else value


@dataclass(frozen=True)
class LoadedState:
    blob: bytes  # the online state
    generation: int
    models: bytes | None = None  # the detector checkpoint it refers to
    models_ref: str | None = None  # "<sha256>:<chunks>" of that checkpoint


class IncidentStore(Protocol):
    """What the monitor run needs from its table (DynamoDbIncidentStore; an in-memory one in fakes)."""

    def acquire_lease(self, owner: str, *, now: int, lease_s: int) -> bool: ...
    def release_lease(self, owner: str) -> None: ...
    def load_state(self) -> LoadedState | None: ...
    def current_generation(self) -> int: ...
    def save_state(
        self,
        blob: bytes,
        *,
        expected_generation: int,
        now: int,
        models: bytes | None = None,
        models_ref: str | None = None,
        outbox: Sequence[OutboxItem] = (),
        incidents: Sequence[dict[str, Any]] = (),
    ) -> int: ...
    def unsent(self) -> list[OutboxItem]: ...
    def claim(self, item: OutboxItem, *, now: int, stale_s: int) -> bool: ...
    def mark_sent(self, item: OutboxItem, *, now: int, message_id: str) -> None: ...
    def release_claim(self, item: OutboxItem) -> None: ...
    def open_incidents(self) -> list[dict[str, Any]]: ...


@cache
def _default_table_resource(table_name: str) -> Any:
    import boto3

    from monitor.budget import DYNAMODB_READ_S, client_config

    return boto3.resource("dynamodb", config=client_config(read_timeout_s=DYNAMODB_READ_S)).Table(table_name)


def _conditional_failed(err: ClientError) -> bool:
    return err.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


class DynamoDbIncidentStore:
    def __init__(self, table_name: str, *, table: Any | None = None, ttl_days: int = 30) -> None:
        self.table_name = table_name
        self._table = table
        self.ttl_s = ttl_days * 86400

    @property
    def table(self) -> Any:
        if self._table is None:
            self._table = _default_table_resource(self.table_name)
        return self._table

    # -- lease -----------------------------------------------------------------------------------

    def acquire_lease(self, owner: str, *, now: int, lease_s: int) -> bool:
        """Take the run lease unless another live run holds it."""
        try:
            self.table.put_item(
                Item={
                    "pk": "LEASE",
                    "sk": "monitor",
                    "owner": owner,
                    "lease_until": now + lease_s,
                    "expires_at": now + lease_s + 86400,
                },
                ConditionExpression="attribute_not_exists(pk) OR lease_until < :now OR #o = :owner",
                ExpressionAttributeNames={"#o": "owner"},
                ExpressionAttributeValues={":now": now, ":owner": owner},
            )
        except ClientError as err:
            if _conditional_failed(err):
                return False
            raise
        return True

    def release_lease(self, owner: str) -> None:
        try:
            self.table.delete_item(
                Key={"pk": "LEASE", "sk": "monitor"},
                ConditionExpression="#o = :owner",
                ExpressionAttributeNames={"#o": "owner"},
                ExpressionAttributeValues={":owner": owner},
            )
        except ClientError as err:
            if not _conditional_failed(err):
                raise

    # -- model state -----------------------------------------------------------------------------

    def load_state(self) -> LoadedState | None:
        head = self.table.get_item(Key={"pk": "STATE", "sk": "head"}, ConsistentRead=True).get("Item")
        if head is None:
            return None
        try:
            generation, chunks, digest = int(head["generation"]), int(head["chunks"]), str(head["sha256"])
            models_ref = str(head["models_ref"]) if head.get("models_ref") else None
        except (KeyError, TypeError, ValueError) as err:
            raise StoreError(f"model state head is malformed: {err}") from err
        blob = self._read_blob(f"blob#{generation:012d}#{digest[:16]}", chunks, digest)
        models = None
        if models_ref is not None:
            try:
                models_digest, models_chunks = models_ref.split(":")
                models = self._read_blob(f"models#{models_digest[:16]}", int(models_chunks), models_digest)
            except ValueError as err:
                raise StoreError(f"model state head has a malformed models_ref {models_ref!r}") from err
        return LoadedState(blob=blob, generation=generation, models=models, models_ref=models_ref)

    def _read_blob(self, prefix: str, chunks: int, digest: str) -> bytes:
        parts: list[bytes] = []
        for i in range(chunks):
            item = self.table.get_item(
                Key={"pk": "STATE", "sk": f"{prefix}#{i:04d}"}, ConsistentRead=True
            ).get("Item")
            if item is None or "data" not in item:
                raise StoreError(f"model state {prefix} is missing chunk {i}/{chunks}")
            parts.append(bytes(item["data"]))
        blob = b"".join(parts)
        if hashlib.sha256(blob).hexdigest() != digest:
            raise StoreError(f"model state {prefix} fails its checksum")
        return blob

    def _write_blob(self, prefix: str, blob: bytes, *, expires_at: int) -> int:
        chunks = [blob[i : i + CHUNK_BYTES] for i in range(0, len(blob), CHUNK_BYTES)] or [b""]
        with self.table.batch_writer() as batch:
            for i, chunk in enumerate(chunks):
                batch.put_item(
                    Item={
                        "pk": "STATE",
                        "sk": f"{prefix}#{i:04d}",
                        "data": Binary(chunk),
                        "expires_at": expires_at,
                    }
                )
        return len(chunks)

    def current_generation(self) -> int:
        head = self.table.get_item(Key={"pk": "STATE", "sk": "head"}, ConsistentRead=True).get("Item")
        return int(head["generation"]) if head and "generation" in head else 0

    def save_state(
        self,
        blob: bytes,
        *,
        expected_generation: int,
        now: int,
        models: bytes | None = None,
        models_ref: str | None = None,
        outbox: Sequence[OutboxItem] = (),
        incidents: Sequence[dict[str, Any]] = (),
    ) -> int:
        """Write a new generation (online blob; a new models checkpoint or the current one's ref),
        committed with the run's outbox items and incidents.

        Chunks are written first under keys that carry their content hash, then the head switches
        to them with a conditional write in one transaction with the outbox items and incidents: a
        writer that loses the race cannot damage the chunks of the generation that won it, readers
        never see half a state, and no transition exists without the state that produced it. Old
        chunks expire by TTL.
        """
        generation = expected_generation + 1
        digest = hashlib.sha256(blob).hexdigest()
        # kept a while after being superseded (readers of the previous head)
        chunks = self._write_blob(f"blob#{generation:012d}#{digest[:16]}", blob, expires_at=now + 3 * 86400)
        if models is not None:
            models_digest = hashlib.sha256(models).hexdigest()
            n = self._write_blob(f"models#{models_digest[:16]}", models, expires_at=now + 7 * 86400)
            models_ref = f"{models_digest}:{n}"
        head: dict[str, Any] = {
            "pk": "STATE",
            "sk": "head",
            "generation": generation,
            "chunks": chunks,
            "sha256": digest,
            "size": len(blob),
            "saved_at": now,
        }
        if models_ref:
            head["models_ref"] = models_ref
        put_head: dict[str, Any] = {"TableName": self.table_name, "Item": head}
        if expected_generation == 0:
            put_head["ConditionExpression"] = "attribute_not_exists(pk)"
        else:
            put_head["ConditionExpression"] = "generation = :expected"
            put_head["ExpressionAttributeValues"] = {":expected": expected_generation}
        actions = [self._outbox_action(i) for i in outbox] + [
            {"Put": {"TableName": self.table_name, "Item": self._incident_item(i, now=now)}}
            for i in incidents
        ]
        batches = _transactions(actions, last={"Put": put_head})
        # The same token on a retried call (botocore's retries after a timeout) makes it idempotent for 10
        # minutes: a commit that did happen is not reported as a conflict with itself. The token is the
        # digest of the transaction itself: DynamoDB scopes tokens to the account and region, so one made
        # of the generation and the blob alone was reused by other writes (another stage's monitor at the
        # same generation; a retried save with other items) and answered IdempotentParameterMismatch.
        for batch in batches[:-1]:  # only when the run's items do not fit one transaction
            self.table.meta.client.transact_write_items(TransactItems=batch, ClientRequestToken=_token(batch))
        try:
            self.table.meta.client.transact_write_items(
                TransactItems=batches[-1], ClientRequestToken=_token(batches[-1])
            )
        except ClientError as err:
            reasons = err.response.get("CancellationReasons") or []
            if reasons and reasons[-1].get("Code") == "ConditionalCheckFailed":
                raise StateConflictError(
                    f"model state changed since generation {expected_generation} was loaded"
                ) from err
            raise
        return generation

    def _outbox_action(self, item: OutboxItem) -> dict[str, Any]:
        """An outbox item as an update that creates it and never changes one that exists (a sent
        item stays sent): idempotent, so it needs no condition that could cancel the transaction."""
        attributes = {
            **item.model_dump(mode="json", exclude_none=True, exclude={"message"}),
            "message": _to_json_str(item.message),
            "expires_at": item.created_at + self.ttl_s,
        }
        names = {f"#a{i}": k for i, k in enumerate(attributes)}
        return {
            "Update": {
                "TableName": self.table_name,
                "Key": {"pk": "OUTBOX", "sk": item.dedup_key},
                "UpdateExpression": "SET "
                + ", ".join(f"#a{i} = if_not_exists(#a{i}, :v{i})" for i in range(len(attributes))),
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": {f":v{i}": v for i, v in enumerate(attributes.values())},
            }
        }

    # -- outbox ----------------------------------------------------------------------------------

    def add_to_outbox(self, item: OutboxItem) -> bool:
        """Record a notification once; False if this dedup key was recorded before (nothing changes)."""
        try:
            self.table.put_item(
                Item={
                    "pk": "OUTBOX",
                    "sk": item.dedup_key,
                    **item.model_dump(mode="json", exclude_none=True, exclude={"message"}),
                    "message": _to_json_str(item.message),
                    "expires_at": item.created_at + self.ttl_s,
                },
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as err:
            if _conditional_failed(err):
                return False
            raise
        return True

    def unsent(self) -> list[OutboxItem]:
        """Outbox items not yet sent, oldest transition first; malformed ones are logged and skipped."""
        items: list[OutboxItem] = []
        for raw in self._query(
            KeyConditionExpression="pk = :pk",
            FilterExpression="#s <> :sent",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":pk": "OUTBOX", ":sent": "sent"},
            ConsistentRead=True,
        ):
            try:
                items.append(OutboxItem.model_validate(_plain(raw)))
            except ValidationError as err:
                logger.error("malformed outbox item %s left in place: %s", raw.get("sk"), err)
        return sorted(items, key=lambda i: (i.created_at, i.incident_id, i.seq))

    def claim(self, item: OutboxItem, *, now: int, stale_s: int) -> bool:
        """pending -> publishing (or take over a stale claim); False if another run has it or it is sent."""
        try:
            self.table.update_item(
                Key={"pk": "OUTBOX", "sk": item.dedup_key},
                UpdateExpression="SET #s = :publishing, claimed_at = :now",
                ConditionExpression="#s = :pending OR (#s = :publishing AND claimed_at < :stale)",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={
                    ":publishing": "publishing",
                    ":pending": "pending",
                    ":now": now,
                    ":stale": now - stale_s,
                },
            )
        except ClientError as err:
            if _conditional_failed(err):
                return False
            raise
        return True

    def mark_sent(self, item: OutboxItem, *, now: int, message_id: str) -> None:
        self.table.update_item(
            Key={"pk": "OUTBOX", "sk": item.dedup_key},
            UpdateExpression="SET #s = :sent, sent_at = :now, message_id = :mid",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":sent": "sent", ":now": now, ":mid": message_id},
        )

    def release_claim(self, item: OutboxItem) -> None:
        """publishing -> pending after a failed publish, so the next run retries it."""
        try:
            self.table.update_item(
                Key={"pk": "OUTBOX", "sk": item.dedup_key},
                UpdateExpression="SET #s = :pending",
                ConditionExpression="#s = :publishing",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={":pending": "pending", ":publishing": "publishing"},
            )
        except ClientError as err:
            if not _conditional_failed(err):
                raise

    # -- incidents -------------------------------------------------------------------------------

    def put_incident(self, incident: dict[str, Any], *, now: int) -> None:
        self.table.put_item(Item=self._incident_item(incident, now=now))

    def _incident_item(self, incident: dict[str, Any], *, now: int) -> dict[str, Any]:
        return {
            "pk": "INCIDENT",
            "sk": str(incident["id"]),
            "incident": _to_json_str(incident),
            "status": str(incident.get("status", "open")),
            "severity": str(incident.get("severity", "")),
            "resource": str(incident.get("resource", "")),
            "updated_at": now,
            "expires_at": now + self.ttl_s,
        }

    def open_incidents(self) -> list[dict[str, Any]]:
        """Incidents last saved open (what a rebuilt model state must not forget)."""
        return self.incidents(status="open")

    def incidents(self, *, status: str | None = None) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        query: dict[str, Any] = {
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": "INCIDENT"},
            "ConsistentRead": True,
        }
        if status is not None:
            query["FilterExpression"] = "#s = :status"
            query["ExpressionAttributeNames"] = {"#s": "status"}
            query["ExpressionAttributeValues"][":status"] = status
        for raw in self._query(**query):
            try:
                out.append(json.loads(raw["incident"]))
            except (KeyError, ValueError) as err:
                logger.error("malformed incident item %s skipped: %s", raw.get("sk"), err)
        return out

    def _query(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        """Every item the query matches, all pages (the resource's client keeps the Python types)."""
        paginator = self.table.meta.client.get_paginator("query")
        for page in paginator.paginate(TableName=self.table.name, **kwargs):
            yield from page.get("Items", [])


def _transactions(actions: list[dict[str, Any]], *, last: dict[str, Any]) -> list[list[dict[str, Any]]]:
    """`actions` then `last` in TransactWriteItems calls within DynamoDB's limits; `last` (the state
    head) goes into the final call, with as many of the actions as fit."""
    batches: list[list[dict[str, Any]]] = [[]]
    size = 0
    for action in [*actions, last]:
        n = len(json.dumps(action, default=str))
        if len(batches[-1]) >= TRANSACT_MAX_ITEMS or (batches[-1] and size + n > TRANSACT_MAX_BYTES):
            batches.append([])
            size = 0
        batches[-1].append(action)
        size += n
    return batches


def _to_json_str(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def _plain(value: Any) -> Any:
    """DynamoDB resource values (Decimal, sets) -> plain JSON types."""
    from decimal import Decimal

    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def _token(transaction: list[dict[str, Any]]) -> str:
    """A TransactWriteItems ClientRequestToken (<= 36 characters) that only this transaction has."""
    canonical = json.dumps(transaction, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:36]
