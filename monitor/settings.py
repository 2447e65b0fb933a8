"""Settings of the monitor Lambda, read once from the environment (names defined in contract/topology.py)."""

from __future__ import annotations

from functools import cache
from typing import Literal

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from contract.resources import ResourceNames
from contract.runbooks import DEFAULT_RUNBOOK_BASE_URL
from contract.topology import topology
from monitor.catalog import Catalog, build_catalog


class MonitorConfigError(ValueError):
    """The monitor's configuration (environment, resource names, catalog) is unusable."""


class MonitorSettings(BaseSettings):
    # No populate_by_name: every field is read from its alias only, never from a variable that merely
    # shares its name (`stage` from STAGE, `region` from REGION in a Lambda's environment).
    model_config = SettingsConfigDict(frozen=True, extra="ignore", case_sensitive=True)

    monitor_table_name: str = Field(min_length=1, validation_alias="MONITOR_TABLE_NAME")
    alerts_topic_name: str = Field(min_length=1, validation_alias="ALERTS_TOPIC_NAME")
    alerts_topic_arn: str | None = Field(
        default=None, validation_alias="ALERTS_TOPIC_ARN", description="skips the topic lookup when set"
    )
    alerts_receipts_queue_name: str | None = Field(
        default=None,
        validation_alias="ALERTS_RECEIPTS_QUEUE_NAME",
        description="the SQS queue subscribed to the alerts topic: what SNS delivered is not sent twice",
    )
    stage: str = Field(default="local", validation_alias="FLEETSCOPE_STAGE")
    region: str = Field(default="us-east-1", validation_alias="AWS_REGION")
    metrics_namespace: str = Field(default="Fleetscope", validation_alias="POWERTOOLS_METRICS_NAMESPACE")
    service_name: str = Field(default="monitor", validation_alias="POWERTOOLS_SERVICE_NAME")
    monitor_resources: str | None = Field(
        default=None, validation_alias="MONITOR_RESOURCES", description="ResourceNames as JSON"
    )
    period_s: int = Field(default=300, ge=60, validation_alias="MONITOR_PERIOD_S")
    history_days: float = Field(default=14.0, gt=0, le=15, validation_alias="MONITOR_HISTORY_DAYS")
    retrain_interval_s: int = Field(default=24 * 3600, ge=60, validation_alias="MONITOR_RETRAIN_S")
    overlap_periods: int = Field(
        default=3,
        ge=0,
        le=100,
        validation_alias="MONITOR_OVERLAP_PERIODS",
        description="re-read for late data",
    )
    settle_s: int = Field(
        default=120,
        ge=0,
        validation_alias="MONITOR_SETTLE_S",
        description="a period is scored only when it ended this long ago (CloudWatch ingestion delay)",
    )
    checkpoint_periods: int = Field(
        default=12,
        ge=1,
        le=288,
        validation_alias="MONITOR_CHECKPOINT_PERIODS",
        description="detector states are rewritten after this many new periods (replayed in between)",
    )
    cooldown_s: int | None = Field(
        default=None,
        ge=0,
        validation_alias="MONITOR_COOLDOWN_S",
        description="incident hold-down before RESOLVED; unset: two periods",
    )
    train_budget_s: float = Field(default=60.0, gt=0, validation_alias="MONITOR_TRAIN_BUDGET_S")
    lease_s: int = Field(
        default=240,
        ge=10,
        validation_alias="MONITOR_LEASE_S",
        description="longer than the Lambda timeout (120 s), shorter than the schedule (300 s)",
    )
    incident_ttl_days: int = Field(default=30, ge=1, validation_alias="MONITOR_INCIDENT_TTL_DAYS")
    dashboard_url: str | None = Field(
        default=None,
        validation_alias="MONITOR_DASHBOARD_URL",
        description="the Fleetscope dashboard's base URL: alerts then link to its Service health page",
    )
    runbook_base_url: str = Field(
        default=DEFAULT_RUNBOOK_BASE_URL,
        min_length=1,
        validation_alias="MONITOR_RUNBOOK_BASE_URL",
        description="where docs/runbooks/ is published: every alert links <base>/<page>/",
    )
    canary_on_inconclusive: Literal["promote", "rollback"] = Field(
        default="promote",
        validation_alias="FLEETSCOPE_CANARY_ON_INCONCLUSIVE",
        description="the AWS canary judge: what a canary still INCONCLUSIVE at its last look does",
    )
    console_url: str = Field(
        default="https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}",
        validation_alias="MONITOR_CONSOLE_URL",
    )

    @property
    def hold_down_s(self) -> int:
        """How long every member of an incident stays clear before it resolves (MONITOR_COOLDOWN_S,
        default two periods: a flapping metric stays one incident, a recovery is told within minutes)."""
        return self.cooldown_s if self.cooldown_s is not None else 2 * self.period_s

    def resource_names(self) -> ResourceNames:
        """`MONITOR_RESOURCES` when set, else the names of the stage's topology."""
        if self.monitor_resources:
            try:
                return ResourceNames.model_validate_json(self.monitor_resources)
            except ValidationError as err:
                raise MonitorConfigError(f"MONITOR_RESOURCES is not valid ResourceNames JSON: {err}") from err
        return ResourceNames.from_topology(topology(self.stage))

    def catalog(self) -> Catalog:
        try:
            return build_catalog(self.resource_names(), period_s=self.period_s)
        except (ValueError, ValidationError) as err:
            if isinstance(err, MonitorConfigError):
                raise
            raise MonitorConfigError(f"cannot build the metric catalog: {err}") from err


@cache
def get_settings() -> MonitorSettings:
    try:
        return MonitorSettings()  # values come from the environment
    except ValidationError as err:
        raise MonitorConfigError(f"monitor settings are invalid: {err}") from err
