"""Inspecting and redriving the telemetry DLQ, against the emulator."""

from __future__ import annotations

import json
import uuid
from typing import Any

import boto3
import pytest
from ingest_helpers import create_queue_pair, drain_queue, send_bodies, telemetry_body

from ops.redrive import inspect_dead_letters, main, move_dead_letters
from sandbox.aws.provision import Provisioned

pytestmark = pytest.mark.integration


@pytest.fixture
def sqs(emulator: Any) -> Any:
    return boto3.client("sqs")


def remove_message(sqs: Any, queue_url: str, message_id: str) -> None:
    for _ in range(20):
        batch = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=2)
        for message in batch.get("Messages", []):
            if message["MessageId"] == message_id:
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
                return
    raise AssertionError(f"{message_id} not found in {queue_url}")


def test_inspect_says_why_each_message_is_dead_and_leaves_them(sqs: Any) -> None:
    # Given a DLQ holding a broken message and a valid one (for a car that did not exist then)
    pair = create_queue_pair(sqs, f"redrive-{uuid.uuid4().hex[:8]}")
    broken, valid = send_bodies(sqs, pair.dlq_url, [telemetry_body(speed_kmh=-3), telemetry_body("car-late")])
    # When it is inspected
    report = {dead.message_id: dead for dead in inspect_dead_letters(sqs, pair.dlq_url)}
    # Then each message says what is wrong with it
    assert set(report) == {broken, valid}
    assert "speed_kmh" in report[broken].problem
    assert report[valid].problem.startswith("valid message")
    assert report[valid].sent_at is not None
    # And both are still in the DLQ, visible for the next look
    assert {m["MessageId"] for m in drain_queue(sqs, pair.dlq_url)} == {broken, valid}


def test_move_sends_everything_back_then_empties_the_dlq(sqs: Any) -> None:
    # Given three dead letters, one with a message attribute
    pair = create_queue_pair(sqs, f"redrive-{uuid.uuid4().hex[:8]}")
    bodies = [telemetry_body(f"car-{i}") for i in range(3)]
    send_bodies(sqs, pair.dlq_url, bodies[:2])
    sqs.send_message(
        QueueUrl=pair.dlq_url,
        MessageBody=bodies[2],
        MessageAttributes={"origin": {"DataType": "String", "StringValue": "firmware-9"}},
    )
    # When they are moved
    result = move_dead_letters(sqs, pair.dlq_url, pair.url)
    # Then all three are back on the telemetry queue, attributes kept, and the DLQ is empty
    assert (result.moved, result.failed) == (3, 0)
    back = sqs.receive_message(QueueUrl=pair.url, MaxNumberOfMessages=10, MessageAttributeNames=["All"])[
        "Messages"
    ]
    assert sorted(m["Body"] for m in back) == sorted(bodies)
    assert [m["MessageAttributes"]["origin"]["StringValue"] for m in back if "MessageAttributes" in m] == [
        "firmware-9"
    ]
    assert drain_queue(sqs, pair.dlq_url) == []


def test_move_respects_the_limit(sqs: Any) -> None:
    pair = create_queue_pair(sqs, f"redrive-{uuid.uuid4().hex[:8]}")
    send_bodies(sqs, pair.dlq_url, [telemetry_body(f"car-{i}") for i in range(5)])
    assert move_dead_letters(sqs, pair.dlq_url, pair.url, limit=2).moved == 2
    assert len(drain_queue(sqs, pair.dlq_url)) == 3


def test_cli_inspects_the_stage_dlq(
    provisioned: Provisioned, sqs: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a dead letter in the provisioned telemetry DLQ of the "test" stage
    [message_id] = send_bodies(sqs, provisioned.telemetry_dlq_url, ["not json"])
    try:
        # When the CLI inspects that stage
        assert main(["inspect", "--stage", "test"], sqs=sqs) == 0
        # Then it prints one JSON line per dead letter, ours among them
        lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        ours = next(line for line in lines if line["message_id"] == message_id)
        assert "Invalid JSON" in ours["problem"]
    finally:
        remove_message(sqs, provisioned.telemetry_dlq_url, message_id)  # others' dead letters stay


def test_cli_rejects_a_bad_limit(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["move", "--limit", "0"], sqs=object())  # type: ignore[arg-type]
    assert "--limit" in capsys.readouterr().err
