"""Monitor scale and cost: 1,000 watched metrics, 14 days of 5-minute history.

The real `MonitorService` (real detectors, alert policy, incidents, state codec) runs against an
in-process GetMetricData (`ops.fakes.FakeCloudWatch`, with the real per-call limits and paging)
and an in-memory table and notifier. It measures a training run (first run: 14 days fetched and
every detector fitted) and normal runs (only the new periods fetched and scored): wall time, peak
memory, GetMetricData calls and metrics requested, state size. From those it prints the monthly cost
per watched metric at a 5-minute cadence next to CloudWatch anomaly-detection alarms ($0.30 per
metric-month). Prices (us-east-1): GetMetricData $0.01 per 1,000 metrics requested; Lambda arm64
$0.0000133334 per GB-s at the monitor's configured memory and $0.20 per 1M requests; DynamoDB
on-demand $0.625 per 1M write and $0.125 per 1M read request units (state saved every run).

Usage: python -m benchmarks bench_monitor_scale [--metrics N] [--days D] [--normal-runs K]
"""

from __future__ import annotations

import argparse
import gc
import math
import resource
import statistics
import time
import tracemalloc

import numpy as np

from contract.resources import FunctionName, ResourceNames
from contract.topology import topology
from monitor.catalog import Catalog, MetricSpec, build_catalog
from monitor.service import MonitorService, RunResult
from monitor.settings import MonitorSettings
from monitor.source import CloudWatchMetricSource
from monitor.store import CHUNK_BYTES
from ops.fakes import FakeCloudWatch, InMemoryIncidentStore, RecordingNotifier

PERIOD = 300
RUNS_PER_MONTH = 30 * 24 * 3600 // PERIOD  # 8,640 at a 5-minute cadence
GMD_PER_METRIC = 0.01 / 1000
LAMBDA_GB_S = 0.0000133334
LAMBDA_REQUEST = 0.20 / 1e6
DDB_WRU = 0.625 / 1e6
DDB_RRU = 0.125 / 1e6
CW_ANOMALY_ALARM = 0.30


