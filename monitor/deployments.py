"""Deployments of the watched functions: the record a judging loop keeps, and how incidents cite them.

A `Deployment` is one canary (or plain alias update) of one function: from which version to which,
what share of traffic the new version took, its state and the canary judge's verdict with the
per-metric comparison and the per-minute metrics of both versions it judged (the dashboard's
Deployments page draws them). Judging loops (the sandbox's `fleetscope deploy`, the AWS judging
loop) write it to the monitor's table through `DynamoDbDeploymentLog`, at the start and after every
verdict; the monitor reads the last 30 minutes of them when an incident opens
(`deployments_before`) and says plainly how they line up (`describe_deployment`).

Items in the monitor table (see monitor/store.py): pk ``DEPLOYMENT``, sk ``<started_at>#<id>``
(ISO-8601 UTC, so a key-range Query returns a time window in order), ``doc`` the JSON of the record,
``expires_at`` 30 days later.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from boto3.dynamodb.conditions import Key
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from monitor.canary import MetricVerdict, Outcome, VersionMinute

if TYPE_CHECKING:
    from monitor.incidents import Incident

logger = logging.getLogger(__name__)

PK = "DEPLOYMENT"
WINDOW = timedelta(minutes=30)
# An incident opens at the start of its first anomalous period: a deployment that shifted traffic
# within that period (up to a 5-minute period on AWS) came before the anomaly, not after it.
GRACE = timedelta(minutes=5)
RETENTION = timedelta(days=30)
# Verdicts kept per deployment, newest last: a 5-minute canary extended once judges 10 minutes; the AWS
# loop judges every minute while CodeDeploy's deployment lasts (its 2-hour timeout bounds it too).
MAX_VERDICTS = 60


class DeploymentState(StrEnum):
    IN_PROGRESS = "IN_PROGRESS"
    SUCCEEDED = "SUCCEEDED"
    ROLLED_BACK = "ROLLED_BACK"


class VerdictRecord(BaseModel):
    """One verdict of the judging loop, as the deployment's history keeps it."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    at: datetime  # when it was judged
    minutes: int = Field(ge=0)  # minutes judged
    outcome: Outcome
    canary_invocations: int = Field(default=0, ge=0)
    baseline_invocations: int = Field(default=0, ge=0)
    reasons: list[str] = Field(default_factory=list)


