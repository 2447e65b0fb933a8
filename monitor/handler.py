"""Lambda entry point of the monitor (EventBridge Scheduler, every 5 minutes).

Thin: parse the event, run `MonitorService.run` once, map the result to the monitor's own metrics
(EMF, Powertools) and a JSON summary. The schedule passes its scheduled time as the input
(`{"scheduled_time": "<aws.scheduler.scheduled-time>"}`): it is the run's clock, so a retried
invocation recomputes exactly the same periods and transitions.
"""

from __future__ import annotations

import time
from datetime import datetime
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field

from contract.topology import SCHEDULED_TIME_FIELD
from monitor.budget import RunBudget
from monitor.service import MonitorService, RunResult
from monitor.settings import MonitorSettings, get_settings

logger = Logger()
metrics = Metrics()

# No heartbeat while a notification has been waiting longer than this: alerts that cannot get out
# (SNS or its KMS key rejecting every publish) must page through the heartbeat alarm, not stay quiet.
HEARTBEAT_MAX_UNSENT_S = 600


class MonitorEvent(BaseModel):
    """The schedule's input: `{"scheduled_time": <aws.scheduler.scheduled-time>}` (absent: the wall clock)."""

    model_config = ConfigDict(extra="ignore")

    scheduled_time: datetime | None = Field(default=None, alias=SCHEDULED_TIME_FIELD)

    def now(self) -> int:
        return int(self.scheduled_time.timestamp()) if self.scheduled_time else int(time.time())


def build_service(settings: MonitorSettings, *, owner: str, budget: RunBudget) -> MonitorService:
    """Wire the production collaborators (clients are created lazily, once per process)."""
    from monitor.deployments import DynamoDbDeploymentLog
    from monitor.notifier import SnsNotifier
    from monitor.receipts import SqsDeliveryReceipts
    from monitor.store import DynamoDbIncidentStore

    queue = settings.alerts_receipts_queue_name

    return MonitorService(
        settings=settings,
        catalog=settings.catalog(),
        source=_source(),
        store=DynamoDbIncidentStore(settings.monitor_table_name, ttl_days=settings.incident_ttl_days),
        notifier=SnsNotifier(topic_name=settings.alerts_topic_name, topic_arn=settings.alerts_topic_arn),
        owner=owner,
        train_budget_s=settings.train_budget_s,
        budget=budget,
        deployments=DynamoDbDeploymentLog(settings.monitor_table_name),
        receipts=SqsDeliveryReceipts(queue_name=queue) if queue else None,
    )


@cache
def _source() -> Any:
    from monitor.source import CloudWatchMetricSource

    return CloudWatchMetricSource()


def run_monitor(event: MonitorEvent, *, owner: str, budget: RunBudget) -> RunResult:
    return build_service(get_settings(), owner=owner, budget=budget).run(event.now())


def _record_metrics(result: RunResult) -> None:
    metrics.add_metric(name="MetricsEvaluated", unit=MetricUnit.Count, value=result.series_scored)
    metrics.add_metric(name="PointsScored", unit=MetricUnit.Count, value=result.points_scored)
    metrics.add_metric(name="SeriesTrained", unit=MetricUnit.Count, value=result.series_trained)
    metrics.add_metric(name="GetMetricDataCalls", unit=MetricUnit.Count, value=result.fetch.calls)
    metrics.add_metric(name="MetricsRequested", unit=MetricUnit.Count, value=result.fetch.metrics_requested)
    metrics.add_metric(name="AnomaliesOpen", unit=MetricUnit.Count, value=result.open_incidents)
    metrics.add_metric(name="NotificationsSent", unit=MetricUnit.Count, value=result.published)
    metrics.add_metric(name="NotificationFailures", unit=MetricUnit.Count, value=result.publish_failures)
    metrics.add_metric(name="OutboxOldestUnsentAge", unit=MetricUnit.Seconds, value=result.oldest_unsent_s)
    metrics.add_metric(name="StateBytes", unit=MetricUnit.Bytes, value=result.state_bytes)
    metrics.add_metric(name="RunDurationMs", unit=MetricUnit.Milliseconds, value=result.duration_ms)
    metrics.add_metric(name="RunErrors", unit=MetricUnit.Count, value=len(result.errors))


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = MonitorEvent.model_validate(event or {})
    try:
        budget = RunBudget(remaining_s=lambda: context.get_remaining_time_in_millis() / 1000)
        result = run_monitor(request, owner=context.aws_request_id, budget=budget)
    except Exception:
        metrics.add_metric(name="RunErrors", unit=MetricUnit.Count, value=1)
        logger.exception("monitor run failed")
        raise
    _record_metrics(result)
    if result.status == "ok" and result.oldest_unsent_s <= HEARTBEAT_MAX_UNSENT_S:
        metrics.add_metric(name="Heartbeat", unit=MetricUnit.Count, value=1)
    elif result.status == "ok":
        logger.error("heartbeat withheld: a notification is unsent for %ss", result.oldest_unsent_s)
    logger.info("monitor run finished", extra={"run": result.summary()})
    return result.summary()
