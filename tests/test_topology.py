"""The shared resource definition is internally consistent (what AWS requires of the settings)."""

from __future__ import annotations

import boto3
import pytest

from contract.topology import Topology, topology
from sandbox.aws.provision import Provisioned, provision


@pytest.mark.parametrize("stage", ["local", "test", "dev", "prod"])
def test_queue_visibility_covers_six_function_timeouts_plus_the_batching_window(stage: str) -> None:
    # Given the telemetry queue and the function its event source mapping invokes
    topo = topology(stage)
    needed = 6 * topo.telemetry_ingest.timeout_s + topo.telemetry_source.max_batching_window_s
    # Then a batch still being processed can never reappear and be delivered twice
    assert topo.telemetry_queue.visibility_timeout_s >= needed


@pytest.mark.parametrize("stage", ["local", "prod"])
def test_every_physical_name_carries_the_stage_and_is_unique_within_its_kind(stage: str) -> None:
    topo = topology(stage)
    kinds = {
        "tables": [t.name for t in topo.tables],
        "functions": [f.name for f in topo.functions],
        "queues": [topo.telemetry_queue.name, topo.telemetry_dlq.name],
    }
    for names in kinds.values():
        assert len(names) == len(set(names))
        assert all(f"-{stage}-" in name for name in names)
    assert stage in topo.event_bus
    assert stage in topo.alerts_topic


def test_every_function_gets_the_powertools_identity_and_only_the_names_it_needs() -> None:
    topo = topology("test")
    for fn in topo.functions:
        env = topo.function_environment(fn)
        assert env["POWERTOOLS_SERVICE_NAME"] == fn.service
        assert env["POWERTOOLS_METRICS_NAMESPACE"] == topo.metrics_namespace
    assert "CARS_TABLE_NAME" not in topo.function_environment(topo.monitor)
    assert "MONITOR_TABLE_NAME" not in topo.function_environment(topo.cars_api)


@pytest.mark.integration
def test_provisioning_creates_every_queue_rule_and_log_group_the_cdk_app_deploys(
    provisioned: Provisioned, topo: Topology
) -> None:
    # Given the emulator provisioned from the topology (twice: provisioning is idempotent)
    provision(topo, session=boto3.Session())
    sqs, events, logs = (boto3.client(name) for name in ("sqs", "events", "logs"))
    # Then the queues beyond the telemetry pair exist
    for queue in (topo.relay_failures, topo.monitor_schedule_dlq):
        assert sqs.get_queue_url(QueueName=queue.name)["QueueUrl"]
    # And the bus rule the monitor watches routes fleet events to the event log group
    rules = events.list_rules(EventBusName=topo.event_bus)["Rules"]
    assert [r["Name"] for r in rules] == list(topo.event_rules)
    targets = events.list_targets_by_rule(Rule=topo.event_log_rule, EventBusName=topo.event_bus)["Targets"]
    assert [t["Arn"].rsplit(":", 1)[-1] for t in targets] == [topo.event_log_group]
    groups = logs.describe_log_groups()["logGroups"]
    expected = {fn.log_group for fn in topo.functions} | {topo.event_log_group}
    assert expected <= {g["logGroupName"] for g in groups}
    # And both topics: the alerts, and the monitor's own health (its heartbeat and failure alarms)
    topics = {t["TopicArn"].rsplit(":", 1)[-1] for t in boto3.client("sns").list_topics()["Topics"]}
    assert {topo.alerts_topic, topo.monitor_health_topic} <= topics
    assert provisioned.monitor_health_topic_arn.endswith(f":{topo.monitor_health_topic}")
