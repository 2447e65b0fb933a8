"""Canary judge benchmark: false rollbacks and missed bad canaries, against CodeDeploy's static alarms.

Each pair is a generated canary deployment: per minute, a Poisson number of invocations split 90/10
(or 50/50) between the baseline and the canary version, each invocation with a duration (log-normal, median
40 ms, sigma 0.5, times a load factor shared by both versions in that minute, sd 10 %) and an error
(0.1 % on the baseline). A bad canary is slower by +20/50/100 % or errs 1/2/5 points more. The
traffic is the sandbox's: `sandbox.traffic.demand.DemandModel` (50 cars) averaged over a week, about
34 cars-api invocations a minute, and ten times that; and the e2e suite's canary (`fleetscope deploy
--canary-percent 50` judged every 30 s: `E2E_RATE` invocations per judged minute, split 50/50).

Ours: the rollout the sandbox's `fleetscope deploy` and the AWS judging loop run — the judge
(`monitor.canary.judge`) on every minute so far, then `monitor.canary.next_action` (5-minute window,
extended once while INCONCLUSIVE, the extension's end judged as the last look, then promoted: the
default). Rolled back = FAIL at some minute.
Baseline on the same pairs: the alarms the CDK app gives the deployment group today
(infra/constructs/canary.py): alias Errors >= 1 in a minute, or API 5XX >= 1 in a minute, over
CodeDeploy's 5-minute canary. The alias's Errors are those of both versions (the metric with
``Resource = function:alias``), and every function error is an API 5XX.

    python -m benchmarks bench_canary                  # 1,000 pairs per scenario and traffic
    python -m benchmarks bench_canary --pairs 200 --jobs 2
"""

from __future__ import annotations

import argparse
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

from monitor.canary import Action, Outcome, VersionMinute, is_last_look, judge, next_action
from sandbox.traffic.demand import DemandModel

WINDOW = 5
CANARY_SHARE = 0.10
BASE_ERROR = 0.001
MEDIAN_MS = 40.0
SIGMA = 0.5
# cars-api invocations per 30-s canary minute in the e2e suite (its clean canary, 2026-12-07: 244 in 10)
E2E_RATE = 24.0
LOAD_SD = 0.10
# (name, latency factor of the canary, extra error ratio of the canary)
SCENARIOS: tuple[tuple[str, float, float], ...] = (
    ("clean", 1.0, 0.0),
    ("+20% latency", 1.2, 0.0),
    ("+50% latency", 1.5, 0.0),
    ("+100% latency", 2.0, 0.0),
    ("+1 pt errors", 1.0, 0.01),
    ("+2 pt errors", 1.0, 0.02),
    ("+5 pt errors", 1.0, 0.05),
)


def sandbox_rate() -> float:
    """Mean cars-api invocations per minute of the sandbox's 50-car fleet over a week."""
    model = DemandModel()
    start = datetime(2026, 11, 30, tzinfo=UTC)
    rates = [model.api_requests_per_minute(start + timedelta(minutes=m)) for m in range(0, 7 * 1440, 5)]
    return float(np.mean(rates))


def _minute(rng: np.random.Generator, n: int, load: float, slow: float, error: float) -> VersionMinute:
    if n == 0:
        return VersionMinute(invocations=0)
    durations = MEDIAN_MS * load * slow * rng.lognormal(0.0, SIGMA, n)
    p50, p90, p99 = np.percentile(durations, [50, 90, 99])
    errors = int(rng.binomial(n, min(1.0, error)))
    return VersionMinute(
        invocations=n, errors=errors, p50_ms=float(p50), p90_ms=float(p90), p99_ms=float(p99)
    )


@dataclass(frozen=True)
class Result:
    scenario: str
    rate: float
    share: float
    ours_rollback: bool
    ours_inconclusive: bool  # promoted (or rolled back) on an INCONCLUSIVE verdict after the extension
    ours_minutes: int
    static_rollback: bool


