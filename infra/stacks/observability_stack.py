"""ObservabilityStack: alerts topics, the scheduled monitor, dashboards and alarms.

It watches the service by the names in ``contract.topology`` (see ``WatchedResources``), so it is deployed
first; ServiceStack refers to the alerts topic by its topology name (the canary's rollback alarms).
"""

from __future__ import annotations

from aws_cdk import CfnOutput, Duration, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from contract.resources import ResourceNames
from contract.topology import Topology
from infra.constructs.alarms import FleetAlarms
from infra.constructs.alerts import AlertsTopic
from infra.constructs.alias_updates import AliasUpdateRecorder
from infra.constructs.canary_judge import CANARY_FUNCTIONS, CanaryJudgeLoop, canary_group_name
from infra.constructs.dashboards import FleetMonitorDashboard, FleetServiceDashboard
from infra.constructs.lambda_function import HouseFunction
from infra.constructs.schedule import RateSchedule
from infra.constructs.table import TopologyTable
from infra.constructs.watched import WatchedResources
from infra.nag import acknowledge
from infra.settings import StageSettings
from infra.stacks.common import log_retention, removal_policy

MONITOR_PERIOD_S = 300


def monitor_environment(
    topology: Topology, *, alerts_topic_arn: str, runbook_base_url: str
) -> dict[str, str]:
    """What the monitor needs beyond ``Topology.function_environment``: the names it watches, and where
    the runbooks its alerts link are published."""
    return {
        "MONITOR_RESOURCES": ResourceNames.from_topology(topology).to_env(),
        "MONITOR_PERIOD_S": str(MONITOR_PERIOD_S),
        "ALERTS_TOPIC_ARN": alerts_topic_arn,
        "MONITOR_RUNBOOK_BASE_URL": runbook_base_url,
    }


class ObservabilityStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        topology: Topology,
        settings: StageSettings,
        code: lambda_.Code,
        **kwargs: object,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        removal = removal_policy(settings)
        retention = log_retention(settings)

        self.alerts = AlertsTopic(
            self,
            "Alerts",
            topic_name=topology.alerts_topic,
            display_name="Fleetscope alerts",
            emails=settings.alert_emails,
            removal_policy=removal,
            receipts=topology.alerts_receipts,
        )
        self.monitor_health = AlertsTopic(
            self,
            "MonitorHealth",
            topic_name=topology.monitor_health_topic,
            display_name="Fleetscope monitor health",
            emails=settings.alert_emails,
            removal_policy=removal,
        )
        self.monitor_table = TopologyTable(
            self, "MonitorTable", spec=topology.monitor_table, removal_policy=removal
        )
        spec = topology.monitor
        self.monitor = HouseFunction(
            self,
            "MonitorFunction",
            spec=spec,
            topology=topology,
            code=code,
            memory_mb=settings.memory_for(spec.key, spec.memory_mb),
            log_retention=retention,
            removal_policy=removal,
            extra_environment=monitor_environment(
                topology,
                alerts_topic_arn=self.alerts.topic.topic_arn,
                runbook_base_url=settings.runbook_base_url,
            ),
        )
        self.monitor_table.table.grant_read_write_data(self.monitor.function)
        self.alerts.topic.grant_publish(self.monitor.function)
        assert self.alerts.receipts is not None
        self.alerts.receipts.queue.grant_consume_messages(self.monitor.function)
        # GetMetricData and ListMetrics support no resource-level permissions: "*" is what AWS requires.
        self.monitor.role.add_to_policy(
            iam.PolicyStatement(
                actions=["cloudwatch:GetMetricData", "cloudwatch:ListMetrics"], resources=["*"]
            )
        )
        acknowledge(
            self.monitor.role,
            "IAM5[Resource::*]",
            "cloudwatch:GetMetricData, cloudwatch:ListMetrics and X-Ray's PutTraceSegments/"
            "PutTelemetryRecords support no resource-level permissions: AWS requires Resource '*'.",
        )
        acknowledge(
            self.monitor.role,
            "IAM5[Action::kms:GenerateDataKey*]",
            "Publishing to the KMS-encrypted alerts topic needs a data key; CDK's grant names the "
            "GenerateDataKey family, on the alerts key only.",
        )
        self.canary_judge: CanaryJudgeLoop | None = None
        self.alias_updates: AliasUpdateRecorder | None = None
        if settings.canary:
            # The judge and the recorder run the monitor's code with its memory and environment.
            memory_mb = settings.memory_for(spec.key, spec.memory_mb)
            environment = monitor_environment(
                topology,
                alerts_topic_arn=self.alerts.topic.topic_arn,
                runbook_base_url=settings.runbook_base_url,
            )
            self.canary_judge = CanaryJudgeLoop(
                self,
                "CanaryJudge",
                topology=topology,
                code=code,
                memory_mb=memory_mb,
                monitor_table=self.monitor_table.table,
                environment=environment,
                log_retention=retention,
                removal_policy=removal,
                groups=[canary_group_name(topology, key) for key in CANARY_FUNCTIONS],
                on_inconclusive=settings.canary_on_inconclusive,
            )
            self.alias_updates = AliasUpdateRecorder(
                self,
                "AliasUpdates",
                topology=topology,
                code=code,
                memory_mb=memory_mb,
                monitor_table=self.monitor_table.table,
                environment=environment,
                log_retention=retention,
                removal_policy=removal,
                function_names=[fn.name for fn in topology.functions if fn.key in CANARY_FUNCTIONS],
            )
        self.schedule = RateSchedule(
            self,
            "MonitorSchedule",
            schedule_name=topology.monitor_schedule,
            target=self.monitor.alias,
            every=Duration.minutes(topology.monitor_rate_minutes),
            dead_letter=topology.monitor_schedule_dlq,
        )

        watched = WatchedResources(self, "Watched", topology=topology)
        self.service_dashboard = FleetServiceDashboard(
            self, "ServiceDashboard", topology=topology, watched=watched, alerts_topic=self.alerts.topic
        )
        self.monitor_dashboard = FleetMonitorDashboard(
            self, "MonitorDashboard", topology=topology, watched=watched, alerts_topic=self.alerts.topic
        )
        self.alarms = FleetAlarms(
            self,
            "Alarms",
            topology=topology,
            alerts_topic=self.alerts.topic,
            monitor_health_topic=self.monitor_health.topic,
            critical_alarms=self.service_dashboard.critical_alarms(),
        )
        console = f"https://{self.region}.console.aws.amazon.com/cloudwatch/home?region={self.region}"
        for output_id, dashboard in (
            ("ServiceDashboardUrl", self.service_dashboard.dashboard_name),
            ("MonitorDashboardUrl", self.monitor_dashboard.dashboard_name),
        ):
            CfnOutput(self, output_id, value=f"{console}#dashboards/dashboard/{dashboard}")
        CfnOutput(self, "AlertsTopicArn", value=self.alerts.topic.topic_arn)
        CfnOutput(self, "MonitorHealthTopicArn", value=self.monitor_health.topic.topic_arn)
        CfnOutput(self, "MonitorTableName", value=self.monitor_table.table.table_name)
        CfnOutput(self, "MonitorFunctionName", value=self.monitor.function.function_name)
