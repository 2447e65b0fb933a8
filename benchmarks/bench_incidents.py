"""Serverless incident benchmark: detection rate, delay and false alarms on synthetic series.

Series come from `ops.synthetic` (error bursts, latency regressions after deploys, traffic drops
and spikes, throttling, queue backlogs, DLQ arrivals, cold-start storms), each with one injected
incident, major or minor (the same failure at a fraction of the magnitude), plus as many clean
series. Each series is watched as the Lambda would: the profile's detector is fitted on the history
before the scored period, then scores it, and the profile's `default_rule` decides alerts.
Baseline, in the same run: a rolling one-day mean +/- 3.5 sd band (the CloudWatch-static-band /
windowedGaussian way) with the same alert rule.

Detected: an alert opens inside the incident or within `GRACE` points after it. Delay: median points
from incident start to that alert. False alarms: alerts opened anywhere else (on every series, clean
or not), per series-day scored.

    python -m benchmarks bench_incidents            # or: python -m benchmarks.bench_incidents --seeds 8
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np

from monitor.detectors import ScoredPoints, build_detector
from monitor.policy import SeriesAlertState, default_rule
from ops.synthetic import KINDS, SyntheticSeries, generate

GRACE = 12
HISTORY_DAYS = 8.0  # covers a weekend, as the monitor's 14-day backfill does


@dataclass(frozen=True)
class Outcome:
    kind: str
    method: str
    severity: str  # "major", "minor" or "clean"
    incident: bool
    detected: bool
    delay: int | None
    false_alarms: int
    scored_days: float
    # Periods from the first point back inside the band after the incident ended to the RESOLVED
    # (None: no incident that ends within the series, or not detected; -1: never resolved).
    resolve_after: int | None = None


def fleetscope(series: SyntheticSeries, split: int) -> ScoredPoints:
    det = build_detector(series.profile, period_s=series.period_s)
    vol = series.volume
    det.fit(series.t[:split], series.y[:split], None if vol is None else vol[:split])
    return det.process(series.t[split:], series.y[split:], None if vol is None else vol[split:])


def rolling_gaussian(series: SyntheticSeries, split: int, window: int = 288, z: float = 3.5) -> ScoredPoints:
    y = series.y
    n = len(y)
    score = np.zeros(n - split)
    lower = np.full(n - split, np.nan)
    upper = np.full(n - split, np.nan)
    for k, i in enumerate(range(split, n)):
        hist = y[max(0, i - window) : i]
        hist = hist[~np.isnan(hist)]
        if len(hist) < 10:
            continue
        mu, sd = float(hist.mean()), max(float(hist.std()), 1e-9)
        lower[k], upper[k] = mu - z * sd, mu + z * sd
        score[k] = 1.0 if abs(y[i] - mu) > z * sd else 0.0
    return ScoredPoints(score, lower, upper)


METHODS: dict[str, Callable[[SyntheticSeries, int], ScoredPoints]] = {
    "fleetscope": fleetscope,
    "rolling-gaussian": rolling_gaussian,
}


def evaluate(series: SyntheticSeries, method: str, severity: str) -> Outcome:
    split = int(HISTORY_DAYS * 86400 / series.period_s)
    scored = METHODS[method](series, split)
    state = SeriesAlertState(default_rule(series.profile))
    opened, resolved = [], []
    for k, i in enumerate(range(split, len(series.y))):
        vol = None if series.volume is None else float(series.volume[i])
        d = state.step(
            score=float(scored.score[k]),
            value=float(series.y[i]),
            lower=float(scored.lower[k]),
            upper=float(scored.upper[k]),
            volume=vol,
        )
        if d.opened:
            opened.append(i)
        if d.resolved:
            resolved.append(i)
    detected, delay, resolve_after = False, None, None
    inside: set[int] = set()
    for start, end in series.incidents:
        hits = [i for i in opened if start <= i < end + GRACE]
        inside.update(hits)
        if hits:
            detected, delay = True, hits[0] - start
            if end < len(series.y):
                resolve_after = _resolve_after(series, scored, split, end, hits[0], resolved)
    false_alarms = len([i for i in opened if i not in inside])
    days = (len(series.y) - split) * series.period_s / 86400.0
    return Outcome(
        series.kind,
        method,
        severity,
        bool(series.incidents),
        detected,
        delay,
        false_alarms,
        days,
        resolve_after,
    )


def _resolve_after(
    series: SyntheticSeries, scored: ScoredPoints, split: int, end: int, first_hit: int, resolved: list[int]
) -> int:
    """Periods from the first point inside the band at or after `end` to the RESOLVED (-1: never)."""
    back = next(
        (
            i
            for i in range(max(end, split), len(series.y))
            if scored.lower[i - split] <= series.y[i] <= scored.upper[i - split]
        ),
        None,
    )
    done = next((i for i in resolved if i > first_hit), None)
    if back is None or done is None:
        return -1
    return max(0, done - back)


def _run(args: tuple[str, int, str, str]) -> Outcome:
    kind, seed, severity, method = args
    series = generate(
        kind,  # type: ignore[arg-type]
        seed=seed,
        incident=severity != "clean",
        days=HISTORY_DAYS + 4,
        incident_after_days=HISTORY_DAYS,
        severity="minor" if severity == "minor" else "major",
    )
    return evaluate(series, method, severity)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_incidents")
    parser.add_argument(
        "--seeds", type=int, default=6, help="series per kind and severity (major, minor, clean)"
    )
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    tasks = [
        (kind, 1000 + s, severity, method)
        for kind in KINDS
        for s in range(args.seeds)
        for severity in ("major", "minor", "clean")
        for method in METHODS
    ]
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        outcomes = list(pool.map(_run, tasks, chunksize=4))
    print(f"{len(KINDS)} kinds x {args.seeds} series each major / minor / clean, 5-min points,")
    print(f"{HISTORY_DAYS:g} days of history, then 4 days scored; detected = alert in incident + {GRACE} pts")
    head = (
        f"{'kind':<20}{'method':<18}{'major: det':>11}{'delay':>7}{'minor: det':>12}{'delay':>7}"
        f"{'FA/series-day':>15}{'resolve':>9}"
    )
    print(head)
    print("-" * len(head))
    for kind in (*KINDS, "ALL"):
        for method in METHODS:
            rows = [o for o in outcomes if o.method == method and (kind == "ALL" or o.kind == kind)]
            cells = []
            for severity in ("major", "minor"):
                with_inc = [o for o in rows if o.severity == severity]
                hit = [o for o in with_inc if o.detected]
                delays = [o.delay for o in hit if o.delay is not None]
                med = f"{statistics.median(delays):.0f}" if delays else "-"
                cells.append(f"{len(hit):>6}/{len(with_inc):<4}{med:>7}")
            fa_rate = sum(o.false_alarms for o in rows) / sum(o.scored_days for o in rows)
            after = [o.resolve_after for o in rows if o.resolve_after is not None]
            done = [a for a in after if a >= 0]
            res = f"{statistics.median(done):.0f}" if done else "-"
            if len(done) < len(after):
                res += f" ({len(after) - len(done)} open)"
            print(f"{kind:<20}{method:<18}{cells[0]:>18}{cells[1]:>19}{fa_rate:>15.3f}{res:>9}")
    print(
        "resolve = median periods from the first point back inside the band after an incident ends to"
        " the series' RESOLVED (incidents that end; 'open' = never resolved); an incident adds its"
        " hold-down, MONITOR_COOLDOWN_S (two periods by default)"
    )


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
