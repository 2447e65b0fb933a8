"""The synthesized templates hold every resource the service and its monitoring need, as the topology says."""

from __future__ import annotations

import json
from typing import Any

import pytest
from infra_support import ALERT_EMAILS, Synthesized

from contract.metrics import BUSINESS_METRICS
from contract.topology import QueueSpec, TableSpec, Topology
from infra.constructs.dashboards import MONITOR_METRICS

pytestmark = [pytest.mark.infra, pytest.mark.slow]


@pytest.fixture(scope="module")
def topo(synthesized: Synthesized) -> Topology:
    topology: Topology = synthesized.built.topology
    return topology


def _one(resources: dict[str, dict[str, Any]], **properties: Any) -> dict[str, Any]:
    """The single resource whose properties include ``properties``."""
    matches = [
        r for r in resources.values() if all(r["Properties"].get(k) == v for k, v in properties.items())
    ]
    assert len(matches) == 1, f"expected one resource with {properties}, found {len(matches)}"
    return matches[0]


def _logical_id(synthesized: Synthesized, stack: str, type_: str, **properties: Any) -> str:
    resources = synthesized.resources(type_, stack)
    matches = [
        key.split(":", 1)[1]
        for key, r in resources.items()
        if all(r["Properties"].get(k) == v for k, v in properties.items())
    ]
    assert len(matches) == 1, f"expected one {type_} with {properties}, found {matches}"
    return matches[0]


# --- tables ------------------------------------------------------------------------------------


def _table_specs(topo: Topology) -> list[tuple[str, TableSpec]]:
    return [
        ("service", topo.cars_table),
        ("service", topo.idempotency_table),
        ("service", topo.outbox_table),
        ("observability", topo.monitor_table),
    ]


def test_tables_match_the_topology(synthesized: Synthesized, topo: Topology) -> None:
    for stack, spec in _table_specs(topo):
        table = _one(synthesized.resources("AWS::DynamoDB::Table", stack), TableName=spec.name)["Properties"]
        keys = {k["AttributeName"]: k["KeyType"] for k in table["KeySchema"]}
        assert keys == {spec.partition_key: "HASH", **({spec.sort_key: "RANGE"} if spec.sort_key else {})}
        assert {a["AttributeName"] for a in table["AttributeDefinitions"]} == set(spec.key_attributes)
        indexes = {
            i["IndexName"]: ({k["AttributeName"]: k["KeyType"] for k in i["KeySchema"]}, i["Projection"])
            for i in table.get("GlobalSecondaryIndexes", [])
        }
        assert indexes == {
            i.name: (
                {i.partition_key: "HASH", **({i.sort_key: "RANGE"} if i.sort_key else {})},
                {"ProjectionType": "ALL"},
            )
            for i in spec.indexes
        }
        assert table["BillingMode"] == "PAY_PER_REQUEST"
        assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
        if spec.ttl_attribute:
            assert table["TimeToLiveSpecification"] == {"AttributeName": spec.ttl_attribute, "Enabled": True}
        else:
            assert "TimeToLiveSpecification" not in table
        if spec.stream:
            assert table["StreamSpecification"] == {"StreamViewType": spec.stream}
        else:
            assert "StreamSpecification" not in table


def test_prod_tables_are_retained(synthesized: Synthesized) -> None:
    for key, resource in synthesized.resources("AWS::DynamoDB::Table").items():
        assert resource["DeletionPolicy"] == "Retain", key
        assert resource["Properties"]["DeletionProtectionEnabled"] is True, key


# --- queues and event sources ------------------------------------------------------------------


def _queue(synthesized: Synthesized, stack: str, spec: QueueSpec) -> dict[str, Any]:
    return _one(synthesized.resources("AWS::SQS::Queue", stack), QueueName=spec.name)["Properties"]


def test_queues_are_encrypted_tls_only_and_redriven(synthesized: Synthesized, topo: Topology) -> None:
    queues = [
        ("service", topo.telemetry_queue),
        ("service", topo.telemetry_dlq),
        ("service", topo.relay_failures),
        ("observability", topo.monitor_schedule_dlq),
    ]
    for stack, spec in queues:
        queue = _queue(synthesized, stack, spec)
        assert queue["SqsManagedSseEnabled"] is True, spec.name
        assert queue["MessageRetentionPeriod"] == spec.retention_s
        logical_id = _logical_id(synthesized, stack, "AWS::SQS::Queue", QueueName=spec.name)
        policies = [
            p["Properties"]["PolicyDocument"]["Statement"]
            for p in synthesized.resources("AWS::SQS::QueuePolicy", stack).values()
            if {"Ref": logical_id} in p["Properties"]["Queues"]
        ]
        assert any(
            s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
            for statements in policies
            for s in statements
        ), f"{spec.name} accepts plain HTTP"
    telemetry = _queue(synthesized, "service", topo.telemetry_queue)
    dlq_id = _logical_id(synthesized, "service", "AWS::SQS::Queue", QueueName=topo.telemetry_dlq.name)
    assert telemetry["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": [dlq_id, "Arn"]},
        "maxReceiveCount": topo.telemetry_queue.max_receive_count,
    }
    assert telemetry["VisibilityTimeout"] == topo.telemetry_queue.visibility_timeout_s


