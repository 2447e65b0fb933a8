"""A quiet week on the production path: false incidents of the sandbox's catalog with no fault injected.

What runs: the real `MonitorService` (detectors, alert policy, incident grouping, state codec,
outbox) with the sandbox's catalog (every watched series of `build_catalog(local topology,
period_s=60)`) and the sandbox's monitor settings (`sandbox/app.py`: MONITOR_PERIOD_S=60,
MONITOR_SETTLE_S=10, MONITOR_HISTORY_DAYS=2; everything else at its default), against an in-process
GetMetricData (`ops.fakes.FakeCloudWatch`), an in-memory table and notifier, on an injected clock.

The data is what the sandbox writes: its own backfill (`backfill_history`, the history model over the
demand model, seed 7, default `HistoryProfile`, 50 cars) captured instead of sent to CloudWatch:
14 days of training history (5-minute periods, the last 48 hours at 1 minute, as `run_backfill`
writes them; with MONITOR_HISTORY_DAYS=2 the monitor trains on those 48 hours at 1 minute only),
then 7 simulated days at 1-minute periods (the same backfill, seed 8). Latencies and durations are
written as Values/Counts distributions; each watched percentile is stored as the nearest-rank
percentile of its period's distribution (as CloudWatch answers pNN); counters and gauges as written.
Nothing is injected, so every OPEN is a false incident.

The monitor runs every `--every` simulated minutes (each run scores every new period; the sandbox
runs it every minute). `--check-hours` first runs that many hours with a run every minute and with a
run every `--every` minutes and compares every scored point (score, band, alert decision) and every
transition: the detectors and the policy are causal, so they must agree.

Baseline (rolling Gaussian), on the same fetched series: per series, the mean and standard deviation
of the previous day (1,440 points, at least 60 present), |z| > 3.5 counts, 2 of the last 3 present
points counting opens an alert; the rest is the series' own rule (direction, rate volume gate,
clear points and cooldown) through the same `SeriesAlertState`, and alerts are grouped into
incidents by the same `IncidentTracker` (catalog group, same hold-down).

Usage: python -m benchmarks bench_quiet_week [--days 7] [--every 15] [--check-hours 3] [--list-baseline]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from contract.resources import ResourceNames
from contract.topology import Topology, topology
from monitor.catalog import Catalog, build_catalog
from monitor.incidents import IncidentTracker, PointSignal
from monitor.policy import AlertRule, SeriesAlertState
from monitor.service import MonitorService, rule_for
from monitor.settings import MonitorSettings
from monitor.source import CloudWatchMetricSource, Series, derive
from ops.fakes import FakeCloudWatch, InMemoryIncidentStore, RecordingNotifier

# The sandbox's history model: the only import of sandbox code (fix here when the files move).
from sandbox.history.backfill import backfill_history, written_dimensions  # isort: skip
from sandbox.traffic.demand import DemandModel  # isort: skip

PERIOD = 60
TRAIN_DAYS = 14.0
FINE_HOURS = 48.0  # run_backfill's 1-minute tail
HISTORY_SEED = 7  # run_backfill's seed
WEEK_SEED = 8
FLEET_SIZE = 50  # the sandbox's fleet
WEEK_START = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday, 00:00 UTC
Z_LIMIT = 3.5
BASELINE_WINDOW = 1440  # one day of 1-minute points
BASELINE_MIN_POINTS = 60
SAME_SCORE = 1e-6  # relative: a state restored from checkpoint + replay vs kept differs by rounding


def sandbox_settings() -> MonitorSettings:
    """The monitor's settings as the sandbox sets them (`sandbox/app.py`)."""
    return MonitorSettings.model_validate(
        {
            "MONITOR_TABLE_NAME": "quiet-week",
            "ALERTS_TOPIC_NAME": "quiet-week",
            "MONITOR_PERIOD_S": PERIOD,
            "MONITOR_SETTLE_S": 10,
            "MONITOR_HISTORY_DAYS": 2,
        }
    )


