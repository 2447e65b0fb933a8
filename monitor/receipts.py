"""Delivery receipts: which alerts SNS has accepted, read back from a queue subscribed to the alerts topic.

A run that dies between SNS accepting an alert and the write that marks its outbox item sent leaves
the item `publishing`, its outcome unknown to the next run. So does a publish whose answer is lost
(a read timeout after SNS took the message). SNS has no idempotent publish on a standard topic, so
sending it again would deliver it twice.

SNS delivers every alert to the receipts queue too (`Topology.alerts_receipts`, an SQS subscription of
the alerts topic, the envelope kept). Each run reads the receipts before it publishes anything: an
item SNS delivered is marked sent with SNS's MessageId and is not published again; only an item with
no receipt is (re)published. A receipt is deleted after its item is marked, so a run that dies in
between leaves it for the next run.

The one window left: a receipt SNS has not delivered to the queue by the time the claim goes stale
(`MONITOR_LEASE_S`, 240 s by default; SNS delivers to SQS in well under a second).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, Protocol

logger = logging.getLogger(__name__)

BATCH = 10  # SQS ReceiveMessage / DeleteMessageBatch maximum
VISIBILITY_S = 20  # a run that dies holding receipts gives them back before the next run


class ReceiptsError(RuntimeError):
    """The receipts queue cannot be found or read."""


@dataclass(frozen=True)
class Receipt:
    """One message of the receipts queue: the alert SNS delivered (`dedup_key` None: not an alert)."""

    dedup_key: str | None
    message_id: str
    handle: str


def parse_receipt(body: str, *, handle: str = "", sqs_message_id: str = "") -> Receipt:
    """An SNS envelope (or a raw alert payload) from the queue; anything else has no dedup key."""
    envelope = _json_object(body)
    if envelope is not None and isinstance(envelope.get("Message"), str):  # an SNS envelope
        message_id = str(envelope.get("MessageId") or sqs_message_id)
        payload = _json_object(envelope["Message"])
    else:
        message_id, payload = sqs_message_id, envelope
    key = payload.get("dedup_key") if payload is not None else None
    return Receipt(
        dedup_key=key if isinstance(key, str) and key else None, message_id=message_id, handle=handle
    )


def _json_object(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


class DeliveryReceipts(Protocol):
    def receive(self) -> list[Receipt]: ...  # one batch: at most BATCH receipts
    def delete(self, receipts: Sequence[Receipt]) -> None: ...


@cache
def _default_sqs_client() -> Any:
    import boto3

    from monitor.budget import SQS_READ_S, client_config

    return boto3.client("sqs", config=client_config(read_timeout_s=SQS_READ_S))


class SqsDeliveryReceipts:
    """The receipts queue, by name (its URL looked up once); `receive` reads one batch (up to 10)."""

    def __init__(self, *, queue_name: str, queue_url: str | None = None, client: Any | None = None) -> None:
        self.queue_name = queue_name
        self._queue_url = queue_url
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = _default_sqs_client()
        return self._client

    @property
    def queue_url(self) -> str:
        if self._queue_url is None:
            try:
                self._queue_url = str(self.client.get_queue_url(QueueName=self.queue_name)["QueueUrl"])
            except Exception as err:
                raise ReceiptsError(f"receipts queue {self.queue_name!r} not found: {err}") from err
        return self._queue_url

    def receive(self) -> list[Receipt]:
        url = self.queue_url
        try:
            messages = self.client.receive_message(
                QueueUrl=url, MaxNumberOfMessages=BATCH, WaitTimeSeconds=0, VisibilityTimeout=VISIBILITY_S
            ).get("Messages", [])
        except Exception as err:
            raise ReceiptsError(f"reading the receipts queue failed: {err}") from err
        return [
            parse_receipt(m.get("Body", ""), handle=m["ReceiptHandle"], sqs_message_id=m["MessageId"])
            for m in messages
        ]

    def delete(self, receipts: Sequence[Receipt]) -> None:
        try:
            for start in range(0, len(receipts), BATCH):
                batch = receipts[start : start + BATCH]
                self.client.delete_message_batch(
                    QueueUrl=self.queue_url,
                    Entries=[{"Id": str(i), "ReceiptHandle": r.handle} for i, r in enumerate(batch)],
                )
        except Exception as err:
            raise ReceiptsError(f"deleting receipts failed: {err}") from err


__all__ = ["BATCH", "DeliveryReceipts", "Receipt", "ReceiptsError", "SqsDeliveryReceipts", "parse_receipt"]
