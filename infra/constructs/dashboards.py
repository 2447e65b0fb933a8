"""The "Fleet service" and "Fleet monitor" CloudWatch dashboards, with their per-resource alarms.

Built with cdk-monitoring-constructs' ``MonitoringFacade``: it renders the standard widgets of each
AWS resource (API, Lambda, DynamoDB, SQS + DLQ) and creates the threshold alarms we ask for, all with
the alerts topic as ALARM and OK action. Added by hand where the library has no notion of it: the
Powertools business and cold-start metrics, Lambda concurrency, the fleet bus rules, the monitor's own
metrics, and the CloudWatch anomaly bands next to which the monitor's verdicts are read.
"""

from __future__ import annotations

from collections.abc import Sequence

import cdk_monitoring_constructs as mc
from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_sns as sns
from constructs import Construct

from contract.metrics import BUSINESS_METRICS
from contract.topology import FunctionSpec, Topology
from infra.constructs.watched import WatchedResources

PERIOD = Duration.minutes(5)
# The monitor's own metrics (monitor/handler.py): namespace Fleetscope, dimension service=monitor.
MONITOR_METRICS: dict[str, tuple[str, str]] = {
    "Heartbeat": ("Sum", "Runs"),
    "RunDurationMs": ("Maximum", "Run duration (ms, max)"),
    "MetricsEvaluated": ("Sum", "Metrics evaluated"),
    "AnomaliesOpen": ("Maximum", "Open anomalies"),
    "RunErrors": ("Sum", "Run errors"),
    "GetMetricDataCalls": ("Sum", "GetMetricData calls"),
    "NotificationsSent": ("Sum", "Notifications sent"),
    "NotificationFailures": ("Sum", "Notification failures"),
    "OutboxOldestUnsentAge": ("Maximum", "Oldest unsent alert (s)"),
}


def _facade(
    scope: Construct, construct_id: str, *, dashboard_name: str, alarm_prefix: str, topic: sns.ITopic
) -> mc.MonitoringFacade:
    return mc.MonitoringFacade(
        scope,
        construct_id,
        alarm_factory_defaults=mc.AlarmFactoryDefaults(
            actions_enabled=True,
            alarm_name_prefix=alarm_prefix,
            action=mc.SnsAlarmActionStrategy(on_alarm_topic=topic, on_ok_topic=topic),
            datapoints_to_alarm=2,
            evaluation_periods=3,
        ),
        metric_factory_defaults=mc.MetricFactoryDefaults(period=PERIOD),
        dashboard_factory=mc.DefaultDashboardFactory(
            scope,
            f"{construct_id}Dashboards",
            dashboard_name_prefix=dashboard_name,
            create_dashboard=True,
            create_summary_dashboard=False,
            create_alarm_dashboard=False,
        ),
    )


def _metric(namespace: str, name: str, dims: dict[str, str], statistic: str, label: str) -> cloudwatch.Metric:
    return cloudwatch.Metric(
        namespace=namespace,
        metric_name=name,
        dimensions_map=dims,
        statistic=statistic,
        period=PERIOD,
        label=label,
    )


def _short(topology: Topology, name: str) -> str:
    """A resource name without the stage prefix (alarm names get the prefix once, from the facade)."""
    return name.removeprefix(f"{topology.prefix}-")


def _group(
    title: str, metrics: Sequence[cloudwatch.Metric | cloudwatch.MathExpression]
) -> mc.CustomMetricGroup:
    return mc.CustomMetricGroup(title=title, metrics=list(metrics))


def lambda_extras(
    facade: mc.MonitoringFacade, *, topology: Topology, specs: Sequence[FunctionSpec], title: str
) -> None:
    """Concurrency (AWS/Lambda) and Powertools cold starts, which the Lambda monitoring does not draw."""
    concurrency = [
        _metric("AWS/Lambda", "ConcurrentExecutions", {"FunctionName": s.name}, "Maximum", s.key)
        for s in specs
    ]
    cold_starts = [
        _metric(
            topology.metrics_namespace,
            "ColdStart",
            {"function_name": s.name, "service": s.service},
            "Sum",
            s.key,
        )
        for s in specs
    ]
    facade.monitor_custom(
        human_readable_name=title,
        alarm_friendly_name=f"{title}-extras".replace(" ", "-"),
        metric_groups=[
            _group("Concurrent executions (max)", concurrency),
            _group("Cold starts", cold_starts),
        ],
    )