def _alias_id(synthesized: Synthesized, stack: str, function_name: str) -> str:
    fn_id = _logical_id(synthesized, stack, "AWS::Lambda::Function", FunctionName=function_name)
    aliases = [
        key.split(":", 1)[1]
        for key, r in synthesized.resources("AWS::Lambda::Alias", stack).items()
        if r["Properties"]["FunctionName"] == {"Ref": fn_id}
    ]
    assert len(aliases) == 1
    return aliases[0]


def test_telemetry_mapping_reports_partial_failures(synthesized: Synthesized, topo: Topology) -> None:
    queue_id = _logical_id(synthesized, "service", "AWS::SQS::Queue", QueueName=topo.telemetry_queue.name)
    mapping = _one(
        synthesized.resources("AWS::Lambda::EventSourceMapping", "service"),
        EventSourceArn={"Fn::GetAtt": [queue_id, "Arn"]},
    )["Properties"]
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BatchSize"] == topo.telemetry_source.batch_size
    assert mapping["MaximumBatchingWindowInSeconds"] == topo.telemetry_source.max_batching_window_s
    alias_id = _alias_id(synthesized, "service", topo.telemetry_ingest.name)
    assert alias_id in json.dumps(mapping["FunctionName"]), "the mapping must invoke the live alias"


def test_outbox_stream_feeds_the_relay_with_retries_and_an_on_failure_queue(
    synthesized: Synthesized, topo: Topology
) -> None:
    table_id = _logical_id(synthesized, "service", "AWS::DynamoDB::Table", TableName=topo.outbox_table.name)
    mapping = _one(
        synthesized.resources("AWS::Lambda::EventSourceMapping", "service"),
        EventSourceArn={"Fn::GetAtt": [table_id, "StreamArn"]},
    )["Properties"]
    source = topo.outbox_source
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BisectBatchOnFunctionError"] is True
    assert mapping["MaximumRetryAttempts"] == source.retry_attempts
    assert mapping["MaximumRecordAgeInSeconds"] == source.max_record_age_s
    assert mapping["BatchSize"] == source.batch_size
    failures_id = _logical_id(synthesized, "service", "AWS::SQS::Queue", QueueName=topo.relay_failures.name)
    assert mapping["DestinationConfig"] == {
        "OnFailure": {"Destination": {"Fn::GetAtt": [failures_id, "Arn"]}}
    }
    assert _alias_id(synthesized, "service", topo.outbox_relay.name) in json.dumps(mapping["FunctionName"])
    # only INSERTs invoke the relay: the claim and the published mark (MODIFY) do not
    [pattern] = mapping["FilterCriteria"]["Filters"]
    assert json.loads(pattern["Pattern"]) == {"eventName": ["INSERT"]}


# --- functions ---------------------------------------------------------------------------------


def test_every_function_has_the_house_defaults(synthesized: Synthesized, topo: Topology) -> None:
    functions = synthesized.resources("AWS::Lambda::Function")
    judge = f"{topo.prefix}-canary-judge"  # the canary judging loop's function (a HouseFunction too)
    recorder = f"{topo.prefix}-alias-updates"  # the alias-update recorder's (one too)
    assert {f["Properties"]["FunctionName"] for f in functions.values()} == {
        f.name for f in topo.functions
    } | {judge, recorder}
    log_groups = synthesized.resources("AWS::Logs::LogGroup")
    for spec in topo.functions:
        stack = "observability" if spec.key == "monitor" else "service"
        fn = _one(synthesized.resources("AWS::Lambda::Function", stack), FunctionName=spec.name)["Properties"]
        assert fn["Architectures"] == ["arm64"]
        assert fn["Runtime"] == "python3.14"
        assert fn["Handler"] == spec.handler
        assert fn["TracingConfig"] == {"Mode": "Active"}
        assert fn["LoggingConfig"]["LogFormat"] == "JSON"
        assert fn["Timeout"] == spec.timeout_s
        env = fn["Environment"]["Variables"]
        for key, value in topo.function_environment(spec).items():
            assert env[key] == value, (spec.key, key)
        if spec.reserved_concurrency is not None:
            assert fn["ReservedConcurrentExecutions"] == spec.reserved_concurrency
        log_group_id = fn["LoggingConfig"]["LogGroup"]["Ref"]
        log_group = log_groups[f"{stack}:{log_group_id}"]["Properties"]
        assert log_group == {"LogGroupName": spec.log_group, "RetentionInDays": 90, **_tags(log_group)}


def _tags(properties: dict[str, Any]) -> dict[str, Any]:
    return {"Tags": properties["Tags"]} if "Tags" in properties else {}


def test_stage_memory_overrides_apply(synthesized: Synthesized, topo: Topology) -> None:
    fn = _one(synthesized.resources("AWS::Lambda::Function"), FunctionName=topo.cars_api.name)["Properties"]
    assert fn["MemorySize"] == 1024  # cdk.json: prod memoryMb.cars-api
    ingest = _one(synthesized.resources("AWS::Lambda::Function"), FunctionName=topo.telemetry_ingest.name)
    assert ingest["Properties"]["MemorySize"] == topo.telemetry_ingest.memory_mb


def test_monitor_gets_the_names_it_watches(synthesized: Synthesized, topo: Topology) -> None:
    from contract.resources import ResourceNames

    fn = _one(synthesized.resources("AWS::Lambda::Function"), FunctionName=topo.monitor.name)["Properties"]
    env = fn["Environment"]["Variables"]
    assert ResourceNames.model_validate_json(env["MONITOR_RESOURCES"]) == ResourceNames.from_topology(topo)
    assert env["MONITOR_PERIOD_S"] == "300"
    topic_id = _logical_id(synthesized, "observability", "AWS::SNS::Topic", TopicName=topo.alerts_topic)
    assert env["ALERTS_TOPIC_ARN"] == {"Ref": topic_id}


