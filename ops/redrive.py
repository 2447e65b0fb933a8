"""Inspect the telemetry dead-letter queue and move its messages back to the telemetry queue.

    python -m service.ingest.redrive inspect [--stage local] [--limit 100]
    python -m service.ingest.redrive move    [--stage local] [--limit N]

``inspect`` prints one JSON object per dead-lettered message (id, receive count, when it was sent,
its body and why it cannot be applied as it stands: the schema errors, or "valid message" when the
schema is fine and the car was unknown/retired or a write failed at the time). It leaves the
messages in the DLQ.

``move`` is the redrive: each message is sent to the telemetry queue (same body and message
attributes) and only then deleted from the DLQ, so a crash half-way duplicates at worst, never
loses. Ingest is idempotent (a duplicate reading is acknowledged as stale), so duplicates are
harmless. On AWS, ``aws sqs start-message-move-task --source-arn <dlq arn>`` does the same; the
local emulator does not implement that API, which is why this exists.

Queue names come from ``contract/topology.py`` for the stage; the endpoint from ``AWS_ENDPOINT_URL``
(``http://127.0.0.1:5055`` for a local sandbox).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import boto3
from pydantic import BaseModel

from contract.topology import topology
from service.ingest.logic import InvalidTelemetryError, parse_telemetry

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageTypeDef

_INSPECT_VISIBILITY_S = 30


class DeadLetter(BaseModel):
    """One message found in the DLQ, as `inspect` reports it."""

    message_id: str
    receive_count: int
    sent_at: datetime | None
    body: str
    problem: str


class RedriveResult(BaseModel):
    moved: int
    failed: int


def inspect_dead_letters(sqs: SQSClient, dlq_url: str, *, limit: int = 100) -> list[DeadLetter]:
    """Up to `limit` DLQ messages with what is wrong with them; the messages stay in the DLQ."""
    seen: list[MessageTypeDef] = []
    try:
        for message in _receive(sqs, dlq_url, limit=limit, visibility_timeout_s=_INSPECT_VISIBILITY_S):
            seen.append(message)
    finally:
        _release(sqs, dlq_url, seen)
    return [_describe(message) for message in seen]


def move_dead_letters(
    sqs: SQSClient, dlq_url: str, queue_url: str, *, limit: int | None = None
) -> RedriveResult:
    """Send DLQ messages back to `queue_url`; each is deleted from the DLQ only after SQS accepted it."""
    moved = failed = 0
    for message in _receive(sqs, dlq_url, limit=limit, visibility_timeout_s=_INSPECT_VISIBILITY_S):
        kwargs: dict[str, Any] = {"QueueUrl": queue_url, "MessageBody": message.get("Body", "")}
        if message.get("MessageAttributes"):
            kwargs["MessageAttributes"] = message["MessageAttributes"]
        try:
            sqs.send_message(**kwargs)
        except Exception as err:  # left in the DLQ (visible again after the timeout); reported
            failed += 1
            print(f"could not move {message['MessageId']}: {err}", file=sys.stderr)
            continue
        sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=message["ReceiptHandle"])
        moved += 1
    return RedriveResult(moved=moved, failed=failed)


def _receive(
    sqs: SQSClient, queue_url: str, *, limit: int | None, visibility_timeout_s: int
) -> Iterator[MessageTypeDef]:
    count = 0
    while limit is None or count < limit:
        batch = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=10 if limit is None else max(1, min(10, limit - count)),
            WaitTimeSeconds=0,
            VisibilityTimeout=visibility_timeout_s,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not batch:
            return
        for message in batch:
            count += 1
            yield message


def _release(sqs: SQSClient, queue_url: str, messages: list[MessageTypeDef]) -> None:
    for start in range(0, len(messages), 10):
        chunk = messages[start : start + 10]
        sqs.change_message_visibility_batch(
            QueueUrl=queue_url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
                for i, m in enumerate(chunk)
            ],
        )


def _describe(message: MessageTypeDef) -> DeadLetter:
    attributes = message.get("Attributes", {})
    body = message.get("Body", "")
    try:
        parse_telemetry(body)
        problem = "valid message: the car was unknown or retired, or the write failed, when it was tried"
    except InvalidTelemetryError as err:
        problem = str(err)
    sent = attributes.get("SentTimestamp")
    return DeadLetter(
        message_id=message["MessageId"],
        receive_count=int(attributes.get("ApproximateReceiveCount", "0")),
        sent_at=datetime.fromtimestamp(int(sent) / 1000, tz=UTC) if sent else None,
        body=body,
        problem=problem,
    )


def _queue_urls(sqs: SQSClient, stage: str) -> tuple[str, str]:
    topo = topology(stage)
    queue_url = sqs.get_queue_url(QueueName=topo.telemetry_queue.name)["QueueUrl"]
    dlq_url = sqs.get_queue_url(QueueName=topo.telemetry_dlq.name)["QueueUrl"]
    return queue_url, dlq_url


def main(argv: list[str] | None = None, *, sqs: SQSClient | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m service.ingest.redrive", description=__doc__.split("\n")[0]
    )
    parser.add_argument("action", choices=["inspect", "move"])
    parser.add_argument("--stage", default="local", help="topology stage (default: local)")
    parser.add_argument("--limit", type=int, default=None, help="at most this many messages")
    args = parser.parse_args(argv)
    if args.limit is not None and args.limit < 1:
        parser.error("--limit must be >= 1")
    client = sqs or boto3.client("sqs")
    queue_url, dlq_url = _queue_urls(client, args.stage)
    if args.action == "inspect":
        for dead in inspect_dead_letters(client, dlq_url, limit=args.limit or 100):
            print(dead.model_dump_json())
        return 0
    result = move_dead_letters(client, dlq_url, queue_url, limit=args.limit)
    print(json.dumps(result.model_dump()))
    return 0 if result.failed == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
