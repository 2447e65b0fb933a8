"""The emulator's indexed CloudWatch store, through plain boto3 (the session emulator has the extensions)."""

from __future__ import annotations

import json
import math
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import numpy as np
import pytest
from botocore.exceptions import ClientError

from sandbox.emulator.metric_store import MetricStore, StatError
from sandbox.emulator.server import Emulator

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
DIMS = [{"Name": "FunctionName", "Value": "f1"}]


def _ns() -> str:
    return f"Test/{uuid.uuid4().hex[:8]}"


def _query(
    qid: str,
    ns: str,
    stat: str,
    *,
    name: str = "Latency",
    dims: list[dict[str, str]] | None = None,
    period: int = 60,
    **extra: Any,
) -> dict[str, Any]:
    metric = {"Namespace": ns, "MetricName": name, "Dimensions": DIMS if dims is None else dims}
    return {"Id": qid, "MetricStat": {"Metric": metric, "Period": period, "Stat": stat}, **extra}


@pytest.fixture
def cw(emulator: Emulator) -> Any:
    return boto3.client("cloudwatch")


@pytest.fixture
def latency_ns(cw: Any) -> str:
    """Minute 0: raw values 1..100; minute 1: Values/Counts {10: 3, 20: 1} + StatisticValues."""
    ns = _ns()
    cw.put_metric_data(
        Namespace=ns,
        MetricData=[
            {
                "MetricName": "Latency",
                "Dimensions": DIMS,
                "Timestamp": T0 + timedelta(seconds=i % 60),
                "Value": float(i),
            }
            for i in range(1, 101)
        ],
    )
    cw.put_metric_data(
        Namespace=ns,
        MetricData=[
            {
                "MetricName": "Latency",
                "Dimensions": DIMS,
                "Timestamp": T0 + timedelta(seconds=65),
                "Values": [10.0, 20.0],
                "Counts": [3.0, 1.0],
            },
            {
                "MetricName": "Latency",
                "Dimensions": DIMS,
                "Timestamp": T0 + timedelta(seconds=70),
                "StatisticValues": {"Sum": 100.0, "Minimum": 5.0, "Maximum": 60.0, "SampleCount": 4.0},
            },
        ],
    )
    return ns


def _results(cw: Any, queries: list[dict[str, Any]], **kwargs: Any) -> dict[str, dict[str, Any]]:
    kwargs.setdefault("StartTime", T0)
    kwargs.setdefault("EndTime", T0 + timedelta(minutes=5))
    kwargs.setdefault("ScanBy", "TimestampAscending")
    response = cw.get_metric_data(MetricDataQueries=queries, **kwargs)
    return {r["Id"]: r for r in response["MetricDataResults"]}


@pytest.mark.integration
def test_basic_statistics_mix_raw_values_counts_and_statistic_sets(cw: Any, latency_ns: str) -> None:
    # Given minute 0 = 1..100 and minute 1 = {10,10,10,20} plus a set (sum 100, min 5, max 60, n 4)
    stats = ["Sum", "Average", "Minimum", "Maximum", "SampleCount"]
    # When
    got = _results(cw, [_query(s.lower(), latency_ns, s) for s in stats])
    # Then: each period's value is what CloudWatch would compute
    expected = {
        "sum": [5050.0, 150.0],
        "average": [50.5, 150.0 / 8],
        "minimum": [1.0, 5.0],
        "maximum": [100.0, 60.0],
        "samplecount": [100.0, 8.0],
    }
    for qid, values in expected.items():
        assert got[qid]["Values"] == pytest.approx(values), qid
        assert [t.astimezone(UTC) for t in got[qid]["Timestamps"]] == [T0, T0 + timedelta(minutes=1)]
        assert got[qid]["StatusCode"] == "Complete"


@pytest.mark.integration
def test_percentiles_and_trimmed_mean_use_raw_values_with_counts(cw: Any, latency_ns: str) -> None:
    got = _results(
        cw,
        [
            _query("p50", latency_ns, "p50"),
            _query("p90", latency_ns, "p90"),
            _query("p99", latency_ns, "p99"),
            _query("p999", latency_ns, "p99.9"),
            _query("tm90", latency_ns, "tm90"),
        ],
    )
    # Minute 0 (1..100, nearest rank); minute 1 from raw values only: 10,10,10,20.
    assert got["p50"]["Values"] == [50.0, 10.0]
    assert got["p90"]["Values"] == [90.0, 20.0]
    assert got["p99"]["Values"] == [99.0, 20.0]
    assert got["p999"]["Values"] == [100.0, 20.0]
    assert got["tm90"]["Values"] == pytest.approx([sum(range(1, 91)) / 90, (10 * 3 + 20 * 0.6) / 3.6])


