"""The emulator publishes AWS/SQS queue metrics as SQS does, so DLQ depth and queue age are watchable."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from polling import wait_until

from sandbox.emulator.server import Emulator, aws_environment

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _latest(cw: Any, queue: str, metric: str, stat: str = "Maximum") -> float | None:
    now = datetime.now(UTC)
    result = cw.get_metric_data(
        StartTime=now - timedelta(minutes=5),
        EndTime=now + timedelta(minutes=1),
        ScanBy="TimestampDescending",
        MetricDataQueries=[
            {
                "Id": "q",
                "MetricStat": {
                    "Metric": {
                        "Namespace": "AWS/SQS",
                        "MetricName": metric,
                        "Dimensions": [{"Name": "QueueName", "Value": queue}],
                    },
                    "Period": 60,
                    "Stat": stat,
                },
            }
        ],
    )["MetricDataResults"][0]
    return float(result["Values"][0]) if result["Values"] else None


def _at_least(value: float | None, floor: float) -> float | None:
    return value if value is not None and value >= floor else None


def test_queue_depth_and_oldest_message_age_are_published_every_interval(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given an emulator that publishes SQS metrics every second, and a queue with 3 waiting messages
    with Emulator(port=0, sqs_metrics_interval_s=1.0) as emu:
        for key, value in aws_environment(emu.endpoint_url).items():
            monkeypatch.setenv(key, value)
        sqs, cw = boto3.client("sqs"), boto3.client("cloudwatch")
        url = sqs.create_queue(QueueName="backlog")["QueueUrl"]
        empty = sqs.create_queue(QueueName="empty")["QueueUrl"]
        assert empty
        for i in range(3):
            sqs.send_message(QueueUrl=url, MessageBody=str(i))
        # Then the depth is published, the oldest message's age grows, and an empty queue reports 0
        wait_until(lambda: _latest(cw, "backlog", "ApproximateNumberOfMessagesVisible") == 3.0, timeout_s=30)
        age = wait_until(
            lambda: _at_least(_latest(cw, "backlog", "ApproximateAgeOfOldestMessage"), 1.0), timeout_s=30
        )
        assert age <= 60.0
        wait_until(lambda: _latest(cw, "empty", "ApproximateNumberOfMessagesVisible") == 0.0, timeout_s=30)
        # And a received (in-flight) message leaves the visible count (several datums a minute here,
        # so the minute's Minimum shows the newest state)
        sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, VisibilityTimeout=60)
        wait_until(
            lambda: _latest(cw, "backlog", "ApproximateNumberOfMessagesVisible", "Minimum") == 2.0,
            timeout_s=30,
        )
        wait_until(
            lambda: _latest(cw, "backlog", "ApproximateNumberOfMessagesNotVisible") == 1.0, timeout_s=30
        )


def test_the_publisher_is_off_unless_asked_for(emulator: Emulator) -> None:
    # Given the tests' shared emulator (no interval) and a queue with a message
    sqs, cw = boto3.client("sqs"), boto3.client("cloudwatch")
    url = sqs.create_queue(QueueName="quiet-queue")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="x")
    time.sleep(1.5)
    # Then nothing but what clients put reaches the metric store
    assert _latest(cw, "quiet-queue", "ApproximateNumberOfMessagesVisible") is None


def _total(cw: Any, namespace: str, metric: str, dims: dict[str, str], stat: str = "Sum") -> float:
    now = datetime.now(UTC)
    result = cw.get_metric_data(
        StartTime=now - timedelta(minutes=5),
        EndTime=now + timedelta(minutes=1),
        MetricDataQueries=[
            {
                "Id": "q",
                "MetricStat": {
                    "Metric": {
                        "Namespace": namespace,
                        "MetricName": metric,
                        "Dimensions": [{"Name": k, "Value": v} for k, v in dims.items()],
                    },
                    "Period": 600,
                    "Stat": stat,
                },
            }
        ],
    )["MetricDataResults"][0]
    return float(sum(result["Values"]))


def test_sqs_counters_dynamodb_and_eventbridge_metrics_are_published_as_aws_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given an emulator that publishes AWS metrics every second
    with Emulator(port=0, sqs_metrics_interval_s=1.0) as emu:
        for key, value in aws_environment(emu.endpoint_url).items():
            monkeypatch.setenv(key, value)
        sqs, cw, ddb, events = (boto3.client(s) for s in ("sqs", "cloudwatch", "dynamodb", "events"))
        # When 3 messages (5 bytes each) are sent, 2 received and deleted, and an empty queue polled
        url = sqs.create_queue(QueueName="work")["QueueUrl"]
        idle = sqs.create_queue(QueueName="idle")["QueueUrl"]
        sqs.send_message_batch(
            QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": "hello"} for i in range(3)]
        )
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=2)["Messages"]
        for message in got:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        sqs.receive_message(QueueUrl=idle, WaitTimeSeconds=0)
        # and a table gets 2 small writes and a read, and a bus rule matches 2 events (1 target)
        ddb.create_table(
            TableName="things",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        for key in ("a", "b"):
            ddb.put_item(TableName="things", Item={"pk": {"S": key}})
        ddb.get_item(TableName="things", Key={"pk": {"S": "a"}})
        events.create_event_bus(Name="bus")
        events.put_rule(Name="all", EventBusName="bus", EventPattern='{"source": ["test"]}')
        events.put_targets(
            Rule="all",
            EventBusName="bus",
            Targets=[
                {
                    "Id": "q",
                    "Arn": sqs.get_queue_attributes(QueueUrl=idle, AttributeNames=["QueueArn"])["Attributes"][
                        "QueueArn"
                    ],
                }
            ],
        )
        events.put_events(
            Entries=[{"Source": "test", "DetailType": "t", "Detail": "{}", "EventBusName": "bus"}] * 2
        )
        # Then the SQS counters count exactly that, the idle queue publishes zeros, sizes are per message
        work, empty = {"QueueName": "work"}, {"QueueName": "idle"}
        wait_until(lambda: _total(cw, "AWS/SQS", "NumberOfMessagesSent", work) == 3.0, timeout_s=30)
        wait_until(lambda: _total(cw, "AWS/SQS", "NumberOfMessagesReceived", work) == 2.0, timeout_s=30)
        wait_until(lambda: _total(cw, "AWS/SQS", "NumberOfMessagesDeleted", work) == 2.0, timeout_s=30)
        wait_until(lambda: _total(cw, "AWS/SQS", "NumberOfEmptyReceives", empty) >= 1.0, timeout_s=30)
        assert _total(cw, "AWS/SQS", "NumberOfMessagesDeleted", empty) == 0.0
        assert _total(cw, "AWS/SQS", "SentMessageSize", work, "Maximum") == 5.0
        # And DynamoDB's consumed capacity (1 WCU per small write, 0.5 RCU per eventually consistent
        # read) and per-operation latency
        table = {"TableName": "things"}
        wait_until(
            lambda: _total(cw, "AWS/DynamoDB", "ConsumedWriteCapacityUnits", table) == 2.0, timeout_s=30
        )
        wait_until(
            lambda: _total(cw, "AWS/DynamoDB", "ConsumedReadCapacityUnits", table) == 0.5, timeout_s=30
        )
        latency = {"TableName": "things", "Operation": "PutItem"}
        assert _total(cw, "AWS/DynamoDB", "SuccessfulRequestLatency", latency, "SampleCount") == 2.0
        # And the rule's invocations (the SQS target gets both events)
        rule = {"EventBusName": "bus", "RuleName": "all"}
        wait_until(lambda: _total(cw, "AWS/Events", "Invocations", rule) == 2.0, timeout_s=30)
        assert _total(cw, "AWS/SQS", "NumberOfMessagesSent", empty) == 2.0
