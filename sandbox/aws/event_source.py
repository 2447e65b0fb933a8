"""The SQS event source mapping, played locally against the emulator (or any SQS) over HTTP.

`SqsEventSource` does what AWS Lambda's poller does for an SQS queue:

1. ``ReceiveMessage`` (all system and message attributes) until ``batch_size`` messages are in hand,
   the batching window has elapsed, or the queue has nothing visible;
2. turns them into a real SQS event (``Records`` with ``messageId``, ``receiptHandle``, ``body``,
   ``attributes``, ``messageAttributes``, ``md5OfBody``, ``eventSource``, ``eventSourceARN``,
   ``awsRegion``) and invokes the function once through ``invoke``;
3. deletes the messages that succeeded. With ``report_batch_item_failures`` the ids in the
   response's ``batchItemFailures`` are kept; a response naming an id that is not in the batch (or
   an empty/missing ``itemIdentifier``) fails the whole batch, as in AWS. If the invocation raises,
   nothing is deleted.

Messages that are not deleted become visible again when their visibility timeout ends (optionally
shortened with ``failure_visibility_timeout_s`` so retries come sooner) and are received again.
Dead-lettering is left to SQS: moto 5.2's server applies the queue's redrive policy on receive —
a message already received ``maxReceiveCount`` times is moved to the DLQ instead of being
delivered (``tests/ingest/test_event_source.py`` pins that behaviour) — so the poller never moves
messages itself, exactly like the real event source mapping.

``poll_once()`` runs one cycle and returns a `PollResult`; ``start()``/``stop()`` run cycles on
background threads (sleeping ``idle_sleep_s`` after an empty poll and ``error_backoff_s`` after a
failed invocation, e.g. a throttle). ``paused`` (or a ``should_poll`` hook returning False)
simulates a stalled consumer: messages pile up in the queue, as they would if the function were
throttled.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from contract.topology import EventSourceSpec

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageTypeDef

log = logging.getLogger(__name__)

LambdaHandler = Callable[[dict[str, Any], Any], Any]
Invoke = Callable[[dict[str, Any]], Any]
"""Invokes the function with one SQS event and returns its response (raises if the invocation failed)."""

_SQS_MAX_RECEIVE = 10  # ReceiveMessage and DeleteMessageBatch take at most 10 messages per call


class LocalLambdaContext:
    """The attributes of a Lambda context object that handlers and Powertools read."""

    def __init__(self, *, function_name: str, memory_limit_in_mb: int = 256, timeout_s: float = 30.0) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{function_name}"
        self.memory_limit_in_mb = memory_limit_in_mb
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = f"local/{self.aws_request_id}"
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class _ItemFailure(BaseModel):
    model_config = ConfigDict(extra="ignore")
    itemIdentifier: str = Field(min_length=1)  # noqa: N815 (AWS's field name)


class BatchResponse(BaseModel):
    """The part of a function's response the event source mapping reads."""

    model_config = ConfigDict(extra="ignore")
    batchItemFailures: list[_ItemFailure] | None = None  # noqa: N815 (AWS's field name)


@dataclass(frozen=True)
class PollResult:
    """One poll cycle: what was received, what the function did with it, what was deleted."""

    received: int = 0
    deleted: int = 0
    failed_message_ids: tuple[str, ...] = ()
    invoked: bool = False
    handler_error: str | None = None  # repr of the exception the invocation raised, if any
    duration_ms: float = 0.0  # of the invocation

    @property
    def failed(self) -> int:
        return len(self.failed_message_ids)


@dataclass(frozen=True)
class EventSourceStats:
    """Totals since the event source was created."""

    polls: int = 0
    invocations: int = 0
    received: int = 0
    deleted: int = 0
    failed: int = 0
    handler_errors: int = 0


