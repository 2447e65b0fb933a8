"""The AWS judging loop's Lambda: one CodeDeploy deployment judged, published, recorded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from monitor.canary_handler import JudgeEvent, judge_deployment, parse_appspec
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


class FakeCodeDeploy:
    def __init__(self, status: str, appspec: str = APPSPEC_YAML) -> None:
        self.status, self.appspec = status, appspec

    def get_deployment(self, **kwargs: str) -> dict[str, Any]:
        return {
            "deploymentInfo": {
                "deploymentId": kwargs["deploymentId"],
                "status": self.status,
                "createTime": CREATED,
                "revision": {"revisionType": "AppSpecContent", "appSpecContent": {"content": self.appspec}},
            }
        }


class FakeCloudWatch:
    """GetMetricData: version 8 is twice as slow as version 7 in every minute; records PutMetricData."""

    def __init__(self) -> None:
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
            value = {"Invocations": 500.0 if version == "7" else 60.0, "Errors": 0.0, "Throttles": 0.0}.get(
                name,
                {"p50": 40.0, "p90": 80.0, "p99": 150.0}.get(statistic, 0.0) * (2 if version == "8" else 1),
            )
            results.append({"Id": query["Id"], "Timestamps": stamps, "Values": [value] * len(stamps)})
        return {"MetricDataResults": results}

    def put_metric_data(self, **kwargs: Any) -> None:
        self.put.append(kwargs)


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
