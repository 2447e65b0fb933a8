"""SqsEventSource against the emulator over HTTP: event shape, deletes, retries, redrive, pausing."""

from __future__ import annotations

import base64
import hashlib
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.parser.models import SqsModel
from ingest_helpers import QueuePair, create_queue_pair, drain_queue, send_bodies
from polling import wait_until

from sandbox.aws.event_source import PollResult, SqsEventSource
from sandbox.aws.provision import Provisioned

pytestmark = pytest.mark.integration


@pytest.fixture
def sqs(emulator: Any) -> Any:
    return boto3.client("sqs")


@pytest.fixture
def queue(sqs: Any) -> QueuePair:
    return create_queue_pair(sqs, f"esm-{uuid.uuid4().hex[:10]}", max_receive_count=2)


class RecordingFunction:
    """A Lambda handler that records the events it gets and answers as told."""

    def __init__(
        self, answer: Callable[[dict[str, Any]], Any] = lambda event: {"batchItemFailures": []}
    ) -> None:
        self.events: list[dict[str, Any]] = []
        self.contexts: list[Any] = []
        self.answer = answer

        self.called_at: list[float] = []  # time.monotonic() of each call

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        self.called_at.append(time.monotonic())
        self.events.append(event)
        self.contexts.append(context)
        return self.answer(event)


def source_for(queue: QueuePair, function: Any, **kwargs: Any) -> SqsEventSource:
    kwargs.setdefault("failure_visibility_timeout_s", 0)
    return SqsEventSource(queue.url, function, function_name="esm-test", batch_size=10, **kwargs)


def test_moto_server_dead_letters_after_max_receive_count(sqs: Any, queue: QueuePair) -> None:
    """Pins the emulator behaviour the event source relies on instead of redriving itself."""
    # Given a message in a queue whose redrive policy allows 2 receives
    [message_id] = send_bodies(sqs, queue.url, ["poison"])

    # When it is received twice and never deleted (visible again as soon as its 0 s timeout is over)
    def receive() -> list[dict[str, Any]]:
        return list(
            sqs.receive_message(
                QueueUrl=queue.url, VisibilityTimeout=0, MessageSystemAttributeNames=["All"]
            ).get("Messages", [])
        )

    for expected_count in ("1", "2"):
        [message] = wait_until(receive, what=f"receive #{expected_count}")
        assert message["Attributes"]["ApproximateReceiveCount"] == expected_count
    # Then it is not delivered a third time: a receive moves it to the DLQ
    dead: list[dict[str, Any]] = []

    def dead_lettered() -> bool:
        assert receive() == []
        dead.extend(drain_queue(sqs, queue.dlq_url))
        return bool(dead)

    wait_until(dead_lettered, what="the message in the DLQ")
    [only] = dead
    assert (only["MessageId"], only["Body"]) == (message_id, "poison")


def test_event_has_the_shape_lambda_delivers(sqs: Any, queue: QueuePair) -> None:
    # Given a message with string, number and binary attributes
    body = '{"hello": "world"}'
    sqs.send_message(
        QueueUrl=queue.url,
        MessageBody=body,
        MessageAttributes={
            "source": {"DataType": "String", "StringValue": "car-7"},
            "priority": {"DataType": "Number", "StringValue": "3"},
            "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01"},
        },
    )
    function = RecordingFunction()
    # When the event source polls once
    result = source_for(queue, function).poll_once()
    # Then the function got one event that Powertools' own SQS model accepts ...
    assert result == PollResult(
        received=1, deleted=1, invoked=True, failed_message_ids=(), duration_ms=result.duration_ms
    )
    [event] = function.events
    [record] = SqsModel.model_validate(event).Records
    raw = event["Records"][0]
    # ... with the fields AWS fills in
    assert raw["eventSource"] == "aws:sqs"
    assert raw["eventSourceARN"] == queue.arn
    assert raw["awsRegion"] == "us-east-1"
    assert raw["body"] == body
    assert raw["md5OfBody"] == hashlib.md5(body.encode()).hexdigest()
    assert raw["attributes"]["ApproximateReceiveCount"] == "1"
    assert int(raw["attributes"]["SentTimestamp"]) > 0
    assert raw["messageAttributes"]["source"] == {
        "stringValue": "car-7",
        "stringListValues": [],
        "binaryListValues": [],
        "dataType": "String",
    }
    assert raw["messageAttributes"]["blob"]["binaryValue"] == base64.b64encode(b"\x00\x01").decode()
    assert record.messageAttributes["priority"].dataType == "Number"
    # and a Lambda-like context
    context = function.contexts[0]
    assert context.function_name == "esm-test"
    assert context.get_remaining_time_in_millis() > 0
    # and the processed message is gone
    assert source_for(queue, function).queue_depth() == (0, 0)


