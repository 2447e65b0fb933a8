"""`fleetscope deploy`: the canary rollout on an injected clock, and the CLI contract's usage errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from contract.topology import topology
from monitor.canary import VersionMinute
from monitor.deployments import Deployment, DeploymentState
from sandbox.aws.deploy import CanaryRollout, DeployError
from sandbox.cli import main
from sandbox.home.aliases import AliasFile, FunctionAlias, VersionFault

TOPO = topology("test")


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class ScriptedMetrics:
    """Per-minute metrics of the baseline (from_version) and the canary (to_version), per minute."""

    def __init__(self, baseline: VersionMinute, canary: VersionMinute) -> None:
        self.baseline, self.canary = baseline, canary
        self.calls: list[dict[str, Any]] = []

    def minutes(self, **kwargs: Any) -> dict[str, list[VersionMinute]]:
        self.calls.append(kwargs)
        old, new = kwargs["versions"]
        n = kwargs["periods"]
        return {old: [self.baseline] * n, new: [self.canary] * n}


class MemoryLog:
    def __init__(self) -> None:
        self.items: list[Deployment] = []

    def put(self, deployment: Deployment) -> None:
        self.items.append(deployment)


BASE = VersionMinute(invocations=300, errors=0, p50_ms=40, p90_ms=80, p99_ms=150)


def _rollout(
    tmp_path: Path, canary: VersionMinute, **kwargs: Any
) -> tuple[CanaryRollout, list[dict[str, Any]]]:
    lines: list[dict[str, Any]] = []
    clock = FakeClock()
    rollout = CanaryRollout(
        topo=TOPO,
        function_key="cars-api",
        percent=10,
        minutes=5,
        fault=kwargs.pop("fault", None),
        aliases=AliasFile(tmp_path),
        metrics=ScriptedMetrics(BASE, canary),  # type: ignore[arg-type]
        log=MemoryLog(),  # type: ignore[arg-type]
        emit=lines.append,
        clock=clock,
        sleep=clock.sleep,
        **kwargs,
    )
    return rollout, lines


def test_a_slow_canary_is_rolled_back_inside_its_window(tmp_path: Path) -> None:
    # Given a new version twice as slow as the current one
    slow = VersionMinute(invocations=34, p50_ms=80, p90_ms=160, p99_ms=300)
    rollout, lines = _rollout(tmp_path, slow, fault=VersionFault(kind="latency", intensity=0.05))
    # When it is deployed as a 10 % canary for 5 minutes
    deployment = rollout.run()
    # Then it is rolled back within the window, by a FAIL on latency, and live routes to version 1 only
    assert deployment.state == DeploymentState.ROLLED_BACK
    final = lines[-1]
    assert set(final) == {
        "deployment_id",
        "function",
        "from_version",
        "to_version",
        "status",
        "verdict",
        "reasons",
        "duration_s",
    }
    assert (final["status"], final["verdict"], final["from_version"], final["to_version"]) == (
        "ROLLED_BACK",
        "FAIL",
        "1",
        "2",
    )
    assert any(r.startswith("duration_p") for r in final["reasons"])
    judged = [line for line in lines if line.get("step") == "judged"]
    assert len(judged) <= 5
    alias = AliasFile(tmp_path).alias("cars-api")
    assert (alias.version, alias.canary_version, alias.canary_weight) == (1, None, 0.0)
    assert alias.versions[2] == VersionFault(kind="latency", intensity=0.05)  # published stays published
    # and every line is JSON
    json.dumps(lines)
    # and the deployment log saw it start, get judged, and end
    log: MemoryLog = rollout.log  # type: ignore[assignment]
    assert log.items[0].state == DeploymentState.IN_PROGRESS
    assert log.items[-1].state == DeploymentState.ROLLED_BACK
    assert log.items[-1].metrics
    # with the per-minute metrics of both versions that its last verdict judged
    last = log.items[-1]
    assert len(last.baseline_minutes) == len(last.canary_minutes) == len(judged)
    assert last.canary_minutes == [slow] * len(judged)
    assert last.baseline_minutes == [BASE] * len(judged)
    # and how the verdict evolved, minute by minute
    assert [(v.minutes, v.outcome.value) for v in last.verdicts] == [
        (line["minute"], line["verdict"]) for line in judged
    ]


def test_every_verdict_is_handed_on_for_publishing_the_fail_ends_the_list(tmp_path: Path) -> None:
    # Given a new version twice as slow, and a sink for the verdicts (CanaryFail in the CLI)
    slow = VersionMinute(invocations=34, p50_ms=80, p90_ms=160, p99_ms=300)
    seen: list[str] = []
    rollout, lines = _rollout(tmp_path, slow, on_verdict=lambda v: seen.append(v.outcome.value))
    # When it is deployed
    rollout.run()
    # Then the sink got one verdict per judged minute, the last one the FAIL that rolled it back
    judged = [line["verdict"] for line in lines if line.get("step") == "judged"]
    assert seen == judged
    assert seen[-1] == "FAIL"


def test_a_clean_canary_is_promoted_after_its_window(tmp_path: Path) -> None:
    clean = VersionMinute(invocations=60, p50_ms=40, p90_ms=80, p99_ms=150)
    rollout, lines = _rollout(tmp_path, clean)
    deployment = rollout.run()
    assert deployment.state == DeploymentState.SUCCEEDED
    assert lines[-1]["status"] == "SUCCEEDED"
    assert lines[-1]["verdict"] == "PASS"
    assert [line["minute"] for line in lines if line.get("step") == "judged"] == [1, 2, 3, 4, 5]
    alias = AliasFile(tmp_path).alias("cars-api")
    assert (alias.version, alias.canary_version) == (2, None)


def test_thin_traffic_extends_once_then_promotes_as_inconclusive(tmp_path: Path) -> None:
    thin = VersionMinute(invocations=3, p50_ms=40, p90_ms=80, p99_ms=150)
    rollout, lines = _rollout(tmp_path, thin)
    deployment = rollout.run()
    assert deployment.state == DeploymentState.SUCCEEDED
    assert lines[-1]["verdict"] == "INCONCLUSIVE"
    assert len([line for line in lines if line.get("step") == "judged"]) == 10


def test_thin_traffic_rolls_back_when_so_set(tmp_path: Path) -> None:
    thin = VersionMinute(invocations=3, p50_ms=40, p90_ms=80, p99_ms=150)
    rollout, _ = _rollout(tmp_path, thin, on_inconclusive="rollback")
    assert rollout.run().state == DeploymentState.ROLLED_BACK


def test_a_second_deployment_while_one_is_in_progress_is_refused(tmp_path: Path) -> None:
    AliasFile(tmp_path).update(
        "cars-api",
        lambda _: FunctionAlias(versions={1: None, 2: None}, version=1, canary_version=2, canary_weight=0.1),
    )
    rollout, lines = _rollout(tmp_path, BASE)
    with pytest.raises(DeployError, match="already taking"):
        rollout.run()
    assert lines == []
    assert AliasFile(tmp_path).alias("cars-api").latest == 2  # nothing published


def test_a_failure_mid_way_puts_the_alias_back(tmp_path: Path) -> None:
    rollout, _ = _rollout(tmp_path, BASE)

    def broken(**kwargs: Any) -> Any:
        raise RuntimeError("GetMetricData failed")

    rollout.metrics.minutes = broken  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="GetMetricData"):
        rollout.run()
    alias = AliasFile(tmp_path).alias("cars-api")
    assert (alias.version, alias.canary_version) == (1, None)


@pytest.mark.parametrize(
    "argv",
    [
        ["deploy", "outbox-relay"],
        ["deploy", "cars-api", "--fault", "traffic-spike"],
        ["deploy", "cars-api", "--fault", "latency", "--intensity", "99"],
        ["deploy", "cars-api", "--intensity", "0.5"],
    ],
)
def test_bad_usage_exits_2(argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEETSCOPE_HOME", str(tmp_path))
    assert main(argv) == 2
    assert not (tmp_path / "aliases.json").exists()  # nothing was published


@pytest.mark.parametrize(
    "argv", [["deploy", "cars-api", "--canary-percent", "0"], ["deploy", "cars-api", "--canary-minutes", "x"]]
)
def test_bad_numbers_exit_2(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2


def test_no_running_sandbox_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FLEETSCOPE_HOME", str(tmp_path))
    assert main(["deploy", "cars-api"]) == 1
    assert "no sandbox is running" in capsys.readouterr().err
