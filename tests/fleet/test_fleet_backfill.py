"""The history backfill: the catalog's series, plausible relations, marked as simulated, fast."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest

from infra.topology import Topology, topology
from monitor.catalog import ResourceNames, build_catalog
from sandbox.backfill import HistoryModel, HistoryProfile, backfill_history, catalog_series, read_marker
from sandbox.demand import DemandModel
from sandbox.emulator import Emulator

# A Wednesday, 18:00 UTC = evening rush in Lisbon.
END = datetime(2026, 11, 25, 18, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def topo() -> Topology:
    """A stage of its own: other tests write metrics of the shared `test` stage into the same emulator."""
    return topology("backfilltest")


def test_history_keeps_related_series_consistent(topo: Topology) -> None:
    # Given a day of 5-minute periods from the model
    model = HistoryModel(topo, DemandModel(), HistoryProfile(), np.random.default_rng(1))
    starts = [END - timedelta(days=1) + timedelta(minutes=5 * i) for i in range(288)]
    shared = model.shared(starts, 300)
    # Then errors are a small part of requests, and the Lambda sees every API request
    assert (shared["5xx"] <= shared["requests"]).all()
    assert shared["5xx"].sum() < 0.01 * shared["requests"].sum()
    assert (shared["invocations"]["cars-api"][0] == shared["requests"]).all()
    # And rush hour is busier than the night
    by_hour = {t.hour: 0 for t in starts}
    for t, n in zip(starts, shared["requests"], strict=True):
        by_hour[t.hour] += int(n)
    assert by_hour[18] > 3 * by_hour[4]


def test_latency_distributions_put_p99_above_p50(topo: Topology) -> None:
    model = HistoryModel(topo, DemandModel(), HistoryProfile(), np.random.default_rng(2))
    n = np.array([0, 3, 50, 400])
    values, counts = model._latency(n, (25.0, 0.5), np.array([0.5, 0.5, 0.5, 0.5]))
    assert counts is not None
    assert counts[0].sum() == 0
    for row in (1, 2, 3):
        assert counts[row].sum() == pytest.approx(n[row])
        kept = values[row][counts[row] > 0]
        assert len(kept) <= 12
        assert np.isfinite(kept).all()
        assert (np.diff(kept) >= 0).all()


@pytest.fixture(scope="module")
def backfilled(
    emulator: Emulator, topo: Topology, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    home = tmp_path_factory.mktemp("fleetscope-home")
    report = backfill_history(topo, end=END, days=14, fine_hours=6, seed=3, home=home)
    return {"report": report, "home": home}


def _query(cw: Any, spec: Any, start: datetime, end: datetime, period: int, stat: str) -> list[float]:
    result = cw.get_metric_data(
        StartTime=start,
        EndTime=end,
        ScanBy="TimestampAscending",
        MetricDataQueries=[
            {
                "Id": "q",
                "MetricStat": {
                    "Metric": {
                        "Namespace": spec.namespace,
                        "MetricName": spec.metric_name,
                        "Dimensions": spec.dimension_list(),
                    },
                    "Period": period,
                    "Stat": stat,
                },
            }
        ],
    )
    return list(result["MetricDataResults"][0]["Values"])


@pytest.mark.integration
@pytest.mark.slow
def test_backfill_writes_the_catalog_series_and_marks_them_simulated(
    backfilled: dict[str, Any], topo: Topology
) -> None:
    report, home = backfilled["report"], backfilled["home"]
    # Every catalog series is either written or a counter (Sum) that stayed at zero: CloudWatch
    # omits those too. Gauges and distributions are always written.
    specs = catalog_series(topo)
    assert report.series + len(report.all_zero) == len(specs)
    counters = {f"{s.namespace}/{s.metric_name} {s.dimensions}" for s in specs if s.statistic == "Sum"}
    assert set(report.all_zero) <= counters
    assert report.series >= 25
    # The marker says what the history is.
    marker = read_marker(home)
    assert marker is not None
    assert marker["simulated"] is True
    assert datetime.fromisoformat(marker["end"]) == END
    assert datetime.fromisoformat(marker["start"]) <= END - timedelta(days=13, hours=23)
    assert json.loads((Path(home) / "backfill.json").read_text())["datums"] == report.datums
    # ListMetrics sees the written series with the catalog's dimensions (no marker dimension).
    cw = boto3.client("cloudwatch")
    api = {"Name": "ApiName", "Value": topo.api_name}
    listed = cw.list_metrics(Namespace="AWS/ApiGateway", MetricName="Count", Dimensions=[api])["Metrics"]
    assert [sorted(d["Name"] for d in m["Dimensions"]) for m in listed] == [["ApiName", "Stage"]]


@pytest.mark.integration
@pytest.mark.slow
def test_backfilled_history_reads_back_with_daily_shape_percentiles_and_an_empty_dlq(
    backfilled: dict[str, Any], topo: Topology
) -> None:
    cw = boto3.client("cloudwatch")
    catalog = build_catalog(ResourceNames.from_topology(topo), period_s=300)
    count = catalog.get(f"api:{topo.api_name}:count")
    p50 = catalog.get(f"api:{topo.api_name}:latency-p50")
    dlq = catalog.get(f"sqs:{topo.telemetry_dlq.name}:depth")
    start = END - timedelta(days=14)
    counts = _query(cw, count, start, END, 300, "Sum")
    assert len(counts) >= 14 * 288 - 2  # every 5-minute period of the 14 days has traffic
    hourly = _query(cw, count, END - timedelta(days=1), END, 3600, "Sum")
    assert max(hourly) > 4 * min(hourly)  # rush hours vs the night
    lat50 = _query(cw, p50, END - timedelta(hours=6), END, 300, "p50")
    lat99 = _query(cw, p50, END - timedelta(hours=6), END, 300, "p99")
    assert len(lat50) == len(lat99) == 72
    assert all(b > a for a, b in zip(lat50, lat99, strict=True))
    assert 50 < float(np.median(lat50)) < 400
    assert set(_query(cw, dlq, start, END, 3600, "Maximum")) == {0.0}
    # The last 6 hours are at 1-minute resolution and sum to the same totals.
    fine = _query(cw, count, END - timedelta(hours=6), END, 60, "Sum")
    assert len(fine) >= 350
    coarse = _query(cw, count, END - timedelta(hours=6), END, 300, "Sum")
    assert sum(fine) == pytest.approx(sum(coarse))


@pytest.mark.integration
@pytest.mark.slow
def test_backfill_is_fast(backfilled: dict[str, Any]) -> None:
    # Structural cost: full 1000-datum calls. Wall clock measured 24-43 s for ~106k datums on a
    # 2-core machine at load average 8-12 (shared); the bound leaves room for a busy CI runner.
    report = backfilled["report"]
    assert report.datums > 90_000
    assert report.calls <= report.datums // 1000 + 8  # one partial call per namespace at most
    assert report.seconds < 120, f"backfill took {report.seconds:.1f}s for {report.datums} datums"


def test_bad_backfill_ranges_are_rejected(topo: Topology, tmp_path: Path) -> None:
    for kwargs in ({"days": 0}, {"days": 20}, {"period_s": 90}, {"fine_hours": -1}):
        with pytest.raises(ValueError):
            backfill_history(topo, cloudwatch=object(), home=tmp_path, **kwargs)  # type: ignore[arg-type]