def test_only_reported_failures_stay_and_are_retried(sqs: Any, queue: QueuePair) -> None:
    # Given three messages and a function that fails the one whose body is "bad"
    ids = send_bodies(sqs, queue.url, ["good-1", "bad", "good-2"])

    def answer(event: dict[str, Any]) -> Any:
        return {
            "batchItemFailures": [
                {"itemIdentifier": r["messageId"]} for r in event["Records"] if r["body"] == "bad"
            ]
        }

    function = RecordingFunction(answer)
    source = source_for(queue, function)
    # When it polls once
    first = source.poll_once()
    # Then the good ones are deleted and only the bad one is delivered again, with a higher count
    assert (first.received, first.deleted, first.failed_message_ids) == (3, 2, (ids[1],))
    second = source.poll_once()
    assert (second.received, second.failed) == (1, 1)
    assert function.events[1]["Records"][0]["attributes"]["ApproximateReceiveCount"] == "2"
    # And after maxReceiveCount receives it ends in the DLQ, not lost
    assert source.poll_once().received == 0
    assert [m["MessageId"] for m in drain_queue(sqs, queue.dlq_url)] == [ids[1]]


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(
            lambda event: {"batchItemFailures": [{"itemIdentifier": "not-in-batch"}]}, id="unknown id"
        ),
        pytest.param(lambda event: {"batchItemFailures": [{"itemIdentifier": ""}]}, id="empty id"),
        pytest.param(
            lambda event: {"batchItemFailures": [{"id": event["Records"][0]["messageId"]}]}, id="bad key"
        ),
        pytest.param(lambda event: "ok", id="not an object"),
    ],
)
def test_invalid_batch_response_fails_the_whole_batch(
    sqs: Any, queue: QueuePair, answer: Callable[[dict[str, Any]], Any]
) -> None:
    # Given two messages and a function whose response Lambda cannot interpret
    send_bodies(sqs, queue.url, ["a", "b"])
    # When it polls once
    result = source_for(queue, RecordingFunction(answer)).poll_once()
    # Then nothing is deleted (as in AWS: an invalid response is a complete batch failure)
    assert (result.received, result.deleted, result.failed) == (2, 0, 2)


def test_a_raising_function_deletes_nothing(sqs: Any, queue: QueuePair) -> None:
    # Given two messages and a function that crashes
    send_bodies(sqs, queue.url, ["a", "b"])

    def crash(event: dict[str, Any]) -> Any:
        raise RuntimeError("boom")

    source = source_for(queue, RecordingFunction(crash))
    # When it polls
    result = source.poll_once()
    # Then the error is reported, nothing deleted, and both come back
    assert result.handler_error == "RuntimeError('boom')"
    assert (result.deleted, result.failed) == (0, 2)
    assert source.poll_once().received == 2
    assert source.stats.handler_errors == 2


def test_without_shortened_visibility_failed_messages_wait_for_the_visibility_timeout(
    sqs: Any, queue: QueuePair
) -> None:
    # Given a function that fails everything, and the AWS default of leaving visibility alone
    send_bodies(sqs, queue.url, ["a"])
    source = source_for(
        queue,
        RecordingFunction(
            lambda e: {"batchItemFailures": [{"itemIdentifier": e["Records"][0]["messageId"]}]}
        ),
        failure_visibility_timeout_s=None,
    )
    # When it fails once
    assert source.poll_once().failed == 1
    # Then the message is in flight (invisible), not redelivered right away
    assert source.poll_once().received == 0
    assert source.queue_depth() == (0, 1)


def test_batching_window_gathers_more_than_ten(sqs: Any, queue: QueuePair) -> None:
    # Given 25 messages and a batch size of 25 with a window
    send_bodies(sqs, queue.url, [f"m{i}" for i in range(25)])
    function = RecordingFunction()
    source = SqsEventSource(
        queue.url, function, function_name="esm-test", batch_size=25, max_batching_window_s=0.5
    )
    # When it polls once
    result = source.poll_once()
    # Then one invocation carries all of them
    assert (result.received, result.deleted, len(function.events)) == (25, 25, 1)
    assert len(function.events[0]["Records"]) == 25


