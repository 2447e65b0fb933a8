"""The AWS judging loop: CodeDeploy's START event starts a Step Functions wait loop that calls the
canary judge (``monitor.canary_handler``) every minute until the deployment has ended.

Why a Step Functions wait loop rather than EventBridge Scheduler: the loop exists only while a
deployment is in progress, carries the deployment's id from the event that started it, and ends by
itself when the judge reports the deployment finished; a schedule would run every minute forever
(or need creating and deleting per deployment). A Standard workflow: ~12 state transitions a
minute, a few cents a month at a few deployments a day.

The judge publishes ``Fleetscope/Canary`` ``CanaryFail`` per ``DeploymentGroup``; each deployment
group (``infra.constructs.canary``) alarms on it, so CodeDeploy rolls the canary back. It reads the
deployment's config (GetDeploymentConfig: the canary's percentage and interval, hence its last look)
and gets ``FLEETSCOPE_CANARY_ON_INCONCLUSIVE`` (what a canary still INCONCLUSIVE at its last look does).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Literal

from aws_cdk import ArnFormat, Duration, RemovalPolicy, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from contract.metrics import CANARY_FAIL, CANARY_NAMESPACE
from contract.topology import Topology
from infra.constructs.lambda_function import HouseFunction
from infra.nag import acknowledge

JUDGE_HANDLER = "monitor.canary_handler.lambda_handler"
VERDICT_NAMESPACE = CANARY_NAMESPACE
VERDICT_METRIC = CANARY_FAIL
CANARY_FUNCTIONS = ("cars-api", "telemetry-ingest")  # deployed through `live` with CodeDeploy
ON_INCONCLUSIVE_VARIABLE = "FLEETSCOPE_CANARY_ON_INCONCLUSIVE"  # monitor.settings reads it
# GetDeploymentConfig on AWS's predefined Lambda configs (CodeDeployDefault.LambdaCanary10Percent5Minutes
# and its siblings: a deployment may be created with any of them instead of its group's); the app
# creates no custom config.
PREDEFINED_LAMBDA_CONFIGS = "CodeDeployDefault.Lambda*"


def canary_group_name(topology: Topology, function_key: str) -> str:
    """The CodeDeploy application and deployment group name of a function (literal: no token cycle).

    The same as the function's name: the monitor's ``canary-fail`` series (monitor/catalog.py) finds
    the group's ``CanaryFail`` by it."""
    return f"{topology.prefix}-{function_key}"


class CanaryJudgeLoop(Construct):
    """Exposes ``function`` (the judge), ``state_machine`` and ``rule``."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        topology: Topology,
        code: lambda_.Code,
        memory_mb: int,
        monitor_table: dynamodb.ITable,
        environment: Mapping[str, str],
        log_retention: logs.RetentionDays,
        removal_policy: RemovalPolicy,
        groups: Sequence[str],
        on_inconclusive: Literal["promote", "rollback"] = "promote",
    ) -> None:
        super().__init__(scope, construct_id)
        spec = replace(topology.monitor, name=f"{topology.prefix}-canary-judge", handler=JUDGE_HANDLER)
        self.function = HouseFunction(
            self,
            "Judge",
            spec=spec,
            topology=topology,
            code=code,
            memory_mb=memory_mb,
            log_retention=log_retention,
            removal_policy=removal_policy,
            extra_environment={**environment, ON_INCONCLUSIVE_VARIABLE: on_inconclusive},
        )
        monitor_table.grant_read_write_data(self.function.function)
        stack = Stack.of(self)
        self.function.role.add_to_policy(
            iam.PolicyStatement(
                actions=["codedeploy:GetDeployment"],
                resources=[
                    stack.format_arn(
                        service="codedeploy",
                        resource="deploymentgroup",
                        resource_name=f"{group}/{group}",
                        arn_format=ArnFormat.COLON_RESOURCE_NAME,
                    )
                    for group in groups
                ],
            )
        )
        config_arn = stack.format_arn(
            service="codedeploy",
            resource="deploymentconfig",
            resource_name=PREDEFINED_LAMBDA_CONFIGS,
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        self.function.role.add_to_policy(
            iam.PolicyStatement(actions=["codedeploy:GetDeploymentConfig"], resources=[config_arn])
        )
        acknowledge(
            self.function.role,
            "IAM5[Resource::arn:<AWS::Partition>:codedeploy:<AWS::Region>:<AWS::AccountId>:deploymentconfig:"
            f"{PREDEFINED_LAMBDA_CONFIGS}]",
            "GetDeploymentConfig (read-only) on AWS's predefined Lambda deployment configs only: a "
            "deployment may use any of them instead of its group's, and the app creates no custom one.",
        )
        self.function.role.add_to_policy(
            iam.PolicyStatement(actions=["cloudwatch:GetMetricData"], resources=["*"])
        )
        self.function.role.add_to_policy(
            iam.PolicyStatement(
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringEquals": {"cloudwatch:namespace": VERDICT_NAMESPACE}},
            )
        )
        acknowledge(
            self.function.role,
            "IAM5[Resource::*]",
            "cloudwatch:GetMetricData and PutMetricData (limited to the Fleetscope/Canary namespace by a "
            "condition) and X-Ray's PutTraceSegments support no resource-level permissions.",
        )

        judge = tasks.LambdaInvoke(
            self,
            "JudgeOneMinute",
            lambda_function=self.function.alias,
            payload=sfn.TaskInput.from_json_path_at("$.deployment"),
            payload_response_only=True,
            result_path="$.verdict",
            retry_on_service_exceptions=True,
        )
        wait = sfn.Wait(self, "WaitOneMinute", time=sfn.WaitTime.duration(Duration.minutes(1)))
        done = sfn.Succeed(self, "DeploymentEnded")
        loop = sfn.Choice(self, "StillInProgress").when(
            sfn.Condition.boolean_equals("$.verdict.continue", True), wait
        )
        definition = wait.next(judge).next(loop.otherwise(done))
        log_group = logs.LogGroup(
            self,
            "Logs",
            log_group_name=f"/aws/vendedlogs/states/{topology.prefix}-canary-judge",
            retention=log_retention,
            removal_policy=removal_policy,
        )
        self.state_machine = sfn.StateMachine(
            self,
            "Loop",
            state_machine_name=f"{topology.prefix}-canary-judge",
            definition_body=sfn.DefinitionBody.from_chainable(definition),
            timeout=Duration.hours(2),
            tracing_enabled=True,
            logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL),
        )
        acknowledge(
            self.state_machine,
            "IAM5[Resource::*]",
            "Step Functions' log delivery (logs:CreateLogDelivery and friends) and X-Ray tracing support "
            "no resource-level permissions.",
        )
        self.rule = events.Rule(
            self,
            "OnDeploymentStart",
            rule_name=f"{topology.prefix}-canary-judge-start",
            description="Start the canary judging loop when CodeDeploy starts a Lambda deployment",
            event_pattern=events.EventPattern(
                source=["aws.codedeploy"],
                detail_type=["CodeDeploy Deployment State-change Notification"],
                detail={"state": ["START"], "deploymentGroup": list(groups)},
            ),
            targets=[
                targets.SfnStateMachine(
                    self.state_machine,
                    input=events.RuleTargetInput.from_object(
                        {"deployment": events.EventField.from_path("$.detail")}
                    ),
                )
            ],
        )