def test_monitor_runs_every_five_minutes_with_retries_and_a_dlq(
    synthesized: Synthesized, topo: Topology
) -> None:
    schedule = _one(synthesized.resources("AWS::Scheduler::Schedule"), Name=topo.monitor_schedule)[
        "Properties"
    ]
    assert schedule["ScheduleExpression"] == "rate(5 minutes)"
    assert schedule["Target"]["RetryPolicy"]["MaximumRetryAttempts"] >= 1
    dlq_id = _logical_id(
        synthesized, "observability", "AWS::SQS::Queue", QueueName=topo.monitor_schedule_dlq.name
    )
    assert schedule["Target"]["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": [dlq_id, "Arn"]}}
    assert schedule["Target"]["Arn"] == {"Ref": _alias_id(synthesized, "observability", topo.monitor.name)}


def test_monitor_schedule_passes_its_scheduled_time(synthesized: Synthesized, topo: Topology) -> None:
    from contract.topology import SCHEDULED_TIME_FIELD

    schedule = _one(synthesized.resources("AWS::Scheduler::Schedule"), Name=topo.monitor_schedule)[
        "Properties"
    ]
    # EventBridge Scheduler substitutes the context attribute; the handler reads it as the run's `now`
    assert json.loads(schedule["Target"]["Input"]) == {SCHEDULED_TIME_FIELD: "<aws.scheduler.scheduled-time>"}


# --- API -----------------------------------------------------------------------------------------


def _api_methods(synthesized: Synthesized) -> dict[tuple[str, str], dict[str, Any]]:
    """(resource path, HTTP method) → the method's properties."""
    resources = synthesized.resources("AWS::ApiGateway::Resource", "service")
    by_id = {key.split(":", 1)[1]: r["Properties"] for key, r in resources.items()}

    def path(logical_id: str) -> str:
        resource = by_id[logical_id]
        parent = resource["ParentId"]
        prefix = path(parent["Ref"]) if "Ref" in parent else ""
        return f"{prefix}/{resource['PathPart']}"

    return {
        (path(m["Properties"]["ResourceId"]["Ref"]), m["Properties"]["HttpMethod"]): m["Properties"]
        for m in synthesized.resources("AWS::ApiGateway::Method", "service").values()
    }


def test_api_uses_iam_auth_except_health(synthesized: Synthesized, topo: Topology) -> None:
    _one(synthesized.resources("AWS::ApiGateway::RestApi"), Name=topo.api_name)
    methods = _api_methods(synthesized)
    assert {k: m["AuthorizationType"] for k, m in methods.items()} == {
        ("/cars", "ANY"): "AWS_IAM",
        ("/cars/{car_id}", "ANY"): "AWS_IAM",
        ("/cars/{car_id}/{proxy+}", "ANY"): "AWS_IAM",
        ("/cars/{car_id}/telemetry", "POST"): "AWS_IAM",
        ("/health", "GET"): "NONE",
    }
    alias_id = _alias_id(synthesized, "service", topo.cars_api.name)
    for key, method in methods.items():
        if key[0].endswith("/telemetry"):
            continue
        assert method["Integration"]["Type"] == "AWS_PROXY"
        assert alias_id in json.dumps(method["Integration"]["Uri"]), "the API must invoke the live alias"


def test_telemetry_route_validates_the_body_and_sends_to_sqs_without_a_lambda(
    synthesized: Synthesized, topo: Topology
) -> None:
    from contract.telemetry_api import (
        ACCEPTED_TEMPLATE,
        BAD_REQUEST_BODY_TEMPLATE,
        READING_MODEL_NAME,
        READING_SCHEMA,
    )

    method = _api_methods(synthesized)[("/cars/{car_id}/telemetry", "POST")]
    integration = method["Integration"]
    # A direct AWS service integration (SQS, JSON protocol), not a Lambda
    assert integration["Type"] == "AWS"
    assert ":sqs:path/" in json.dumps(integration["Uri"])
    assert integration["PassthroughBehavior"] == "NEVER"
    assert integration["RequestParameters"] == {
        "integration.request.header.Content-Type": "'application/x-amz-json-1.0'",
        "integration.request.header.X-Amz-Target": "'AmazonSQS.SendMessage'",
    }
    template = json.dumps(integration["RequestTemplates"]["application/json"])
    assert "MessageBody" in template
    assert "Telemetry" in template, "the template names the telemetry queue's URL"
    # 202 with the message id only for an SQS 2xx; anything else (the default) is 503
    responses = {r["StatusCode"]: r for r in integration["IntegrationResponses"]}
    assert responses["202"]["SelectionPattern"] == r"2\d{2}"
    assert responses["202"]["ResponseTemplates"]["application/json"] == ACCEPTED_TEMPLATE
    assert "SelectionPattern" not in responses["503"]
    # The body is checked by the request model (the contract's schema) before anything is sent
    validator = synthesized.resources("AWS::ApiGateway::RequestValidator", "service")
    (validator_id,) = [key.split(":", 1)[1] for key in validator]
    assert method["RequestValidatorId"] == {"Ref": validator_id}
    assert next(iter(validator.values()))["Properties"]["ValidateRequestBody"] is True
    model = _one(synthesized.resources("AWS::ApiGateway::Model", "service"), Name=READING_MODEL_NAME)
    assert model["Properties"]["Schema"] == READING_SCHEMA
    assert model["Properties"]["ContentType"] == "application/json"
    assert method["RequestModels"]["application/json"]["Ref"]
    bad_body = _one(
        synthesized.resources("AWS::ApiGateway::GatewayResponse", "service"), ResponseType="BAD_REQUEST_BODY"
    )
    assert bad_body["Properties"]["ResponseTemplates"]["application/json"] == BAD_REQUEST_BODY_TEMPLATE
    # The integration's role may send to the telemetry queue and do nothing else
    role_id = integration["Credentials"]["Fn::GetAtt"][0]
    policies = [
        p["Properties"]["PolicyDocument"]["Statement"]
        for p in synthesized.resources("AWS::IAM::Policy", "service").values()
        if {"Ref": role_id} in p["Properties"]["Roles"]
    ]
    (statements,) = policies
    assert [s["Action"] for s in statements] == ["sqs:SendMessage"]
    queue_id = _logical_id(synthesized, "service", "AWS::SQS::Queue", QueueName=topo.telemetry_queue.name)
    assert statements[0]["Resource"] == {"Fn::GetAtt": [queue_id, "Arn"]}
    role = synthesized.resources("AWS::IAM::Role", "service")[f"service:{role_id}"]
    assert role["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {
        "Service": "apigateway.amazonaws.com"
    }