class FleetServiceDashboard(Construct):
    """ "Fleet service": API, each function, tables, queues, the fleet bus and business metrics."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        topology: Topology,
        watched: WatchedResources,
        alerts_topic: sns.ITopic,
    ) -> None:
        super().__init__(scope, construct_id)
        self.dashboard_name = f"{topology.prefix}-fleet-service"
        facade = _facade(
            self,
            "Facade",
            dashboard_name=self.dashboard_name,
            alarm_prefix=topology.prefix,
            topic=alerts_topic,
        )
        self.facade = facade
        facade.add_large_header(f"Fleet service ({topology.stage})")
        facade.monitor_api_gateway(
            api=watched.api,
            api_stage=topology.api_stage,
            human_readable_name="Cars API",
            alarm_friendly_name="cars-api-gateway",
            latency_types_to_render=[mc.LatencyType.P50, mc.LatencyType.P90, mc.LatencyType.P99],
            add_latency_p99_alarm={"Warning": mc.LatencyThreshold(max_latency=Duration.seconds(2))},
        )
        service_functions = (topology.cars_api, topology.telemetry_ingest, topology.outbox_relay)
        for spec in service_functions:
            facade.monitor_lambda_function(
                lambda_function=watched.functions[spec.key],
                human_readable_name=f"{spec.key} function",
                alarm_friendly_name=spec.key,
                is_iterator=spec.key == topology.outbox_relay.key,
                add_fault_count_alarm={"Critical": mc.ErrorCountThreshold(max_error_count=5)},
                add_throttles_count_alarm={"Warning": mc.ErrorCountThreshold(max_error_count=0)},
                add_max_iterator_age_alarm=(
                    {"Warning": mc.MaxAgeThreshold(max_age_in_millis=5 * 60 * 1000)}
                    if spec.key == topology.outbox_relay.key
                    else None
                ),
            )
        lambda_extras(facade, topology=topology, specs=service_functions, title="Service functions")
        for table in (topology.cars_table, topology.idempotency_table, topology.outbox_table):
            facade.monitor_dynamo_table(
                table=watched.tables[table.name],
                billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
                human_readable_name=f"{table.name} table",
                alarm_friendly_name=_short(topology, table.name),
                add_read_throttled_events_count_alarm={
                    "Warning": mc.ThrottledEventsThreshold(max_throttled_events_threshold=0)
                },
                add_write_throttled_events_count_alarm={
                    "Warning": mc.ThrottledEventsThreshold(max_throttled_events_threshold=0)
                },
            )
        facade.monitor_sqs_queue_with_dlq(
            queue=watched.queues[topology.telemetry_queue.name],
            dead_letter_queue=watched.queues[topology.telemetry_dlq.name],
            human_readable_name="Telemetry queue",
            alarm_friendly_name=_short(topology, topology.telemetry_queue.name),
            add_queue_max_message_age_alarm={"Warning": mc.MaxMessageAgeThreshold(max_age_in_seconds=300)},
            add_dead_letter_queue_max_size_alarm={
                "Critical": mc.MaxMessageCountThreshold(max_message_count=0)
            },
        )
        facade.monitor_sqs_queue(
            queue=watched.queues[topology.relay_failures.name],
            human_readable_name="Outbox relay failures (on-failure destination)",
            alarm_friendly_name=_short(topology, topology.relay_failures.name),
            add_queue_max_size_alarm={"Critical": mc.MaxMessageCountThreshold(max_message_count=0)},
        )
        rules = [{"EventBusName": topology.event_bus, "RuleName": rule} for rule in topology.event_rules]
        facade.monitor_custom(
            human_readable_name=f"Fleet event bus {topology.event_bus}",
            alarm_friendly_name="fleet-bus",
            metric_groups=[
                _group(
                    "Rule invocations",
                    [_metric("AWS/Events", "Invocations", d, "Sum", d["RuleName"]) for d in rules],
                ),
                _group(
                    "Rule failed invocations",
                    [_metric("AWS/Events", "FailedInvocations", d, "Sum", d["RuleName"]) for d in rules],
                ),
            ],
        )
        facade.monitor_custom(
            human_readable_name="Business metrics (Powertools, namespace Fleetscope)",
            alarm_friendly_name="business",
            metric_groups=[
                _group(
                    f"{service} business metrics",
                    [
                        _metric(topology.metrics_namespace, name, {"service": service}, "Sum", name)
                        for name in names
                    ],
                )
                for service, names in BUSINESS_METRICS.items()
            ],
        )
        self.dashboard = facade.created_dashboard()

    def critical_alarms(self) -> list[cloudwatch.AlarmBase]:
        return [a.alarm for a in self.facade.created_alarms() if a.alarm_name.endswith("-Critical")]


class FleetMonitorDashboard(Construct):
    """ "Fleet monitor": runs, duration, metrics evaluated, open anomalies, errors, GetMetricData calls."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        topology: Topology,
        watched: WatchedResources,
        alerts_topic: sns.ITopic,
    ) -> None:
        super().__init__(scope, construct_id)
        self.dashboard_name = f"{topology.prefix}-fleet-monitor"
        facade = _facade(
            self,
            "Facade",
            dashboard_name=self.dashboard_name,
            alarm_prefix=topology.prefix,
            topic=alerts_topic,
        )
        self.facade = facade
        facade.add_large_header(f"Fleet monitor ({topology.stage})")
        dims = {"service": topology.monitor.service}
        facade.monitor_custom(
            human_readable_name="Monitor runs (namespace Fleetscope, service=monitor)",
            alarm_friendly_name="monitor-runs",
            metric_groups=[
                _group(label, [_metric(topology.metrics_namespace, name, dims, statistic, label)])
                for name, (statistic, label) in MONITOR_METRICS.items()
            ],
        )
        api_dims = {"ApiName": topology.api_name, "Stage": topology.api_stage}
        facade.monitor_custom(
            human_readable_name="CloudWatch anomaly bands (built-in baseline, compare with the monitor)",
            alarm_friendly_name="anomaly-bands",
            metric_groups=[
                _group(
                    "API requests with band",
                    _banded(_metric("AWS/ApiGateway", "Count", api_dims, "Sum", "requests")),
                ),
                _group(
                    "API latency p90 with band",
                    _banded(_metric("AWS/ApiGateway", "Latency", api_dims, "p90", "p90")),
                ),
            ],
        )
        facade.monitor_lambda_function(
            lambda_function=watched.functions[topology.monitor.key],
            human_readable_name="monitor function",
            alarm_friendly_name=topology.monitor.key,
            add_fault_count_alarm={"Critical": mc.ErrorCountThreshold(max_error_count=0)},
            add_throttles_count_alarm={"Warning": mc.ErrorCountThreshold(max_error_count=0)},
        )
        lambda_extras(facade, topology=topology, specs=(topology.monitor,), title="Monitor function")
        facade.monitor_dynamo_table(
            table=watched.tables[topology.monitor_table.name],
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            human_readable_name=f"{topology.monitor_table.name} table",
            alarm_friendly_name=f"{_short(topology, topology.monitor_table.name)}-table",
            add_write_throttled_events_count_alarm={
                "Warning": mc.ThrottledEventsThreshold(max_throttled_events_threshold=0)
            },
        )
        facade.monitor_sqs_queue(
            queue=watched.queues[topology.monitor_schedule_dlq.name],
            human_readable_name="Monitor schedule DLQ (undelivered runs)",
            alarm_friendly_name=_short(topology, topology.monitor_schedule_dlq.name),
            add_queue_max_size_alarm={"Critical": mc.MaxMessageCountThreshold(max_message_count=0)},
        )
        self.dashboard = facade.created_dashboard()


def _banded(metric: cloudwatch.Metric) -> list[cloudwatch.Metric | cloudwatch.MathExpression]:
    band = cloudwatch.MathExpression(
        expression="ANOMALY_DETECTION_BAND(m1, 3)",
        using_metrics={"m1": metric},
        label="expected band (3 std)",
        period=PERIOD,
    )
    return [metric, band]
