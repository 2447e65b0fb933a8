"""Alarms that cdk-monitoring-constructs does not express, and the composite "fleet service unhealthy".

- API 5XX *rate* as a share of requests with a minimum volume (the library's rate is errors/second);
- CloudWatch anomaly-detection alarms on API traffic and latency: the built-in baseline that the
  monitor's own detectors are compared with;
- the monitor's own health: its heartbeat (missing data treated as breaching: a dead monitor, or one
  whose alerts stay unsent for 10 minutes, is silent otherwise), notification failures and run
  errors; these notify the monitor-health topic (its own KMS key), so a broken alerts topic or key
  cannot silence the alarm that says so;
- failed invocations of the fleet bus rules;
- one composite alarm over the critical ones, the single "is the service healthy" signal.
Every other alarm notifies the alerts topic; every alarm notifies on ALARM and on OK.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_sns as sns
from constructs import Construct

from contract.runbooks import SERVICE_UNHEALTHY
from contract.topology import Topology
from infra.constructs.runbooks import pin_runbook

PERIOD = Duration.minutes(5)


class FleetAlarms(Construct):
    """Exposes ``alarms`` (metric alarms to the alerts topic), ``monitor_health`` (to the monitor-health
    topic) and ``service_unhealthy`` (the composite)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        topology: Topology,
        alerts_topic: sns.ITopic,
        monitor_health_topic: sns.ITopic,
        critical_alarms: Sequence[cloudwatch.IAlarm],
        api_5xx_percent: float = 1.0,
        api_min_requests: int = 20,
    ) -> None:
        super().__init__(scope, construct_id)
        self._topic = alerts_topic
        prefix = topology.prefix
        api_dims = {"ApiName": topology.api_name, "Stage": topology.api_stage}

        def api_metric(name: str, statistic: str) -> cloudwatch.Metric:
            return cloudwatch.Metric(
                namespace="AWS/ApiGateway",
                metric_name=name,
                dimensions_map=api_dims,
                statistic=statistic,
                period=PERIOD,
            )

        self.api_5xx_rate = cloudwatch.Alarm(
            self,
            "Api5xxRate",
            alarm_name=f"{prefix}-api-5xx-rate",
            alarm_description=(
                f"More than {api_5xx_percent}% of API requests failed with 5XX "
                f"(periods with fewer than {api_min_requests} requests count as 0)"
            ),
            metric=cloudwatch.MathExpression(
                expression=f"IF(requests >= {api_min_requests}, 100 * errors / requests, 0)",
                using_metrics={
                    "requests": api_metric("Count", "Sum"),
                    "errors": api_metric("5XXError", "Sum"),
                },
                label="5XX %",
                period=PERIOD,
            ),
            threshold=api_5xx_percent,
            evaluation_periods=3,
            datapoints_to_alarm=2,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self.api_traffic_anomaly = cloudwatch.AnomalyDetectionAlarm(
            self,
            "ApiTrafficAnomaly",
            alarm_name=f"{prefix}-api-traffic-anomaly",
            alarm_description="API request count outside CloudWatch's anomaly band (3 std) for 3 periods",
            metric=api_metric("Count", "Sum"),
            std_devs=3,
            evaluation_periods=3,
            datapoints_to_alarm=3,
            comparison_operator=cloudwatch.ComparisonOperator.LESS_THAN_LOWER_OR_GREATER_THAN_UPPER_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self.api_latency_anomaly = cloudwatch.AnomalyDetectionAlarm(
            self,
            "ApiLatencyAnomaly",
            alarm_name=f"{prefix}-api-latency-anomaly",
            alarm_description="API latency p90 above CloudWatch's anomaly band (3 std) for 3 of 3 periods",
            metric=api_metric("Latency", "p90"),
            std_devs=3,
            evaluation_periods=3,
            datapoints_to_alarm=3,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_UPPER_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        heartbeat_periods = 3

        def monitor_metric(name: str) -> cloudwatch.Metric:
            return cloudwatch.Metric(
                namespace=topology.metrics_namespace,
                metric_name=name,
                dimensions_map={"service": topology.monitor.service},
                statistic="Sum",
                period=Duration.minutes(topology.monitor_rate_minutes),
            )

        self.monitor_heartbeat = cloudwatch.Alarm(
            self,
            "MonitorHeartbeat",
            alarm_name=f"{prefix}-monitor-heartbeat-missing",
            alarm_description=(
                f"The monitor has not reported a heartbeat for {heartbeat_periods} runs: anomaly "
                "detection is not running, or its alerts have been undeliverable for over 10 minutes"
            ),
            metric=monitor_metric("Heartbeat"),
            threshold=1,
            evaluation_periods=heartbeat_periods,
            datapoints_to_alarm=heartbeat_periods,
            comparison_operator=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.BREACHING,
        )
        self.monitor_notification_failures = cloudwatch.Alarm(
            self,
            "MonitorNotificationFailures",
            alarm_name=f"{prefix}-monitor-notification-failures",
            alarm_description="The monitor's alerts were rejected by SNS (or its KMS key) in 2 runs in a row",
            metric=monitor_metric("NotificationFailures"),
            threshold=0,
            evaluation_periods=2,
            datapoints_to_alarm=2,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self.monitor_run_errors = cloudwatch.Alarm(
            self,
            "MonitorRunErrors",
            alarm_name=f"{prefix}-monitor-run-errors",
            alarm_description="Monitor runs failed or reported errors in 2 of the last 3 runs",
            metric=monitor_metric("RunErrors"),
            threshold=0,
            evaluation_periods=3,
            datapoints_to_alarm=2,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self.monitor_health = [
            self.monitor_heartbeat,
            self.monitor_notification_failures,
            self.monitor_run_errors,
        ]
        self.rule_failures = [
            cloudwatch.Alarm(
                self,
                f"RuleFailed-{rule}",
                alarm_name=f"{rule}-failed-invocations",
                alarm_description=f"Rule {rule} on {topology.event_bus} failed to deliver events",
                metric=cloudwatch.Metric(
                    namespace="AWS/Events",
                    metric_name="FailedInvocations",
                    dimensions_map={"EventBusName": topology.event_bus, "RuleName": rule},
                    statistic="Sum",
                    period=PERIOD,
                ),
                threshold=0,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
            for rule in topology.event_rules
        ]
        self.alarms: list[cloudwatch.AlarmBase] = [
            self.api_5xx_rate,
            self.api_traffic_anomaly,
            self.api_latency_anomaly,
            *self.rule_failures,
        ]
        members = [self.api_5xx_rate, *self.rule_failures, *critical_alarms]
        self.service_unhealthy = cloudwatch.CompositeAlarm(
            self,
            "ServiceUnhealthy",
            composite_alarm_name=f"{prefix}-fleet-service-unhealthy",
            alarm_description="Fleet service unhealthy: any critical alarm of the service is in ALARM",
            alarm_rule=cloudwatch.AlarmRule.any_of(
                *(cloudwatch.AlarmRule.from_alarm(a, cloudwatch.AlarmState.ALARM) for a in members)
            ),
        )
        pin_runbook(self.service_unhealthy, SERVICE_UNHEALTHY)
        for alarm in (*self.alarms, self.service_unhealthy):
            alarm.add_alarm_action(cw_actions.SnsAction(alerts_topic))
            alarm.add_ok_action(cw_actions.SnsAction(alerts_topic))
        for alarm in self.monitor_health:
            alarm.add_alarm_action(cw_actions.SnsAction(monitor_health_topic))
            alarm.add_ok_action(cw_actions.SnsAction(monitor_health_topic))
