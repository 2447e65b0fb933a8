"""Estimated AWS cost from usage: a dated us-east-1 price table and pure arithmetic. No I/O.

PRICES_AS_OF is the date the list prices below were read from the public AWS pricing pages
(on-demand, us-east-1, first pricing tier, no free tier applied, no taxes):

- Lambda (arm64): $0.0000133334 per GB-second, $0.20 per 1M requests — aws.amazon.com/lambda/pricing
- API Gateway REST API: $3.50 per 1M requests (first 333M) — aws.amazon.com/api-gateway/pricing
- DynamoDB on demand (after the Nov 2024 cut): $0.625 per 1M write request units, $0.125 per 1M read
  request units — aws.amazon.com/dynamodb/pricing/on-demand
- SQS standard: $0.40 per 1M requests — aws.amazon.com/sqs/pricing
- EventBridge custom events: $1.00 per 1M events published; Scheduler $1.00 per 1M invocations —
  aws.amazon.com/eventbridge/pricing
- SNS standard topic: $0.50 per 1M publishes — aws.amazon.com/sns/pricing
- CloudWatch: $0.30 per custom metric-month (first 10k), $0.10 per standard alarm metric-month,
  GetMetricData $0.01 per 1,000 metrics requested, Logs ingestion $0.50 per GB —
  aws.amazon.com/cloudwatch/pricing. An anomaly-detection alarm is billed as 3 standard-resolution
  alarm metrics (the metric and the band's upper and lower bounds): $0.30 per alarm-month.
- X-Ray: $5.00 per 1M traces recorded — aws.amazon.com/xray/pricing

Month-based prices are turned into daily ones with AWS's 730-hour month.
"""

from __future__ import annotations

import math
from datetime import date

from pydantic import BaseModel, ConfigDict, Field

from dashboard.power_curve import FunctionCurve

PRICES_AS_OF = date(2025, 6, 1)
REGION = "us-east-1"
HOURS_PER_MONTH = 730.0
DAYS_PER_MONTH = HOURS_PER_MONTH / 24


class Prices(BaseModel):
    model_config = ConfigDict(frozen=True)

    lambda_gb_s_arm64: float = 0.0000133334
    lambda_request: float = 0.20 / 1e6
    apigw_rest_request: float = 3.50 / 1e6
    ddb_write_request_unit: float = 0.625 / 1e6
    ddb_read_request_unit: float = 0.125 / 1e6
    sqs_request: float = 0.40 / 1e6
    eventbridge_event: float = 1.00 / 1e6
    scheduler_invocation: float = 1.00 / 1e6
    sns_publish: float = 0.50 / 1e6
    cw_custom_metric_month: float = 0.30
    cw_alarm_metric_month: float = 0.10
    cw_anomaly_alarm_metrics: int = 3
    cw_get_metric_data_metric: float = 0.01 / 1000
    cw_logs_ingest_gb: float = 0.50
    xray_trace: float = 5.00 / 1e6


PRICES = Prices()


