"""CloudWatchMetricSource: GetMetricData limits, paging, PartialData, throttling, alignment, rates."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from contract.resources import ResourceNames
from contract.topology import topology
from monitor.catalog import Catalog, MetricSpec, Severity, build_catalog
from monitor.source import CloudWatchMetricSource, MetricSourceError, derive, plan_requests
from ops.fakes import FakeCloudWatch, client_error

PERIOD = 300
T0 = 1_700_000_100 - (1_700_000_100 % PERIOD)


def _spec(i: int, *, fill_zero: bool = False) -> MetricSpec:
    return MetricSpec(
        id=f"m{i}",
        title=f"metric {i}",
        resource="r",
        namespace="Test",
        metric_name=f"M{i}",
        dimensions={"k": "v"},
        statistic="Sum",
        period_s=PERIOD,
        direction="up",
        severity=Severity.WARNING,
        profile="count",
        fill_zero=fill_zero,
    )


def _source(fake: Any) -> CloudWatchMetricSource:
    return CloudWatchMetricSource(fake)


def test_plan_respects_both_per_call_limits() -> None:
    # Given 1,200 metrics over 14 days of 5-minute periods (4,032 points each)
    plan = plan_requests(1200, start=T0, end=T0 + 14 * 86400, period_s=PERIOD)
    # Then no call asks for more than 500 queries or could return more than 100,800 datapoints
    assert all(len(r) * w.points(PERIOD) <= 100_800 and len(r) <= 500 for r, w in plan)
    assert sum(len(r) for r, _ in plan) == 1200
    # and a short window packs 500 queries per call
    short = plan_requests(1200, start=T0, end=T0 + 3 * PERIOD, period_s=PERIOD)
    assert [len(r) for r, _ in short] == [500, 500, 200]
    # and a window longer than 100,800 points is split in time
    huge = plan_requests(1, start=T0, end=T0 + 200_000 * 60, period_s=60)
    assert [w.points(60) for _, w in huge] == [100_800, 99_200]


def test_more_than_500_queries_are_split_and_every_series_is_returned() -> None:
    # Given 1,100 stored metrics
    fake = FakeCloudWatch()
    specs = [_spec(i) for i in range(1100)]
    t = np.arange(T0, T0 + 6 * PERIOD, PERIOD)
    for i, s in enumerate(specs):
        fake.put_series(s.namespace, s.metric_name, s.dimensions, t, np.full(6, float(i)))
    # When fetched
    result = _source(fake).fetch(specs, start=T0, end=T0 + 6 * PERIOD, period_s=PERIOD)
    # Then the fake (which rejects > 500 queries) saw 3 calls, and every series came back whole
    assert fake.calls == 3
    assert result.stats.metrics_requested == 1100
    assert result.series["m1099"].y.tolist() == [1099.0] * 6
    assert result.series["m0"].t.tolist() == t.tolist()


def test_next_token_paging_and_partial_data_are_followed_to_the_end() -> None:
    # Given a fake whose pages hold at most 1,000 datapoints and 3 series of 800 points each
    fake = FakeCloudWatch(max_datapoints=1000)
    specs = [_spec(i) for i in range(3)]
    t = np.arange(T0, T0 + 800 * PERIOD, PERIOD)
    for i, s in enumerate(specs):
        fake.put_series(s.namespace, s.metric_name, s.dimensions, t, np.arange(800) + 1000.0 * i)
    # When the source (planning with the documented limits) fetches them in one request
    source = CloudWatchMetricSource(fake)
    result = source.fetch(specs, start=T0, end=T0 + 800 * PERIOD, period_s=PERIOD)
    # Then each series was split across PartialData pages and reassembled in order
    assert result.stats.partial_pages == 2  # 2,400 points in pages of 1,000
    for i in range(3):
        assert result.series[f"m{i}"].y.tolist() == (np.arange(800) + 1000.0 * i).tolist()
    assert sum("NextToken" in r for r in fake.requests) == 2
    # every page is counted as requesting all its metrics again (a conservative bill)
    assert result.stats.metrics_requested == fake.metrics_requested == 9


def test_one_retry_layer_botocore_standard_mode_with_bounded_timeouts() -> None:
    from monitor.budget import MAX_ATTEMPTS, worst_case_s
    from monitor.notifier import _default_sns_client
    from monitor.source import _default_cloudwatch_client
    from monitor.store import _default_table_resource

    # Given the monitor's clients (CloudWatch, DynamoDB, SNS)
    clients = [_default_cloudwatch_client(), _default_table_resource("t").meta.client, _default_sns_client()]
    for client in clients:
        config = client.meta.config
        # Then each retries in botocore's standard mode only, a bounded number of times, with short timeouts
        assert config.retries == {"mode": "standard", "total_max_attempts": MAX_ATTEMPTS}
        assert config.connect_timeout <= 2
        assert worst_case_s(config.read_timeout) < 45  # one call, retries included, well inside 120 s


def test_throttling_past_botocore_retries_is_a_clear_error_without_more_retries() -> None:
    # Given CloudWatch still throttles after botocore's own retries
    fake = FakeCloudWatch(throttle_next=100)
    # When fetched, the source does not add a retry layer of its own
    with pytest.raises(MetricSourceError, match="Throttling"):
        CloudWatchMetricSource(fake).fetch([_spec(0)], start=T0, end=T0 + PERIOD, period_s=PERIOD)
    assert fake.calls == 1


def test_other_client_errors_are_not_retried() -> None:
    class Forbidden:
        calls = 0

        def get_metric_data(self, **_kwargs: Any) -> dict[str, Any]:
            self.calls += 1
            raise client_error("AccessDenied", "no")

    client = Forbidden()
    with pytest.raises(MetricSourceError, match="AccessDenied"):
        CloudWatchMetricSource(client).fetch([_spec(0)], start=T0, end=T0 + PERIOD, period_s=PERIOD)
    assert client.calls == 1


def test_missing_periods_are_nan_unless_zero_filled_and_failed_series_stay_missing() -> None:
    # Given a client answering one datapoint for m0, an InternalError for m1 and a message
    class Client:
        def get_metric_data(self, **_kwargs: Any) -> dict[str, Any]:
            return {
                "MetricDataResults": [
                    {"Id": "q0", "Timestamps": [T0 + PERIOD], "Values": [3.0], "StatusCode": "Complete"},
                    {"Id": "q1", "Timestamps": [], "Values": [], "StatusCode": "InternalError"},
                    {"Id": "q2", "Timestamps": [T0 + 17], "Values": [9.0], "StatusCode": "Complete"},
                ],
                "Messages": [{"Code": "MaxMetricsExceeded", "Value": "too many"}],
            }

    specs = [_spec(0, fill_zero=True), _spec(1, fill_zero=True), _spec(2)]
    result = CloudWatchMetricSource(Client()).fetch(specs, start=T0, end=T0 + 3 * PERIOD, period_s=PERIOD)
    # Then the zero-filled counter is 0 where CloudWatch had nothing
    assert result.series["m0"].y.tolist() == [0.0, 3.0, 0.0]
    # the failed series stays missing (never zero-filled) and is reported
    assert np.isnan(result.series["m1"].y).all()
    assert result.stats.failed_series == ["m1"]
    # an off-grid timestamp is dropped, not shifted
    assert np.isnan(result.series["m2"].y).all()
    assert any("MaxMetricsExceeded" in m for m in result.stats.messages)


def test_unaligned_window_is_rejected() -> None:
    with pytest.raises(ValueError, match="aligned"):
        CloudWatchMetricSource(FakeCloudWatch()).fetch(
            [_spec(0)], start=T0 + 1, end=T0 + PERIOD, period_s=PERIOD
        )


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return build_catalog(ResourceNames.from_topology(topology("test")), period_s=PERIOD)


def test_derived_rate_is_computed_in_python_with_the_denominator_as_volume(catalog: Catalog) -> None:
    # Given 5XX and Count series with a period of no traffic and a gap
    rate = next(d for d in catalog.derived if d.title == "API 5XX rate")
    five = catalog.get(rate.numerator[0])
    count = catalog.get(rate.denominator[0])
    source = CloudWatchMetricSource(FakeCloudWatch())
    fake = source.client
    assert isinstance(fake, FakeCloudWatch)
    assert isinstance(five, MetricSpec)
    assert isinstance(count, MetricSpec)
    t = np.arange(T0, T0 + 4 * PERIOD, PERIOD)
    fake.put_series(five.namespace, five.metric_name, five.dimensions, t[:2], [5.0, 0.0])
    fake.put_series(
        count.namespace, count.metric_name, count.dimensions, [t[0], t[1], t[2]], [100.0, 50.0, 0.0]
    )
    raw = source.fetch([five, count], start=T0, end=T0 + 4 * PERIOD, period_s=PERIOD).series
    # When derived
    derived = derive(catalog, raw)[rate.id]
    # Then rate = 5XX / Count, no traffic or no data = no rate (NaN), volume = Count
    assert derived.y[:2].tolist() == [0.05, 0.0]
    assert np.isnan(derived.y[2:]).all()
    assert derived.volume is not None
    assert derived.volume.tolist() == [100.0, 50.0, 0.0, 0.0]


def test_fake_answers_each_percentile_with_its_own_stored_series() -> None:
    # Given one latency metric watched at p50 and at p99, stored per statistic, and a Sum metric
    # stored for every statistic
    p50, p99, total = (
        _spec(0).model_copy(update={"id": "p50", "statistic": "p50"}),
        _spec(0).model_copy(update={"id": "p99", "statistic": "p99"}),
        _spec(1),
    )
    fake = FakeCloudWatch()
    t = np.arange(T0, T0 + 3 * PERIOD, PERIOD)
    fake.put_series("Test", "M0", {"k": "v"}, t, [10.0, 11.0, 12.0], stat="p50")
    fake.put_series("Test", "M0", {"k": "v"}, t, [90.0, 91.0, 92.0], stat="p99")
    fake.put_series("Test", "M1", {"k": "v"}, t, [1.0, 2.0, 3.0])
    # When all three are fetched in one call
    result = _source(fake).fetch([p50, p99, total], start=T0, end=T0 + 3 * PERIOD, period_s=PERIOD)
    # Then each percentile reads its own series, and the statistic-less series answers Sum
    assert result.series["p50"].y.tolist() == [10.0, 11.0, 12.0]
    assert result.series["p99"].y.tolist() == [90.0, 91.0, 92.0]
    assert result.series["m1"].y.tolist() == [1.0, 2.0, 3.0]


def _per_version_spec() -> MetricSpec:
    return MetricSpec(
        id="slowest",
        title="duration p50, slowest version",
        resource="lambda:f",
        namespace="AWS/Lambda",
        metric_name="Duration",
        dimensions={"FunctionName": "f", "Resource": "f:live"},
        each="ExecutedVersion",
        statistic="p50",
        period_s=PERIOD,
        direction="up",
        severity=Severity.WARNING,
        profile="latency",
    )


def test_a_spec_read_for_each_version_keeps_the_slowest_version_of_every_period() -> None:
    # Given version 1 all along, version 2 in periods 2-3 only (slow, then faster than 1), and the function's
    # own series (no ExecutedVersion), which must not be mixed in
    fake = FakeCloudWatch()
    t = np.arange(T0, T0 + 5 * PERIOD, PERIOD)
    alias = {"FunctionName": "f", "Resource": "f:live"}
    fake.put_series("AWS/Lambda", "Duration", {**alias, "ExecutedVersion": "1"}, t, [50, 52, 48, 51, 49])
    fake.put_series("AWS/Lambda", "Duration", {**alias, "ExecutedVersion": "2"}, t[2:4], [2100, 30])
    fake.put_series("AWS/Lambda", "Duration", {"FunctionName": "f"}, t, [9000] * 5)
    # When the monitor fetches it
    result = _source(fake).fetch([_per_version_spec()], start=T0, end=T0 + 5 * PERIOD, period_s=PERIOD)
    # Then each period holds the slowest version's value
    assert result.series["slowest"].y.tolist() == [50, 52, 2100, 51, 49]
    assert result.stats.failed_series == []


def test_a_failed_list_metrics_fails_that_series_only() -> None:
    # Given ListMetrics is denied, and an ordinary metric beside the per-version one
    class NoList(FakeCloudWatch):
        def list_metrics(self, **kwargs: Any) -> dict[str, Any]:
            raise client_error("AccessDenied", "not authorized to perform cloudwatch:ListMetrics")

    fake = NoList()
    t = np.arange(T0, T0 + 3 * PERIOD, PERIOD)
    fake.put_series("Test", "M0", {"k": "v"}, t, [1, 2, 3])
    # When both are fetched
    result = _source(fake).fetch(
        [_per_version_spec(), _spec(0)], start=T0, end=T0 + 3 * PERIOD, period_s=PERIOD
    )
    # Then the per-version series is failed (not scored as missing data) and the other one is read
    assert result.stats.failed_series == ["slowest"]
    assert any("ListMetrics" in m for m in result.stats.messages)
    assert result.series["m0"].y.tolist() == [1, 2, 3]
