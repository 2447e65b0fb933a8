"""House Lambda defaults, in one place: every Fleetscope function is built by ``HouseFunction``.

arm64, the newest Python runtime of this CDK version, X-Ray active tracing, JSON logs into an explicit
log group (named from the topology, with the stage's retention), the Powertools environment from
``Topology.function_environment``, a role with no managed policies (only grants), and a ``live`` alias
that every trigger (API, event source mappings, schedule) invokes, so CodeDeploy can shift it.
"""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from contract.topology import FunctionSpec, Topology
from infra.nag import acknowledge, ref

RUNTIME = lambda_.Runtime.PYTHON_3_14
RUNTIME_PYTHON_VERSION = "3.14"
ARCHITECTURE = lambda_.Architecture.ARM_64
LIVE_ALIAS = "live"


class HouseFunction(Construct):
    """A Lambda with the house defaults; exposes ``function``, ``alias``, ``log_group``, ``role``."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        spec: FunctionSpec,
        topology: Topology,
        code: lambda_.Code,
        memory_mb: int,
        log_retention: logs.RetentionDays,
        removal_policy: RemovalPolicy,
        extra_environment: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.spec = spec
        self.log_group = logs.LogGroup(
            self,
            "Logs",
            log_group_name=spec.log_group,
            retention=log_retention,
            removal_policy=removal_policy,
        )
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"Execution role of {spec.name}",
        )
        # Instead of AWSLambdaBasicExecutionRole (logs:* on every group): write to this group only.
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[f"{self.log_group.log_group_arn}:log-stream:*"],
            )
        )
        acknowledge(
            self.role,
            f"IAM5[Resource::{ref(self.log_group, 'Arn')}:log-stream:*]",
            "Lambda names a log stream per execution environment at run time; the grant is limited to "
            "this function's own log group (AWSLambdaBasicExecutionRole would allow every group).",
        )
        acknowledge(
            self.role,
            "IAM5[Resource::*]",
            "Active tracing: xray:PutTraceSegments and xray:PutTelemetryRecords support no "
            "resource-level permissions, AWS requires Resource '*'.",
        )
        environment = dict(topology.function_environment(spec))
        environment.update(extra_environment or {})
        self.function = lambda_.Function(
            self,
            "Function",
            function_name=spec.name,
            description=f"Fleetscope {spec.key} ({topology.stage})",
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            handler=spec.handler,
            code=code,
            memory_size=memory_mb,
            timeout=Duration.seconds(spec.timeout_s),
            reserved_concurrent_executions=spec.reserved_concurrency,
            tracing=lambda_.Tracing.ACTIVE,
            logging_format=lambda_.LoggingFormat.JSON,
            system_log_level_v2=lambda_.SystemLogLevel.WARN,
            log_group=self.log_group,
            role=self.role,
            environment=environment,
        )
        self.alias = lambda_.Alias(
            self,
            "Live",
            alias_name=LIVE_ALIAS,
            version=self.function.current_version,
            description="What every trigger invokes; CodeDeploy shifts it between versions",
        )