def test_api_stage_logs_json_traces_and_throttles(synthesized: Synthesized, topo: Topology) -> None:
    stage = _one(synthesized.resources("AWS::ApiGateway::Stage"), StageName=topo.api_stage)["Properties"]
    assert stage["TracingEnabled"] is True
    access_format = json.loads(stage["AccessLogSetting"]["Format"])
    assert {"requestId", "status", "responseLatency", "user", "xrayTraceId"} <= set(access_format)
    settings = {(m["ResourcePath"], m["HttpMethod"]): m for m in stage["MethodSettings"]}
    assert settings[("/*", "*")]["ThrottlingRateLimit"] == 100
    assert settings[("/*", "*")]["ThrottlingBurstLimit"] == 200
    assert settings[("/*", "*")]["LoggingLevel"] == "ERROR"
    # The telemetry route has a throttle of its own (the settings' defaults)
    telemetry = settings[("/~1cars~1{car_id}~1telemetry", "POST")]
    assert telemetry["ThrottlingRateLimit"] == 100
    assert telemetry["ThrottlingBurstLimit"] == 200


def test_cars_api_and_ingest_deploy_through_codedeploy_canaries_that_alarm_on_the_verdict(
    synthesized: Synthesized, topo: Topology
) -> None:
    groups = {
        g["Properties"]["DeploymentGroupName"]: g["Properties"]
        for g in synthesized.resources("AWS::CodeDeploy::DeploymentGroup").values()
    }
    assert set(groups) == {f"{topo.prefix}-cars-api", f"{topo.prefix}-telemetry-ingest"}
    alarms = synthesized.resources("AWS::CloudWatch::Alarm", "service")
    for name, group in groups.items():
        assert group["DeploymentConfigName"] == "CodeDeployDefault.LambdaCanary10Percent5Minutes"
        assert group["AutoRollbackConfiguration"]["Enabled"] is True
        assert "DEPLOYMENT_STOP_ON_ALARM" in group["AutoRollbackConfiguration"]["Events"]
        alarm_ids = {a["Name"]["Ref"] for a in group["AlarmConfiguration"]["Alarms"]}
        watched = {alarms[f"service:{i}"]["Properties"]["MetricName"] for i in alarm_ids}
        api = {"5XXError"} if name.endswith("cars-api") else set()
        assert watched == {"Errors", "CanaryFail"} | api
        verdict = next(
            alarms[f"service:{i}"]["Properties"]
            for i in alarm_ids
            if alarms[f"service:{i}"]["Properties"]["MetricName"] == "CanaryFail"
        )
        assert verdict["Namespace"] == "Fleetscope/Canary"
        assert verdict["Dimensions"] == [{"Name": "DeploymentGroup", "Value": name}]


def test_codedeploy_start_events_run_the_judging_loop(synthesized: Synthesized, topo: Topology) -> None:
    rules = [
        r["Properties"]
        for r in synthesized.resources("AWS::Events::Rule", "observability").values()
        if r["Properties"].get("EventPattern", {}).get("source") == ["aws.codedeploy"]
    ]
    (rule,) = rules
    assert rule["EventPattern"]["detail"] == {
        "state": ["START"],
        "deploymentGroup": [f"{topo.prefix}-cars-api", f"{topo.prefix}-telemetry-ingest"],
    }
    (machine,) = synthesized.resources("AWS::StepFunctions::StateMachine", "observability").values()
    assert machine["Properties"]["TracingConfiguration"] == {"Enabled": True}
    definition = json.dumps(machine["Properties"]["DefinitionString"])
    assert "WaitOneMinute" in definition
    assert "StillInProgress" in definition
    judge = _one(synthesized.resources("AWS::Lambda::Function"), FunctionName=f"{topo.prefix}-canary-judge")
    assert judge["Properties"]["Handler"] == "monitor.canary_handler.lambda_handler"


