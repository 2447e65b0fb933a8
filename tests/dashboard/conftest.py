"""A seeded emulator the dashboard is pointed at through a sandbox file (the real resolution path)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest

from contract.topology import Topology, topology
from dashboard.settings import get_settings
from dashboard.target import Resources
from sandbox.aws.provision import provision
from sandbox.emulator.server import Emulator
from sandbox.home import SandboxState, write_state
from tests.dashboard.seed import seed_cars, seed_deployments, seed_incidents, seed_metrics, seed_reports


@dataclass(frozen=True)
class SeededSandbox:
    home: Path
    endpoint_url: str
    topo: Topology
    now: datetime
    datapoints: int


@pytest.fixture(scope="session")
def seeded_sandbox(emulator: Emulator, tmp_path_factory: pytest.TempPathFactory) -> SeededSandbox:
    """A stage of its own (`dashtest`) with cars, outbox events, incidents, an inbox and 2 days of metrics:
    not the session's `test` stage, whose tables, queues and log groups other test files write to (the
    pages' counts would depend on which files ran before, in this process)."""
    topo = topology("dashtest")
    provision(topo, session=boto3.Session())
    now = datetime.now(tz=UTC)
    home = tmp_path_factory.mktemp("fleetscope-home")
    seed_cars(topo, now=now)
    seed_incidents(topo, now=now, inbox=home / "alerts.jsonl")
    seed_deployments(topo, now=now)
    seed_reports(topo, now=now)
    points = seed_metrics(Resources.from_topology(topo), now=now, days=2.0)
    # This test process plays the sandbox: its pid is alive for the whole session.
    write_state(
        home,
        SandboxState(emulator_url=emulator.endpoint_url, stage=topo.stage, pid=os.getpid()),
    )
    return SeededSandbox(home=home, endpoint_url=emulator.endpoint_url, topo=topo, now=now, datapoints=points)


@pytest.fixture
def dashboard_env(seeded_sandbox: SeededSandbox, monkeypatch: pytest.MonkeyPatch) -> Iterator[SeededSandbox]:
    """Environment of a dashboard started with FLEETSCOPE_TARGET=sandbox and this home; fresh caches."""
    import streamlit as st

    monkeypatch.setenv("FLEETSCOPE_TARGET", "sandbox")
    monkeypatch.setenv("FLEETSCOPE_HOME", str(seeded_sandbox.home))
    # No power-tuning curve unless a test writes one (a local benchmark run must not change the pages)
    monkeypatch.setenv("FLEETSCOPE_POWER_CURVE", str(seeded_sandbox.home / "no-power-curve.json"))
    get_settings.cache_clear()
    st.cache_data.clear()
    st.cache_resource.clear()
    yield seeded_sandbox
    get_settings.cache_clear()
    st.cache_data.clear()
    st.cache_resource.clear()
