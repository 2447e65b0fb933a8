"""Fixes to moto's behaviour that the emulator process installs before serving (see emulator.py).

DynamoDB serializes writes to an item; moto does not: ``TransactWriteItems`` checks conditions and
writes without a lock, and a cancelled transaction restores a deep copy of the tables taken when it
started, erasing writes that other request threads committed meanwhile (seen: two winners for one
optimistic-concurrency version, and a lost outbox item). One re-entrant lock around the backend's
data operations gives the emulator the atomicity the service relies on.

DynamoDB makes ``TransactWriteItems`` idempotent by its ``ClientRequestToken`` (botocore fills one in
per call and keeps it across its retries): a call repeated with the token of one that succeeded, within
10 minutes, succeeds without writing again. moto ignores the token, so a retry after a read timeout (the
first attempt committed, its answer came too late) replays the transaction, fails its own version
condition and turns a committed change into a 409 (seen in bench_reliability's outbox row). The emulator
keeps each successful transaction's token, items and answer for 10 minutes and answers a repeat as
DynamoDB does (the same answer; other items under the same token: IdempotentParameterMismatchException).
"""

from __future__ import annotations

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

    for name in _DYNAMODB_OPERATIONS:
        if hasattr(DynamoDBBackend, name):
            setattr(DynamoDBBackend, name, _serialized(getattr(DynamoDBBackend, name)))
    DynamoHandler.transact_write_items = _idempotent_transactions(DynamoHandler.transact_write_items)  # type: ignore[method-assign,assignment]
    _installed = True