def scaled_names(target: int) -> ResourceNames:
    """Resource names whose catalog has about `target` raw metrics (a realistic mix)."""
    functions = max(2, target // 10)  # 6 metrics each
    tables = max(1, target * 3 // 100)  # 10 each
    queues = max(1, target * 3 // 100)  # 2 each + a DLQ
    fns = [FunctionName(key="cars-api", name="fn-cars-api", service="cars-api")]
    fns.append(FunctionName(key="telemetry-ingest", name="fn-ingest", service="telemetry-ingest"))
    fns += [FunctionName(key=f"fn{i}", name=f"fn-{i}", service=f"svc-{i % 20}") for i in range(functions - 2)]
    base = ResourceNames(
        stage="bench",
        namespace="Fleetscope",
        api_name="bench-api",
        api_stage="v1",
        functions=tuple(fns),
        tables=tuple(f"table-{i}" for i in range(tables)),
        queues=tuple(f"queue-{i}" for i in range(queues)),
        dlqs=tuple(f"dlq-{i}" for i in range(queues)),
        event_bus="bus",
    )
    raw = len(build_catalog(base, period_s=PERIOD).metrics)
    return base.model_copy(update={"event_rules": tuple(f"rule-{i}" for i in range(max(0, target - raw)))})


def synthesize(catalog: Catalog, fake: FakeCloudWatch, *, start: int, end: int, seed: int = 0) -> int:
    """Plausible data for every raw metric of the catalog; returns the number of datapoints stored."""
    rng = np.random.default_rng(seed)
    t = np.arange(start, end, PERIOD, dtype=np.int64)
    day = 1.0 + 0.5 * np.sin(2 * np.pi * (t % 86400) / 86400)
    total = 0
    for m in catalog.metrics:
        y = _series(m, rng, day)
        keep = ~np.isnan(y)
        fake.put_series(m.namespace, m.metric_name, m.dimensions, t[keep], y[keep])
        total += int(keep.sum())
    return total


def _series(m: MetricSpec, rng: np.random.Generator, day: np.ndarray) -> np.ndarray:
    n = len(day)
    if m.profile == "traffic":
        return rng.poisson(rng.uniform(5, 500) * day).astype(float)
    if m.profile in ("latency", "latency-tail"):
        return rng.lognormal(math.log(rng.uniform(20, 200)), 0.2, n) * (0.8 + 0.2 * day)
    if m.profile == "backlog":
        return rng.poisson(rng.uniform(0.5, 5), n).astype(float)
    counts = rng.poisson(0.05, n).astype(float)  # sparse counters: CloudWatch omits the zeros
    return np.where(counts > 0, counts, np.nan)


def _settings() -> MonitorSettings:
    return MonitorSettings.model_validate(
        {"MONITOR_TABLE_NAME": "bench", "ALERTS_TOPIC_NAME": "bench", "MONITOR_PERIOD_S": PERIOD}
    )


def _run(service: MonitorService, now: int, *, trace: bool) -> tuple[RunResult, float, float]:
    gc.collect()
    if trace:
        tracemalloc.start()
    started = time.perf_counter()
    result = service.run(now)
    elapsed = time.perf_counter() - started
    peak_mb = 0.0
    if trace:
        peak_mb = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    return result, elapsed, peak_mb


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="bench_monitor_scale")
    parser.add_argument("--metrics", type=int, default=1000)
    parser.add_argument("--days", type=float, default=14.0)
    parser.add_argument("--normal-runs", type=int, default=12)
    args = parser.parse_args(argv)

    names = scaled_names(args.metrics)
    catalog = build_catalog(names, period_s=PERIOD)
    settings = _settings()
    memory_gb = topology("local").monitor.memory_mb / 1024
    train_end = 1_767_225_600  # a Thursday, 00:00 UTC, aligned on the period
    fake = FakeCloudWatch()
    stored = synthesize(
        catalog,
        fake,
        start=train_end - int(args.days * 86400),
        end=train_end + (args.normal_runs + 2) * PERIOD,
    )
    print(
        f"catalog: {len(catalog.metrics)} raw metrics + {len(catalog.derived)} derived rates; "
        f"{stored:,} datapoints stored ({args.days:g} days at {PERIOD // 60} min)"
    )
    store = InMemoryIncidentStore()
    service = MonitorService(
        settings=settings.model_copy(update={"history_days": args.days}),
        catalog=catalog,
        source=CloudWatchMetricSource(fake),
        store=store,
        notifier=RecordingNotifier(),
        owner="bench",
        train_budget_s=3600.0,
    )

    # Training run: first run, every detector fitted on the full history.
    now = train_end + settings.settle_s
    train, train_s, _ = _run(service, now, trace=False)
    train_rss = _maxrss_mb()
    if train.errors:
        print(f"  training errors: {len(train.errors)} (first: {train.errors[0]})")

    # Normal runs: one new period each; the last one of a checkpoint cycle rewrites the detectors.
    normal: list[tuple[RunResult, float]] = []
    for k in range(1, args.normal_runs + 1):
        result, elapsed, _ = _run(service, now + k * PERIOD, trace=False)
        normal.append((result, elapsed))
    traced, _, peak_mb = _run(service, now + (args.normal_runs + 1) * PERIOD, trace=True)
    plain = [e for r, e in normal if not r.checkpoint]
    checkpoint = [e for r, e in normal if r.checkpoint]
    normal_s = statistics.median(plain or [e for _, e in normal])
    mean_s = statistics.fmean(e for _, e in normal)  # checkpoint runs included, as in a month
    last = normal[-1][0]
    online_bytes = max(store.state_writes[1:] or store.state_writes)  # largest replay backlog
    models_bytes = store.models_writes[-1]
    k_periods = service.settings.checkpoint_periods

    print()
    print(f"{'run':<12} {'wall s':>8} {'GMD calls':>10} {'metrics req':>12} {'series':>7} {'memory':>22}")
    print(
        f"{'training':<12} {train_s:8.1f} {train.fetch.calls:10d} {train.fetch.metrics_requested:12d} "
        f"{train.series_trained:7d} {f'max RSS {train_rss:,.0f} MB':>22}"
    )
    print(
        f"{'normal':<12} {normal_s:8.2f} {last.fetch.calls:10d} {last.fetch.metrics_requested:12d} "
        f"{traced.series_scored:7d} {f'traced peak {peak_mb:,.0f} MB':>22}"
    )
    if checkpoint:
        print(
            f"{'checkpoint':<12} {statistics.median(checkpoint):8.2f}  "
            "(a normal run that also saves the detectors)"
        )
    print(
        f"state: detector checkpoint {models_bytes / 1024:,.0f} KB "
        f"(every {k_periods} runs and after training), "
        f"online state <= {online_bytes / 1024:,.0f} KB (every run); "
        f"saving all detectors every run would write {models_bytes / 1024:,.0f} KB per run"
    )
    verdict = "OK" if normal_s < 30 else "OVER"
    print(
        f"normal run over {len(catalog.metrics)} metrics: {normal_s:.2f} s "
        f"(target < 30 s on one core: {verdict})"
    )

    # Monthly cost at a 5-minute cadence: normal runs + one retrain per day.
    n_metrics = len(catalog.metrics)
    gmd = GMD_PER_METRIC * (
        last.fetch.metrics_requested * RUNS_PER_MONTH + train.fetch.metrics_requested * 30
    )
    lam = LAMBDA_GB_S * memory_gb * (mean_s * RUNS_PER_MONTH + train_s * 30) + LAMBDA_REQUEST * RUNS_PER_MONTH
    ddb = _dynamodb_month(online_bytes, models_bytes, checkpoints=RUNS_PER_MONTH / k_periods + 30)
    ddb_naive = _dynamodb_month(models_bytes + online_bytes, 0, checkpoints=0)
    per_metric = (gmd + lam) / n_metrics
    per_metric_all = (gmd + lam + ddb) / n_metrics
    print()
    print(f"monthly cost per watched metric (5-min cadence, Lambda {memory_gb * 1024:.0f} MB arm64):")
    print(f"  GetMetricData         ${gmd / n_metrics:.4f}")
    print(f"  Lambda                ${lam / n_metrics:.4f}")
    print(
        f"  DynamoDB state r/w    ${ddb / n_metrics:.4f} "
        f"(saving every detector every run: ${ddb_naive / n_metrics:.4f})"
    )
    target = "OK" if per_metric_all < 0.10 else "OVER"
    print(
        f"  ours                  ${per_metric:.4f} (GetMetricData + Lambda), "
        f"${per_metric_all:.4f} with DynamoDB"
    )
    print(f"  baseline              ${CW_ANOMALY_ALARM:.4f} CloudWatch anomaly-detection alarm per metric")
    print(
        f"  ratio                 {per_metric_all / CW_ANOMALY_ALARM:.2f}x the baseline "
        f"(target < $0.10: {target})"
    )


def _units(size: int, unit: int) -> int:
    """Request units of writing/reading a blob split in <= 350 KB items (each item rounds up)."""
    chunks = max(1, math.ceil(size / CHUNK_BYTES))
    return math.ceil(size / unit) + chunks


def _dynamodb_month(online_bytes: int, models_bytes: int, *, checkpoints: float) -> float:
    """On-demand cost of the state: every run writes the online blob (+ head, lease) and reads both."""
    writes = RUNS_PER_MONTH * (_units(online_bytes, 1024) + 3) + checkpoints * _units(models_bytes, 1024)
    reads = RUNS_PER_MONTH * (
        _units(online_bytes, 4096) + (_units(models_bytes, 4096) if models_bytes else 0) + 1
    )
    return writes * DDB_WRU + reads * DDB_RRU


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
