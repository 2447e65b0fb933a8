"""Lambda entry point of the AWS judging loop: one verdict on one CodeDeploy Lambda deployment.

A CodeDeploy state-change event (EventBridge, state START) starts a Step Functions wait loop
(infra/constructs/canary_judge.py) that calls this handler every minute with the event's detail
(``deploymentId``, ``deploymentGroup``, ``application``). Each call reads the deployment
(GetDeployment: its status, create time and AppSpec with the alias's current and target version),
reads both versions' per-minute AWS/Lambda metrics since it started (`CloudWatchVersionMetrics`),
judges them (`monitor.canary.judge`), publishes ``Fleetscope/Canary`` ``CanaryFail`` (1 on FAIL,
else 0; dimension ``DeploymentGroup``) — the deployment group's alarm on it makes CodeDeploy roll
back — records the deployment in the monitor table (`monitor.deployments`, where incidents find it; the
record read back first keeps the earlier minutes' verdicts, so the history grows by one a call)
and returns ``{"continue": bool, ...}``: the loop goes on while the deployment is in progress.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import cache
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from contract.metrics import CANARY_FAIL, CANARY_NAMESPACE
from contract.topology import topology
from monitor.canary import judge
from monitor.canary_metrics import CloudWatchVersionMetrics, put_verdict
from monitor.deployments import Deployment, DeploymentState, DynamoDbDeploymentLog, VerdictRecord

NAMESPACE = CANARY_NAMESPACE
FAIL_METRIC = CANARY_FAIL
IN_PROGRESS = {"Created", "Queued", "InProgress", "Baking", "Ready"}
_APPSPEC_FIELD = re.compile(r'"?(Name|Alias|CurrentVersion|TargetVersion)"?\s*:\s*"?([^",\s}]+)"?')


class JudgeEvent(BaseModel):
    """The CodeDeploy state-change event's detail (what the state machine passes on)."""

    model_config = ConfigDict(extra="ignore")

    deployment_id: str = Field(alias="deploymentId", min_length=1)
    deployment_group: str = Field(alias="deploymentGroup", min_length=1)


def parse_appspec(content: str) -> dict[str, str]:
    """Name, Alias, CurrentVersion, TargetVersion of a Lambda AppSpec (YAML or JSON)."""
    fields = dict(_APPSPEC_FIELD.findall(content))
    missing = {"Name", "Alias", "CurrentVersion", "TargetVersion"} - set(fields)
    if missing:
        raise ValueError(f"AppSpec without {', '.join(sorted(missing))}")
    return fields


def judge_deployment(
    event: JudgeEvent,
    *,
    codedeploy: Any,
    cloudwatch: Any,
    log: DynamoDbDeploymentLog,
    stage: str,
    now: datetime,
) -> dict[str, Any]:
    info = codedeploy.get_deployment(deploymentId=event.deployment_id)["deploymentInfo"]
    spec = parse_appspec(str(info["revision"]["appSpecContent"]["content"]))
    created: datetime = info["createTime"].astimezone(UTC)
    start = created.replace(second=0, microsecond=0)
    periods = max(1, int((now - start).total_seconds() // 60))
    function_name = spec["Name"].split(":")[-1]
    series = CloudWatchVersionMetrics(cloudwatch).minutes(
        function_name=function_name,
        alias=spec["Alias"],
        versions=(spec["CurrentVersion"], spec["TargetVersion"]),
        start=start,
        periods=periods,
    )
    verdict = judge(series[spec["CurrentVersion"]], series[spec["TargetVersion"]])
    put_verdict(cloudwatch, deployment_group=event.deployment_group, outcome=verdict.outcome)
    status = str(info.get("status", ""))
    state = (
        DeploymentState.IN_PROGRESS
        if status in IN_PROGRESS
        else DeploymentState.SUCCEEDED
        if status == "Succeeded"
        else DeploymentState.ROLLED_BACK
    )
    keys = {fn.name: fn.key for fn in topology(stage).functions}
    # The record so far carries the verdicts of the earlier minutes; this one is added to them
    earlier = log.get(created, event.deployment_id)
    record = VerdictRecord(
        at=now,
        minutes=periods,
        outcome=verdict.outcome,
        canary_invocations=verdict.canary_invocations,
        baseline_invocations=verdict.baseline_invocations,
        reasons=verdict.reasons,
    )
    log.put(
        Deployment(
            deployment_id=event.deployment_id,
            function=keys.get(function_name, function_name),
            function_name=function_name,
            from_version=spec["CurrentVersion"],
            to_version=spec["TargetVersion"],
            canary_percent=10,  # Canary10Percent5Minutes, the deployment config of every group
            state=state,
            started_at=created,
            ended_at=None if state == DeploymentState.IN_PROGRESS else now,
            verdict=verdict.outcome,
            reasons=verdict.reasons,
            metrics=list(verdict.metrics),
            baseline_minutes=list(series[spec["CurrentVersion"]]),
            canary_minutes=list(series[spec["TargetVersion"]]),
            verdicts=earlier.verdicts if earlier else [],
        ).with_verdict(record)
    )
    return {
        "continue": status in IN_PROGRESS,
        "status": status,
        "verdict": verdict.outcome.value,
        "reasons": verdict.reasons,
    }


@cache
def _clients() -> tuple[Any, Any]:
    import boto3

    return boto3.client("codedeploy"), boto3.client("cloudwatch")


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    from monitor.settings import get_settings

    settings = get_settings()
    codedeploy, cloudwatch = _clients()
    return judge_deployment(
        JudgeEvent.model_validate(event),
        codedeploy=codedeploy,
        cloudwatch=cloudwatch,
        log=DynamoDbDeploymentLog(settings.monitor_table_name),
        stage=settings.stage,
        now=datetime.now(UTC),
    )