def _run(task: tuple[str, float, float, float, float, int]) -> Result:
    scenario, slow, extra, rate, share, seed = task
    rng = np.random.default_rng(seed)
    baseline: list[VersionMinute] = []
    canary: list[VersionMinute] = []
    action = Action.CONTINUE
    verdict = None
    static = False
    while action == Action.CONTINUE:
        load = float(rng.lognormal(0.0, LOAD_SD))
        baseline.append(_minute(rng, int(rng.poisson(rate * (1 - share))), load, 1.0, BASE_ERROR))
        canary.append(_minute(rng, int(rng.poisson(rate * share)), load, slow, BASE_ERROR + extra))
        if len(canary) <= WINDOW and baseline[-1].errors + canary[-1].errors >= 1:
            static = True
        verdict = judge(baseline, canary, last_look=is_last_look(len(canary), window_minutes=WINDOW))
        action = next_action(verdict, window_minutes=WINDOW)
    for _ in range(len(canary), WINDOW):  # the static alarms watch CodeDeploy's whole 5 minutes
        load = float(rng.lognormal(0.0, LOAD_SD))
        b = _minute(rng, int(rng.poisson(rate * (1 - share))), load, 1.0, BASE_ERROR)
        c = _minute(rng, int(rng.poisson(rate * share)), load, slow, BASE_ERROR + extra)
        static = static or b.errors + c.errors >= 1
    assert verdict is not None
    return Result(
        scenario=scenario,
        rate=rate,
        share=share,
        ours_rollback=action == Action.ROLLBACK,
        ours_inconclusive=verdict.outcome == Outcome.INCONCLUSIVE,
        ours_minutes=len(canary),
        static_rollback=static,
    )


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks bench_canary")
    parser.add_argument(
        "--pairs", type=int, default=1000, help="generated deployments per scenario and traffic"
    )
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    base_rate = sandbox_rate()
    # (invocations per judged minute, canary share): the sandbox's fleet, ten times it, the e2e suite's
    # 50 % canary
    traffics = ((base_rate, CANARY_SHARE), (10 * base_rate, CANARY_SHARE), (E2E_RATE, 0.5))
    tasks = [
        (name, slow, extra, rate, share, 10_000 * r + 100 * s + i)
        for r, (rate, share) in enumerate(traffics)
        for s, (name, slow, extra) in enumerate(SCENARIOS)
        for i in range(args.pairs)
    ]
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        results = list(pool.map(_run, tasks, chunksize=50))
    print(
        f"{args.pairs} pairs per row; {WINDOW}-minute window judged every minute; "
        f"baseline errors {BASE_ERROR:.1%}; latency log-normal median {MEDIAN_MS:g} ms sigma {SIGMA:g}"
    )
    print("clean: rolled back = false rollback; bad: promoted = missed")
    head = (
        f"{'inv/minute':<12}{'share':<8}{'canary':<16}{'ours: rollback':>15}{'missed':>8}"
        f"{'inconcl.':>10}{'minutes':>9}{'static: rollback':>18}{'missed':>8}"
    )
    print(head)
    print("-" * len(head))
    for rate, share in traffics:
        for name, _, _ in SCENARIOS:
            rows = [x for x in results if (x.rate, x.share) == (rate, share) and x.scenario == name]
            n = len(rows)
            ours = sum(x.ours_rollback for x in rows) / n
            static = sum(x.static_rollback for x in rows) / n
            inconclusive = sum(x.ours_inconclusive for x in rows) / n
            minutes = float(np.mean([x.ours_minutes for x in rows]))
            missed = "" if name == "clean" else f"{1 - ours:.1%}"
            missed_static = "" if name == "clean" else f"{1 - static:.1%}"
            print(
                f"{rate:<12.0f}{share:<8.0%}{name:<16}{ours:>15.1%}{missed:>8}{inconclusive:>10.1%}{minutes:>9.1f}"
                f"{static:>18.1%}{missed_static:>8}"
            )
