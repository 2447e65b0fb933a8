"""Deployment correlation: an incident's alert (text, JSON) and stored incident list the deployments
of its functions in the 30 minutes before it opened, and say plainly how they line up."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np

from contract.resources import FunctionName, ResourceNames
from monitor.canary import Outcome
from monitor.catalog import build_catalog
from monitor.deployments import Deployment, DeploymentState
from monitor.service import MonitorService
from monitor.settings import MonitorSettings
from monitor.source import CloudWatchMetricSource
from ops.fakes import FakeCloudWatch, InMemoryIncidentStore, RecordingNotifier

P = 300
T_END = 1_767_225_600
NAMES = ResourceNames(
    stage="unit",
    namespace="Fleetscope",
    api_name="unit-api",
    api_stage="v1",
    functions=(FunctionName(key="cars-api", name="unit-fn", service="cars-api"),),
    event_bus="bus",
)
API = {"ApiName": "unit-api", "Stage": "v1"}


class ListLog:
    def __init__(self, deployments: list[Deployment], *, broken: bool = False) -> None:
        self.deployments, self.broken = deployments, broken

    def between(self, start: datetime, end: datetime) -> list[Deployment]:
        if self.broken:
            raise RuntimeError("DynamoDB is down")
        return [d for d in self.deployments if start <= d.started_at <= end]


def _deployment(at: int, *, function: str = "cars-api", name: str = "unit-fn", to: str = "8") -> Deployment:
    return Deployment(
        deployment_id=f"d-{function}-{to}-{at}",
        function=function,
        function_name=name,
        from_version=str(int(to) - 1),
        to_version=to,
        canary_percent=10,
        state=DeploymentState.ROLLED_BACK,
        started_at=datetime.fromtimestamp(at, UTC),
        verdict=Outcome.FAIL,
    )


def _outage_alerts(log: ListLog) -> tuple[list[dict[str, object]], InMemoryIncidentStore]:
    store, notifier, fake = InMemoryIncidentStore(), RecordingNotifier(), FakeCloudWatch()
    rng = np.random.default_rng(1)
    start = T_END - 2 * 86400
    count = {t: float(rng.poisson(200)) for t in range(start, T_END + 4 * P, P)}
    errors = {t: round(count[t] * 0.4) for t in range(T_END, T_END + 4 * P, P)}
    ts = np.array(sorted(count), dtype=np.int64)
    fake.put_series("AWS/ApiGateway", "Count", API, ts, [count[t] for t in ts.tolist()])
    es = np.array(sorted(errors), dtype=np.int64)
    fake.put_series("AWS/ApiGateway", "5XXError", API, es, [errors[t] for t in es.tolist()])
    settings = MonitorSettings.model_validate(
        {
            "MONITOR_TABLE_NAME": "t",
            "ALERTS_TOPIC_NAME": "a",
            "MONITOR_PERIOD_S": P,
            "MONITOR_HISTORY_DAYS": 2,
            "MONITOR_SETTLE_S": 0,
        }
    )
    for now in (T_END, T_END + 4 * P):
        MonitorService(
            settings=settings,
            catalog=build_catalog(NAMES, period_s=P),
            source=CloudWatchMetricSource(fake),
            store=store,
            notifier=notifier,
            owner="run",
            deployments=log,
        ).run(now)
    return [json.loads(m["Message"]) for m in notifier.published], store


def test_the_open_alert_names_the_deployment_that_came_just_before() -> None:
    # Given cars-api version 8 took 10 % of traffic 2 minutes before the outage's first period, an
    # older deployment 50 minutes before and one of another function
    log = ListLog(
        [
            _deployment(T_END - 120),
            _deployment(T_END - 3000, to="7"),
            _deployment(T_END - 60, function="telemetry-ingest", name="other-fn", to="3"),
        ]
    )
    # When the monitor opens an incident on the API's 5XX
    messages, store = _outage_alerts(log)
    opened = json.loads(messages[0]["sqs"])
    # Then the OPEN alert lists only the recent cars-api deployment, in JSON and in plain words
    assert opened["kind"] == "OPEN"
    opened_at = datetime.fromisoformat(opened["opened_at"])
    minutes = round((opened_at - datetime.fromtimestamp(T_END - 120, UTC)).total_seconds() / 60)
    assert [d["deployment_id"] for d in opened["deployments"]] == [f"d-cars-api-8-{T_END - 120}"]
    assert opened["deployments"][0] | {"text": ""} == {
        "deployment_id": f"d-cars-api-8-{T_END - 120}",
        "function": "cars-api",
        "from_version": "7",
        "to_version": "8",
        "canary_percent": 10.0,
        "state": "ROLLED_BACK",
        "verdict": "FAIL",
        "started_at": datetime.fromtimestamp(T_END - 120, UTC).isoformat(),
        "began_after_min": minutes,
        "text": "",
    }
    assert f"began {minutes} min after cars-api version 8 took 10 % of traffic" in messages[0]["default"]
    # and the stored incident carries the same list (the dashboard's Incidents page reads it)
    (incident,) = store.incidents.values()
    assert [d["to_version"] for d in incident["deployments"]] == ["8"]


def test_without_deployments_the_alert_has_an_empty_list_and_no_deployment_line() -> None:
    messages, store = _outage_alerts(ListLog([]))
    assert json.loads(messages[0]["sqs"])["deployments"] == []
    assert "Deployment:" not in messages[0]["default"]
    assert all("deployments" not in i for i in store.incidents.values())


def test_an_unreadable_deployment_log_still_sends_the_alert() -> None:
    messages, _ = _outage_alerts(ListLog([], broken=True))
    assert json.loads(messages[0]["sqs"])["kind"] == "OPEN"
    assert json.loads(messages[0]["sqs"])["deployments"] == []


def test_the_verdict_history_is_bounded_and_a_retried_minute_replaces_its_verdict() -> None:
    from monitor.deployments import MAX_VERDICTS, VerdictRecord

    # Given a deployment judged for more minutes than the history keeps, minute 3 twice
    deployment = _deployment(T_END)
    at = datetime.fromtimestamp(T_END, UTC)
    for minute in [*range(1, MAX_VERDICTS + 6), 3]:
        deployment = deployment.with_verdict(
            VerdictRecord(at=at, minutes=minute, outcome=Outcome.INCONCLUSIVE)
        )
    # Then it keeps the newest MAX_VERDICTS minutes, each once, oldest first
    assert [v.minutes for v in deployment.verdicts] == list(range(6, MAX_VERDICTS + 6))


class FakeTable:
    def __init__(self) -> None:
        self.items: dict[tuple[str, str], dict[str, object]] = {}

    def put_item(self, Item: dict[str, object]) -> None:  # noqa: N803 - boto3's name
        self.items[(str(Item["pk"]), str(Item["sk"]))] = Item

    def get_item(self, Key: dict[str, str]) -> dict[str, object]:  # noqa: N803
        item = self.items.get((Key["pk"], Key["sk"]))
        return {"Item": item} if item else {}


def test_the_log_reads_one_record_back_by_its_start_and_id() -> None:
    from monitor.deployments import DynamoDbDeploymentLog

    log = DynamoDbDeploymentLog(FakeTable())
    deployment = _deployment(T_END)
    log.put(deployment)
    assert log.get(deployment.started_at, deployment.deployment_id) == deployment
    assert log.get(deployment.started_at, "d-other") is None
