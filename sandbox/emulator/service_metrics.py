"""The AWS/SQS counters, AWS/DynamoDB and AWS/Events metrics that those services publish, for moto.

moto publishes no CloudWatch metrics. Hooks installed in the emulator process (`install_hooks`) count
what its backends do, per minute, and `ServiceMetrics.datums(now)` turns the counts into the datums
AWS would publish for those minutes:

- **AWS/SQS** (``QueueName``), every minute for every queue, zeros included, as SQS does for active
  queues: ``NumberOfMessagesSent`` (SendMessage/SendMessageBatch entries; messages moved to a DLQ by
  a redrive policy are not counted, as on AWS), ``NumberOfMessagesReceived``, ``NumberOfMessagesDeleted``,
  ``NumberOfEmptyReceives``; ``SentMessageSize`` (bytes, one value per message sent: published only in
  minutes with sends, as a size needs a message).
- **AWS/DynamoDB**: ``ConsumedReadCapacityUnits`` / ``ConsumedWriteCapacityUnits`` (``TableName``) every
  minute for every table, zeros included; ``SuccessfulRequestLatency`` (``TableName`` + ``Operation``,
  milliseconds, one value per successful request: the emulator's own service time). Capacity is
  estimated as DynamoDB bills on-demand requests: a write 1 WCU per started KB of the item written
  (the request's item, or its key and values for UpdateItem/DeleteItem), transactions twice that; a
  read 0.5 RCU per started 4 KB returned (eventually consistent; 1 with ``ConsistentRead``,
  transactions 2), at least 0.5 per request. Not modelled: throttles and system errors (DynamoDB
  publishes those only when they happen, and the emulator never throttles), indexes' own capacity.
- **AWS/Events** (``EventBusName`` + ``RuleName``): ``Invocations`` (one per target an event was sent
  to) and ``FailedInvocations`` (a target delivery that raised), in the minutes they happen; EventBridge
  publishes nothing for a rule in a minute it did not match.
"""

from __future__ import annotations

import functools
import json
import math
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

_installed = False
_DYNAMODB_READS = {
    "get_item": "GetItem",
    "batch_get_item": "BatchGetItem",
    "query": "Query",
    "scan": "Scan",
    "transact_get_items": "TransactGetItems",
}
_DYNAMODB_WRITES = {
    "put_item": "PutItem",
    "update_item": "UpdateItem",
    "delete_item": "DeleteItem",
    "batch_write_item": "BatchWriteItem",
    "transact_write_items": "TransactWriteItems",
}


def _minute(now_s: float) -> int:
    return int(now_s // 60 * 60)


def _size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":"), default=str).encode())