def _role_statements(synthesized: Synthesized, stack: str, function: dict[str, Any]) -> list[dict[str, Any]]:
    role_id = function["Properties"]["Role"]["Fn::GetAtt"][0]
    return [
        statement
        for policy in synthesized.resources("AWS::IAM::Policy", stack).values()
        if {"Ref": role_id} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def test_the_judge_reads_deployment_configs_and_gets_the_on_inconclusive_setting(
    synthesized: Synthesized, topo: Topology
) -> None:
    # Given the canary judge of the prod stage (cdk.json sets no canaryOnInconclusive)
    judge = _one(synthesized.resources("AWS::Lambda::Function"), FunctionName=f"{topo.prefix}-canary-judge")
    # Then it may read the predefined Lambda deployment configs, and only those
    statements = _role_statements(synthesized, "observability", judge)
    (config,) = [s for s in statements if "codedeploy:GetDeploymentConfig" in json.dumps(s["Action"])]
    assert config["Effect"] == "Allow"
    assert config["Action"] == "codedeploy:GetDeploymentConfig"
    resource = json.dumps(config["Resource"])
    assert ":deploymentconfig:CodeDeployDefault.Lambda*" in resource
    assert resource.count("*") == 1
    # and it gets the setting, at its default
    assert judge["Properties"]["Environment"]["Variables"]["FLEETSCOPE_CANARY_ON_INCONCLUSIVE"] == "promote"


def test_canary_on_inconclusive_comes_from_context(cdk_context: dict[str, Any]) -> None:
    from aws_cdk import App, RemovalPolicy, Stack
    from aws_cdk import aws_dynamodb as dynamodb
    from aws_cdk import aws_lambda as lambda_
    from aws_cdk import aws_logs as logs
    from aws_cdk.assertions import Template

    from contract.topology import topology
    from infra.constructs.canary_judge import CanaryJudgeLoop
    from infra.settings import SettingsError, stage_settings

    # Given `-c canaryOnInconclusive=rollback`
    settings = stage_settings((cdk_context | {"stage": "prod", "canaryOnInconclusive": "rollback"}).get)
    assert settings.canary_on_inconclusive == "rollback"
    # When the judging loop is built with it
    stack = Stack(App(), "Judge")
    table = dynamodb.Table(
        stack, "T", partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING)
    )
    CanaryJudgeLoop(
        stack,
        "Loop",
        topology=topology("test"),
        code=lambda_.Code.from_inline("def handler(e, c): pass"),
        memory_mb=512,
        monitor_table=table,
        environment={},
        log_retention=logs.RetentionDays.ONE_DAY,
        removal_policy=RemovalPolicy.DESTROY,
        groups=["g"],
        on_inconclusive=settings.canary_on_inconclusive,
    )
    # Then the judge gets it as FLEETSCOPE_CANARY_ON_INCONCLUSIVE
    functions = Template.from_stack(stack).find_resources("AWS::Lambda::Function")
    variables = [f["Properties"].get("Environment", {}).get("Variables", {}) for f in functions.values()]
    assert {"FLEETSCOPE_CANARY_ON_INCONCLUSIVE": "rollback"}.items() <= next(
        v for v in variables if "FLEETSCOPE_CANARY_ON_INCONCLUSIVE" in v
    ).items()
    # and anything but promote or rollback stops synthesis with the key
    with pytest.raises(SettingsError, match="canaryOnInconclusive"):
        stage_settings((cdk_context | {"stage": "prod", "canaryOnInconclusive": "extend"}).get)


def test_plain_update_alias_calls_on_live_are_recorded_except_codedeploy_s(
    synthesized: Synthesized, topo: Topology
) -> None:
    # Given the CloudTrail events EventBridge delivers for Lambda API calls
    rules = [
        r["Properties"]
        for r in synthesized.resources("AWS::Events::Rule", "observability").values()
        if r["Properties"].get("EventPattern", {}).get("source") == ["aws.lambda"]
    ]
    # Then one rule takes UpdateAlias* on live of the canary functions (by name or ARN), not CodeDeploy's
    (rule,) = rules
    pattern = rule["EventPattern"]
    assert pattern["detail-type"] == ["AWS API Call via CloudTrail"]
    detail = pattern["detail"]
    assert detail["eventSource"] == ["lambda.amazonaws.com"]
    assert detail["eventName"] == [{"prefix": "UpdateAlias"}]
    assert detail["sourceIPAddress"] == [{"anything-but": "codedeploy.amazonaws.com"}]
    assert detail["requestParameters"]["name"] == ["live"]
    names = [topo.cars_api.name, topo.telemetry_ingest.name]
    assert detail["requestParameters"]["functionName"] == [
        m for n in names for m in (n, {"suffix": f":function:{n}"})
    ]
    # and sends them to the recorder, which runs the alias handler with the monitor table's name
    recorder = _one(
        synthesized.resources("AWS::Lambda::Function"), FunctionName=f"{topo.prefix}-alias-updates"
    )
    assert recorder["Properties"]["Handler"] == "monitor.alias_handler.lambda_handler"
    assert recorder["Properties"]["Environment"]["Variables"]["MONITOR_TABLE_NAME"] == topo.monitor_table.name
    (target,) = rule["Targets"]
    assert target["RetryPolicy"] == {"MaximumRetryAttempts": 2}
    assert json.dumps(target["Arn"]).count("AliasUpdates") >= 1


def test_the_rule_s_constants_are_the_handler_s() -> None:
    from infra.constructs import alias_updates as infra_side
    from monitor import alias_updates as runtime_side

    for name in ("DETAIL_TYPE", "EVENT_NAME_PREFIX", "CODEDEPLOY"):
        assert getattr(infra_side, name) == getattr(runtime_side, name), name


