"""bench_quiet_week's pieces: the incident count, the baseline's rolling z, and one short span of the
sandbox's data through the same production path (backfill -> fake CloudWatch -> MonitorService)."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.bench_quiet_week import (
    count_opens,
    load_sandbox_data,
    nearest_rank,
    rolling_z,
    run_monitor,
    sandbox_settings,
)
from contract.resources import ResourceNames
from contract.topology import topology
from monitor.catalog import build_catalog
from ops.fakes import FakeCloudWatch


def test_count_opens_counts_only_open_transitions() -> None:
    # Given a hand-made run: one incident opened, updated and resolved, then a second one opened
    transitions = [
        {"incident_id": "a", "seq": 1, "kind": "OPEN", "at": 60},
        {"incident_id": "a", "seq": 2, "kind": "UPDATED", "at": 120},
        {"incident_id": "a", "seq": 3, "kind": "RESOLVED", "at": 300},
        {"incident_id": "b", "seq": 1, "kind": "OPEN", "at": 900},
    ]
    # Then two incidents opened
    assert count_opens(transitions) == 2
    assert count_opens([]) == 0


def test_rolling_z_uses_only_the_previous_window_and_skips_gaps() -> None:
    # Given 100 points alternating 9 and 11 with a gap, then a 20
    y = np.tile([9.0, 11.0], 50)
    y[10] = np.nan
    y = np.append(y, 20.0)
    z, mean, sd = rolling_z(y, window=1440)
    # Then the last point is scored against the earlier ones only (mean 10, sd ~1): z ~ 10
    assert mean[-1] == pytest.approx(10.0, abs=0.02)
    assert sd[-1] == pytest.approx(1.0, abs=0.02)
    assert z[-1] == pytest.approx(10.0, abs=0.3)
    # and the first 60 points have no opinion (too little history)
    assert np.isnan(z[:60]).all()


def test_nearest_rank_percentile_of_a_weighted_distribution() -> None:
    # Given 90 requests at 10 ms and 10 at 500 ms, unsorted
    values, counts = [500.0, 10.0], [10.0, 90.0]
    # Then p50 is 10 ms and p99 500 ms (nearest rank, as CloudWatch)
    assert nearest_rank(values, counts, 50) == 10.0
    assert nearest_rank(values, counts, 99) == 500.0


@pytest.mark.slow
def test_an_hour_of_the_sandbox_runs_through_the_monitor_with_every_series_scored() -> None:
    # Given the sandbox's backfill (14 days) plus one hour at 1 minute in the fake CloudWatch
    topo = topology("local")
    catalog = build_catalog(ResourceNames.from_topology(topo), period_s=60)
    fake = FakeCloudWatch()
    assert load_sandbox_data(fake, topo, catalog, days=1 / 24) > 0
    # When the monitor, as the sandbox configures it, trains and then runs every 30 minutes
    run = run_monitor(fake, catalog, sandbox_settings(), minutes=60, every=30, record_points=True)
    # Then three runs went through without errors and scored every written series for the hour
    assert run.runs == 3
    scored = {sid for sid, _ in run.points}
    assert f"api:{topo.api_name}:latency-p99" in scored
    assert f"api:{topo.api_name}:5xx-rate" in scored
    assert len({t for _, t in run.points}) == 60
    # and the API latency's p50 and p99 are stored as two series, the p99 never below the p50
    key = ("AWS/ApiGateway", "Latency", (("ApiName", topo.api_name), ("Stage", topo.api_stage)))
    p50, p99 = fake.by_stat[(key, "p50")], fake.by_stat[(key, "p99")]
    assert p50[0].tolist() == p99[0].tolist()
    assert (p99[1] >= p50[1]).all()
    assert (p99[1] > p50[1]).any()
