"""Create Fleetscope's resources in the emulator from the shared topology (contract/topology.py).

Idempotent: provisioning twice leaves one of everything. Used by the sandbox and by the integration
test fixtures, so tests see tables, queues, bus and topics exactly as the service expects them (the
alerts topic and the monitor-health topic, where the CDK app sends the monitor's own-health alarms).
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.exceptions import ClientError

from contract.topology import QueueSpec, TableSpec, Topology


@dataclass(frozen=True)
class Provisioned:
    """Addresses of the provisioned resources that are not derivable from names alone."""

    telemetry_queue_url: str
    telemetry_queue_arn: str
    telemetry_dlq_url: str
    telemetry_dlq_arn: str
    event_bus_arn: str
    alerts_topic_arn: str
    monitor_health_topic_arn: str
    outbox_stream_arn: str | None
    relay_failures_url: str
    monitor_schedule_dlq_url: str


def provision(topo: Topology, *, session: boto3.Session | None = None) -> Provisioned:
    session = session or boto3.Session()
    ddb = session.client("dynamodb")
    sqs = session.client("sqs")
    events = session.client("events")
    sns = session.client("sns")
    logs = session.client("logs")

    stream_arns = {table.name: _create_table(ddb, table) for table in topo.tables}
    dlq_url, dlq_arn = _create_queue(sqs, topo.telemetry_dlq)
    queue_url, queue_arn = _create_queue(sqs, topo.telemetry_queue, dlq_arn=dlq_arn)
    relay_failures_url, _ = _create_queue(sqs, topo.relay_failures)
    schedule_dlq_url, _ = _create_queue(sqs, topo.monitor_schedule_dlq)
    bus_arn = _create_bus(events, topo.event_bus)
    topic_arns = {name: sns.create_topic(Name=name)["TopicArn"] for name in topo.topics}
    receipts_url, receipts_arn = _create_queue(sqs, topo.alerts_receipts)
    subscribe_queue(sns, sqs, [topic_arns[topo.alerts_topic]], receipts_url, receipts_arn)
    for group in (*(fn.log_group for fn in topo.functions), topo.event_log_group):
        _create_log_group(logs, group)
    _create_event_log_rule(events, topo, bus_arn)
    _create_pagination_secret(session.client("secretsmanager"), topo.pagination_secret)
    return Provisioned(
        telemetry_queue_url=queue_url,
        telemetry_queue_arn=queue_arn,
        telemetry_dlq_url=dlq_url,
        telemetry_dlq_arn=dlq_arn,
        event_bus_arn=bus_arn,
        alerts_topic_arn=topic_arns[topo.alerts_topic],
        monitor_health_topic_arn=topic_arns[topo.monitor_health_topic],
        outbox_stream_arn=stream_arns[topo.outbox_table.name],
        relay_failures_url=relay_failures_url,
        monitor_schedule_dlq_url=schedule_dlq_url,
    )


def _create_pagination_secret(secretsmanager: Any, name: str) -> None:
    """The sandbox's own random next_token key (the CDK app creates the stage's on AWS); kept if it exists."""
    try:
        secretsmanager.create_secret(Name=name, SecretString=secrets.token_urlsafe(48))
    except ClientError as err:
        if err.response["Error"]["Code"] != "ResourceExistsException":
            raise


def _create_table(ddb: Any, table: TableSpec) -> str | None:
    attrs = [{"AttributeName": name, "AttributeType": "S"} for name in table.key_attributes]
    keys = [{"AttributeName": table.partition_key, "KeyType": "HASH"}]
    if table.sort_key:
        keys.append({"AttributeName": table.sort_key, "KeyType": "RANGE"})
    kwargs: dict[str, Any] = {
        "TableName": table.name,
        "AttributeDefinitions": attrs,
        "KeySchema": keys,
        "BillingMode": "PAY_PER_REQUEST",
    }
    if table.indexes:
        kwargs["GlobalSecondaryIndexes"] = [
            {
                "IndexName": index.name,
                "KeySchema": [{"AttributeName": index.partition_key, "KeyType": "HASH"}]
                + ([{"AttributeName": index.sort_key, "KeyType": "RANGE"}] if index.sort_key else []),
                "Projection": {"ProjectionType": "ALL"},
            }
            for index in table.indexes
        ]
    if table.stream:
        kwargs["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": table.stream}
    try:
        description = ddb.create_table(**kwargs)["TableDescription"]
    except ClientError as err:
        if err.response["Error"]["Code"] != "ResourceInUseException":
            raise
        description = ddb.describe_table(TableName=table.name)["Table"]
    if table.ttl_attribute:
        ddb.update_time_to_live(
            TableName=table.name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": table.ttl_attribute},
        )
    stream_arn: str | None = description.get("LatestStreamArn")
    return stream_arn


def _create_queue(sqs: Any, queue: QueueSpec, *, dlq_arn: str | None = None) -> tuple[str, str]:
    attributes = {
        "VisibilityTimeout": str(queue.visibility_timeout_s),
        "MessageRetentionPeriod": str(queue.retention_s),
    }
    if dlq_arn:
        attributes["RedrivePolicy"] = json.dumps(
            {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(queue.max_receive_count)}
        )
    url: str = sqs.create_queue(QueueName=queue.name, Attributes=attributes)["QueueUrl"]
    arn: str = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


def subscribe_queue(sns: Any, sqs: Any, topic_arns: list[str], url: str, arn: str) -> None:
    """Let the topics send to the queue and subscribe it to each, once (the SNS envelope is kept: it
    carries the MessageId and the attributes)."""
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "sns.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": arn,
                "Condition": {"ArnEquals": {"aws:SourceArn": topic_arns}},
            }
        ],
    }
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(policy)})
    for topic in topic_arns:
        existing = sns.list_subscriptions_by_topic(TopicArn=topic).get("Subscriptions", [])
        if not any(s.get("Endpoint") == arn and s.get("Protocol") == "sqs" for s in existing):
            sns.subscribe(
                TopicArn=topic, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "false"}
            )


def _create_bus(events: Any, name: str) -> str:
    try:
        arn: str = events.create_event_bus(Name=name)["EventBusArn"]
    except ClientError as err:
        if err.response["Error"]["Code"] != "ResourceAlreadyExistsException":
            raise
        arn = events.describe_event_bus(Name=name)["Arn"]
    return arn


def _create_event_log_rule(events: Any, topo: Topology, bus_arn: str) -> None:
    """The bus rule copying each fleet event's ids and status to a log group, as the CDK app deploys it."""
    events.put_rule(
        Name=topo.event_log_rule,
        EventBusName=topo.event_bus,
        EventPattern=json.dumps({"source": [{"prefix": "fleetscope"}]}),
        State="ENABLED",
    )
    _, _, _, region, account, _ = bus_arn.split(":", 5)
    events.put_targets(
        Rule=topo.event_log_rule,
        EventBusName=topo.event_bus,
        Targets=[
            {
                "Id": "event-log",
                "Arn": f"arn:aws:logs:{region}:{account}:log-group:{topo.event_log_group}",
                "InputTransformer": topo.event_log_input,
            }
        ],
    )


def _create_log_group(logs: Any, name: str) -> None:
    try:
        logs.create_log_group(logGroupName=name)
    except ClientError as err:
        if err.response["Error"]["Code"] != "ResourceAlreadyExistsException":
            raise
