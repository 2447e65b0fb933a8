"""Lambda entry point of the AWS judging loop: one verdict on one CodeDeploy Lambda deployment.

A CodeDeploy state-change event (EventBridge, state START) starts a Step Functions wait loop
(infra/constructs/canary_judge.py) that calls this handler every minute with the event's detail
(``deploymentId``, ``deploymentGroup``, ``application``). Each call reads the deployment
(GetDeployment: its status, create time, deployment config and AppSpec with the alias's current and
target version) and its config's traffic routing (GetDeploymentConfig, read once per container:
`monitor.codedeploy_configs`), reads both versions' per-minute AWS/Lambda metrics since it started
(`CloudWatchVersionMetrics`), judges them (`monitor.canary.judge`), publishes ``Fleetscope/Canary``
``CanaryFail`` (dimension ``DeploymentGroup``) — the deployment group's alarm on it makes CodeDeploy
roll back — records the deployment in the monitor table (`monitor.deployments`, where incidents find
it, with the config's canary percentage; the record read back first keeps the earlier minutes'
verdicts, so the history grows by one a call) and returns ``{"continue": bool, ...}``: the loop goes
on while the deployment is in progress.

The last look. CodeDeploy's TimeBasedCanary is time-based: the canary takes its percentage at the
start and, ``canaryInterval`` minutes later, CodeDeploy shifts all traffic whatever the verdicts were
unless an alarm is in ALARM by then. The loop is called about once a minute (a 1-minute wait plus the
call's own seconds), so the call made when the canary has run ``canaryInterval - 1`` full minutes
(since GetDeployment's ``createTime``; CodeDeploy shifts the canary's share right after it when there
is no BeforeAllowTraffic hook) is the last that surely comes before the full shift: from then on, while
the deployment is still in progress, the verdict is judged with ``last_look=True`` (an error ratio
still INCONCLUSIVE is decided at the last-look rule), and a verdict still INCONCLUSIVE does what
``FLEETSCOPE_CANARY_ON_INCONCLUSIVE`` says (`monitor.canary.last_look_action`): ``rollback`` publishes
CanaryFail = 1, so CodeDeploy rolls back; ``promote`` (default) publishes 0 and lets the shift happen.
Before the last look only a FAIL publishes 1. The race: the 1 is published a few seconds after minute
``canaryInterval - 1``, and the alarm (1-minute period) needs up to about a minute to go into ALARM,
so it usually does before the shift at minute ``canaryInterval``; when it does not, CodeDeploy may
already have shifted everything and ended (Succeeded: nothing is stopped; the record says so). Judging
one minute earlier still (``canaryInterval - 2``) would give the alarm two minutes but take the last
look on a fifth less evidence of a 5-minute canary. The call after the shift (``canaryInterval`` full
minutes, deployment still finishing) is a last look too: a FAIL or rollback there may still stop a
deployment in its AfterAllowTraffic hooks. Linear and all-at-once configs get no last look:
a linear shift gives the new version more traffic at every step, so no verdict is singled out as the
one before it takes everything, and all at once has no canary to judge; an unknown config (unreadable,
or without Lambda traffic routing) gets none either, and is recorded at the groups' 10 %.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from contract.metrics import CANARY_FAIL, CANARY_NAMESPACE
from contract.topology import topology
from monitor.canary import Action, Outcome, judge, last_look_action
from monitor.canary_metrics import CloudWatchVersionMetrics, put_verdict
from monitor.codedeploy_configs import CodeDeployDeploymentConfigs, TrafficRouting
from monitor.deployments import Deployment, DeploymentState, DynamoDbDeploymentLog, VerdictRecord

NAMESPACE = CANARY_NAMESPACE
FAIL_METRIC = CANARY_FAIL
IN_PROGRESS = {"Created", "Queued", "InProgress", "Baking", "Ready"}
# Recorded when the deployment config cannot be read: every deployment group's config
# (Canary10Percent5Minutes, infra/constructs/canary.py).
UNKNOWN_CONFIG_PERCENT = 10.0
ON_INCONCLUSIVE_SETTING = "FLEETSCOPE_CANARY_ON_INCONCLUSIVE"
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
    configs: CodeDeployDeploymentConfigs | None = None,
    on_inconclusive: Literal["promote", "rollback"] = "promote",
) -> dict[str, Any]:
    """Judge, publish and record one minute of the deployment; `configs` keeps the deployment configs
    read (one per process in the Lambda; a fresh one reads the config on every call)."""
    info = codedeploy.get_deployment(deploymentId=event.deployment_id)["deploymentInfo"]
    spec = parse_appspec(str(info["revision"]["appSpecContent"]["content"]))
    config_name = str(info.get("deploymentConfigName", ""))
    routing = (
        (configs or CodeDeployDeploymentConfigs(codedeploy)).routing(config_name)
        if config_name
        else TrafficRouting(config_name="", kind="Unknown")
    )
    created: datetime = info["createTime"].astimezone(UTC)
    start = created.replace(second=0, microsecond=0)
    periods = max(1, int((now - start).total_seconds() // 60))
    status = str(info.get("status", ""))
    in_progress = status in IN_PROGRESS
    # Full minutes the canary has run (from the create time itself, not its minute: see the docstring)
    ran = int((now - created).total_seconds() // 60)
    last_look = in_progress and routing.last_look_minutes is not None and ran >= routing.last_look_minutes
    function_name = spec["Name"].split(":")[-1]
    series = CloudWatchVersionMetrics(cloudwatch).minutes(
        function_name=function_name,
        alias=spec["Alias"],
        versions=(spec["CurrentVersion"], spec["TargetVersion"]),
        start=start,
        periods=periods,
    )
    verdict = judge(series[spec["CurrentVersion"]], series[spec["TargetVersion"]], last_look=last_look)
    # CodeDeploy promotes by time: the loop can only roll back (CanaryFail = 1 sets off the group's alarm)
    if last_look:
        action: Action | None = last_look_action(verdict, on_inconclusive=on_inconclusive)
    elif in_progress:
        action = Action.ROLLBACK if verdict.outcome == Outcome.FAIL else Action.CONTINUE
    else:
        action = None  # ended: nothing left to stop
    rollback = verdict.outcome == Outcome.FAIL or action == Action.ROLLBACK
    put_verdict(
        cloudwatch, deployment_group=event.deployment_group, outcome=verdict.outcome, rollback=rollback
    )
    reasons = list(verdict.reasons)
    if last_look and verdict.outcome == Outcome.INCONCLUSIVE:
        done = "rolled back" if action == Action.ROLLBACK else "promoted"
        reasons.append(
            f"INCONCLUSIVE at the last look: {done} as {ON_INCONCLUSIVE_SETTING} says ({on_inconclusive}; "
            f"{ran} of the canary's {routing.interval_minutes} minutes, {routing.config_name})"
        )
    state = (
        DeploymentState.IN_PROGRESS
        if in_progress
        else DeploymentState.SUCCEEDED
        if status == "Succeeded"
        else DeploymentState.ROLLED_BACK
    )
    keys = {fn.name: fn.key for fn in topology(stage).functions}
    # The record so far carries the verdicts of the earlier minutes; this one is added to them
    earlier = log.get(created, event.deployment_id)
    percent = routing.percent
    if percent is None:
        percent = earlier.canary_percent if earlier else UNKNOWN_CONFIG_PERCENT
    record = VerdictRecord(
        at=now,
        minutes=periods,
        outcome=verdict.outcome,
        canary_invocations=verdict.canary_invocations,
        baseline_invocations=verdict.baseline_invocations,
        reasons=reasons,
    )
    log.put(
        Deployment(
            deployment_id=event.deployment_id,
            function=keys.get(function_name, function_name),
            function_name=function_name,
            from_version=spec["CurrentVersion"],
            to_version=spec["TargetVersion"],
            canary_percent=percent,
            state=state,
            started_at=created,
            ended_at=None if state == DeploymentState.IN_PROGRESS else now,
            verdict=verdict.outcome,
            reasons=reasons,
            metrics=list(verdict.metrics),
            baseline_minutes=list(series[spec["CurrentVersion"]]),
            canary_minutes=list(series[spec["TargetVersion"]]),
            verdicts=earlier.verdicts if earlier else [],
        ).with_verdict(record)
    )
    return {
        "continue": in_progress,
        "status": status,
        "verdict": verdict.outcome.value,
        "reasons": reasons,
        "last_look": last_look,
        "action": action.value if action else None,
        "canary_fail": 1 if rollback else 0,
        "deployment_config": routing.config_name,
        "canary_percent": percent,
    }


@cache
def _clients() -> tuple[Any, Any]:
    import boto3

    return boto3.client("codedeploy"), boto3.client("cloudwatch")


@cache
def _configs() -> CodeDeployDeploymentConfigs:
    """The deployment configs read by this container: each is read once, not every minute."""
    return CodeDeployDeploymentConfigs(_clients()[0])


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
        configs=_configs(),
        on_inconclusive=settings.canary_on_inconclusive,
    )
