"""The AWS judging loop's Lambda: one CodeDeploy deployment judged, published, recorded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from monitor import canary_handler
from monitor.canary_handler import JudgeEvent, judge_deployment, parse_appspec
from monitor.codedeploy_configs import CodeDeployDeploymentConfigs
from monitor.deployments import Deployment, DeploymentState

APPSPEC_YAML = """version: 0.0
Resources:
  - CarsApi:
      Type: AWS::Lambda::Function
      Properties:
        Name: fleetscope-prod-cars-api
        Alias: live
        CurrentVersion: "7"
        TargetVersion: "8"
"""
CREATED = datetime(2026, 12, 1, 12, 0, 20, tzinfo=UTC)


CANARY_10_5 = "CodeDeployDefault.LambdaCanary10Percent5Minutes"
# GetDeploymentConfig's trafficRoutingConfig of the configs the tests deploy with
ROUTING: dict[str, dict[str, Any]] = {
    CANARY_10_5: {
        "type": "TimeBasedCanary",
        "timeBasedCanary": {"canaryPercentage": 10, "canaryInterval": 5},
    },
    "Custom.Canary25Percent15Minutes": {
        "type": "TimeBasedCanary",
        "timeBasedCanary": {"canaryPercentage": 25, "canaryInterval": 15},
    },
    "CodeDeployDefault.LambdaLinear10PercentEvery1Minute": {
        "type": "TimeBasedLinear",
        "timeBasedLinear": {"linearPercentage": 10, "linearInterval": 1},
    },
    "CodeDeployDefault.LambdaAllAtOnce": {"type": "AllAtOnce"},
}


class FakeCodeDeploy:
    """GetDeployment of one deployment under `config`; GetDeploymentConfig from ROUTING, calls counted."""

    def __init__(self, status: str, appspec: str = APPSPEC_YAML, config: str = CANARY_10_5) -> None:
        self.status, self.appspec, self.config = status, appspec, config
        self.config_reads: list[str] = []

    def get_deployment(self, **kwargs: str) -> dict[str, Any]:
        return {
            "deploymentInfo": {
                "deploymentId": kwargs["deploymentId"],
                "status": self.status,
                "createTime": CREATED,
                "deploymentConfigName": self.config,
                "revision": {"revisionType": "AppSpecContent", "appSpecContent": {"content": self.appspec}},
            }
        }

    def get_deployment_config(self, **kwargs: str) -> dict[str, Any]:
        name = kwargs["deploymentConfigName"]
        self.config_reads.append(name)
        return {
            "deploymentConfigInfo": {
                "deploymentConfigName": name,
                "computePlatform": "Lambda",
                "trafficRoutingConfig": ROUTING[name],
            }
        }


class FakeCloudWatch:
    """GetMetricData: version 8 is `slow` times as slow as version 7 in every minute, with 500 and
    `canary_invocations` invocations a minute and no errors; records PutMetricData."""

    def __init__(self, slow: float = 2.0, canary_invocations: float = 60.0) -> None:
        self.slow, self.canary_invocations = slow, canary_invocations
        self.put: list[dict[str, Any]] = []

    def get_metric_data(self, **kwargs: Any) -> dict[str, Any]:
        start: datetime = kwargs["StartTime"]
        end: datetime = kwargs["EndTime"]
        stamps = [start + timedelta(minutes=i) for i in range(int((end - start).total_seconds() // 60))]
        results = []
        for query in kwargs["MetricDataQueries"]:
            stat = query["MetricStat"]
            version = next(d["Value"] for d in stat["Metric"]["Dimensions"] if d["Name"] == "ExecutedVersion")
            name, statistic = stat["Metric"]["MetricName"], stat["Stat"]
            invocations = 500.0 if version == "7" else self.canary_invocations
            value = {"Invocations": invocations, "Errors": 0.0, "Throttles": 0.0}.get(
                name,
                {"p50": 40.0, "p90": 80.0, "p99": 150.0}.get(statistic, 0.0)
                * (self.slow if version == "8" else 1),
            )
            results.append({"Id": query["Id"], "Timestamps": stamps, "Values": [value] * len(stamps)})
        return {"MetricDataResults": results}

    def put_metric_data(self, **kwargs: Any) -> None:
        self.put.append(kwargs)

    @property
    def published(self) -> list[float]:
        """The CanaryFail values published, in order."""
        return [datum["Value"] for call in self.put for datum in call["MetricData"]]


class MemoryLog:
    def __init__(self) -> None:
        self.items: list[Deployment] = []

    def put(self, deployment: Deployment) -> None:
        self.items.append(deployment)

    def get(self, started_at: datetime, deployment_id: str) -> Deployment | None:
        mine = [d for d in self.items if (d.started_at, d.deployment_id) == (started_at, deployment_id)]
        return mine[-1] if mine else None


EVENT = JudgeEvent.model_validate(
    {
        "deploymentId": "d-ABC",
        "deploymentGroup": "fleetscope-prod-cars-api",
        "application": "x",
        "state": "START",
    }
)


def test_a_slow_target_version_publishes_a_fail_and_keeps_the_loop_going() -> None:
    # Given a deployment in progress for 6 minutes whose target version is twice as slow
    cloudwatch, log = FakeCloudWatch(), MemoryLog()
    # When the loop judges it
    result = judge_deployment(
        EVENT,
        codedeploy=FakeCodeDeploy("InProgress"),
        cloudwatch=cloudwatch,
        log=log,  # type: ignore[arg-type]
        stage="prod",
        now=CREATED + timedelta(minutes=6),
    )
    # Then the verdict is FAIL, published as CanaryFail = 1 for the deployment group
    assert result["verdict"] == "FAIL"
    assert result["continue"] is True
    (datum,) = cloudwatch.put[0]["MetricData"]
    assert cloudwatch.put[0]["Namespace"] == "Fleetscope/Canary"
    assert (datum["MetricName"], datum["Value"]) == ("CanaryFail", 1.0)
    assert datum["Dimensions"] == [{"Name": "DeploymentGroup", "Value": "fleetscope-prod-cars-api"}]
    # and the deployment is recorded for the monitor, with the topology's function key
    (recorded,) = log.items
    assert (recorded.function, recorded.from_version, recorded.to_version) == ("cars-api", "7", "8")
    assert recorded.state == DeploymentState.IN_PROGRESS
    # with the minutes it judged, for the dashboard's canary-vs-baseline charts
    assert len(recorded.baseline_minutes) == len(recorded.canary_minutes) == 6
    assert sum(m.invocations for m in recorded.canary_minutes) > 0


def test_a_finished_deployment_stops_the_loop() -> None:
    log = MemoryLog()
    result = judge_deployment(
        EVENT,
        codedeploy=FakeCodeDeploy("Stopped"),
        cloudwatch=FakeCloudWatch(),
        log=log,  # type: ignore[arg-type]
        stage="prod",
        now=CREATED + timedelta(minutes=6),
    )
    assert result["continue"] is False
    assert log.items[0].state == DeploymentState.ROLLED_BACK


def test_appspec_in_json_too() -> None:
    content = (
        '{"version":0.0,"Resources":[{"CarsApi":{"Type":"AWS::Lambda::Function","Properties":'
        '{"Name":"fn","Alias":"live","CurrentVersion":"3","TargetVersion":"4"}}}]}'
    )
    assert parse_appspec(content) == {
        "Name": "fn",
        "Alias": "live",
        "CurrentVersion": "3",
        "TargetVersion": "4",
    }


def test_an_appspec_without_versions_is_an_error() -> None:
    with pytest.raises(ValueError, match="CurrentVersion"):
        parse_appspec("version: 0.0\nResources: []\n")


def test_the_record_keeps_every_minute_s_verdict_once() -> None:
    # Given the loop judging a deployment at minutes 1, 2 and 6, and minute 6 again (a retried task)
    log = MemoryLog()
    for minutes in (1, 2, 6, 6):
        judge_deployment(
            EVENT,
            codedeploy=FakeCodeDeploy("InProgress"),
            cloudwatch=FakeCloudWatch(),
            log=log,  # type: ignore[arg-type]
            stage="prod",
            now=CREATED.replace(second=0) + timedelta(minutes=minutes, seconds=5),
        )
    # Then the last record holds the verdict of each minute once, oldest first, with its volumes
    history = log.items[-1].verdicts
    assert [v.minutes for v in history] == [1, 2, 6]
    assert [v.outcome.value for v in history] == ["INCONCLUSIVE", "INCONCLUSIVE", "FAIL"]
    assert history[-1].canary_invocations == 360


def _judge(
    codedeploy: FakeCodeDeploy,
    cloudwatch: FakeCloudWatch,
    after: timedelta,
    *,
    on_inconclusive: Any = "promote",
    log: MemoryLog | None = None,
    configs: CodeDeployDeploymentConfigs | None = None,
) -> dict[str, Any]:
    return judge_deployment(
        EVENT,
        codedeploy=codedeploy,
        cloudwatch=cloudwatch,
        log=log or MemoryLog(),  # type: ignore[arg-type]
        stage="prod",
        now=CREATED + after,
        configs=configs,
        on_inconclusive=on_inconclusive,
    )


def _thin() -> FakeCloudWatch:
    """A clean canary with 3 invocations a minute: INCONCLUSIVE (too few to rule out +2 points)."""
    return FakeCloudWatch(slow=1.0, canary_invocations=3.0)


@pytest.mark.parametrize(
    ("after", "last_look"),
    [
        (timedelta(minutes=1, seconds=2), False),
        (timedelta(minutes=3, seconds=59), False),  # 3 full minutes of a 5-minute canary
        (timedelta(minutes=4, seconds=3), True),  # 4 = canaryInterval - 1: the last call before the shift
        (timedelta(minutes=5, seconds=5), True),  # still in progress after the shift: still the last look
    ],
)
def test_a_time_based_canary_s_last_look_comes_at_its_interval_minus_one_minute(
    after: timedelta, last_look: bool
) -> None:
    # Given a Canary10Percent5Minutes deployment in progress
    # When the loop judges it `after` its creation
    result = _judge(FakeCodeDeploy("InProgress"), _thin(), after)
    # Then only the verdicts from the 4th full minute on are last looks
    assert result["last_look"] is last_look
    assert result["deployment_config"] == CANARY_10_5


def test_a_finished_deployment_gets_no_last_look() -> None:
    # Given a deployment CodeDeploy has already finished (the full shift came before this call)
    cloudwatch = _thin()
    result = _judge(
        FakeCodeDeploy("Succeeded"), cloudwatch, timedelta(minutes=5, seconds=5), on_inconclusive="rollback"
    )
    # Then nothing is decided and nothing sets off the alarm
    assert (result["last_look"], result["action"], result["continue"]) == (False, None, False)
    assert cloudwatch.published == [0.0]


@pytest.mark.parametrize(
    "config", ["CodeDeployDefault.LambdaLinear10PercentEvery1Minute", "CodeDeployDefault.LambdaAllAtOnce"]
)
@pytest.mark.parametrize("minutes", [1, 4, 9, 30])
def test_linear_and_all_at_once_deployments_get_no_last_look(config: str, minutes: int) -> None:
    # Given a linear or all-at-once deployment in progress, and a canary still INCONCLUSIVE
    cloudwatch = _thin()
    # When the loop judges it with FLEETSCOPE_CANARY_ON_INCONCLUSIVE=rollback
    result = _judge(
        FakeCodeDeploy("InProgress", config=config),
        cloudwatch,
        timedelta(minutes=minutes, seconds=3),
        on_inconclusive="rollback",
    )
    # Then no verdict is a last look, so the INCONCLUSIVE publishes 0 and the loop goes on
    assert result["verdict"] == "INCONCLUSIVE"
    assert (result["last_look"], result["action"]) == (False, "CONTINUE")
    assert cloudwatch.published == [0.0]


@pytest.mark.parametrize(
    ("on_inconclusive", "published", "action"), [("rollback", 1.0, "ROLLBACK"), ("promote", 0.0, "PROMOTE")]
)
def test_an_inconclusive_canary_at_its_last_look_does_what_the_setting_says(
    on_inconclusive: str, published: float, action: str
) -> None:
    # Given a Canary10Percent5Minutes deployment with too little canary traffic to decide
    cloudwatch, log = _thin(), MemoryLog()
    # When the loop judges it at its last look (4 full minutes)
    result = _judge(
        FakeCodeDeploy("InProgress"),
        cloudwatch,
        timedelta(minutes=4, seconds=3),
        on_inconclusive=on_inconclusive,
        log=log,
    )
    # Then the INCONCLUSIVE verdict publishes CanaryFail = 1 to roll back, 0 to promote
    assert (result["verdict"], result["last_look"], result["action"]) == ("INCONCLUSIVE", True, action)
    assert cloudwatch.published == [published]
    assert result["canary_fail"] == published
    # and the record says what was decided and why
    done = "rolled back" if on_inconclusive == "rollback" else "promoted"
    decision = f"INCONCLUSIVE at the last look: {done} as FLEETSCOPE_CANARY_ON_INCONCLUSIVE says"
    (recorded,) = log.items
    assert any(reason.startswith(decision) for reason in recorded.reasons)
    assert any(reason.startswith(decision) for reason in recorded.verdicts[-1].reasons)
    assert any(reason.startswith(decision) for reason in result["reasons"])


def test_an_inconclusive_canary_before_its_last_look_publishes_0_even_with_rollback() -> None:
    cloudwatch = _thin()
    result = _judge(
        FakeCodeDeploy("InProgress"), cloudwatch, timedelta(minutes=3, seconds=3), on_inconclusive="rollback"
    )
    assert (result["verdict"], result["action"]) == ("INCONCLUSIVE", "CONTINUE")
    assert cloudwatch.published == [0.0]
    assert not any("last look" in reason for reason in result["reasons"])


def test_the_config_s_percentage_and_interval_are_used() -> None:
    # Given a 25 % canary of 15 minutes
    codedeploy, log = FakeCodeDeploy("InProgress", config="Custom.Canary25Percent15Minutes"), MemoryLog()
    # When the loop judges it at 13 and at 14 full minutes
    early = _judge(codedeploy, _thin(), timedelta(minutes=13, seconds=3), log=log, on_inconclusive="rollback")
    last = _judge(codedeploy, _thin(), timedelta(minutes=14, seconds=3), log=log, on_inconclusive="rollback")
    # Then the record carries 25 %, and the last look is at 14 minutes
    assert {d.canary_percent for d in log.items} == {25.0}
    assert (early["last_look"], last["last_look"]) == (False, True)
    assert (early["canary_fail"], last["canary_fail"]) == (0, 1)


def test_the_config_is_read_once_for_every_minute_judged() -> None:
    # Given one container's configs and a deployment judged every minute
    codedeploy, log = FakeCodeDeploy("InProgress"), MemoryLog()
    configs = CodeDeployDeploymentConfigs(codedeploy)
    for minutes in (1, 2, 3, 4, 5):
        _judge(codedeploy, _thin(), timedelta(minutes=minutes, seconds=3), log=log, configs=configs)
    # Then GetDeploymentConfig was called once
    assert codedeploy.config_reads == [CANARY_10_5]
    assert len(log.items[-1].verdicts) == 5


def test_the_lambda_keeps_one_configs_reader_per_container(monkeypatch: pytest.MonkeyPatch) -> None:
    codedeploy = FakeCodeDeploy("InProgress")
    monkeypatch.setattr(canary_handler, "_clients", lambda: (codedeploy, FakeCloudWatch()))
    canary_handler._configs.cache_clear()
    try:
        first = canary_handler._configs()
        assert canary_handler._configs() is first
        first.routing(CANARY_10_5)
        canary_handler._configs().routing(CANARY_10_5)
        assert codedeploy.config_reads == [CANARY_10_5]
    finally:
        canary_handler._configs.cache_clear()


def test_an_unreadable_config_gives_no_last_look_and_is_read_again() -> None:
    from botocore.exceptions import ClientError

    class DeniedCodeDeploy(FakeCodeDeploy):
        def get_deployment_config(self, **kwargs: str) -> dict[str, Any]:
            self.config_reads.append(kwargs["deploymentConfigName"])
            raise ClientError(
                {"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "GetDeploymentConfig"
            )

    codedeploy, log = DeniedCodeDeploy("InProgress", config="Custom.Unreadable"), MemoryLog()
    configs = CodeDeployDeploymentConfigs(codedeploy)
    for minutes in (4, 5):
        result = _judge(
            codedeploy,
            _thin(),
            timedelta(minutes=minutes, seconds=3),
            log=log,
            configs=configs,
            on_inconclusive="rollback",
        )
        assert (result["last_look"], result["canary_fail"]) == (False, 0)
    assert codedeploy.config_reads == ["Custom.Unreadable"] * 2
    assert log.items[-1].canary_percent == 10.0


def test_the_monitor_settings_read_the_on_inconclusive_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from monitor.settings import MonitorSettings

    monkeypatch.setenv("MONITOR_TABLE_NAME", "monitor")
    monkeypatch.setenv("ALERTS_TOPIC_NAME", "alerts")
    monkeypatch.delenv("FLEETSCOPE_CANARY_ON_INCONCLUSIVE", raising=False)
    assert MonitorSettings().canary_on_inconclusive == "promote"
    monkeypatch.setenv("FLEETSCOPE_CANARY_ON_INCONCLUSIVE", "rollback")
    assert MonitorSettings().canary_on_inconclusive == "rollback"