# -- the data ------------------------------------------------------------------------------------


@dataclass
class CapturedMetrics:
    """A `put_metric_data` sink: the datums the backfill would have sent to CloudWatch."""

    datums: dict[tuple[str, str, tuple[tuple[str, str], ...]], list[dict[str, Any]]] = field(
        default_factory=lambda: defaultdict(list)
    )

    def put_metric_data(self, *, Namespace: str, MetricData: list[dict[str, Any]]) -> None:  # noqa: N803
        for d in MetricData:
            dims = tuple(sorted((x["Name"], x["Value"]) for x in d["Dimensions"]))
            self.datums[(Namespace, d["MetricName"], dims)].append(d)


def nearest_rank(values: list[float], counts: list[float], q: float) -> float:
    """The nearest-rank q-th percentile of a (value, count) distribution, as CloudWatch answers pNN."""
    order = np.argsort(values)
    cum = np.cumsum(np.asarray(counts, dtype=np.float64)[order])
    return float(np.asarray(values, dtype=np.float64)[order][np.searchsorted(cum, q / 100.0 * cum[-1])])


def load_sandbox_data(fake: FakeCloudWatch, topo: Topology, catalog: Catalog, *, days: float) -> int:
    """The sandbox's backfill for 14 days before `WEEK_START` and `days` after, into `fake`.

    Returns the number of datapoints stored.
    """
    sink = CapturedMetrics()
    demand = DemandModel(fleet_size=FLEET_SIZE)
    with tempfile.TemporaryDirectory() as home:  # the backfill's marker file goes here
        backfill_history(
            topo, demand=demand, end=WEEK_START, days=TRAIN_DAYS, fine_hours=FINE_HOURS,
            seed=HISTORY_SEED, cloudwatch=sink, home=home, workers=1,
        )  # fmt: skip
        backfill_history(
            topo, demand=demand, end=WEEK_START + timedelta(days=days), days=days,
            fine_hours=days * 24, seed=WEEK_SEED, cloudwatch=sink, home=home, workers=1,
        )  # fmt: skip
    stored = 0
    for spec in catalog.metrics:
        # as written: a series read for `each` version is the history's version 1
        dims = {d["Name"]: d["Value"] for d in written_dimensions(spec)}
        key = (spec.namespace, spec.metric_name, tuple(sorted(dims.items())))
        datums = sink.datums.get(key, [])
        if not datums:
            continue  # never written: a counter that stayed at zero (the catalog fills zeros)
        t = [int(d["Timestamp"].timestamp()) for d in datums]
        if "Values" in datums[0]:
            if not spec.statistic.startswith("p"):
                raise ValueError(f"{spec.id}: only percentiles of distributions are modelled")
            q = float(spec.statistic[1:])
            y = [nearest_rank(d["Values"], d["Counts"], q) for d in datums]
            fake.put_series(spec.namespace, spec.metric_name, dims, t, y, stat=spec.statistic)
        else:
            fake.put_series(spec.namespace, spec.metric_name, dims, t, [d["Value"] for d in datums])
        stored += len(t)
    return stored


# -- the monitor on a schedule -------------------------------------------------------------------


@dataclass
class WeekRun:
    transitions: list[dict[str, Any]]
    store: InMemoryIncidentStore
    alert_opens: Counter[str]
    points: dict[tuple[str, int], tuple[float, float, float, bool]]  # only when recorded
    runs: int
    run_seconds: list[float]