class SqsEventSource:
    """Feeds a Lambda handler from an SQS queue the way an event source mapping does."""

    def __init__(
        self,
        queue_url: str,
        handler: LambdaHandler | None = None,
        *,
        function_name: str,
        batch_size: int = 10,
        max_batching_window_s: float = 0.0,
        report_batch_item_failures: bool = True,
        invoke: Invoke | None = None,
        visibility_timeout_s: int | None = None,
        failure_visibility_timeout_s: int | None = None,
        concurrency: int = 1,
        idle_sleep_s: float = 0.2,
        error_backoff_s: float = 1.0,
        should_poll: Callable[[], bool] | None = None,
        sqs_client: SQSClient | None = None,
    ) -> None:
        if handler is None and invoke is None:
            raise ValueError("give the handler to call, or an invoke callable that calls it")
        if not 1 <= batch_size <= 10_000:
            raise ValueError(f"batch_size must be 1..10000, got {batch_size}")
        if batch_size > _SQS_MAX_RECEIVE and max_batching_window_s <= 0:
            raise ValueError("batch_size above 10 needs a batching window (as in AWS)")
        if not 0 <= max_batching_window_s <= 300:
            raise ValueError(f"max_batching_window_s must be 0..300, got {max_batching_window_s}")
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        self.queue_url = queue_url
        self.handler = handler
        self.function_name = function_name
        self.batch_size = batch_size
        self.max_batching_window_s = max_batching_window_s
        self.report_batch_item_failures = report_batch_item_failures
        self.visibility_timeout_s = visibility_timeout_s
        self.failure_visibility_timeout_s = failure_visibility_timeout_s
        self.concurrency = concurrency
        self.idle_sleep_s = idle_sleep_s
        self.error_backoff_s = error_backoff_s
        self.should_poll = should_poll
        self.paused = False
        self._invoke = invoke or self._call_handler
        self._client = sqs_client
        self._queue_arn: str | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._stats = EventSourceStats()

    @classmethod
    def from_spec(
        cls, queue_url: str, handler: LambdaHandler | None, *, spec: EventSourceSpec, **kwargs: Any
    ) -> SqsEventSource:
        """Batch settings from the shared topology (``topology().telemetry_source``); kwargs override."""
        settings: dict[str, Any] = {
            "batch_size": spec.batch_size,
            "max_batching_window_s": spec.max_batching_window_s,
            "report_batch_item_failures": spec.report_batch_item_failures,
        }
        return cls(queue_url, handler, **(settings | kwargs))

    # -- AWS plumbing -------------------------------------------------------------------------

    @property
    def client(self) -> SQSClient:
        if self._client is None:
            self._client = boto3.client("sqs")
        return self._client

    @property
    def queue_arn(self) -> str:
        if self._queue_arn is None:
            attributes = self.client.get_queue_attributes(
                QueueUrl=self.queue_url, AttributeNames=["QueueArn"]
            )
            self._queue_arn = attributes["Attributes"]["QueueArn"]
        return self._queue_arn

    @property
    def stats(self) -> EventSourceStats:
        with self._lock:
            return self._stats

    def _call_handler(self, event: dict[str, Any]) -> Any:
        assert self.handler is not None
        return self.handler(event, LocalLambdaContext(function_name=self.function_name))

    # -- one cycle ------------------------------------------------------------------------------

    def poll_once(self) -> PollResult:
        """Receive one batch, invoke the function once if there is anything, settle the messages."""
        messages = self._receive_batch()
        if not messages:
            self._count(polls=1)
            return PollResult()
        event = build_sqs_event(messages, queue_arn=self.queue_arn)
        started = time.perf_counter()
        handler_error: str | None = None
        try:
            response = self._invoke(event)
        except Exception as err:  # the function failed: the whole batch is retried
            handler_error = repr(err)
            failed_ids = [m["MessageId"] for m in messages]
            log.warning(
                "%s raised %s; %d messages not deleted", self.function_name, handler_error, len(messages)
            )
        else:
            failed_ids = self._failed_ids(response, messages)
        duration_ms = (time.perf_counter() - started) * 1000
        failed = set(failed_ids)
        succeeded = [m for m in messages if m["MessageId"] not in failed]
        deleted = self._delete(succeeded)
        self._release([m for m in messages if m["MessageId"] in failed])
        self._count(
            polls=1,
            invocations=1,
            received=len(messages),
            deleted=deleted,
            failed=len(failed),
            handler_errors=1 if handler_error else 0,
        )
        return PollResult(
            received=len(messages),
            deleted=deleted,
            failed_message_ids=tuple(m["MessageId"] for m in messages if m["MessageId"] in failed),
            invoked=True,
            handler_error=handler_error,
            duration_ms=duration_ms,
        )

    def _receive_batch(self) -> list[MessageTypeDef]:
        batch: list[MessageTypeDef] = []
        deadline = time.monotonic() + self.max_batching_window_s
        while len(batch) < self.batch_size:
            kwargs: dict[str, Any] = {
                "QueueUrl": self.queue_url,
                "MaxNumberOfMessages": min(_SQS_MAX_RECEIVE, self.batch_size - len(batch)),
                "WaitTimeSeconds": 0,
                "MessageSystemAttributeNames": ["All"],
                "MessageAttributeNames": ["All"],
            }
            if self.visibility_timeout_s is not None:
                kwargs["VisibilityTimeout"] = self.visibility_timeout_s
            received = self.client.receive_message(**kwargs).get("Messages", [])
            batch.extend(received)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            if not received:
                if not batch or self._stop.is_set():
                    break  # nothing to wait for: the background loop sleeps between empty polls
                self._stop.wait(min(remaining, 0.05))
        return batch

    def _failed_ids(self, response: Any, messages: Sequence[MessageTypeDef]) -> list[str]:
        all_ids = [m["MessageId"] for m in messages]
        if not self.report_batch_item_failures or response is None:
            return []
        if not isinstance(response, dict):
            log.warning("%s returned a non-object response; the whole batch failed", self.function_name)
            return all_ids
        try:
            parsed = BatchResponse.model_validate(response)
        except ValidationError as err:
            log.warning(
                "%s returned invalid batchItemFailures (%s); the whole batch failed", self.function_name, err
            )
            return all_ids
        failures = [item.itemIdentifier for item in parsed.batchItemFailures or []]
        unknown = set(failures) - set(all_ids)
        if unknown:
            log.warning(
                "%s reported ids not in the batch %s; the whole batch failed", self.function_name, unknown
            )
            return all_ids
        return failures

    def _delete(self, messages: Sequence[MessageTypeDef]) -> int:
        deleted = 0
        for chunk in _chunks(messages, _SQS_MAX_RECEIVE):
            response = self.client.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)],
            )
            deleted += len(response.get("Successful", []))
            for failure in response.get("Failed", []):
                # As in AWS: a receipt handle that expired (message already re-received) cannot
                # delete; the message will be processed again (at-least-once delivery).
                log.warning("could not delete message: %s", failure)
        return deleted

    def _release(self, messages: Sequence[MessageTypeDef]) -> None:
        if self.failure_visibility_timeout_s is None:
            return  # they reappear when the queue's visibility timeout ends, as in AWS
        for chunk in _chunks(messages, _SQS_MAX_RECEIVE):
            self.client.change_message_visibility_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {
                        "Id": str(i),
                        "ReceiptHandle": m["ReceiptHandle"],
                        "VisibilityTimeout": self.failure_visibility_timeout_s,
                    }
                    for i, m in enumerate(chunk)
                ],
            )

    def _count(self, **increments: int) -> None:
        with self._lock:
            current = self._stats
            self._stats = EventSourceStats(
                **{
                    name: getattr(current, name) + increments.get(name, 0)
                    for name in current.__dataclass_fields__
                }
            )

    # -- draining and background polling ------------------------------------------------------

    def queue_depth(self) -> tuple[int, int]:
        """(visible, in flight) messages, from the queue's approximate counters."""
        attributes = self.client.get_queue_attributes(
            QueueUrl=self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]), int(
            attributes["ApproximateNumberOfMessagesNotVisible"]
        )

    def drain(self, *, timeout_s: float = 60.0) -> EventSourceStats:
        """Poll on this thread until the queue holds nothing (visible or in flight); totals of this drain.

        Raises TimeoutError if messages remain after ``timeout_s``.
        """
        before = self.stats
        deadline = time.monotonic() + timeout_s
        while True:
            result = self.poll_once()
            if not result.received:
                if self.queue_depth() == (0, 0):
                    break
                time.sleep(min(self.idle_sleep_s, 0.05))
            if time.monotonic() > deadline:
                visible, in_flight = self.queue_depth()
                raise TimeoutError(
                    f"queue not drained after {timeout_s}s: {visible} visible, {in_flight} in flight"
                )
        after = self.stats
        return EventSourceStats(
            **{name: getattr(after, name) - getattr(before, name) for name in after.__dataclass_fields__}
        )

    @property
    def running(self) -> bool:
        return any(thread.is_alive() for thread in self._threads)

    def start(self) -> SqsEventSource:
        if self.running:
            return self
        self._stop.clear()
        self._threads = [
            threading.Thread(target=self._run, name=f"sqs-esm-{self.function_name}-{i}", daemon=True)
            for i in range(self.concurrency)
        ]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout_s)
        self._threads = []

    def _polling_allowed(self) -> bool:
        return not self.paused and (self.should_poll is None or self.should_poll())

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self._polling_allowed():
                self._stop.wait(self.idle_sleep_s)
                continue
            try:
                result = self.poll_once()
            except Exception:
                log.exception("polling %s failed; retrying", self.queue_url)
                self._stop.wait(1.0)
                continue
            if result.handler_error:
                self._stop.wait(self.error_backoff_s)  # throttled or crashing: back off, as AWS does
            elif not result.received:
                self._stop.wait(self.idle_sleep_s)

    def __enter__(self) -> SqsEventSource:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def build_sqs_event(messages: Sequence[MessageTypeDef], *, queue_arn: str) -> dict[str, Any]:
    """The Lambda event for received messages, shaped exactly as AWS delivers it."""
    region = queue_arn.split(":")[3]
    return {"Records": [_record(message, queue_arn=queue_arn, region=region) for message in messages]}


def _record(message: MessageTypeDef, *, queue_arn: str, region: str) -> dict[str, Any]:
    record: dict[str, Any] = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message.get("Body", ""),
        "attributes": dict(message.get("Attributes", {})),
        "messageAttributes": {
            name: _message_attribute(value) for name, value in message.get("MessageAttributes", {}).items()
        },
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }
    if "MD5OfMessageAttributes" in message:
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    return record


def _message_attribute(value: Any) -> dict[str, Any]:
    attribute: dict[str, Any] = {
        "stringListValues": list(value.get("StringListValues", [])),
        "binaryListValues": [base64.b64encode(v).decode() for v in value.get("BinaryListValues", [])],
        "dataType": value["DataType"],
    }
    if "StringValue" in value:
        attribute["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        attribute["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode()
    return attribute


def _chunks(items: Sequence[MessageTypeDef], size: int) -> list[Sequence[MessageTypeDef]]:
    return [items[i : i + size] for i in range(0, len(items), size)]
