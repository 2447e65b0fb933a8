"""A local DynamoDB Streams event source mapping: reads a table's stream from the emulator and invokes a
Lambda handler with real DynamoDB-stream-shaped events, the way AWS Lambda's event source mapping does.

Semantics copied from AWS (ReportBatchItemFailures, BisectBatchOnFunctionError, MaximumRetryAttempts,
on-failure destination):
- records are read per shard in order from a checkpoint and handed over in batches of `batch_size`;
- the handler returns ``{"batchItemFailures": [{"itemIdentifier": <SequenceNumber>}]}``: everything before the
  lowest failed sequence number is checkpointed, the rest of the batch is retried from that record;
- if the handler raises, the batch is retried, split in halves when `bisect_on_error` is set;
- after `max_retries` retries the failing record is handed to the on-failure destination (`self.failed`, plus
  an optional callback) and processing moves on, like an SQS/SNS on-failure destination.

`drain_once()` processes everything currently in the stream; `start()`/`stop()` run it on a background thread.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3

from contract.topology import StreamSourceSpec
from sandbox.aws.event_source import LocalLambdaContext

Handler = Callable[[dict[str, Any], Any], Any]


@dataclass
class DrainStats:
    invocations: int = 0
    records_delivered: int = 0
    retries: int = 0
    sent_to_failure_destination: int = 0


def sqs_failure_destination(queue_url: str, *, client: Any = None) -> Callable[[dict[str, Any], str], None]:
    """An on-failure destination like AWS's: sends the failed batch's metadata (not the record) to SQS."""
    sqs = client or boto3.session.Session().client("sqs")

    def send(record: dict[str, Any], reason: str) -> None:
        sequence = record["dynamodb"]["SequenceNumber"]
        message = {
            "requestContext": {"condition": "RetryAttemptsExhausted", "approximateInvokeCount": None},
            "responseContext": {"functionError": reason},
            "version": "1.0",
            "timestamp": datetime.now(UTC).isoformat(),
            "DDBStreamBatchInfo": {
                "shardId": record.get("shardId"),
                "startSequenceNumber": sequence,
                "endSequenceNumber": sequence,
                "batchSize": 1,
                "streamArn": record.get("eventSourceARN"),
            },
        }
        sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(message))

    return send


class StreamSource:
    def __init__(
        self,
        *,
        stream_arn: str,
        handler: Handler,
        function_name: str = "fleetscope-local-outbox-relay",
        batch_size: int = 10,
        max_retries: int = 5,
        bisect_on_error: bool = True,
        retry_delay_s: float = 0.05,
        poll_interval_s: float = 0.25,
        on_failure: Callable[[dict[str, Any], str], None] | None = None,
        client: Any = None,
        event_names: tuple[str, ...] | None = None,
    ) -> None:
        self.stream_arn = stream_arn
        self.event_names = event_names  # the mapping's filter criteria on eventName (None: every record)
        self.handler = handler
        self.function_name = function_name
        self.batch_size = batch_size
        self.max_retries = max_retries
        self.bisect_on_error = bisect_on_error
        self.retry_delay_s = retry_delay_s
        self.poll_interval_s = poll_interval_s
        self.on_failure = on_failure
        self._client = client
        self._checkpoints: dict[str, str] = {}  # shard id -> last sequence number handled
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.failed: list[dict[str, Any]] = []
        self.last_error: BaseException | None = None

    @classmethod
    def from_spec(
        cls, spec: StreamSourceSpec, *, stream_arn: str, handler: Handler, function_name: str, **kwargs: Any
    ) -> StreamSource:
        """A source configured like the CDK event source mapping (batch size, retries, bisect)."""
        return cls(
            stream_arn=stream_arn,
            handler=handler,
            function_name=function_name,
            batch_size=spec.batch_size,
            max_retries=spec.retry_attempts,
            bisect_on_error=spec.bisect_batch_on_error,
            event_names=spec.event_names,
            **kwargs,
        )

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = boto3.session.Session().client("dynamodbstreams")
        return self._client

    # --- reading -------------------------------------------------------------------------------------------

    def _read_shard(self, shard_id: str) -> list[dict[str, Any]]:
        checkpoint = self._checkpoints.get(shard_id)
        kwargs: dict[str, Any] = {"StreamArn": self.stream_arn, "ShardId": shard_id}
        if checkpoint is None:
            kwargs["ShardIteratorType"] = "TRIM_HORIZON"
        else:
            kwargs |= {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": checkpoint}
        iterator = self.client.get_shard_iterator(**kwargs)["ShardIterator"]
        records: list[dict[str, Any]] = []
        while iterator:
            response = self.client.get_records(ShardIterator=iterator, Limit=1000)
            batch = response.get("Records", [])
            if not batch:
                break
            records.extend(batch)
            iterator = response.get("NextShardIterator")
        return records

    def _lambda_record(self, record: dict[str, Any]) -> dict[str, Any]:
        """GetRecords output -> the record shape Lambda delivers (epoch seconds, eventSourceARN)."""
        dynamodb = dict(record["dynamodb"])
        created = dynamodb.get("ApproximateCreationDateTime")
        if isinstance(created, datetime):
            dynamodb["ApproximateCreationDateTime"] = int(created.timestamp())
        return {
            "eventID": record["eventID"],
            "eventName": record["eventName"],
            "eventVersion": record.get("eventVersion", "1.1"),
            "eventSource": "aws:dynamodb",
            "awsRegion": record.get("awsRegion", "us-east-1"),
            "dynamodb": dynamodb,
            "eventSourceARN": self.stream_arn,
        }

    # --- delivering ----------------------------------------------------------------------------------------

    def _invoke(self, records: list[dict[str, Any]], stats: DrainStats) -> tuple[list[str], bool]:
        """Invoke once: the failed sequence numbers (all if the handler raised) and whether it raised."""
        stats.invocations += 1
        context = LocalLambdaContext(function_name=self.function_name)
        try:
            response = self.handler({"Records": records}, context) or {}
        except Exception as err:  # the function errored: the whole batch failed
            self.last_error = err
            return [r["dynamodb"]["SequenceNumber"] for r in records], True
        failures = response.get("batchItemFailures") or []
        return [str(f["itemIdentifier"]) for f in failures if f.get("itemIdentifier")], False

    def _deliver(self, records: list[dict[str, Any]], stats: DrainStats) -> None:
        """Deliver `records` (in order) with retries, bisection and the on-failure destination."""
        pending = records
        attempts = 0
        while pending:
            failed, raised = self._invoke(pending, stats)
            if not failed:
                stats.records_delivered += len(pending)
                return
            sequence = [r["dynamodb"]["SequenceNumber"] for r in pending]
            first = min((s for s in failed if s in sequence), key=sequence.index, default=sequence[0])
            index = sequence.index(first)
            stats.records_delivered += index  # everything before the first failure is checkpointed
            pending = pending[index:]
            attempts = attempts + 1 if index == 0 else 1
            if raised and self.bisect_on_error and len(pending) > 1:
                half = len(pending) // 2
                self._deliver(pending[:half], stats)
                self._deliver(pending[half:], stats)
                return
            if attempts > self.max_retries:
                record, pending = pending[0], pending[1:]
                stats.sent_to_failure_destination += 1
                self.failed.append(record)
                if self.on_failure is not None:
                    self.on_failure(record, f"retries exhausted after {attempts} attempts")
                attempts = 0
                continue
            stats.retries += 1
            time.sleep(self.retry_delay_s * min(2 ** (attempts - 1), 20))

    def drain_once(self) -> DrainStats:
        """Process every record now in the stream (all shards); return what happened."""
        stats = DrainStats()
        with self._lock:
            description = self.client.describe_stream(StreamArn=self.stream_arn)["StreamDescription"]
            for shard in description.get("Shards", []):
                shard_id = shard["ShardId"]
                read = [self._lambda_record(r) for r in self._read_shard(shard_id)]
                # Filter criteria (eventName), as on AWS: records that do not match never invoke the function.
                records = [r for r in read if self.event_names is None or r["eventName"] in self.event_names]
                for start in range(0, len(records), self.batch_size):
                    batch = records[start : start + self.batch_size]
                    self._deliver(batch, stats)
                    self._checkpoints[shard_id] = batch[-1]["dynamodb"]["SequenceNumber"]
                if read:
                    self._checkpoints[shard_id] = read[-1]["dynamodb"]["SequenceNumber"]
        return stats

    # --- background ----------------------------------------------------------------------------------------

    def start(self) -> StreamSource:
        if self._thread is not None:
            return self
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="outbox-stream-source", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.drain_once()
            except Exception as err:  # emulator briefly unavailable: keep polling
                self.last_error = err
            self._stop.wait(self.poll_interval_s)

    def stop(self, timeout_s: float = 10.0) -> None:
        thread, self._thread = self._thread, None
        self._stop.set()
        if thread is not None:
            thread.join(timeout_s)

    def __enter__(self) -> StreamSource:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