# --- events --------------------------------------------------------------------------------------


def test_fleet_bus_has_an_archive_and_a_rule_to_logs(synthesized: Synthesized, topo: Topology) -> None:
    bus_id = _logical_id(synthesized, "service", "AWS::Events::EventBus", Name=topo.event_bus)
    archive = _one(synthesized.resources("AWS::Events::Archive"), ArchiveName=topo.event_archive)
    assert archive["Properties"]["SourceArn"] == {"Fn::GetAtt": [bus_id, "Arn"]}
    rule = _one(synthesized.resources("AWS::Events::Rule"), Name=topo.event_log_rule)["Properties"]
    assert rule["EventBusName"] == {"Ref": bus_id}
    log_group_id = _logical_id(
        synthesized, "service", "AWS::Logs::LogGroup", LogGroupName=topo.event_log_group
    )
    assert rule["Targets"][0]["Arn"] == {"Fn::GetAtt": [log_group_id, "Arn"]}
    policy = json.dumps(next(iter(synthesized.resources("AWS::Logs::ResourcePolicy").values())))
    assert "events.amazonaws.com" in policy
    assert log_group_id in policy


def test_the_event_log_keeps_ids_and_status_but_no_vin_or_position(
    synthesized: Synthesized, topo: Topology
) -> None:
    rule = _one(synthesized.resources("AWS::Events::Rule"), Name=topo.event_log_rule)["Properties"]
    transformer = rule["Targets"][0]["InputTransformer"]
    assert transformer == topo.event_log_input
    paths = set(transformer["InputPathsMap"].values())
    assert {"$.detail.event_id", "$.detail.car_id", "$.detail.car.status"} <= paths
    assert not any("position" in p or "vin" in p or p in ("$", "$.detail", "$.detail.car") for p in paths)


def test_log_event_positions_logs_whole_events() -> None:
    # Given the bus construct with the setting on (CDK context logEventPositions=true)
    from aws_cdk import App, Duration, RemovalPolicy, Stack
    from aws_cdk import aws_logs as logs
    from aws_cdk.assertions import Template

    from contract.topology import topology
    from infra.constructs.event_bus import FleetEventBus

    stack = Stack(App(), "Bus")
    FleetEventBus(
        stack,
        "Bus",
        topology=topology("test"),
        archive_retention=Duration.days(1),
        log_retention=logs.RetentionDays.ONE_DAY,
        removal_policy=RemovalPolicy.DESTROY,
        log_positions=True,
    )
    # Then the rule sends the event as it is
    [rule] = Template.from_stack(stack).find_resources("AWS::Events::Rule").values()
    assert "InputTransformer" not in rule["Properties"]["Targets"][0]


# --- alerts, alarms, dashboards -------------------------------------------------------------------


def _topic(synthesized: Synthesized, name: str) -> tuple[str, dict[str, Any]]:
    topic_id = _logical_id(synthesized, "observability", "AWS::SNS::Topic", TopicName=name)
    return topic_id, synthesized.templates["observability"]["Resources"][topic_id]["Properties"]


@pytest.mark.parametrize("which", ["alerts_topic", "monitor_health_topic"])
def test_alert_topics_are_kms_encrypted_and_subscribed(
    synthesized: Synthesized, topo: Topology, which: str
) -> None:
    topic_id, topic = _topic(synthesized, getattr(topo, which))
    key_id = topic["KmsMasterKeyId"]["Fn::GetAtt"][0]
    key = synthesized.templates["observability"]["Resources"][key_id]["Properties"]
    assert key["EnableKeyRotation"] is True
    subscriptions = synthesized.resources("AWS::SNS::Subscription", "observability")
    mine = [
        s["Properties"] for s in subscriptions.values() if s["Properties"]["TopicArn"] == {"Ref": topic_id}
    ]
    emails = [s for s in mine if s["Protocol"] == "email"]
    assert sorted(s["Endpoint"] for s in emails) == sorted(ALERT_EMAILS)
    receipts = [s for s in mine if s["Protocol"] != "email"]
    if which == "alerts_topic":  # and the monitor's delivery receipts queue, the SNS envelope kept
        assert [(s["Protocol"], s.get("RawMessageDelivery", False)) for s in receipts] == [("sqs", False)]
        queue_id = receipts[0]["Endpoint"]["Fn::GetAtt"][0]
        queue = synthesized.templates["observability"]["Resources"][queue_id]["Properties"]
        assert queue["QueueName"] == topo.alerts_receipts.name
    else:
        assert receipts == []
    cloudwatch = [
        s
        for s in key["KeyPolicy"]["Statement"]
        if s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}
    ]
    assert cloudwatch
    assert {"kms:Decrypt", "kms:GenerateDataKey*"} <= set(cloudwatch[0]["Action"])


def test_the_monitor_health_topic_has_a_key_of_its_own(synthesized: Synthesized, topo: Topology) -> None:
    # One broken key policy must not silence both the alerts and the alarms about the monitor itself
    _, alerts = _topic(synthesized, topo.alerts_topic)
    _, health = _topic(synthesized, topo.monitor_health_topic)
    assert alerts["KmsMasterKeyId"] != health["KmsMasterKeyId"]


def _topic_ref(synthesized: Synthesized, name: str | None = None) -> dict[str, str]:
    topic_id = _logical_id(
        synthesized,
        "observability",
        "AWS::SNS::Topic",
        TopicName=name or synthesized.built.topology.alerts_topic,
    )
    return {"Ref": topic_id}


