"""Fixes to moto's behaviour that the emulator process installs before serving (see emulator.py).

DynamoDB serializes writes to an item; moto does not: ``TransactWriteItems`` checks conditions and
writes without a lock, and a cancelled transaction restores a deep copy of the tables taken when it
started, erasing writes that other request threads committed meanwhile (seen: two winners for one
optimistic-concurrency version, and a lost outbox item). One re-entrant lock around the backend's
data operations gives the emulator the atomicity the service relies on.

moto's ``TransactWriteItems`` also deep-copies every table it touches, stream records included, before
each transaction, to restore them if it fails: its cost grows with everything ever written to those
tables (the outbox's stream never shrinks), so the sandbox's and the benchmarks' writes got slower and
slower until the service's 5 s read timeout cut them off (bench_reliability's outbox row, at --scale
0.1, answered 500). `transact_write_items` below keeps moto's semantics with an undo log of the items it
writes instead: every condition is checked first (a transaction touches each item once, so no
condition depends on another operation of the same transaction), nothing is written if one fails;
then the writes, and should one raise, the items written so far and their stream records are put back.

DynamoDB makes ``TransactWriteItems`` idempotent by its ``ClientRequestToken`` (botocore fills one in
per call and keeps it across its retries): a call repeated with the token of one that succeeded, within
10 minutes, succeeds without writing again. moto ignores the token, so a retry after a read timeout (the
first attempt committed, its answer came too late) replays the transaction, fails its own version
condition and turns a committed change into a 409 (seen in bench_reliability's outbox row). The emulator
keeps each successful transaction's token, items and answer for 10 minutes and answers a repeat as
DynamoDB does (the same answer; other items under the same token: IdempotentParameterMismatchException).
"""

from __future__ import annotations

import copy
import functools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

_DYNAMODB_OPERATIONS = (
    "get_item",
    "put_item",
    "update_item",
    "delete_item",
    "query",
    "scan",
    "transact_write_items",
    "transact_get_items",
    "batch_write_item",
    "batch_get_item",
)
_dynamodb_lock = threading.RLock()
_installed = False
TOKEN_TTL_S = 600.0  # DynamoDB: "a client token is valid for 10 minutes after the first request"


@dataclass(frozen=True)
class _Committed:
    items: str  # the TransactItems, canonical JSON
    answer: Any
    at: float


_tokens: dict[tuple[str, str, str], _Committed] = {}


