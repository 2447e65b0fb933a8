"""The ``fleet`` EventBridge bus with an archive (replay, every event whole, `archive_retention`) and a rule
that logs every event: its ids, type, version and status, or the whole event (VIN and position included)
when `log_positions` is set (CDK context ``logEventPositions``)."""

from __future__ import annotations

from typing import cast

import jsii
from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from constructs import Construct

from contract.topology import Topology


@jsii.implements(events.IRuleTarget)
class _LogGroupTarget:
    """A log group as rule target, with a plain resource policy.

    ``aws_events_targets.CloudWatchLogGroup`` installs the policy through a custom-resource Lambda
    (Node runtime, managed policy, ``logs:*`` on ``*``); a native ``AWS::Logs::ResourcePolicy`` does
    the same without any of that.
    """

    def __init__(self, log_group: logs.LogGroup) -> None:
        self._log_group = log_group

    def bind(self, rule: events.IRule, id: str | None = None) -> events.RuleTargetConfig:
        return events.RuleTargetConfig(arn=self._log_group.log_group_arn)


class FleetEventBus(Construct):
    """Exposes ``bus``, ``archive``, ``log_rule`` and ``event_logs``."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        topology: Topology,
        archive_retention: Duration,
        log_retention: logs.RetentionDays,
        removal_policy: RemovalPolicy,
        log_positions: bool = False,
    ) -> None:
        super().__init__(scope, construct_id)
        self.bus = events.EventBus(
            self, "Bus", event_bus_name=topology.event_bus, description="Fleetscope car events"
        )
        self.archive = self.bus.archive(
            "Archive",
            archive_name=topology.event_archive,
            description="Every fleet event, for replay",
            event_pattern=events.EventPattern(source=events.Match.prefix("fleetscope")),
            retention=archive_retention,
        )
        self.event_logs = logs.LogGroup(
            self,
            "EventLogs",
            log_group_name=topology.event_log_group,
            retention=log_retention,
            removal_policy=removal_policy,
        )
        self.log_rule = events.Rule(
            self,
            "ToLogs",
            rule_name=topology.event_log_rule,
            event_bus=self.bus,
            description="Copy every fleet event to CloudWatch Logs",
            event_pattern=events.EventPattern(source=events.Match.prefix("fleetscope")),
            targets=[cast(events.IRuleTarget, _LogGroupTarget(self.event_logs))],
        )
        if not log_positions:  # ids, type, version and status only (Topology.event_log_input)
            rule = self.log_rule.node.default_child
            assert isinstance(rule, events.CfnRule)
            rule.add_property_override("Targets.0.InputTransformer", topology.event_log_input)
        self.event_logs.add_to_resource_policy(
            iam.PolicyStatement(
                sid="EventBridgeWritesFleetEvents",
                principals=[iam.ServicePrincipal("events.amazonaws.com")],
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[self.event_logs.log_group_arn],
                conditions={"ArnEquals": {"aws:SourceArn": self.log_rule.rule_arn}},
            )
        )
