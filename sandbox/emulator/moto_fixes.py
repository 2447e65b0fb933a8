"""Fixes to moto's behaviour that the emulator process installs before serving (see emulator.py).

DynamoDB serializes writes to an item; moto does not: ``TransactWriteItems`` checks conditions and
writes without a lock, and a cancelled transaction restores a deep copy of the tables taken when it
started, erasing writes that other request threads committed meanwhile (seen: two winners for one
optimistic-concurrency version, and a lost outbox item). One re-entrant lock around the backend's
data operations gives the emulator the atomicity the service relies on.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
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


def _serialized(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def locked(*args: Any, **kwargs: Any) -> Any:
        with _dynamodb_lock:
            return method(*args, **kwargs)

    return locked


def serialize_dynamodb() -> None:
    """Make every DynamoDB data operation in this process atomic with respect to the others. Idempotent."""
    global _installed
    if _installed:
        return
    from moto.dynamodb.models import DynamoDBBackend

    for name in _DYNAMODB_OPERATIONS:
        if hasattr(DynamoDBBackend, name):
            setattr(DynamoDBBackend, name, _serialized(getattr(DynamoDBBackend, name)))
    _installed = True
