"""The cost model against figures computed by hand from the dated price table."""

from __future__ import annotations

import pytest

from dashboard import cost
from dashboard.analysis import fmt_money_delta
from dashboard.cost import FunctionUsage, Usage


def line(lines: list[cost.CostLine], item: str) -> cost.CostLine:
    return next(x for x in lines if x.item == item)


def test_lambda_compute_and_requests_at_arm64_prices() -> None:
    # Given 1M invocations of 100 ms at 512 MB: 1e6 * 0.1 s * 0.5 GB = 50,000 GB-s
    usage = Usage(functions=(FunctionUsage(name="f", memory_mb=512, invocations=1e6, duration_ms_sum=1e8),))
    lines = cost.estimate(usage)
    compute = line(lines, "f compute (arm64, 512 MB)")
    assert compute.quantity == pytest.approx(50_000)
    assert compute.usd == pytest.approx(50_000 * 0.0000133334)  # $0.66667
    assert line(lines, "f requests").usd == pytest.approx(0.20)


def test_request_priced_services() -> None:
    usage = Usage(
        api_requests=2_000_000,
        ddb_read_units=4_000_000,
        ddb_write_units=1_000_000,
        sqs_requests=10_000_000,
        events_published=3_000_000,
        sns_publishes=2_000_000,
        metrics_requested=100_000,
        log_bytes=3e9,
        traces=1_000_000,
    )
    by = {x.item: x.usd for x in cost.estimate(usage)}
    assert by["REST API requests"] == pytest.approx(7.00)  # 2M * $3.50/M
    assert by["read request units"] == pytest.approx(0.50)  # 4M * $0.125/M
    assert by["write request units"] == pytest.approx(0.625)  # 1M * $0.625/M
    assert by["requests"] == pytest.approx(4.00)  # SQS 10M * $0.40/M
    assert by["custom events published"] == pytest.approx(3.00)
    assert by["publishes"] == pytest.approx(1.00)
    assert by["GetMetricData"] == pytest.approx(1.00)  # 100k metrics * $0.01/1000
    assert by["Logs ingestion"] == pytest.approx(1.50)  # 3 GB * $0.50
    assert by["traces recorded"] == pytest.approx(5.00)


def test_monthly_charges_are_prorated_by_a_730_hour_month() -> None:
    # 100 custom metrics for one day = 100 * $0.30 * 24/730
    lines = cost.estimate(Usage(days=1, custom_metrics=100, standard_alarms=10, anomaly_alarms=10))
    assert line(lines, "custom metrics").usd == pytest.approx(30.0 * 24 / 730)
    assert line(lines, "standard alarms").usd == pytest.approx(1.0 * 24 / 730)
    # An anomaly-detection alarm bills as three standard alarm metrics: $0.30 per alarm-month
    assert line(lines, "anomaly-detection alarms (3 metrics each)").usd == pytest.approx(3.0 * 24 / 730)
    # A full 730-hour month of one custom metric is exactly its list price
    full = cost.estimate(Usage(days=730 / 24, custom_metrics=1))
    assert line(full, "custom metrics").usd == pytest.approx(0.30)


def test_cost_per_1000_requests_and_forecast() -> None:
    assert cost.cost_per_1000_requests(7.0, 2_000_000) == pytest.approx(0.0035)
    assert cost.cost_per_1000_requests(1.0, 0) is None
    # $12 over the first 10 days of a 30-day month -> $36
    assert cost.month_end_forecast(12.0, 10.0, 30) == pytest.approx(36.0)
    assert cost.month_end_forecast(5.0, 0.0, 30) == 0.0


def test_xray_default_sampling() -> None:
    # 1 request/s reservoir plus 5% of the rest: 21 rps -> 1 + 0.05 * 20 = 2 traces/s
    assert cost.xray_traces_recorded(21.0) == pytest.approx(2.0)
    assert cost.xray_traces_recorded(0.5) == pytest.approx(0.5)
    assert cost.xray_traces_recorded(0.0) == 0.0


def test_right_sizing_keeps_headroom_and_prices_the_change() -> None:
    # Peak 150 MB * 1.3 = 195 MB -> 256 MB (64 MB steps); 1024 MB today
    rs = cost.right_size(
        function="f", memory_mb=1024, max_used_mb=150, avg_duration_ms=200, invocations_per_day=100_000
    )
    assert rs.suggested_mb == 256
    # 0.2 s * 1 GB * 100k/day * 730/24 days = 608,333 GB-s/month
    gb_s = 0.2 * 1.0 * 100_000 * 730 / 24
    assert rs.monthly_usd_now == pytest.approx(gb_s * 0.0000133334)
    assert rs.monthly_usd_suggested == pytest.approx(gb_s / 4 * 0.0000133334)
    assert rs.monthly_saving == pytest.approx(gb_s * 0.75 * 0.0000133334)
    assert "CPU scales with memory" in rs.note
    # Never below 128 MB; too tight -> raise
    assert (
        cost.right_size(
            function="g", memory_mb=128, max_used_mb=20, avg_duration_ms=5, invocations_per_day=1
        ).suggested_mb
        == 128
    )
    tight = cost.right_size(
        function="h", memory_mb=256, max_used_mb=250, avg_duration_ms=5, invocations_per_day=1
    )
    assert tight.suggested_mb == 384
    assert "raise" in tight.note


def test_monitor_vs_anomaly_detection_alarms() -> None:
    # 75 series from 60 raw metrics, every 5 minutes (8,760 runs in a 730-hour month), 2 s at 1024 MB
    cmp = cost.monitor_vs_anomaly_alarms(
        series=75, raw_metrics=60, period_s=300, avg_duration_ms=2000, memory_mb=1024
    )
    runs = 730 * 12
    assert cmp.runs_per_month == pytest.approx(runs)
    assert cmp.monitor_lambda_usd == pytest.approx(runs * 2.0 * 0.0000133334 + runs * 0.2e-6)
    assert cmp.monitor_get_metric_data_usd == pytest.approx(60 * runs * 0.01 / 1000)  # $5.256
    assert cmp.monitor_scheduler_usd == pytest.approx(runs * 1e-6)
    assert cmp.monitor_dynamodb_usd == pytest.approx(75 * runs * 0.625e-6)
    assert cmp.anomaly_alarms_usd == pytest.approx(75 * 0.30)  # $22.50
    assert cmp.monitor_total_usd < cmp.anomaly_alarms_usd


def test_price_table_is_dated() -> None:
    assert cost.PRICES_AS_OF.year >= 2025
    assert cost.REGION == "us-east-1"


@pytest.mark.parametrize(
    ("delta", "text"),
    [(-1.2, "-$1.20"), (2.5, "+$2.50"), (-0.001, "+$0.00"), (0.0, "+$0.00"), (-1234.5, "-$1,234.50")],
)
def test_money_delta_puts_the_sign_first_so_a_decrease_is_drawn_down(delta: float, text: str) -> None:
    assert fmt_money_delta(delta) == text