def _serialized(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def locked(*args: Any, **kwargs: Any) -> Any:
        with _dynamodb_lock:
            return method(*args, **kwargs)

    return locked


def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
    """moto's DynamoDBBackend.transact_write_items, with an undo log instead of copies of whole tables."""
    from moto.dynamodb.comparisons import get_filter_expression
    from moto.dynamodb.exceptions import (
        ConditionalCheckFailed,
        MockValidationException,
        MultipleTransactionsException,
        TooManyTransactionsException,
        TransactionCanceledException,
        TransactWriteSingleOpException,
    )
    from moto.dynamodb.models.dynamo_type import DynamoType

    if len(transact_items) > 100:
        raise TooManyTransactionsException()
    ops: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
    seen: set[tuple[str, str]] = set()
    errors: list[tuple[str | None, str | None, dict[str, Any] | None]] = []
    for item in transact_items:  # 1. check every condition, write nothing
        if len(item) > 1:
            raise TransactWriteSingleOpException
        original: dict[str, Any] | None = None
        try:
            op_type, op = next(iter(item.items()))
            if op_type not in {"ConditionCheck", "Put", "Delete", "Update"}:
                raise ValueError("Unsupported transaction operation")
            table = self.get_table(op["TableName"])
            if op_type == "Put":
                key = {table.hash_key_attr: op["Item"][table.hash_key_attr]}
                if table.range_key_attr is not None:
                    key[table.range_key_attr] = op["Item"][table.range_key_attr]
            else:
                key = op["Key"]
            unique = (str(op["TableName"]), str(dict(sorted(key.items()))))
            if unique in seen:
                raise MultipleTransactionsException()
            seen.add(unique)
            ops.append((op_type, op, key))
            current = self.get_item(op["TableName"], key)
            condition = op.get("ConditionExpression")
            if condition is not None:
                check = get_filter_expression(
                    condition, op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
                )
                if not check.expr(current):
                    if op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current:
                        original = current.to_json()["Attributes"]
                    raise ConditionalCheckFailed(item=original)
            errors.append((None, None, None))
        except (MultipleTransactionsException, MockValidationException):
            raise
        except ConditionalCheckFailed as err:
            errors.append(("ConditionalCheckFailed", str(err.message), original))
        except Exception as err:
            errors.append((type(err).__name__, str(err), original))
    if any(code is not None for code, _, _ in errors):
        raise TransactionCanceledException(errors)

    undo: list[tuple[Any, Any, Any, Any]] = []  # (table, hash, range, the item before, or None)
    streams: dict[int, tuple[Any, int]] = {}
    failed = 0  # the operation being written
    try:  # 2. write, remembering what each write replaces
        for index, (op_type, op, key) in enumerate(ops):
            failed = index
            if op_type == "ConditionCheck":
                continue
            name = op["TableName"]
            table = self.get_table(name)
            if table.stream_shard is not None and id(table) not in streams:
                streams[id(table)] = (table.stream_shard, len(table.stream_shard.items))
            hash_value = DynamoType(key[table.hash_key_attr])
            range_value = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
            undo.append((table, hash_value, range_value, copy.deepcopy(self.get_item(name, key))))
            names, values = op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
            if op_type == "Put":
                self.put_item(
                    name, op["Item"], expression_attribute_names=names, expression_attribute_values=values
                )
            elif op_type == "Delete":
                self.delete_item(
                    name, key, expression_attribute_names=names, expression_attribute_values=values
                )
            else:
                self.update_item(
                    name,
                    key,
                    update_expression=op["UpdateExpression"],
                    expression_attribute_names=names,
                    expression_attribute_values=values,
                )
    except Exception as err:
        for table, hash_value, range_value, before in reversed(undo):
            if range_value is None:
                if before is None:
                    table.items.pop(hash_value, None)
                else:
                    table.items[hash_value] = before
            elif before is None:
                table.items.get(hash_value, {}).pop(range_value, None)
            else:
                table.items[hash_value][range_value] = before
        for shard, length in streams.values():
            del shard.items[length:]
        if isinstance(err, (MultipleTransactionsException, MockValidationException)):
            raise
        raise TransactionCanceledException(
            [
                (type(err).__name__, str(err), None) if i == failed else (None, None, None)
                for i in range(len(ops))
            ]
        ) from err


def _idempotent_transactions(handler: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Wrap moto's TransactWriteItems response handler with DynamoDB's ClientRequestToken semantics."""

    @functools.wraps(handler)
    def transact_write_items(self: Any) -> Any:
        token = self.body.get("ClientRequestToken")
        if not token:
            return handler(self)
        from moto.dynamodb.exceptions import ERROR_TYPE_PREFIX, DynamodbException

        key = (str(self.current_account), str(self.region), str(token))
        items = json.dumps(self.body.get("TransactItems"), sort_keys=True)
        with _dynamodb_lock:  # check and execute as one step (re-entrant: the backend takes it too)
            now = time.monotonic()
            for stale in [k for k, c in _tokens.items() if now - c.at >= TOKEN_TTL_S]:
                del _tokens[stale]
            committed = _tokens.get(key)
            if committed is not None:
                if committed.items != items:
                    raise DynamodbException(
                        ERROR_TYPE_PREFIX + "IdempotentParameterMismatchException",
                        "The request uses the same client token as a previous, but non-identical request.",
                    )
                return committed.answer  # the first call's answer; nothing written again
            answer = handler(self)  # raises on a cancelled transaction: only successes are kept
            _tokens[key] = _Committed(items=items, answer=answer, at=now)
            return answer

    return transact_write_items


def serialize_dynamodb() -> None:
    """Make every DynamoDB data operation in this process atomic with respect to the others, and
    TransactWriteItems idempotent by its ClientRequestToken. Idempotent."""
    global _installed
    if _installed:
        return
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.responses import DynamoHandler

    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]
    for name in _DYNAMODB_OPERATIONS:
        if hasattr(DynamoDBBackend, name):
            setattr(DynamoDBBackend, name, _serialized(getattr(DynamoDBBackend, name)))
    DynamoHandler.transact_write_items = _idempotent_transactions(DynamoHandler.transact_write_items)  # type: ignore[method-assign,assignment]
    _installed = True
