"""`fleetscope deploy FUNCTION`: a CodeDeploy-like canary of a new version on the running sandbox.

Steps, each printed as one JSON line: publish a new version of the function (the same code; with
``--fault KIND`` the version carries that per-function incident kind), shift ``--canary-percent``
of the ``live`` alias to it (the alias file, `sandbox.home.aliases`, that the runtime routes by),
then judge every minute: read both versions' per-minute AWS/Lambda metrics (``ExecutedVersion``)
from the emulator's CloudWatch with `monitor.canary_metrics.CloudWatchVersionMetrics`, judge them
with `monitor.canary.judge` and act with `monitor.canary.next_action` — FAIL rolls back at once,
PASS at the end of ``--canary-minutes`` promotes, INCONCLUSIVE extends once and then does what
``FLEETSCOPE_CANARY_ON_INCONCLUSIVE`` says (promote). Last line: the result object of the CLI
contract. The deployment is recorded in the monitor's table (`monitor.deployments`) at the start
and after every verdict, where the monitor reads it when an incident opens. Each verdict is also published as
``Fleetscope/Canary`` ``CanaryFail`` (1 on FAIL, else 0) for the deployment group named like the
function, as the AWS judging loop does: the monitor's ``canary-fail`` series opens an incident on it.

Settings: ``FLEETSCOPE_CANARY_MINUTE_S`` (60) is the length of a canary "minute" and the metric
period (tests shorten it); a minute is judged `SETTLE_S` after it ends, when the sandbox's telemetry
has been flushed. Exit status: 0 promoted, 3 rolled back, 2 bad usage, 1 any other failure.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import Field, ValidationError

from contract.topology import Topology, topology
from monitor.canary import Action, CanaryJudgeConfig, CanaryVerdict, is_last_look, judge, next_action
from monitor.canary_metrics import CloudWatchVersionMetrics, put_verdict
from monitor.deployments import Deployment, DeploymentState, DynamoDbDeploymentLog, VerdictRecord
from sandbox.emulator.server import aws_environment
from sandbox.home.aliases import (
    ALIASED_FUNCTIONS,
    LIVE_ALIAS,
    VERSION_FAULT_KINDS,
    AliasFile,
    AliasFileError,
    FunctionAlias,
    VersionFault,
    version_fault,
)
from sandbox.home.settings import HomeSettings
from sandbox.home.state import StateFileError, read_state

SETTLE_S = 3.0  # the sandbox flushes telemetry every 2 s
EXIT_SUCCEEDED, EXIT_FAILURE, EXIT_USAGE, EXIT_ROLLED_BACK = 0, 1, 2, 3


class DeploySettings(HomeSettings):
    minute_s: float = Field(default=60.0, gt=0, le=3600, validation_alias="FLEETSCOPE_CANARY_MINUTE_S")
    on_inconclusive: Literal["promote", "rollback"] = Field(
        default="promote", validation_alias="FLEETSCOPE_CANARY_ON_INCONCLUSIVE"
    )


class DeployError(RuntimeError):
    """The deployment could not run (no sandbox, another deployment in progress, ...)."""


class CanaryRollout:
    """One canary deployment of one function; `run()` returns the final `Deployment`."""

    def __init__(
        self,
        *,
        topo: Topology,
        function_key: str,
        percent: float,
        minutes: int,
        fault: VersionFault | None,
        aliases: AliasFile,
        metrics: CloudWatchVersionMetrics,
        log: DynamoDbDeploymentLog,
        emit: Callable[[dict[str, Any]], None],
        minute_s: float = 60.0,
        on_inconclusive: Literal["promote", "rollback"] = "promote",
        config: CanaryJudgeConfig | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Callable[[float], None] = time.sleep,
        settle_s: float = SETTLE_S,
        on_verdict: Callable[[CanaryVerdict], None] = lambda verdict: None,
    ) -> None:
        self.topo = topo
        self.fn = next(f for f in topo.functions if f.key == function_key)
        self.percent, self.minutes, self.fault = percent, minutes, fault
        self.aliases, self.metrics, self.log, self.emit = aliases, metrics, log, emit
        self.minute_s, self.on_inconclusive, self.config = minute_s, on_inconclusive, config
        self.clock, self.sleep, self.settle_s = clock, sleep, settle_s
        self.on_verdict = on_verdict

    def run(self) -> Deployment:
        started = time.monotonic()
        current = self.aliases.alias(self.fn.key)
        if current.canary_version is not None:
            raise DeployError(
                f"{self.fn.key}: version {current.canary_version} is already taking "
                f"{current.canary_weight:.0%} of {LIVE_ALIAS}; wait for that deployment to finish"
            )
        new = self.aliases.update(self.fn.key, self._publish)
        to_version, from_version = str(new.latest), str(new.version)
        self.emit(
            {"step": "published", "function": self.fn.key, "version": to_version, "fault": self._fault()}
        )
        self.aliases.update(
            self.fn.key,
            lambda a: a.model_copy(
                update={"canary_version": int(to_version), "canary_weight": self.percent / 100}
            ),
        )
        shifted_at = self.clock()
        deployment = Deployment(
            deployment_id=f"d-{uuid.uuid4().hex[:10]}",
            function=self.fn.key,
            function_name=self.fn.name,
            from_version=from_version,
            to_version=to_version,
            canary_percent=self.percent,
            state=DeploymentState.IN_PROGRESS,
            started_at=shifted_at,
        )
        self.log.put(deployment)
        self.emit(
            {
                "step": "traffic_shifted",
                "deployment_id": deployment.deployment_id,
                "alias": LIVE_ALIAS,
                "weights": {from_version: 1 - self.percent / 100, to_version: self.percent / 100},
            }
        )
        verdict: CanaryVerdict | None = None
        action = Action.CONTINUE
        try:
            minute = 0
            while action == Action.CONTINUE:
                minute += 1
                due = shifted_at + timedelta(seconds=minute * self.minute_s + self.settle_s)
                self.sleep(max(0.0, (due - self.clock()).total_seconds()))
                series = self.metrics.minutes(
                    function_name=self.fn.name,
                    alias=LIVE_ALIAS,
                    versions=(from_version, to_version),
                    start=shifted_at,
                    periods=minute,
                    period_s=max(1, round(self.minute_s)),
                )
                verdict = judge(
                    series[from_version],
                    series[to_version],
                    self.config,
                    last_look=is_last_look(minute, window_minutes=self.minutes),
                )
                self.on_verdict(verdict)
                action = next_action(
                    verdict, window_minutes=self.minutes, on_inconclusive=self.on_inconclusive
                )
                deployment = deployment.model_copy(
                    update={
                        "verdict": verdict.outcome,
                        "reasons": verdict.reasons,
                        "metrics": list(verdict.metrics),
                        "baseline_minutes": list(series[from_version]),
                        "canary_minutes": list(series[to_version]),
                    }
                ).with_verdict(
                    VerdictRecord(
                        at=self.clock(),
                        minutes=minute,
                        outcome=verdict.outcome,
                        canary_invocations=verdict.canary_invocations,
                        baseline_invocations=verdict.baseline_invocations,
                        reasons=verdict.reasons,
                    )
                )
                self.log.put(deployment)
                self.emit(
                    {
                        "step": "judged",
                        "minute": minute,
                        "verdict": verdict.outcome.value,
                        "action": action.value,
                        "canary_invocations": verdict.canary_invocations,
                        "baseline_invocations": verdict.baseline_invocations,
                        "reasons": verdict.reasons,
                    }
                )
        finally:
            if action != Action.PROMOTE:  # rolled back, or interrupted / failed mid-way
                self.aliases.update(
                    self.fn.key, lambda a: a.model_copy(update={"canary_version": None, "canary_weight": 0.0})
                )
        if action == Action.PROMOTE:
            self.aliases.update(
                self.fn.key,
                lambda a: a.model_copy(
                    update={"version": int(to_version), "canary_version": None, "canary_weight": 0.0}
                ),
            )
        state = DeploymentState.SUCCEEDED if action == Action.PROMOTE else DeploymentState.ROLLED_BACK
        deployment = deployment.model_copy(update={"state": state, "ended_at": self.clock()})
        self.log.put(deployment)
        self.emit(
            {
                "step": "promoted" if state == DeploymentState.SUCCEEDED else "rolled_back",
                "version": to_version,
            }
        )
        self.emit(
            {
                "deployment_id": deployment.deployment_id,
                "function": self.fn.key,
                "from_version": from_version,
                "to_version": to_version,
                "status": state.value,
                "verdict": verdict.outcome.value if verdict else None,
                "reasons": verdict.reasons if verdict else [],
                "duration_s": round(time.monotonic() - started, 1),
            }
        )
        return deployment

    def _publish(self, alias: FunctionAlias) -> FunctionAlias:
        versions = dict(alias.versions)
        versions[alias.latest + 1] = self.fault
        return alias.model_copy(update={"versions": versions})

    def _fault(self) -> dict[str, Any] | None:
        return self.fault.model_dump() if self.fault else None


# --- CLI ----------------------------------------------------------------------------------------------


def _percent(text: str) -> float:
    try:
        value = float(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from err
    if not 0 < value < 100:
        raise argparse.ArgumentTypeError(f"must be in (0, 100), got {value:g}")
    return value


def _minutes(text: str) -> int:
    try:
        value = int(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from err
    if not 1 <= value <= 60:
        raise argparse.ArgumentTypeError(f"must be in [1, 60], got {value}")
    return value


def add_deploy_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Canary a new version of FUNCTION on the running sandbox: shift P % of its `live` alias to it "
        "for M minutes while the canary judge compares it with the current version every minute, then "
        "promote it or roll it back. One JSON object per line; exit 0 promoted, 3 rolled back, "
        "2 bad usage, 1 failure."
    )
    parser.add_argument("function", metavar="FUNCTION", help=f"one of {', '.join(ALIASED_FUNCTIONS)}")
    parser.add_argument("--canary-percent", type=_percent, default=10.0, metavar="P", help="(10)")
    parser.add_argument("--canary-minutes", type=_minutes, default=5, metavar="M", help="(5)")
    parser.add_argument(
        "--fault",
        metavar="KIND",
        help=f"apply this incident kind to the new version only ({', '.join(VERSION_FAULT_KINDS)})",
    )
    parser.add_argument("--intensity", type=float, help="of the fault (its `fleetscope incident` meaning)")


def _usage(message: str) -> int:
    print(f"fleetscope deploy: {message}", file=sys.stderr)
    return EXIT_USAGE


def cli_deploy(args: argparse.Namespace) -> int:
    if args.function not in ALIASED_FUNCTIONS:
        return _usage(
            f"{args.function!r} does not deploy through an alias; "
            f"choose one of {', '.join(ALIASED_FUNCTIONS)}"
        )
    try:
        fault = version_fault(args.fault, args.intensity)
    except ValueError as err:
        return _usage(str(err))
    try:
        settings = DeploySettings()
    except ValidationError as err:
        return _usage(
            f"bad setting: {err.errors(include_url=False)[0]['loc'][0]} ({err.error_count()} errors)"
        )
    try:
        state = read_state(settings.home)
    except StateFileError as err:
        print(f"fleetscope deploy: {err}", file=sys.stderr)
        return EXIT_FAILURE
    if state is None:
        print("fleetscope deploy: no sandbox is running (fleetscope sandbox up)", file=sys.stderr)
        return EXIT_FAILURE
    os.environ.update(aws_environment(state.emulator_url))
    import boto3

    topo = topology(state.stage)

    def emit(line: dict[str, Any]) -> None:
        print(json.dumps(line), flush=True)

    cloudwatch = boto3.client("cloudwatch")
    group = next(f.name for f in topo.functions if f.key == args.function)  # named like the function

    def publish(verdict: CanaryVerdict) -> None:
        put_verdict(cloudwatch, deployment_group=group, outcome=verdict.outcome)

    rollout = CanaryRollout(
        topo=topo,
        function_key=args.function,
        percent=args.canary_percent,
        minutes=args.canary_minutes,
        fault=fault,
        aliases=AliasFile(settings.home),
        metrics=CloudWatchVersionMetrics(cloudwatch),
        log=DynamoDbDeploymentLog(boto3.resource("dynamodb").Table(topo.monitor_table.name)),
        emit=emit,
        minute_s=settings.minute_s,
        on_inconclusive=settings.on_inconclusive,
        on_verdict=publish,
    )
    try:
        deployment = rollout.run()
    except (DeployError, AliasFileError) as err:
        print(f"fleetscope deploy: {err}", file=sys.stderr)
        return EXIT_FAILURE
    except Exception as err:  # AWS errors and the like: the alias is back on the old version
        print(f"fleetscope deploy: failed ({type(err).__name__}: {err}); rolled back", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_SUCCEEDED if deployment.state == DeploymentState.SUCCEEDED else EXIT_ROLLED_BACK
