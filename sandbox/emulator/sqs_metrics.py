"""AWS/SQS queue metrics, as SQS publishes them every minute, for every queue in the emulator.

moto keeps queues but publishes no CloudWatch metrics, so a dead-letter queue filling up or a
consumer stalling would be invisible to the monitor and the dashboard. This publisher runs inside
the emulator process (started by ``sandbox.emulator.server.serve``), reads moto's queues directly (a
GetQueueAttributes call cannot tell the age of the oldest message) and writes, per queue and
minute, ``ApproximateNumberOfMessagesVisible``, ``...NotVisible``, ``...Delayed`` and
``ApproximateAgeOfOldestMessage`` (seconds) with the ``QueueName`` dimension, through plain
PutMetricData to the emulator's own endpoint. With them, the same thread publishes what
`sandbox.emulator.service_metrics` counted (the SQS NumberOfMessages* counters and SentMessageSize,
AWS/DynamoDB and AWS/Events metrics).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import boto3

from sandbox.emulator.service_metrics import RECORDER, table_names

logger = logging.getLogger(__name__)
EMULATOR_REGION = "us-east-1"  # the region every sandbox client uses (LOCAL_CREDENTIALS)


def queue_metrics(now_s: float) -> list[dict[str, Any]]:
    """One MetricDatum per queue and metric, stamped at the start of the current minute."""
    from moto.sqs.models import sqs_backends

    stamp = int(now_s // 60 * 60)
    data: list[dict[str, Any]] = []
    for _account, _region, backend in sqs_backends.iter_backends():
        queues: dict[str, Any] = backend.queues  # type: ignore[attr-defined]
        for queue in list(queues.values()):
            messages = list(queue._messages)
            visible = sum(1 for m in messages if m.visible and not m.delayed)
            delayed = sum(1 for m in messages if m.delayed)
            oldest_ms = min((m.sent_timestamp for m in messages if m.sent_timestamp), default=None)
            age = max(0.0, now_s - oldest_ms / 1000.0) if oldest_ms is not None else 0.0
            values = {
                "ApproximateNumberOfMessagesVisible": (float(visible), "Count"),
                "ApproximateNumberOfMessagesNotVisible": (float(len(messages) - visible - delayed), "Count"),
                "ApproximateNumberOfMessagesDelayed": (float(delayed), "Count"),
                "ApproximateAgeOfOldestMessage": (round(age, 1), "Seconds"),
            }
            for name, (value, unit) in values.items():
                data.append(
                    {
                        "MetricName": name,
                        "Dimensions": [{"Name": "QueueName", "Value": queue.name}],
                        "Timestamp": stamp,
                        "Value": value,
                        "Unit": unit,
                    }
                )
    return data


class SqsMetricsPublisher:
    """A daemon thread that publishes `queue_metrics` every `interval_s` seconds."""

    def __init__(self, endpoint_url: str, *, interval_s: float = 60.0) -> None:
        self.interval_s = interval_s
        self._client: Any = boto3.session.Session().client(
            "cloudwatch", endpoint_url=endpoint_url, region_name=EMULATOR_REGION
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sqs-metrics", daemon=True)

    def start(self) -> SqsMetricsPublisher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def publish_once(self) -> int:
        now = time.time()
        data = queue_metrics(now)
        queues = sorted({d["Dimensions"][0]["Value"] for d in data})
        by_namespace = RECORDER.datums(now, queues=queues, tables=table_names())
        by_namespace["AWS/SQS"] = data + by_namespace.get("AWS/SQS", [])
        published = 0
        for namespace, datums in by_namespace.items():
            for i in range(0, len(datums), 1000):
                self._client.put_metric_data(Namespace=namespace, MetricData=datums[i : i + 1000])
            published += len(datums)
        return published

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.publish_once()
            except Exception:  # the emulator keeps serving; the next minute tries again
                logger.exception("publishing AWS/SQS metrics failed")