MONITOR_HEALTH_ALARMS = ("monitor-heartbeat-missing", "monitor-notification-failures", "monitor-run-errors")


def test_every_alarm_notifies_the_alerts_topic_on_alarm_and_ok(synthesized: Synthesized) -> None:
    topo = synthesized.built.topology
    ref = _topic_ref(synthesized)
    health = _topic_ref(synthesized, topo.monitor_health_topic)
    alarms = {
        **synthesized.resources("AWS::CloudWatch::Alarm"),
        **synthesized.resources("AWS::CloudWatch::CompositeAlarm"),
    }
    assert len(alarms) >= 25
    for key, alarm in alarms.items():
        props = alarm["Properties"]
        name = props.get("AlarmName", "")
        own_health = name in {f"{topo.prefix}-{a}" for a in MONITOR_HEALTH_ALARMS}
        for actions in ("AlarmActions", "OKActions"):
            targets = props.get(actions, [])
            if own_health:  # the monitor's own health: through its own topic (and key) only
                assert targets == [health], f"{key} {actions} should go to the monitor health topic"
            elif key.startswith("observability:"):
                assert ref in targets, f"{key} has no {actions} to the alerts topic"
            else:  # ServiceStack refers to the topic by the ARN of its topology name
                assert any(_resolve(t).endswith(f":{topo.alerts_topic}") for t in targets), f"{key} {actions}"


def test_the_monitor_alarms_on_its_own_failures(synthesized: Synthesized, topo: Topology) -> None:
    names = _alarm_names(synthesized)
    for alarm, metric in (
        (f"{topo.prefix}-monitor-notification-failures", "NotificationFailures"),
        (f"{topo.prefix}-monitor-run-errors", "RunErrors"),
    ):
        props = names[alarm]
        assert props["MetricName"] == metric
        assert props["Namespace"] == topo.metrics_namespace
        assert props["Dimensions"] == [{"Name": "service", "Value": "monitor"}]
        assert props["Threshold"] == 0
        assert props["ComparisonOperator"] == "GreaterThanThreshold"


def _alarm_names(synthesized: Synthesized) -> dict[str, dict[str, Any]]:
    alarms = {
        **synthesized.resources("AWS::CloudWatch::Alarm"),
        **synthesized.resources("AWS::CloudWatch::CompositeAlarm"),
    }
    return {
        a["Properties"].get("AlarmName") or a["Properties"]["AlarmName"]: a["Properties"]
        for a in alarms.values()
    }


def test_the_alarms_the_operators_need_exist(synthesized: Synthesized, topo: Topology) -> None:
    names = _alarm_names(synthesized)
    p = topo.prefix
    required = [
        f"{p}-car-telemetry-DLQ-Queue-Message-Count-Max-Critical",  # DLQ not empty
        f"{p}-outbox-relay-failures-Queue-Message-Count-Max-Critical",
        f"{p}-monitor-schedule-dlq-Queue-Message-Count-Max-Critical",
        f"{p}-api-5xx-rate",
        f"{p}-car-telemetry-Queue-Message-Age-Max-Warning",
        f"{p}-api-traffic-anomaly",
        f"{p}-api-latency-anomaly",
        f"{p}-monitor-heartbeat-missing",
        f"{p}-fleet-service-unhealthy",
    ]
    for spec in topo.functions:
        required += [f"{p}-{spec.key}-Fault-Count-Critical", f"{p}-{spec.key}-Throttled-Count-Warning"]
    for table in (topo.cars_table, topo.idempotency_table, topo.outbox_table):
        short = table.name.removeprefix(f"{p}-")
        required += [
            f"{p}-{short}-Read-Throttled-Events-Warning",
            f"{p}-{short}-Write-Throttled-Events-Warning",
        ]
    missing = [name for name in required if name not in names]
    assert not missing


def test_heartbeat_alarm_treats_missing_data_as_breaching(synthesized: Synthesized, topo: Topology) -> None:
    heartbeat = _alarm_names(synthesized)[f"{topo.prefix}-monitor-heartbeat-missing"]
    assert heartbeat["TreatMissingData"] == "breaching"
    assert heartbeat["MetricName"] == "Heartbeat"
    assert heartbeat["Namespace"] == topo.metrics_namespace
    assert heartbeat["Dimensions"] == [{"Name": "service", "Value": "monitor"}]


def test_anomaly_alarms_use_cloudwatch_anomaly_bands(synthesized: Synthesized, topo: Topology) -> None:
    names = _alarm_names(synthesized)
    for name in (f"{topo.prefix}-api-traffic-anomaly", f"{topo.prefix}-api-latency-anomaly"):
        alarm = names[name]
        band = next(m for m in alarm["Metrics"] if m["Id"] == alarm["ThresholdMetricId"])
        assert band["Expression"].startswith("ANOMALY_DETECTION_BAND(")


def test_composite_alarm_covers_the_critical_alarms(synthesized: Synthesized, topo: Topology) -> None:
    composite = _alarm_names(synthesized)[f"{topo.prefix}-fleet-service-unhealthy"]
    rule = json.dumps(composite["AlarmRule"])
    alarms = synthesized.resources("AWS::CloudWatch::Alarm", "observability")
    critical = [
        key.split(":", 1)[1]
        for key, a in alarms.items()
        if a["Properties"]["AlarmName"].endswith("-Critical")
        and not a["Properties"]["AlarmName"].startswith(f"{topo.prefix}-monitor")
    ]
    assert critical
    for logical_id in critical:
        assert logical_id in rule
    assert "Api5xxRate" in rule


