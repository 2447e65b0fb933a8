"""Alias routing in the local runtime: weighted versions, a fault on one version only, per-version
AWS/Lambda metrics read back by the judge's metric reader; and the deployment log in the monitor table."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest

from contract.topology import FunctionSpec, Topology
from monitor.canary import Outcome
from monitor.canary_metrics import CloudWatchVersionMetrics
from monitor.deployments import (
    Deployment,
    DeploymentState,
    DynamoDbDeploymentLog,
    deployments_before,
    describe_deployment,
)
from sandbox.aws.provision import Provisioned
from sandbox.aws.runtime import LambdaRuntime
from sandbox.aws.telemetry import TelemetrySink
from sandbox.aws.versions import AliasRouter
from sandbox.emulator.server import Emulator
from sandbox.home.aliases import AliasFile, FunctionAlias, VersionFault

HERE = Path(__file__).resolve().parent

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def sink(emulator: Emulator) -> Iterator[TelemetrySink]:
    sink = TelemetrySink(flush_interval_s=3600)  # flushed explicitly
    yield sink
    sink.stop()


def test_live_routes_by_weight_and_the_fault_hits_the_new_version_only(
    emulator: Emulator, topo: Topology, sink: TelemetrySink, tmp_path: Path
) -> None:
    # Given cars-api (a fake handler under its key) with version 2 published with +0.2 s latency
    # and taking half of `live`
    fn = FunctionSpec(
        key="cars-api",
        name=f"fleetscope-test-versions-{uuid.uuid4().hex[:6]}",
        handler="sandbox_fake_handlers.handler",
        service="versions",
        memory_mb=128,
        timeout_s=5,
    )
    AliasFile(tmp_path).update(
        "cars-api",
        lambda _: FunctionAlias(
            versions={1: None, 2: VersionFault(kind="latency", intensity=0.2)},
            version=1,
            canary_version=2,
            canary_weight=0.5,
        ),
    )
    router = AliasRouter(tmp_path, rng=random.Random(7))
    runtime = LambdaRuntime(
        topo,
        fn,
        endpoint_url=emulator.endpoint_url,
        sink=sink,
        extra_env={"PYTHONPATH": str(HERE)},
        router=router,
    )
    start = datetime.now(UTC).replace(second=0, microsecond=0)
    # When it is invoked 24 times
    try:
        runtime.warm()
        results = [runtime.invoke({}) for _ in range(24)]
    finally:
        runtime.stop()
    sink.flush()
    # Then both versions served, and only version 2 was slow
    assert all(r.ok for r in results)
    series = CloudWatchVersionMetrics(boto3.client("cloudwatch")).minutes(
        function_name=fn.name, alias="live", versions=("1", "2"), start=start, periods=3, period_s=60
    )
    old = [m for m in series["1"] if m.invocations]
    new = [m for m in series["2"] if m.invocations]
    assert sum(m.invocations for m in old) + sum(m.invocations for m in new) == 24
    assert 4 <= sum(m.invocations for m in new) <= 20
    assert all(m.p50_ms is not None and m.p50_ms < 150 for m in old)
    assert all(m.p50_ms is not None and m.p50_ms >= 170 for m in new)


def _deployment(started: datetime, **update: object) -> Deployment:
    base = Deployment(
        deployment_id=f"d-{uuid.uuid4().hex[:10]}",
        function="cars-api",
        function_name="fleetscope-test-cars-api",
        from_version="7",
        to_version="8",
        canary_percent=10,
        state=DeploymentState.ROLLED_BACK,
        started_at=started,
        verdict=Outcome.FAIL,
    )
    return base.model_copy(update=update)


def test_deployment_log_window_and_the_plain_text(provisioned: Provisioned, topo: Topology) -> None:
    # Given three deployments: 2 min, 20 min and 50 min before an incident opened
    log = DynamoDbDeploymentLog(boto3.resource("dynamodb").Table(topo.monitor_table.name))
    opened = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    recent, older, stale = (_deployment(opened - timedelta(minutes=m)) for m in (2, 20, 50))
    for d in (recent, older, stale):
        log.put(d)
    log.put(recent.model_copy(update={"state": DeploymentState.ROLLED_BACK}))  # re-put: one item
    # When the monitor reads the 30 minutes before it
    found = deployments_before(opened, log.between(opened - timedelta(minutes=30), opened))
    # Then it lists the two recent ones, newest first, and says how they line up
    assert [d.deployment_id for d in found] == [recent.deployment_id, older.deployment_id]
    text = describe_deployment(found[0], opened)
    assert text.startswith("began 2 min after cars-api version 8 took 10 % of traffic")
    assert "rolled back" in text
    assert "canary FAIL" in text
