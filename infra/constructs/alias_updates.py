"""Plain alias updates as deployments: an EventBridge rule on CloudTrail's UpdateAlias calls on the
canary functions' ``live`` alias, and the recorder Lambda (``monitor.alias_handler``) that writes each
one to the monitor table as a deployment, so incidents cite it as they cite CodeDeploy canaries.

EventBridge receives "AWS API Call via CloudTrail" events for write management calls when the account
has a CloudTrail trail logging management events (the usual account baseline; this app does not
create one). The rule matches Lambda's ``UpdateAlias*`` on ``live`` of the watched functions (by name
or ARN) and leaves out CodeDeploy's own calls (its judging loop records those); the handler checks all
of it again and skips what is not its to record.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from contract.topology import LIVE_ALIAS, Topology
from infra.constructs.lambda_function import HouseFunction
from infra.nag import acknowledge

RECORDER_HANDLER = "monitor.alias_handler.lambda_handler"
# The same as monitor.alias_updates' (infra does not import runtime code; a test keeps them in step)
DETAIL_TYPE = "AWS API Call via CloudTrail"
EVENT_NAME_PREFIX = "UpdateAlias"
CODEDEPLOY = "codedeploy.amazonaws.com"


class AliasUpdateRecorder(Construct):
    """Exposes ``function`` (the recorder) and ``rule``."""

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
        function_names: Sequence[str],
    ) -> None:
        super().__init__(scope, construct_id)
        spec = replace(topology.monitor, name=f"{topology.prefix}-alias-updates", handler=RECORDER_HANDLER)
        self.function = HouseFunction(
            self,
            "Recorder",
            spec=spec,
            topology=topology,
            code=code,
            memory_mb=memory_mb,
            log_retention=log_retention,
            removal_policy=removal_policy,
            extra_environment=environment,
        )
        monitor_table.grant_read_write_data(self.function.function)
        acknowledge(
            self.function.role,
            "IAM5[Resource::*]",
            "X-Ray's PutTraceSegments and PutTelemetryRecords support no resource-level permissions.",
        )
        # Raw EventBridge pattern syntax: a name or an ARN ending in it, the UpdateAlias* API versions
        functions: list[object] = []
        for name in function_names:
            functions += [name, {"suffix": f":function:{name}"}]
        self.rule = events.Rule(
            self,
            "OnAliasUpdate",
            rule_name=f"{topology.prefix}-alias-updates",
            description="Record a plain UpdateAlias on a canary function's live alias as a deployment",
            event_pattern=events.EventPattern(
                source=["aws.lambda"],
                detail_type=[DETAIL_TYPE],
                detail={
                    "eventSource": ["lambda.amazonaws.com"],
                    "eventName": [{"prefix": EVENT_NAME_PREFIX}],
                    "sourceIPAddress": [{"anything-but": CODEDEPLOY}],
                    "requestParameters": {"name": [LIVE_ALIAS], "functionName": functions},
                },
            ),
            targets=[targets.LambdaFunction(self.function.alias, retry_attempts=2)],
        )
