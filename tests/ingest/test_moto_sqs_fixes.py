"""install_moto_sqs_fixes: same SQS semantics in moto, without the O(depth)-per-message cost."""

from __future__ import annotations

import time
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.sqs import models
from polling import wait_until

from sandbox.emulator import sqs_fixes


@pytest.fixture
def fixed_sqs(monkeypatch: pytest.MonkeyPatch) -> Any:
    """An in-process moto SQS with the fixes installed; moto is restored afterwards."""
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    for owner, name in (
        (models.Message, "visible"),
        (models.Message, "delayed"),
        (models.SQSBackend, "is_message_valid_based_on_retention_period"),
    ):
        monkeypatch.setattr(owner, name, owner.__dict__[name])
    monkeypatch.setattr(sqs_fixes, "_moto_sqs_fixed", False)
    sqs_fixes.install_moto_sqs_fixes()
    sqs_fixes.install_moto_sqs_fixes()  # idempotent
    with mock_aws():
        yield boto3.client("sqs", region_name="us-east-1")


def test_delay_visibility_and_retention_still_hold(fixed_sqs: Any) -> None:
    sqs = fixed_sqs
    url = sqs.create_queue(QueueName="q", Attributes={"MessageRetentionPeriod": "60"})["QueueUrl"]
    # A delayed message is not delivered before its delay
    sqs.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=1)
    assert sqs.receive_message(QueueUrl=url).get("Messages", []) == []
    # A received message stays invisible for its visibility timeout, and comes back after it
    sqs.send_message(QueueUrl=url, MessageBody="now")
    [first] = sqs.receive_message(QueueUrl=url, VisibilityTimeout=1)["Messages"]
    assert first["Body"] == "now"
    assert sqs.receive_message(QueueUrl=url).get("Messages", []) == []
    bodies: set[str] = set()

    def both_delivered() -> bool:
        bodies.update(
            m["Body"] for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        )
        return bodies >= {"now", "later"}

    wait_until(both_delivered, timeout_s=10, interval_s=0.1)
    assert bodies == {"now", "later"}
    # A message older than the retention period is not delivered
    sqs.send_message(QueueUrl=url, MessageBody="ancient")
    backend = models.sqs_backends["123456789012"]["us-east-1"]
    [ancient] = [m for m in backend.get_queue("q")._messages if m.body == "ancient"]
    ancient.sent_timestamp -= 61_000
    received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0).get(
        "Messages", []
    )
    assert "ancient" not in {m["Body"] for m in received}


def test_receiving_from_a_deep_queue_is_cheap(fixed_sqs: Any) -> None:
    # Given 500 queued messages
    sqs = fixed_sqs
    url = sqs.create_queue(QueueName="deep")["QueueUrl"]
    for start in range(0, 500, 10):
        sqs.send_message_batch(
            QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": f"m{start + i}"} for i in range(10)]
        )
    # When ten batches are received and deleted
    started = time.perf_counter()
    for _ in range(10):
        batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
        sqs.delete_message_batch(
            QueueUrl=url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)],
        )
    elapsed = time.perf_counter() - started
    # Then it takes well under the unfixed cost, and the counts are right
    assert elapsed < 4.0, f"{elapsed:.2f}s"  # unfixed: about 12 s on the loaded CI box
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    assert attributes["Attributes"]["ApproximateNumberOfMessages"] == "400"