@pytest.mark.integration
def test_dimensions_select_exactly_one_series(cw: Any) -> None:
    ns = _ns()
    data = [
        ({"Name": "FunctionName", "Value": "f1"},),
        ({"Name": "FunctionName", "Value": "f2"},),
        ({"Name": "FunctionName", "Value": "f1"}, {"Name": "Resource", "Value": "r"}),
    ]
    for value, dims in enumerate(data, start=1):
        cw.put_metric_data(
            Namespace=ns,
            MetricData=[
                {"MetricName": "Errors", "Dimensions": list(dims), "Timestamp": T0, "Value": float(value)}
            ],
        )
    got = _results(
        cw,
        [
            _query("f1", ns, "Sum", name="Errors"),
            _query("f2", ns, "Sum", name="Errors", dims=[{"Name": "FunctionName", "Value": "f2"}]),
            _query("both", ns, "Sum", name="Errors", dims=list(reversed(data[2]))),
            _query("none", ns, "Sum", name="Errors", dims=[]),
        ],
    )
    assert got["f1"]["Values"] == [1.0]
    assert got["f2"]["Values"] == [2.0]
    assert got["both"]["Values"] == [3.0]  # dimension order does not matter
    assert got["none"]["Values"] == []  # no dimensions is its own series


@pytest.mark.integration
def test_paging_with_max_datapoints_returns_every_point_once(cw: Any) -> None:
    ns = _ns()
    cw.put_metric_data(
        Namespace=ns,
        MetricData=[
            {
                "MetricName": "Count",
                "Dimensions": DIMS,
                "Timestamp": T0 + timedelta(minutes=i),
                "Value": float(i),
            }
            for i in range(10)
        ],
    )
    queries = [_query("a", ns, "Sum", name="Count"), _query("b", ns, "Maximum", name="Count")]
    seen: dict[str, list[float]] = {"a": [], "b": []}
    token = None
    pages = 0
    while True:
        kwargs: dict[str, Any] = {"NextToken": token} if token else {}
        response = cw.get_metric_data(
            MetricDataQueries=queries,
            StartTime=T0,
            EndTime=T0 + timedelta(minutes=10),
            ScanBy="TimestampDescending",
            MaxDatapoints=7,
            **kwargs,
        )
        pages += 1
        for result in response["MetricDataResults"]:
            seen[result["Id"]].extend(result["Values"])
        token = response.get("NextToken")
        if not token:
            break
    assert pages == 3  # 20 datapoints, 7 per page
    assert seen["a"] == [float(i) for i in range(9, -1, -1)]  # descending, no gaps, no repeats
    assert seen["b"] == seen["a"]


@pytest.mark.integration
def test_bad_next_token_is_a_client_error(cw: Any) -> None:
    with pytest.raises(ClientError) as err:
        cw.get_metric_data(
            MetricDataQueries=[_query("a", _ns(), "Sum")],
            StartTime=T0,
            EndTime=T0 + timedelta(minutes=1),
            NextToken="not-a-token",
        )
    assert err.value.response["Error"]["Code"] == "InvalidParameterValue"


@pytest.mark.integration
def test_metric_math_label_and_return_data(cw: Any) -> None:
    ns = _ns()
    for name, values in (("Errors", [1.0, 0.0, 3.0]), ("Invocations", [10.0, 0.0, 30.0])):
        cw.put_metric_data(
            Namespace=ns,
            MetricData=[
                {"MetricName": name, "Dimensions": DIMS, "Timestamp": T0 + timedelta(minutes=i), "Value": v}
                for i, v in enumerate(values)
            ],
        )
    got = _results(
        cw,
        [
            _query("e", ns, "Sum", name="Errors", ReturnData=False),
            _query("i", ns, "Sum", name="Invocations", ReturnData=False),
            {"Id": "rate", "Expression": "e / i * 100", "Label": "error rate"},
            {"Id": "shifted", "Expression": "(e + 1) * 2"},
        ],
    )
    assert set(got) == {"rate", "shifted"}
    assert got["rate"]["Label"] == "error rate"
    assert got["rate"]["Values"] == pytest.approx([10.0, 10.0])  # 0/0 is dropped, as in CloudWatch
    assert got["shifted"]["Values"] == [4.0, 2.0, 8.0]