class ServiceMetrics:
    """Per-minute counts of what moto's SQS, DynamoDB and EventBridge backends did (thread-safe)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str, tuple[tuple[str, str], ...], int], float] = defaultdict(float)
        self._values: dict[tuple[str, str, tuple[tuple[str, str], ...], int], list[float]] = defaultdict(list)

    def count(self, namespace: str, name: str, dims: dict[str, str], value: float = 1.0) -> None:
        key = (namespace, name, tuple(sorted(dims.items())), _minute(self.clock()))
        with self._lock:
            self._counts[key] += value

    def sample(self, namespace: str, name: str, dims: dict[str, str], value: float) -> None:
        key = (namespace, name, tuple(sorted(dims.items())), _minute(self.clock()))
        with self._lock:
            self._values[key].append(value)

    def datums(
        self, now_s: float, *, queues: list[str], tables: list[str]
    ) -> dict[str, list[dict[str, Any]]]:
        """The datums per namespace for everything counted so far (then forgotten), plus this minute's
        zeros of the always-published counters for every queue and table."""
        with self._lock:
            counts, self._counts = self._counts, defaultdict(float)
            values, self._values = self._values, defaultdict(list)
        stamp = _minute(now_s)
        for queue in queues:
            for name in (
                "NumberOfMessagesSent",
                "NumberOfMessagesReceived",
                "NumberOfMessagesDeleted",
                "NumberOfEmptyReceives",
            ):
                counts.setdefault(("AWS/SQS", name, (("QueueName", queue),), stamp), 0.0)
        for table in tables:
            for name in ("ConsumedReadCapacityUnits", "ConsumedWriteCapacityUnits"):
                counts.setdefault(("AWS/DynamoDB", name, (("TableName", table),), stamp), 0.0)
        out: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for (namespace, name, dims, minute), total in counts.items():
            out[namespace].append(_datum(name, dims, minute, {"Value": total}, _UNITS.get(name, "Count")))
        for (namespace, name, dims, minute), samples in values.items():
            out[namespace].append(_datum(name, dims, minute, {"Values": samples}, _UNITS.get(name, "None")))
        return dict(out)


_UNITS = {
    "SentMessageSize": "Bytes",
    "SuccessfulRequestLatency": "Milliseconds",
}


def _datum(
    name: str, dims: tuple[tuple[str, str], ...], minute: int, value: dict[str, Any], unit: str
) -> dict[str, Any]:
    return {
        "MetricName": name,
        "Dimensions": [{"Name": k, "Value": v} for k, v in dims],
        "Timestamp": minute,
        "Unit": unit,
        **value,
    }


RECORDER = ServiceMetrics()


# ----------------------------------------------------------------------------------------- hooks


def _sqs_hooks(recorder: ServiceMetrics) -> None:
    from moto.sqs.models import SQSBackend

    send, send_batch = SQSBackend.send_message, SQSBackend.send_message_batch
    receive, delete = SQSBackend.receive_message, SQSBackend.delete_message

    def sent(queue_name: str, body: str) -> None:
        dims = {"QueueName": queue_name}
        recorder.count("AWS/SQS", "NumberOfMessagesSent", dims)
        recorder.sample("AWS/SQS", "SentMessageSize", dims, float(len(body.encode())))

    @functools.wraps(send)
    def send_message(self: Any, queue_name: str, message_body: str, *args: Any, **kwargs: Any) -> Any:
        message = send(self, queue_name, message_body, *args, **kwargs)
        sent(queue_name, message_body)
        return message

    @functools.wraps(send_batch)
    def send_message_batch(self: Any, queue_name: str, entries: dict[str, dict[str, Any]]) -> Any:
        # The batch sends each entry through send_message (counted there).
        return send_batch(self, queue_name, entries)

    @functools.wraps(receive)
    def receive_message(self: Any, queue_name: str, *args: Any, **kwargs: Any) -> Any:
        messages = receive(self, queue_name, *args, **kwargs)
        dims = {"QueueName": queue_name}
        if messages:
            recorder.count("AWS/SQS", "NumberOfMessagesReceived", dims, float(len(messages)))
        else:
            recorder.count("AWS/SQS", "NumberOfEmptyReceives", dims)
        return messages

    @functools.wraps(delete)
    def delete_message(self: Any, queue_name: str, receipt_handle: str) -> Any:
        result = delete(self, queue_name, receipt_handle)
        recorder.count("AWS/SQS", "NumberOfMessagesDeleted", {"QueueName": queue_name})
        return result

    SQSBackend.send_message = send_message  # type: ignore[method-assign]
    SQSBackend.send_message_batch = send_message_batch  # type: ignore[method-assign]
    SQSBackend.receive_message = receive_message  # type: ignore[method-assign]
    SQSBackend.delete_message = delete_message  # type: ignore[method-assign]


def _write_units(operation: str, body: dict[str, Any]) -> dict[str, float]:
    """WCU per table of one write request (1 per started KB per item; transactions twice)."""
    units: dict[str, float] = defaultdict(float)

    def item_units(item: Any) -> float:
        return float(max(1, math.ceil(_size(item) / 1024)))

    if operation == "BatchWriteItem":
        for table, requests in (body.get("RequestItems") or {}).items():
            for request in requests:
                put = request.get("PutRequest", {}).get("Item")
                units[table] += item_units(put if put is not None else request.get("DeleteRequest", {}))
    elif operation == "TransactWriteItems":
        for action in body.get("TransactItems") or []:
            for detail in action.values():
                payload = detail.get("Item") or [detail.get("Key"), detail.get("ExpressionAttributeValues")]
                units[str(detail.get("TableName"))] += 2 * item_units(payload)
    else:
        payload = body.get("Item") or [body.get("Key"), body.get("ExpressionAttributeValues")]
        units[str(body.get("TableName"))] += item_units(payload)
    return units


def _read_units(operation: str, body: dict[str, Any], result: Any) -> dict[str, float]:
    """RCU per table of one read request (0.5 per started 4 KB returned, eventually consistent)."""
    units: dict[str, float] = defaultdict(float)
    per_4kb = 1.0 if body.get("ConsistentRead") else 0.5

    def read_units(returned: Any, rate: float) -> float:
        return max(0.5, math.ceil(_size(returned) / 4096) * rate)

    if operation == "BatchGetItem":
        responses = (result or {}).get("Responses") or {}
        for table in body.get("RequestItems") or {}:
            units[table] += read_units(responses.get(table, []), per_4kb)
    elif operation == "TransactGetItems":
        for action in body.get("TransactItems") or []:
            for detail in action.values():
                units[str(detail.get("TableName"))] += read_units(detail.get("Key"), 2.0)
    else:
        returned = (result or {}).get("Item") or (result or {}).get("Items") or []
        units[str(body.get("TableName"))] += read_units(returned, per_4kb)
    return units


def _tables_of(operation: str, body: dict[str, Any]) -> list[str]:
    if operation in ("BatchWriteItem", "BatchGetItem"):
        return list(body.get("RequestItems") or {})
    if operation.startswith("Transact"):
        return sorted(
            {str(d.get("TableName")) for action in body.get("TransactItems") or [] for d in action.values()}
        )
    return [str(body.get("TableName"))]


def _dynamodb_hooks(recorder: ServiceMetrics) -> None:
    from moto.dynamodb.responses import DynamoHandler

    def wrap(method_name: str, operation: str, *, write: bool) -> None:
        method = getattr(DynamoHandler, method_name)

        @functools.wraps(method)
        def measured(self: Any) -> Any:
            started = time.perf_counter()
            response = method(self)  # raises on errors: not a successful request
            elapsed_ms = (time.perf_counter() - started) * 1000.0
            body = self.body if isinstance(self.body, dict) else {}
            try:
                result = getattr(response, "result", None)
                units = _write_units(operation, body) if write else _read_units(operation, body, result)
                metric = "ConsumedWriteCapacityUnits" if write else "ConsumedReadCapacityUnits"
                for table, value in units.items():
                    recorder.count("AWS/DynamoDB", metric, {"TableName": table}, value)
                for table in _tables_of(operation, body):
                    recorder.sample(
                        "AWS/DynamoDB",
                        "SuccessfulRequestLatency",
                        {"TableName": table, "Operation": operation},
                        round(elapsed_ms, 3),
                    )
            except Exception:  # a metric must never fail the request
                pass
            return response

        setattr(DynamoHandler, method_name, measured)

    for name, operation in _DYNAMODB_READS.items():
        wrap(name, operation, write=False)
    for name, operation in _DYNAMODB_WRITES.items():
        wrap(name, operation, write=True)


def _events_hooks(recorder: ServiceMetrics) -> None:
    from moto.events.models import Rule

    original = Rule.send_to_targets

    @functools.wraps(original)
    def send_to_targets(self: Any, event: Any, *args: Any, **kwargs: Any) -> Any:
        if not self.event_pattern.matches_event(event):
            return original(self, event, *args, **kwargs)
        dims = {"EventBusName": str(self.event_bus_name), "RuleName": str(self.name)}
        targets = float(len(self.targets))
        try:
            result = original(self, event, *args, **kwargs)
        except Exception:
            recorder.count("AWS/Events", "FailedInvocations", dims, targets)
            raise
        if targets:
            recorder.count("AWS/Events", "Invocations", dims, targets)
        return result

    Rule.send_to_targets = send_to_targets  # type: ignore[method-assign,assignment]


def install_hooks(recorder: ServiceMetrics = RECORDER) -> None:
    """Count SQS, DynamoDB and EventBridge activity in this (the emulator's) process. Idempotent."""
    global _installed
    if _installed:
        return
    _sqs_hooks(recorder)
    _dynamodb_hooks(recorder)
    _events_hooks(recorder)
    _installed = True


def table_names() -> list[str]:
    from moto.dynamodb.models import dynamodb_backends

    names: list[str] = []
    for _account, _region, backend in dynamodb_backends.iter_backends():
        names.extend(backend.tables)  # type: ignore[attr-defined]
    return names