class Deployment(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    deployment_id: str = Field(min_length=1)
    function: str  # topology key: "cars-api"
    function_name: str  # physical name
    from_version: str
    to_version: str
    canary_percent: float = Field(ge=0, le=100)
    state: DeploymentState
    started_at: datetime  # when the new version took its first share of traffic
    ended_at: datetime | None = None
    verdict: Outcome | None = None
    reasons: list[str] = Field(default_factory=list)
    metrics: list[MetricVerdict] = Field(default_factory=list)  # the judge's last per-metric comparison
    # What that verdict judged, minute by minute (index i is the same minute for both versions)
    baseline_minutes: list[VersionMinute] = Field(default_factory=list)
    canary_minutes: list[VersionMinute] = Field(default_factory=list)
    # Every verdict so far, oldest first (at most MAX_VERDICTS): how the verdict evolved
    verdicts: list[VerdictRecord] = Field(default_factory=list)

    def with_verdict(self, record: VerdictRecord) -> Deployment:
        """This deployment with `record` in its history: a verdict on the same minutes replaces the
        earlier one (a retried judgement), the oldest go beyond MAX_VERDICTS."""
        kept = [v for v in self.verdicts if v.minutes != record.minutes]
        kept = sorted([*kept, record], key=lambda v: (v.minutes, v.at))[-MAX_VERDICTS:]
        return self.model_copy(update={"verdicts": kept})

    def summary(self) -> dict[str, Any]:
        """What an incident payload lists about it."""
        return {
            "deployment_id": self.deployment_id,
            "function": self.function,
            "from_version": self.from_version,
            "to_version": self.to_version,
            "canary_percent": self.canary_percent,
            "state": self.state.value,
            "verdict": self.verdict.value if self.verdict else None,
            "started_at": self.started_at.isoformat(),
        }


def _sk(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class DynamoDbDeploymentLog:
    """Deployments in the monitor table: a boto3 Table resource, or its name (resource made lazily)."""

    def __init__(self, table: Any) -> None:
        self._table = table

    @property
    def table(self) -> Any:
        if isinstance(self._table, str):
            import boto3

            self._table = boto3.resource("dynamodb").Table(self._table)
        return self._table

    def put(self, deployment: Deployment) -> None:
        self.table.put_item(
            Item={
                "pk": PK,
                "sk": f"{_sk(deployment.started_at)}#{deployment.deployment_id}",
                "doc": deployment.model_dump_json(),
                "expires_at": int((deployment.started_at + RETENTION).timestamp()),
            }
        )

    def get(self, started_at: datetime, deployment_id: str) -> Deployment | None:
        """The record of one deployment, None when there is none (or it is malformed)."""
        item = self.table.get_item(Key={"pk": PK, "sk": f"{_sk(started_at)}#{deployment_id}"}).get("Item")
        if item is None:
            return None
        try:
            return Deployment.model_validate_json(str(item["doc"]))
        except (KeyError, ValidationError) as err:
            logger.warning("malformed deployment item %s: %s", item.get("sk"), err)
            return None

    def between(self, start: datetime, end: datetime) -> list[Deployment]:
        """Deployments that started in [start, end], oldest first; malformed items are skipped."""
        condition = Key("pk").eq(PK) & Key("sk").between(_sk(start), _sk(end) + "~")
        kwargs: dict[str, Any] = {"KeyConditionExpression": condition}
        found: list[Deployment] = []
        while True:
            page = self.table.query(**kwargs)
            for item in page.get("Items", []):
                try:
                    found.append(Deployment.model_validate_json(str(item["doc"])))
                except (KeyError, ValidationError) as err:
                    logger.warning("skipping malformed deployment item %s: %s", item.get("sk"), err)
            if "LastEvaluatedKey" not in page:
                return found
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


class DeploymentLog(Protocol):
    def between(self, start: datetime, end: datetime) -> list[Deployment]: ...


def deployments_of(incident: Incident, log: DeploymentLog, *, window: timedelta = WINDOW) -> list[Deployment]:
    """The deployments of an incident's functions in the `window` before it opened, newest first.

    A deployment belongs to the incident when its function is one of the incident's resources, or the
    incident's group is that function's service (``service:cars-api``).
    """
    opened = datetime.fromtimestamp(incident.opened_at, tz=UTC)
    names = {incident.resource, *incident.resources}
    mine = [
        d
        for d in log.between(opened - window, opened + GRACE)
        if d.function_name in names or f"service:{d.function}" in names
    ]
    return deployments_before(opened, mine, window=window)


def deployments_before(
    opened_at: datetime, deployments: Sequence[Deployment], *, window: timedelta = WINDOW
) -> list[Deployment]:
    """The deployments that started in the `window` before an incident opened (or within its first
    period, `GRACE`), newest first."""
    chosen = [d for d in deployments if opened_at - window <= d.started_at <= opened_at + GRACE]
    return sorted(chosen, key=lambda d: d.started_at, reverse=True)


def describe_deployment(deployment: Deployment, opened_at: datetime) -> str:
    """E.g. "began 2 min after cars-api version 8 took 10 % of traffic (rolled back, canary FAIL)"."""
    minutes = max(0, round((opened_at - deployment.started_at).total_seconds() / 60))
    outcome = {
        DeploymentState.IN_PROGRESS: "still in progress",
        DeploymentState.SUCCEEDED: "since promoted",
        DeploymentState.ROLLED_BACK: "rolled back",
    }[deployment.state]
    verdict = f", canary {deployment.verdict.value}" if deployment.verdict else ""
    return (
        f"began {minutes} min after {deployment.function} version {deployment.to_version} took "
        f"{deployment.canary_percent:g} % of traffic ({outcome}{verdict}; "
        f"deployment {deployment.deployment_id}, from version {deployment.from_version})"
    )
