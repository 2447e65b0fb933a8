"""Each service function's role allows what its code calls, on its own resources, and nothing more."""

from __future__ import annotations

import json
from typing import Any

import pytest
from infra_support import Synthesized

from contract.topology import Topology

pytestmark = [pytest.mark.infra, pytest.mark.slow]


@pytest.fixture(scope="module")
def topo(synthesized: Synthesized) -> Topology:
    topology: Topology = synthesized.built.topology
    return topology


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _logical_id(synthesized: Synthesized, type_: str, prop: str, value: str) -> str:
    [key] = [
        k for k, r in synthesized.resources(type_, "service").items() if r["Properties"].get(prop) == value
    ]
    return key.split(":", 1)[1]


def role_statements(synthesized: Synthesized, function_name: str) -> list[dict[str, Any]]:
    """Allow statements of every identity policy attached to the function's role."""
    fn = next(
        r
        for r in synthesized.resources("AWS::Lambda::Function", "service").values()
        if r["Properties"]["FunctionName"] == function_name
    )
    role_id = fn["Properties"]["Role"]["Fn::GetAtt"][0]
    statements: list[dict[str, Any]] = []
    for policy in synthesized.resources("AWS::IAM::Policy", "service").values():
        if {"Ref": role_id} in policy["Properties"]["Roles"]:
            statements += [
                s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Allow"
            ]
    return statements


def actions_on(statements: list[dict[str, Any]], table_id: str) -> set[str]:
    """DynamoDB actions allowed on the table (or its indexes) with logical id `table_id`."""
    found: set[str] = set()
    for statement in statements:
        if table_id in json.dumps(statement.get("Resource")):
            found |= {a for a in _as_list(statement["Action"]) if a.startswith("dynamodb:")}
    return found


def test_cars_api_cannot_delete_or_batch_write_cars_or_outbox(
    synthesized: Synthesized, topo: Topology
) -> None:
    statements = role_statements(synthesized, topo.cars_api.name)
    cars = _logical_id(synthesized, "AWS::DynamoDB::Table", "TableName", topo.cars_table.name)
    outbox = _logical_id(synthesized, "AWS::DynamoDB::Table", "TableName", topo.outbox_table.name)
    assert actions_on(statements, cars) == {
        "dynamodb:GetItem",
        "dynamodb:Query",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:ConditionCheckItem",
    }
    assert actions_on(statements, outbox) == {"dynamodb:PutItem"}


def test_ingest_updates_only_the_telemetry_attributes_of_cars(
    synthesized: Synthesized, topo: Topology
) -> None:
    statements = role_statements(synthesized, topo.telemetry_ingest.name)
    cars = _logical_id(synthesized, "AWS::DynamoDB::Table", "TableName", topo.cars_table.name)
    [statement] = [s for s in statements if any(a.startswith("dynamodb:") for a in _as_list(s["Action"]))]
    assert _as_list(statement["Action"]) == ["dynamodb:UpdateItem"]
    assert statement["Resource"] == {"Fn::GetAtt": [cars, "Arn"]}  # the table only, no index
    attributes = statement["Condition"]["ForAllValues:StringEquals"]["dynamodb:Attributes"]
    assert set(attributes) == {
        "car_id",
        "record_type",
        "status",
        "position",
        "battery_level",
        "speed_kmh",
        "telemetry_ts",
    }


def test_relay_publishes_only_the_service_events(synthesized: Synthesized, topo: Topology) -> None:
    statements = role_statements(synthesized, topo.outbox_relay.name)
    [put] = [s for s in statements if "events:PutEvents" in _as_list(s["Action"])]
    assert put["Condition"]["StringEquals"]["events:source"] == [topo.event_source]
    assert set(put["Condition"]["ForAllValues:StringEquals"]["events:detail-type"]) == set(
        topo.event_detail_types
    )


def test_the_relay_claims_and_marks_outbox_items_and_sweeps_every_five_minutes(
    synthesized: Synthesized, topo: Topology
) -> None:
    statements = role_statements(synthesized, topo.outbox_relay.name)
    outbox = _logical_id(synthesized, "AWS::DynamoDB::Table", "TableName", topo.outbox_table.name)
    assert actions_on(statements, outbox) >= {"dynamodb:UpdateItem", "dynamodb:Query"}
    assert not actions_on(statements, outbox) & {"dynamodb:DeleteItem", "dynamodb:PutItem", "dynamodb:Scan"}
    [schedule] = [
        r["Properties"]
        for r in synthesized.resources("AWS::Scheduler::Schedule", "service").values()
        if r["Properties"]["Name"] == topo.outbox_sweep_schedule
    ]
    assert schedule["ScheduleExpression"] == "rate(5 minutes)"
    assert "DeadLetterConfig" in schedule["Target"]


def test_only_the_cars_api_reads_the_pagination_key(synthesized: Synthesized, topo: Topology) -> None:
    secret = _logical_id(synthesized, "AWS::SecretsManager::Secret", "Name", topo.pagination_secret)
    props = synthesized.resources("AWS::SecretsManager::Secret", "service")[f"service:{secret}"]["Properties"]
    assert props["GenerateSecretString"]["PasswordLength"] >= 32  # random, made by Secrets Manager
    for fn in (topo.cars_api, topo.telemetry_ingest, topo.outbox_relay):
        reads = [
            s
            for s in role_statements(synthesized, fn.name)
            if "secretsmanager:GetSecretValue" in _as_list(s["Action"])
            and secret in json.dumps(s["Resource"])
        ]
        assert bool(reads) is (fn is topo.cars_api), fn.key