class FunctionUsage(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    memory_mb: int = Field(gt=0)
    invocations: float = Field(ge=0)
    duration_ms_sum: float = Field(ge=0)

    @property
    def gb_seconds(self) -> float:
        return self.duration_ms_sum / 1000 * self.memory_mb / 1024


class Usage(BaseModel):
    """What one day (or any period: `days`) of running Fleetscope consumed."""

    model_config = ConfigDict(frozen=True)

    days: float = Field(default=1.0, gt=0)
    functions: tuple[FunctionUsage, ...] = ()
    api_requests: float = Field(default=0, ge=0)
    ddb_read_units: float = Field(default=0, ge=0)
    ddb_write_units: float = Field(default=0, ge=0)
    sqs_requests: float = Field(default=0, ge=0)
    events_published: float = Field(default=0, ge=0)
    scheduler_invocations: float = Field(default=0, ge=0)
    sns_publishes: float = Field(default=0, ge=0)
    custom_metrics: int = Field(default=0, ge=0, description="distinct custom metrics (a monthly charge)")
    standard_alarms: int = Field(default=0, ge=0)
    anomaly_alarms: int = Field(default=0, ge=0)
    metrics_requested: float = Field(default=0, ge=0, description="GetMetricData metrics requested")
    log_bytes: float = Field(default=0, ge=0)
    traces: float = Field(default=0, ge=0)


class CostLine(BaseModel):
    model_config = ConfigDict(frozen=True)

    service: str
    item: str
    quantity: float
    unit: str
    usd: float


def estimate(usage: Usage, prices: Prices = PRICES) -> list[CostLine]:
    """Cost lines for the usage; monthly charges are prorated to `usage.days`."""
    month_share = usage.days / DAYS_PER_MONTH
    lines: list[CostLine] = []
    for fn in usage.functions:
        lines.append(
            CostLine(
                service="AWS Lambda",
                item=f"{fn.name} compute (arm64, {fn.memory_mb} MB)",
                quantity=fn.gb_seconds,
                unit="GB-s",
                usd=fn.gb_seconds * prices.lambda_gb_s_arm64,
            )
        )
        lines.append(
            CostLine(
                service="AWS Lambda",
                item=f"{fn.name} requests",
                quantity=fn.invocations,
                unit="requests",
                usd=fn.invocations * prices.lambda_request,
            )
        )
    simple = (
        (
            "Amazon API Gateway",
            "REST API requests",
            usage.api_requests,
            "requests",
            prices.apigw_rest_request,
        ),
        ("Amazon DynamoDB", "read request units", usage.ddb_read_units, "RRU", prices.ddb_read_request_unit),
        (
            "Amazon DynamoDB",
            "write request units",
            usage.ddb_write_units,
            "WRU",
            prices.ddb_write_request_unit,
        ),
        ("Amazon SQS", "requests", usage.sqs_requests, "requests", prices.sqs_request),
        (
            "Amazon EventBridge",
            "custom events published",
            usage.events_published,
            "events",
            prices.eventbridge_event,
        ),
        (
            "Amazon EventBridge",
            "Scheduler invocations",
            usage.scheduler_invocations,
            "invocations",
            prices.scheduler_invocation,
        ),
        ("Amazon SNS", "publishes", usage.sns_publishes, "requests", prices.sns_publish),
        (
            "Amazon CloudWatch",
            "custom metrics",
            usage.custom_metrics * month_share,
            "metric-months",
            prices.cw_custom_metric_month,
        ),
        (
            "Amazon CloudWatch",
            "standard alarms",
            usage.standard_alarms * month_share,
            "alarm-months",
            prices.cw_alarm_metric_month,
        ),
        (
            "Amazon CloudWatch",
            "anomaly-detection alarms (3 metrics each)",
            usage.anomaly_alarms * month_share,
            "alarm-months",
            prices.cw_alarm_metric_month * prices.cw_anomaly_alarm_metrics,
        ),
        (
            "Amazon CloudWatch",
            "GetMetricData",
            usage.metrics_requested,
            "metrics requested",
            prices.cw_get_metric_data_metric,
        ),
        ("Amazon CloudWatch", "Logs ingestion", usage.log_bytes / 1e9, "GB", prices.cw_logs_ingest_gb),
        ("AWS X-Ray", "traces recorded", usage.traces, "traces", prices.xray_trace),
    )
    for service, item, quantity, unit, price in simple:
        lines.append(CostLine(service=service, item=item, quantity=quantity, unit=unit, usd=quantity * price))
    return lines


def total(lines: list[CostLine]) -> float:
    return sum(line.usd for line in lines)


def by_service(lines: list[CostLine]) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in lines:
        out[line.service] = out.get(line.service, 0.0) + line.usd
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def cost_per_1000_requests(total_usd: float, api_requests: float) -> float | None:
    return None if api_requests <= 0 else total_usd / api_requests * 1000


def month_end_forecast(month_to_date_usd: float, elapsed_days: float, days_in_month: int) -> float:
    """Linear run-rate: what the month costs if the rest of it looks like the elapsed part."""
    if elapsed_days <= 0:
        return 0.0
    return month_to_date_usd / elapsed_days * days_in_month


def xray_traces_recorded(
    requests_per_second: float, *, reservoir_per_s: float = 1.0, rate: float = 0.05
) -> float:
    """Traces per second under X-Ray's default sampling rule (1 request/s, then 5% of the rest)."""
    if requests_per_second <= 0:
        return 0.0
    sampled = min(requests_per_second, reservoir_per_s)
    return sampled + rate * max(0.0, requests_per_second - reservoir_per_s)


class RightSizing(BaseModel):
    model_config = ConfigDict(frozen=True)

    function: str
    memory_mb: int
    max_used_mb: float
    suggested_mb: int
    monthly_usd_now: float
    monthly_usd_suggested: float
    note: str

    @property
    def monthly_saving(self) -> float:
        return self.monthly_usd_now - self.monthly_usd_suggested


def right_size(
    *,
    function: str,
    memory_mb: int,
    max_used_mb: float,
    avg_duration_ms: float,
    invocations_per_day: float,
    headroom: float = 1.3,
    step_mb: int = 64,
    prices: Prices = PRICES,
) -> RightSizing:
    """The smallest memory (in `step_mb` steps, >= 128 MB) keeping `headroom` above the peak memory used.

    The monthly figures assume the duration does not change; below 1,769 MB a Lambda's CPU share is
    proportional to its memory, so a CPU-bound function may run longer with less memory — the note
    says so whenever memory goes down.
    """
    needed = max(128, math.ceil(max_used_mb * headroom / step_mb) * step_mb)
    suggested = min(needed, 10240)

    def monthly(mem: int) -> float:
        gb_s = avg_duration_ms / 1000 * mem / 1024 * invocations_per_day * DAYS_PER_MONTH
        return gb_s * prices.lambda_gb_s_arm64

    if suggested < memory_mb:
        note = (
            f"peak {max_used_mb:.0f} MB used of {memory_mb} MB: {suggested} MB keeps "
            f"{headroom - 1:.0%} headroom; check the duration after the change (CPU scales with memory)."
        )
    elif suggested > memory_mb:
        note = f"peak {max_used_mb:.0f} MB used of {memory_mb} MB: too close to the limit, raise it."
    else:
        note = f"peak {max_used_mb:.0f} MB used of {memory_mb} MB: well sized."
    return RightSizing(
        function=function,
        memory_mb=memory_mb,
        max_used_mb=max_used_mb,
        suggested_mb=suggested,
        monthly_usd_now=monthly(memory_mb),
        monthly_usd_suggested=monthly(suggested),
        note=note,
    )


class CurveRightSizing(BaseModel):
    """A right-sizing read from the measured memory → duration curve (`bench_power_tuning`)."""

    model_config = ConfigDict(frozen=True)

    function: str
    memory_mb: int
    max_used_mb: float
    suggested_mb: int
    fastest_mb: int | None
    duration_ms_now: float
    duration_ms_suggested: float
    monthly_usd_now: float
    monthly_usd_suggested: float
    note: str


def right_size_with_curve(
    *,
    function: str,
    memory_mb: int,
    max_used_mb: float,
    avg_duration_ms: float,
    invocations_per_day: float,
    curve: FunctionCurve,
    headroom: float = 1.3,
    prices: Prices = PRICES,
) -> CurveRightSizing | None:
    """The memory size with the lowest compute cost per invocation, durations taken from the curve.

    The curve gives how the duration changes with memory (measured under Lambda's CPU share per size);
    it is applied to this deployment's own average duration at its current memory: the duration at m is
    `avg_duration_ms x curve(m) / curve(memory_mb)`. Candidates are the curve's sizes the function fits
    in with `headroom` over both the peak memory seen here and the peak the benchmark measured. None when
    the current memory lies outside the measured range (no ratio to apply) or nothing fits.
    """
    floor = max(max_used_mb, curve.peak_memory_mb) * headroom
    candidates: list[tuple[float, float, int]] = []  # (GB-s per invocation, duration, memory)
    for point in curve.feasible():
        ratio = curve.duration_ratio(point.memory_mb, memory_mb)
        if point.memory_mb < floor or ratio is None:
            continue
        duration = avg_duration_ms * ratio
        candidates.append((duration / 1000 * point.memory_mb / 1024, duration, point.memory_mb))
    if not candidates:
        return None
    _, duration, suggested = min(candidates)
    peak_mb = max(max_used_mb, curve.peak_memory_mb)
    fastest = curve.fastest()

    def monthly(mem: int, ms: float) -> float:
        return ms / 1000 * mem / 1024 * invocations_per_day * DAYS_PER_MONTH * prices.lambda_gb_s_arm64

    if suggested == memory_mb:
        verdict = f"{memory_mb} MB is already the cheapest measured size that fits"
    else:
        verdict = (
            f"{suggested} MB is the cheapest measured size that fits: the curve puts its duration at "
            f"{duration / avg_duration_ms:.2f}x today's"
        )
    return CurveRightSizing(
        function=function,
        memory_mb=memory_mb,
        max_used_mb=max_used_mb,
        suggested_mb=suggested,
        fastest_mb=None if fastest is None else fastest.memory_mb,
        duration_ms_now=avg_duration_ms,
        duration_ms_suggested=duration,
        monthly_usd_now=monthly(memory_mb, avg_duration_ms),
        monthly_usd_suggested=monthly(suggested, duration),
        note=f"{verdict} (peak {peak_mb:.0f} MB, {headroom - 1:.0%} headroom).",
    )


class MonitorComparison(BaseModel):
    """Monthly cost of the monitor for N watched series, next to CloudWatch anomaly-detection alarms."""

    model_config = ConfigDict(frozen=True)

    series: int
    raw_metrics: int
    runs_per_month: float
    monitor_lambda_usd: float
    monitor_get_metric_data_usd: float
    monitor_scheduler_usd: float
    monitor_dynamodb_usd: float
    monitor_total_usd: float
    anomaly_alarms_usd: float


def monitor_vs_anomaly_alarms(
    *,
    series: int,
    raw_metrics: int,
    period_s: int = 300,
    avg_duration_ms: float,
    memory_mb: int,
    overlap_periods: int = 3,
    state_writes_per_run: float | None = None,
    prices: Prices = PRICES,
) -> MonitorComparison:
    """What the monitor costs per month (Lambda, GetMetricData, Scheduler, DynamoDB state) vs
    one CloudWatch anomaly-detection alarm per watched series (3 alarm metrics each).

    Each run requests every raw metric once (GetMetricData bills per metric requested, whatever the
    number of datapoints; the `overlap_periods` re-read is in the same request) and writes the state
    of each series once (1 WRU per item up to 1 KB; `state_writes_per_run` overrides).
    """
    runs = HOURS_PER_MONTH * 3600 / period_s
    del overlap_periods  # same request: no extra metrics requested
    gb_s = avg_duration_ms / 1000 * memory_mb / 1024 * runs
    lam = gb_s * prices.lambda_gb_s_arm64 + runs * prices.lambda_request
    gmd = raw_metrics * runs * prices.cw_get_metric_data_metric
    sched = runs * prices.scheduler_invocation
    writes = series if state_writes_per_run is None else state_writes_per_run
    ddb = writes * runs * prices.ddb_write_request_unit
    alarms = series * prices.cw_alarm_metric_month * prices.cw_anomaly_alarm_metrics
    return MonitorComparison(
        series=series,
        raw_metrics=raw_metrics,
        runs_per_month=runs,
        monitor_lambda_usd=lam,
        monitor_get_metric_data_usd=gmd,
        monitor_scheduler_usd=sched,
        monitor_dynamodb_usd=ddb,
        monitor_total_usd=lam + gmd + sched + ddb,
        anomaly_alarms_usd=alarms,
    )