def test_injected_invoke_replaces_the_direct_call(sqs: Any, queue: QueuePair) -> None:
    # Given a runtime wrapper (as the sandbox passes) instead of a bare handler
    send_bodies(sqs, queue.url, ["x"])
    seen: list[int] = []

    def runtime_invoke(event: dict[str, Any]) -> Any:
        seen.append(len(event["Records"]))
        return None  # a null response is a complete success

    source = SqsEventSource(queue.url, function_name="esm-test", invoke=runtime_invoke)
    # When it polls
    result = source.poll_once()
    # Then the wrapper was used and the message deleted
    assert seen == [1]
    assert result.deleted == 1


def test_paused_consumer_lets_the_backlog_build_then_catches_up(sqs: Any, queue: QueuePair) -> None:
    # Given a running event source whose should_poll hook says "stalled"
    stalled = threading.Event()
    stalled.set()
    asked: list[bool] = []  # the hook's answers

    def should_poll() -> bool:
        asked.append(not stalled.is_set())
        return asked[-1]

    function = RecordingFunction()
    source = source_for(queue, function, should_poll=should_poll, idle_sleep_s=0.05)
    with source:
        send_bodies(sqs, queue.url, [f"m{i}" for i in range(15)])
        # Then nothing is consumed while stalled (the loop asked the hook 3 times since the send)
        sent_at = len(asked)
        wait_until(lambda: len(asked) >= sent_at + 3, what="the loop asked should_poll")
        assert function.events == []
        assert source.queue_depth() == (15, 0)
        # When the stall ends, the backlog drains in the background
        stalled.clear()
        wait_until(lambda: source.queue_depth() == (0, 0), what="the backlog drained")
    assert source.queue_depth() == (0, 0)
    assert sum(len(e["Records"]) for e in function.events) == 15
    assert not source.running


class CountedPauseSource(SqsEventSource):
    """An SqsEventSource that counts how often its loop read `paused`."""

    reads = 0
    _paused = False

    @property
    def paused(self) -> bool:
        self.reads += 1
        return self._paused

    @paused.setter
    def paused(self, value: bool) -> None:
        self._paused = value


def test_paused_flag_stops_polling(sqs: Any, queue: QueuePair) -> None:
    function = RecordingFunction()
    source = CountedPauseSource(
        queue.url,
        function,
        function_name="esm-test",
        batch_size=10,
        failure_visibility_timeout_s=0,
        idle_sleep_s=0.05,
    )
    source.paused = True
    with source:
        send_bodies(sqs, queue.url, ["a"])
        # Then nothing is consumed while paused (the loop read the flag 3 times since the send)
        sent_at = source.reads
        wait_until(lambda: source.reads >= sent_at + 3, what="the loop read `paused`")
        assert function.events == []


def test_works_against_the_provisioned_telemetry_queue(provisioned: Provisioned, sqs: Any, topo: Any) -> None:
    # Given the provisioned queue and the topology's event source settings
    source = SqsEventSource.from_spec(
        provisioned.telemetry_queue_url,
        RecordingFunction(),
        spec=topo.telemetry_source,
        function_name=topo.telemetry_ingest.name,
    )
    # Then the ARN in events is the provisioned one
    assert source.queue_arn == provisioned.telemetry_queue_arn
    assert source.batch_size == topo.telemetry_source.batch_size


def test_background_polling_backs_off_after_a_failed_invocation(sqs: Any, queue: QueuePair) -> None:
    # Given a function that is throttled on every call, polled in the background
    send_bodies(sqs, queue.url, ["a"])

    def throttled(event: dict[str, Any]) -> Any:
        raise RuntimeError("Rate Exceeded")

    function = RecordingFunction(throttled)
    source = source_for(queue, function, idle_sleep_s=0.01, error_backoff_s=0.5)
    # When it has been invoked twice
    with source:
        wait_until(lambda: len(function.called_at) >= 2, what="a retry")
    # Then the retry came a backoff after the failure, not in a tight loop, and the message is still there
    first, second = function.called_at[:2]
    assert second - first >= 0.5
    assert sum(source.queue_depth()) == 1