def run_monitor(
    fake: FakeCloudWatch,
    catalog: Catalog,
    settings: MonitorSettings,
    *,
    minutes: int,
    every: int,
    record_points: bool = False,
) -> WeekRun:
    """The monitor from `WEEK_START` (its first run trains) for `minutes`, a run every `every` minutes."""
    store = InMemoryIncidentStore()
    service = MonitorService(
        settings=settings,
        catalog=catalog,
        source=CloudWatchMetricSource(fake),
        store=store,
        notifier=RecordingNotifier(),
        owner="quiet-week",
        train_budget_s=settings.train_budget_s,
    )
    out = WeekRun([], store, Counter(), {}, 0, [])
    score_one = service._score_one  # observed, not changed: the signals each scored point produced

    def observed(*args: Any, **kwargs: Any) -> list[PointSignal]:
        signals = score_one(*args, **kwargs)
        for s in signals:
            out.alert_opens[s.series_id] += s.opened
            if record_points:
                out.points[(s.series_id, s.t)] = (s.score, s.lower, s.upper, s.firing)
        return signals

    setattr(service, "_score_one", observed)  # noqa: B010  (mypy: no assignment to a method)
    first = int(WEEK_START.timestamp()) + settings.settle_s  # scores nothing, trains on the history
    for now in range(first, first + minutes * PERIOD + 1, every * PERIOD):
        started = time.perf_counter()
        result = service.run(now)
        out.run_seconds.append(time.perf_counter() - started)
        if result.errors:
            raise RuntimeError(f"monitor run at {now} failed: {result.errors[:3]}")
        out.transitions += result.transitions
        out.runs += 1
    return out


def relative_diff(a: Mapping[Any, tuple[float, ...]], b: Mapping[Any, tuple[float, ...]]) -> float:
    """The largest |x - y| / max(1, |x|, |y|) over the points both hold (NaN = NaN)."""
    worst = 0.0
    for k in a.keys() & b.keys():
        for x, y in zip(a[k], b[k], strict=True):
            if not (np.isnan(x) and np.isnan(y)):
                worst = max(worst, abs(x - y) / max(1.0, abs(x), abs(y)))
    return worst


def check_line(one: WeekRun, many: WeekRun, *, every: int, week_minutes: int) -> str:
    """One run every minute vs one every `every` minutes over the same span, as one line."""
    diff = relative_diff(
        {k: v[:3] for k, v in one.points.items()}, {k: v[:3] for k, v in many.points.items()}
    )
    keys = one.points.keys() == many.points.keys()
    decisions = keys and all(one.points[k][3] == many.points[k][3] for k in one.points)
    transitions = one.transitions == many.transitions
    same = keys and diff <= SAME_SCORE and decisions and transitions
    per_run = float(np.median(one.run_seconds))
    return (
        f"causality check, first {(one.runs - 1) / 60:g} h: a run every minute ({one.runs} runs) vs every "
        f"{every} min ({many.runs} runs): {len(one.points):,} scored points, largest relative "
        f"difference of score/lower/upper {diff:.1e}, alert decisions "
        f"{'equal' if decisions else 'DIFFER'}, transitions {'equal' if transitions else 'DIFFER'} "
        f"({len(one.transitions)}): {'the same' if same else 'NOT THE SAME'}; a run every minute takes "
        f"{per_run * 1000:.0f} ms (median), {per_run * week_minutes / 60:.0f} min for the whole span"
    )


def count_opens(transitions: Iterable[Mapping[str, Any]]) -> int:
    """False incidents: OPEN transitions (nothing was injected, so every one is false)."""
    return sum(1 for t in transitions if t["kind"] == "OPEN")


# -- the baseline ----------------------------------------------------------------------------------