_PSEUDO = {
    "AWS::Region": "eu-west-1",
    "AWS::AccountId": "123456789012",
    "AWS::Partition": "aws",
    "AWS::URLSuffix": "amazonaws.com",
}


def _resolve(node: Any) -> Any:
    """Evaluate the intrinsics CDK puts in a dashboard body (pseudo parameters, Join, Select, Split)."""
    if isinstance(node, list):
        return [_resolve(n) for n in node]
    if not isinstance(node, dict):
        return node
    if set(node) == {"Ref"} and node["Ref"] in _PSEUDO:
        return _PSEUDO[node["Ref"]]
    if set(node) == {"Fn::Join"}:
        separator, parts = node["Fn::Join"]
        return separator.join(str(_resolve(p)) for p in parts)
    if set(node) == {"Fn::Split"}:
        separator, value = node["Fn::Split"]
        return str(_resolve(value)).split(separator)
    if set(node) == {"Fn::Select"}:
        index, values = node["Fn::Select"]
        return _resolve(values)[int(index)]
    raise AssertionError(f"unexpected intrinsic in a dashboard: {node}")


def _dashboard_metrics(synthesized: Synthesized, name: str) -> list[list[Any]]:
    """Every metric line of every widget of the dashboard (namespace, name, dim, value, ..., options)."""
    dashboard = _one(synthesized.resources("AWS::CloudWatch::Dashboard"), DashboardName=name)
    body = json.loads(_resolve(dashboard["Properties"]["DashboardBody"]))
    lines: list[list[Any]] = []
    for widget in body["widgets"]:
        for line in widget["properties"].get("metrics", []):
            lines.append(line)
        for annotation in widget["properties"].get("annotations", {}).get("alarms", []):
            lines.append([annotation])
    return lines


def _dimension_values(lines: list[list[Any]]) -> set[str]:
    return {item for line in lines for item in line if isinstance(item, str)}


def test_service_dashboard_has_a_widget_for_every_service_resource(
    synthesized: Synthesized, topo: Topology
) -> None:
    lines = _dashboard_metrics(synthesized, f"{topo.prefix}-fleet-service")
    values = _dimension_values(lines)
    watched = [
        topo.api_name,
        *(f.name for f in (topo.cars_api, topo.telemetry_ingest, topo.outbox_relay)),
        topo.cars_table.name,
        topo.idempotency_table.name,
        topo.outbox_table.name,
        topo.telemetry_queue.name,
        topo.telemetry_dlq.name,
        topo.relay_failures.name,
        topo.event_bus,
        *topo.event_rules,
    ]
    missing = [name for name in watched if name not in values]
    assert not missing, f"no widget for {missing}"
    for names in BUSINESS_METRICS.values():
        assert set(names) <= values
    for fn in (topo.cars_api, topo.telemetry_ingest, topo.outbox_relay):
        per_function = {line[1] for line in lines if len(line) > 3 and fn.name in line}
        assert {
            "Invocations",
            "Errors",
            "Throttles",
            "Duration",
            "ConcurrentExecutions",
            "ColdStart",
        } <= per_function
    api_latency = [line for line in lines if line[:2] == ["AWS/ApiGateway", "Latency"]]
    assert {line[-1]["stat"] for line in api_latency} >= {"p50", "p90", "p99"}
    assert {"4XXError", "5XXError"} <= {line[1] for line in lines if line[:1] == ["AWS/ApiGateway"]}
    assert {"Invocations", "FailedInvocations"} <= {line[1] for line in lines if line[:1] == ["AWS/Events"]}


def test_monitor_dashboard_shows_the_monitor_and_its_baselines(
    synthesized: Synthesized, topo: Topology
) -> None:
    lines = _dashboard_metrics(synthesized, f"{topo.prefix}-fleet-monitor")
    monitor_lines = {line[1] for line in lines if line[:1] == [topo.metrics_namespace] and "monitor" in line}
    assert set(MONITOR_METRICS) <= monitor_lines
    values = _dimension_values(lines)
    for name in (topo.monitor.name, topo.monitor_table.name, topo.monitor_schedule_dlq.name):
        assert name in values
    expressions = [o.get("expression", "") for line in lines for o in line if isinstance(o, dict)]
    assert any(e.startswith("ANOMALY_DETECTION_BAND(") for e in expressions)


def test_observability_stack_outputs_the_dashboards_and_topic(
    synthesized: Synthesized, topo: Topology
) -> None:
    outputs = synthesized.templates["observability"]["Outputs"]
    urls = {key: _resolve(outputs[key]["Value"]) for key in ("ServiceDashboardUrl", "MonitorDashboardUrl")}
    assert urls["ServiceDashboardUrl"].endswith(f"#dashboards/dashboard/{topo.prefix}-fleet-service")
    assert urls["MonitorDashboardUrl"].endswith(f"#dashboards/dashboard/{topo.prefix}-fleet-monitor")
    assert "AlertsTopicArn" in outputs


def test_canary_groups_are_named_like_their_functions() -> None:
    # The monitor's canary-fail series finds a group's CanaryFail by the function's name
    from contract.topology import CANARY_FUNCTIONS, topology
    from infra.constructs.canary_judge import canary_group_name

    topo = topology("prod")
    names = {fn.key: fn.name for fn in topo.functions}
    for key in CANARY_FUNCTIONS:
        assert canary_group_name(topo, key) == names[key]