@pytest.mark.integration
def test_unsupported_expressions_and_stats_are_clear_client_errors(cw: Any) -> None:
    ns = _ns()
    for queries, needle in (
        (
            [_query("a", ns, "Sum"), {"Id": "b", "Expression": "ANOMALY_DETECTION_BAND(a, 2)"}],
            "not supported",
        ),
        ([_query("a", ns, "p101")], "not supported"),
        ([_query("a", ns, "Sum", period=7)], "Period"),
    ):
        with pytest.raises(ClientError) as err:
            _results(cw, queries)
        assert needle in err.value.response["Error"]["Message"]


@pytest.mark.integration
def test_get_metric_statistics_with_extended_statistics(cw: Any, latency_ns: str) -> None:
    response = cw.get_metric_statistics(
        Namespace=latency_ns,
        MetricName="Latency",
        Dimensions=DIMS,
        StartTime=T0,
        EndTime=T0 + timedelta(minutes=2),
        Period=60,
        Statistics=["Sum", "SampleCount"],
        ExtendedStatistics=["p90"],
    )
    points = sorted(response["Datapoints"], key=lambda p: p["Timestamp"])
    assert [(p["Sum"], p["SampleCount"], p["ExtendedStatistics"]["p90"]) for p in points] == [
        (5050.0, 100.0, 90.0),
        (150.0, 8.0, 20.0),
    ]


@pytest.mark.integration
def test_list_metrics_filters_by_namespace_name_and_dimension(cw: Any, latency_ns: str) -> None:
    cw.put_metric_data(
        Namespace=latency_ns,
        MetricData=[
            {"MetricName": "Errors", "Dimensions": [{"Name": "FunctionName", "Value": "f2"}], "Value": 1.0}
        ],
    )
    every = cw.list_metrics(Namespace=latency_ns)["Metrics"]
    assert sorted(m["MetricName"] for m in every) == ["Errors", "Latency"]
    f2 = cw.list_metrics(Namespace=latency_ns, Dimensions=[{"Name": "FunctionName", "Value": "f2"}])[
        "Metrics"
    ]
    assert [m["MetricName"] for m in f2] == ["Errors"]
    recent = cw.list_metrics(Namespace=latency_ns, MetricName="Errors", RecentlyActive="PT3H")["Metrics"]
    assert recent[0]["Dimensions"] == [{"Name": "FunctionName", "Value": "f2"}]


@pytest.mark.integration
def test_xray_put_and_get_traces_still_work(emulator: Emulator) -> None:
    xray = boto3.client("xray")
    trace_id = f"1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]}"
    segment = {
        "name": "probe",
        "id": uuid.uuid4().hex[:16],
        "trace_id": trace_id,
        "start_time": time.time() - 1,
        "end_time": time.time(),
    }
    xray.put_trace_segments(TraceSegmentDocuments=[json.dumps(segment)])
    traces = xray.batch_get_traces(TraceIds=[trace_id])["Traces"]
    assert [trace["Id"] for trace in traces] == [trace_id]


# ---- the store itself (no emulator) ------------------------------------------------------------
def test_store_matches_numpy_on_random_data() -> None:
    # Given 5,000 random points over two hours in one series
    rng = np.random.default_rng(3)
    store = MetricStore()
    ts = rng.uniform(0, 7200, 5000)
    values = rng.lognormal(3, 1, 5000)
    for t, v in zip(ts, values, strict=True):
        store.put_value("N", "M", (), float(t), float(v))
    # When aggregated per 10 minutes
    got = store.query("N", "M", (), start=0, end=7200, period=600, stats=["Average", "p90", "Maximum"])
    # Then each period matches numpy on the same slice (p90 = nearest rank)
    for i, start in enumerate(range(0, 7200, 600)):
        chunk = np.sort(values[(ts >= start) & (ts < start + 600)])
        assert got["Average"].values[i] == pytest.approx(chunk.mean())
        assert got["Maximum"].values[i] == chunk.max()
        assert got["p90"].values[i] == chunk[math.ceil(0.9 * chunk.size) - 1]


def test_store_rejects_unknown_statistics() -> None:
    with pytest.raises(StatError):
        MetricStore().query("N", "M", (), start=0, end=60, period=60, stats=["median"])


@pytest.mark.integration
def test_invalid_put_metric_data_is_rejected_and_stores_nothing(cw: Any) -> None:
    ns = _ns()
    with pytest.raises(ClientError) as err:
        cw.put_metric_data(
            Namespace=ns,
            MetricData=[
                {"MetricName": "Ok", "Value": 1.0},
                {"MetricName": "Bad", "Values": [1.0, 2.0], "Counts": [1.0]},
            ],
        )
    assert err.value.response["Error"]["Code"] == "InvalidParameterValue"
    assert cw.list_metrics(Namespace=ns)["Metrics"] == []