def rolling_z(y: np.ndarray, window: int = BASELINE_WINDOW) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(z, mean, sd) of each point against the previous `window` points (NaN-aware, causal)."""
    present = ~np.isnan(y)
    x = np.where(present, y, 0.0)
    c0 = np.concatenate(([0.0], np.cumsum(present)))
    c1 = np.concatenate(([0.0], np.cumsum(x)))
    c2 = np.concatenate(([0.0], np.cumsum(x * x)))
    i = np.arange(len(y))
    lo = np.maximum(i - window, 0)
    n, s1, s2 = c0[i] - c0[lo], c1[i] - c1[lo], c2[i] - c2[lo]
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.where(n >= BASELINE_MIN_POINTS, s1 / n, np.nan)
        sd = np.sqrt(np.maximum(s2 / n - mean * mean, 0.0))
        sd = np.where(sd < 1e-9 * np.maximum(1.0, np.abs(mean)), 0.0, sd)  # cumsum rounding
        z = np.where(sd > 0, (y - mean) / sd, np.where(y == mean, 0.0, np.inf * np.sign(y - mean)))
    return z, mean, sd


@dataclass
class BaselineResult:
    transitions: list[dict[str, Any]]
    alert_opens: Counter[str]
    incidents: list[dict[str, Any]]


def run_baseline(
    series: Mapping[str, Series], catalog: Catalog, settings: MonitorSettings, *, start: int
) -> BaselineResult:
    """The rolling-Gaussian baseline over `series`, alerting from `start` on (see the module docstring)."""
    signals: list[PointSignal] = []
    opens: Counter[str] = Counter()
    for spec in catalog.series:
        data = series.get(spec.id)
        if data is None:
            continue
        z, mean, sd = rolling_z(data.y)
        rule = rule_for(spec)
        state = SeriesAlertState(
            AlertRule(0.5, 2, 3, rule.direction, rule.min_volume, rule.cooldown_points, rule.clear_points)
        )
        for i in np.flatnonzero(data.t >= start):
            value, zi = float(data.y[i]), float(z[i])
            score = float("nan") if np.isnan(zi) else float(abs(zi) > Z_LIMIT)
            lower, upper = mean[i] - Z_LIMIT * sd[i], mean[i] + Z_LIMIT * sd[i]
            volume = None if data.volume is None else float(data.volume[i])
            d = state.step(score=score, value=value, lower=lower, upper=upper, volume=volume)
            if np.isnan(value) and not d.firing:
                continue
            opens[spec.id] += d.opened
            signals.append(
                PointSignal(
                    series_id=spec.id, resource=spec.resource, group=spec.group, severity=spec.severity,
                    t=int(data.t[i]), value=value, lower=float(lower), upper=float(upper), score=score,
                    firing=d.firing, opened=d.opened, resolved=d.resolved,
                )
            )  # fmt: skip
    tracker = IncidentTracker(cooldown_s=settings.hold_down_s)
    until = max((int(s.t[-1]) for s in series.values() if len(s.t)), default=start)
    transitions = tracker.process(signals, until=until)
    last: dict[str, dict[str, Any]] = {}
    for tr in transitions:
        last[tr.incident_id] = tr.incident.model_dump(mode="json")
    rows = [{"kind": tr.kind, "incident_id": tr.incident_id, "at": tr.at} for tr in transitions]
    return BaselineResult(rows, opens, list(last.values()))


# -- printing ------------------------------------------------------------------------------------


def _when(t: int | None) -> str:
    return "-" if t is None else datetime.fromtimestamp(t, tz=UTC).strftime("%a %H:%M")


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.4g}"


def print_incidents(title: str, incidents: Iterable[Mapping[str, Any]], *, detail: bool = False) -> None:
    """One line per incident: when, group, the series that opened it (+ those that joined);
    `detail` adds each member's peak score and its last point in alert (value, band)."""
    rows = sorted(incidents, key=lambda i: (i["opened_at"], i["resource"]))
    print(f"{title}: {len(rows)}")
    for inc in rows:
        members = list(inc["members"])
        print(
            f"  {_when(inc['opened_at'])} -> {_when(inc.get('resolved_at'))}  {inc['resource']:<28} "
            f"opened by {members[0]}" + (f" (+ {', '.join(members[1:])})" if members[1:] else "")
        )
        for sid, m in inc["members"].items() if detail else ():
            print(
                f"      {sid}: peak score {m['peak_score']:.2f}; last point in alert "
                f"{_when(m['last_anomalous_at'])}: {_num(m['value'])}, band "
                f"[{_num(m['lower'])}, {_num(m['upper'])}]"
            )


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="bench_quiet_week")
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--every", type=int, default=15, help="simulated minutes between monitor runs")
    parser.add_argument("--check-hours", type=float, default=3.0, help="0: skip the every-minute check")
    parser.add_argument("--list-baseline", action="store_true", help="list every baseline incident")
    args = parser.parse_args(argv)
    started = time.perf_counter()

    topo = topology("local")
    catalog = build_catalog(ResourceNames.from_topology(topo), period_s=PERIOD)
    settings = sandbox_settings()
    fake = FakeCloudWatch()
    stored = load_sandbox_data(fake, topo, catalog, days=args.days)
    minutes = int(args.days * 1440)
    n_series = len(catalog.series)
    print(
        f"catalog: {len(catalog.metrics)} raw + {len(catalog.derived)} derived = {n_series} series; "
        f"{stored:,} datapoints from the sandbox backfill (14 days of history, 5-min with the last "
        f"48 h at 1 min; then {args.days:g} days at 1 min), no fault; monitor as the sandbox sets it: "
        f"period {settings.period_s} s, settle {settings.settle_s} s, "
        f"history {settings.history_days:g} days, "
        f"hold-down {settings.hold_down_s} s; data in {time.perf_counter() - started:.1f}s"
    )

    if args.check_hours > 0 and args.every > 1:
        check_min = int(args.check_hours * 60) // args.every * args.every
        one = run_monitor(fake, catalog, settings, minutes=check_min, every=1, record_points=True)
        many = run_monitor(fake, catalog, settings, minutes=check_min, every=args.every, record_points=True)
        print(check_line(one, many, every=args.every, week_minutes=minutes))

    week = run_monitor(fake, catalog, settings, minutes=minutes, every=args.every)
    week_start = int(WEEK_START.timestamp())
    raw = CloudWatchMetricSource(fake).fetch(
        list(catalog.metrics), start=week_start - BASELINE_WINDOW * PERIOD, end=week_start + minutes * PERIOD,
        period_s=PERIOD,
    )  # fmt: skip
    baseline = run_baseline(raw.series | derive(catalog, raw.series), catalog, settings, start=week_start)

    ours_n, base_n = count_opens(week.transitions), count_opens(baseline.transitions)
    series_days = n_series * args.days
    print(
        f"monitor: {week.runs} runs (every {args.every} simulated min), "
        f"median {np.median(week.run_seconds):.2f} s, total {sum(week.run_seconds):.0f} s"
    )
    print()
    print(f"{'':<22} {'incidents':>10} {'per week':>9} {'per series-day':>15} {'series alerts':>14}")
    for name, n, opens in (
        ("ours", ours_n, week.alert_opens),
        ("rolling Gaussian", base_n, baseline.alert_opens),
    ):
        alerts = sum(opens.values())
        print(f"{name:<22} {n:>10} {n * 7 / args.days:>9.1f} {n / series_days:>15.4f} {alerts:>14}")
    print(f"(target: <= 1 false incident per week over the {n_series} series)")
    print()
    print_incidents("ours, false incidents", week.store.incidents.values(), detail=True)
    print(
        "ours, series alert opens: "
        + (", ".join(f"{k} {v}" for k, v in week.alert_opens.most_common() if v) or "none")
    )
    print()
    if args.list_baseline:
        print_incidents("rolling Gaussian, false incidents", baseline.incidents)
    else:
        openers = Counter(f"{i['resource']} by {next(iter(i['members']))}" for i in baseline.incidents)
        print("rolling Gaussian, false incidents by group and opening series (--list-baseline lists them):")
        for key, n in openers.most_common():
            print(f"  {n:>3}  {key}")
    print(
        "rolling Gaussian, series alert opens: "
        + (", ".join(f"{k} {v}" for k, v in baseline.alert_opens.most_common() if v) or "none")
    )
    print(f"\nwall time {time.perf_counter() - started:.1f}s (target < 600 s)")


__all__ = ["count_opens", "load_sandbox_data", "rolling_z", "run_baseline", "run_monitor", "sandbox_settings"]


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
