"""`fleetscope alias`: a plain update of `live` outside `fleetscope deploy`, recorded as a deployment
that an incident opened after it names."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from contract.topology import topology
from monitor.deployments import Deployment, DeploymentState
from sandbox.aws.alias import AliasUsageError, update_alias
from sandbox.cli import main
from sandbox.home.aliases import AliasFile, FunctionAlias, VersionFault
from tests.monitor.test_incident_deployments import T_END, ListLog, _outage_alerts

TOPO = topology("test")


class RecordingLog(ListLog):
    def __init__(self) -> None:
        super().__init__([])

    def put(self, deployment: Deployment) -> None:  # an item per started_at#id, as in DynamoDB
        key = (deployment.started_at, deployment.deployment_id)
        self.deployments = [d for d in self.deployments if (d.started_at, d.deployment_id) != key]
        self.deployments.append(deployment)


def _published(tmp_path: Path, *versions: int) -> AliasFile:
    aliases = AliasFile(tmp_path)
    aliases.update("cars-api", lambda a: FunctionAlias(versions=dict.fromkeys((1, *versions)), version=1))
    return aliases


def test_a_weighted_update_routes_a_share_and_is_recorded_as_an_unjudged_canary(tmp_path: Path) -> None:
    # Given versions 1 (live) and 2 of cars-api
    aliases, log = _published(tmp_path, 2), RecordingLog()
    # When version 2 gets 25 % of live by hand
    after, deployment = update_alias(
        topo=TOPO, function_key="cars-api", aliases=aliases, log=log, version=2, weight=0.25
    )
    # Then live routes 75/25 and the deployment log holds an IN_PROGRESS canary from 1 to 2 at 25 %
    assert (after.version, after.canary_version, after.canary_weight) == (1, 2, 0.25)
    assert AliasFile(tmp_path).alias("cars-api") == after
    assert log.deployments == [deployment]
    assert deployment is not None
    assert (deployment.from_version, deployment.to_version, deployment.canary_percent, deployment.state) == (
        "1",
        "2",
        25.0,
        DeploymentState.IN_PROGRESS,
    )
    assert deployment.function_name == TOPO.cars_api.name
    # and pointing live at version 2 afterwards ends that canary: the same record, SUCCEEDED
    after, promoted = update_alias(topo=TOPO, function_key="cars-api", aliases=aliases, log=log, version=2)
    assert (after.version, after.canary_version, after.canary_weight) == (2, None, 0.0)
    assert promoted is not None
    assert promoted.deployment_id == deployment.deployment_id
    assert (promoted.from_version, promoted.to_version, promoted.canary_percent, promoted.state) == (
        "1",
        "2",
        25.0,
        DeploymentState.SUCCEEDED,
    )
    assert promoted.ended_at is not None
    # and pointing it at the version it has already records nothing
    assert update_alias(topo=TOPO, function_key="cars-api", aliases=aliases, log=log, version=2)[1] is None
    assert log.deployments == [promoted]
    # while pointing it back at version 1 is a new deployment, from 2 to 1
    _, back = update_alias(topo=TOPO, function_key="cars-api", aliases=aliases, log=log, version=1)
    assert back is not None
    assert (back.from_version, back.to_version, back.state) == ("2", "1", DeploymentState.SUCCEEDED)


def test_publish_adds_a_version_with_its_fault_and_routes_to_it(tmp_path: Path) -> None:
    aliases, log = _published(tmp_path), RecordingLog()
    fault = VersionFault(kind="latency", intensity=1.0)
    after, deployment = update_alias(
        topo=TOPO, function_key="cars-api", aliases=aliases, log=log, version=None, weight=0.5, publish=fault
    )
    assert (after.canary_version, after.versions[2]) == (2, fault)
    assert deployment is not None
    assert deployment.to_version == "2"


@pytest.mark.parametrize(
    ("version", "weight", "message"),
    [(3, None, "not published"), (1, 0.1, "primary version already")],
)
def test_impossible_routings_change_nothing_and_record_nothing(
    tmp_path: Path, version: int, weight: float | None, message: str
) -> None:
    aliases, log = _published(tmp_path, 2), RecordingLog()
    before = aliases.alias("cars-api")
    with pytest.raises(AliasUsageError, match=message):
        update_alias(
            topo=TOPO, function_key="cars-api", aliases=aliases, log=log, version=version, weight=weight
        )
    assert aliases.alias("cars-api") == before
    assert log.deployments == []


def test_an_incident_opened_after_a_plain_alias_update_names_it(tmp_path: Path) -> None:
    # Given version 2 of cars-api took all of live by hand 2 minutes before an outage's first period
    aliases, log = _published(tmp_path, 2), RecordingLog()
    _, deployment = update_alias(
        topo=TOPO,
        function_key="cars-api",
        aliases=aliases,
        log=log,
        version=2,
        clock=lambda: datetime.fromtimestamp(T_END - 120, UTC),
    )
    assert deployment is not None
    # When the monitor opens an incident of the cars-api service
    messages, _ = _outage_alerts(log)
    opened = json.loads(messages[0]["sqs"])
    # Then its OPEN alert names that deployment, in JSON and in plain words
    assert opened["kind"] == "OPEN"
    assert [d["deployment_id"] for d in opened["deployments"]] == [deployment.deployment_id]
    named = opened["deployments"][0]
    assert (named["from_version"], named["to_version"], named["state"]) == ("1", "2", "SUCCEEDED")
    assert "cars-api version 2 took 100 % of traffic (since promoted" in messages[0]["default"]


@pytest.mark.parametrize(
    "argv",
    [
        ["alias", "outbox-relay", "--version", "1"],
        ["alias", "cars-api"],
        ["alias", "cars-api", "--version", "0"],
        ["alias", "cars-api", "--version", "2", "--weight", "1"],
        ["alias", "cars-api", "--version", "2", "--fault", "latency"],
        ["alias", "cars-api", "--publish", "--fault", "nope"],
        ["alias", "cars-api", "--publish", "--intensity", "2"],
    ],
)
def test_bad_usage_exits_2(argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEETSCOPE_HOME", str(tmp_path))
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse's own usage errors
        code = int(exit_.code or 0)
    assert code == 2


def test_without_a_sandbox_it_fails_clearly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FLEETSCOPE_HOME", str(tmp_path))
    assert main(["alias", "cars-api", "--version", "1"]) == 1
    assert "no sandbox is running" in capsys.readouterr().err
