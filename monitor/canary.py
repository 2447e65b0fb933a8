"""Canary judge: compares a Lambda version under canary with its baseline over the same minutes.

The approach of Kayenta (Netflix/Google automated canary analysis), kept small: the judge is a pure
function of two per-minute metric series (baseline version, canary version, minute for minute, as
AWS/Lambda publishes them per ``ExecutedVersion``) and a `CanaryJudgeConfig`; it returns PASS, FAIL
or INCONCLUSIVE with a reason per metric. Fetching the metrics and acting on the verdict (CodeDeploy
alarm, sandbox rollback) live outside it.

Per metric, over every minute judged so far:

- **error ratio** (and throttle ratio): errors / invocations summed over the minutes, canary against
  baseline, by Fisher's exact one-sided two-proportion test. FAIL when the canary is worse with
  p < ``error_alpha`` *and* by at least ``error_min_increase`` (so a huge fleet does not roll back over
  +0.1 point). PASS only when the canary's one-sided (1 - ``pass_alpha``) upper bound (Clopper-Pearson)
  is below the baseline ratio + ``error_floor``: the volume gate. 17 clean invocations cannot rule
  out +2 points (about 150 can), so too little canary traffic is INCONCLUSIVE, never a silent PASS.
  Throttles are a guard: they can FAIL the canary, but a lack of volume does not make them
  inconclusive (throttling is mostly account concurrency, not the version).
- **duration p50 / p90 / p99**: the per-minute percentiles of each version (minutes where both have
  one), by a one-sided Mann-Whitney U rank test (canary slower), plus an effect-size floor: FAIL only
  when p < ``latency_alpha`` *and* the median of the canary's per-minute values is at least
  ``latency_floor`` above the baseline's (a 3 % slower p50 is not a failure, +50 % is). One slow
  minute moves a rank test little. Fewer than ``min_minutes`` minutes or ``min_invocations`` canary
  invocations: INCONCLUSIVE. A tail percentile q counts only the minutes in which both versions
  served at least 2 / (1 - q) invocations, two of them beyond it (`MINUTE_INVOCATIONS`: 20 for p90,
  200 for p99): the "p99" of a dozen invocations is their slowest one, and comparing such maxima minute
  after minute rolled back clean canaries on thin traffic (`bench_canary`'s e2e row).
  A tail percentile with fewer than ``min_minutes`` such minutes is not judged (it passes, and says
  so); the error ratio's volume gate is what keeps thin traffic from a silent PASS.

The verdict is FAIL when any metric fails, else INCONCLUSIVE when any is inconclusive, else PASS.

`next_action` is the rollout policy on top, also pure: FAIL rolls back at once; at the end of the
window PASS promotes; INCONCLUSIVE extends the window once (as long again), and is then promoted or
rolled back as ``on_inconclusive`` says (default: promote, with the INCONCLUSIVE verdict reported).

The last look (``judge(..., last_look=True)`` at the end of the extension, `is_last_look`): no later
verdict will bring more evidence, so an error ratio still INCONCLUSIVE is decided. It FAILs when
Fisher's p < ``last_look_error_alpha`` (0.05), the increase reaches ``error_min_increase`` and the
canary's errors are at least ``last_look_ratio`` (3) times as likely under "baseline + error_floor"
as under "baseline" — the two hypotheses the volume gate separates. The p-value alone would fail a
clean canary's 2 errors in 340 against 1 in 3,030 (p = 0.03, yet less than twice as likely +2
points worse); the likelihood ratio alone would fail 1 error in 34 against none in 306 (p = 0.1).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from scipy import stats


class Outcome(StrEnum):
    PASS = "PASS"
    FAIL = "FAIL"
    INCONCLUSIVE = "INCONCLUSIVE"


class Action(StrEnum):
    CONTINUE = "CONTINUE"
    PROMOTE = "PROMOTE"
    ROLLBACK = "ROLLBACK"


class VersionMinute(BaseModel):
    """One version's AWS/Lambda metrics for one minute (percentiles None when it had no invocation)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    invocations: int = Field(ge=0)
    errors: int = Field(default=0, ge=0)
    throttles: int = Field(default=0, ge=0)
    p50_ms: float | None = Field(default=None, ge=0)
    p90_ms: float | None = Field(default=None, ge=0)
    p99_ms: float | None = Field(default=None, ge=0)


class CanaryJudgeConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    error_alpha: float = Field(default=0.01, gt=0, lt=1)  # one-sided significance of an error FAIL
    latency_alpha: float = Field(default=0.005, gt=0, lt=1)  # one-sided significance of a latency FAIL
    pass_alpha: float = Field(default=0.01, gt=0, lt=1)  # one-sided error of the PASS upper bound
    error_floor: float = Field(default=0.02, gt=0, lt=1)  # increase in error ratio a PASS rules out
    error_min_increase: float = Field(default=0.005, ge=0, lt=1)  # smallest increase that can FAIL
    latency_floor: float = Field(default=0.25, ge=0)  # relative slow-down of the median that can FAIL
    min_minutes: int = Field(default=3, ge=1)
    min_invocations: int = Field(default=10, ge=1)
    # At the last look (the extended window's end) an error ratio still INCONCLUSIVE is decided: FAIL
    # at this one-sided significance (and at least error_min_increase) when the canary's errors are at
    # least `last_look_ratio` times as likely under "baseline + error_floor" as under "baseline" (3:
    # "substantial" evidence on Jeffreys' scale); else it stays INCONCLUSIVE.
    last_look_error_alpha: float = Field(default=0.05, gt=0, lt=1)
    last_look_ratio: float = Field(default=3.0, ge=1)


class MetricVerdict(BaseModel):
    model_config = ConfigDict(frozen=True)

    metric: str
    outcome: Outcome
    reason: str
    baseline: float | None = None  # error ratio, or median of the per-minute percentiles (ms)
    canary: float | None = None
    p_value: float | None = None


class CanaryVerdict(BaseModel):
    model_config = ConfigDict(frozen=True)

    outcome: Outcome
    minutes: int
    canary_invocations: int
    baseline_invocations: int
    metrics: tuple[MetricVerdict, ...]

    @property
    def reasons(self) -> list[str]:
        """The reasons of the metrics that decided the outcome (all of them for a PASS)."""
        deciding = [m for m in self.metrics if m.outcome == self.outcome] or list(self.metrics)
        return [f"{m.metric}: {m.reason}" for m in deciding]


LATENCY_METRICS: tuple[Literal["p50_ms", "p90_ms", "p99_ms"], ...] = ("p50_ms", "p90_ms", "p99_ms")
# Invocations both versions need in a minute for its percentile to count: 2 / (1 - q) for the tails.
MINUTE_INVOCATIONS = {"p50_ms": 1, "p90_ms": 20, "p99_ms": 200}


def judge(
    baseline: Sequence[VersionMinute],
    canary: Sequence[VersionMinute],
    config: CanaryJudgeConfig | None = None,
    *,
    last_look: bool = False,
) -> CanaryVerdict:
    """Judges the canary against the baseline over the same minutes (index i is the same minute).

    ``last_look``: no later verdict will come (`is_last_look`), so an error ratio that is still
    INCONCLUSIVE is decided at ``last_look_error_alpha`` rather than left to the default action.
    """
    if len(baseline) != len(canary):
        raise ValueError(f"baseline has {len(baseline)} minutes, canary {len(canary)}: give the same minutes")
    cfg = config or CanaryJudgeConfig()
    n_canary = sum(m.invocations for m in canary)
    n_base = sum(m.invocations for m in baseline)
    metrics = [
        _ratio(
            "error_ratio",
            sum(m.errors for m in canary),
            n_canary,
            sum(m.errors for m in baseline),
            n_base,
            cfg,
            guard=False,
            last_look=last_look,
        ),
        _ratio(
            "throttle_ratio",  # of the attempts: a throttled invocation is not an Invocation
            sum(m.throttles for m in canary),
            n_canary + sum(m.throttles for m in canary),
            sum(m.throttles for m in baseline),
            n_base + sum(m.throttles for m in baseline),
            cfg,
            guard=True,
        ),
    ]
    for name in LATENCY_METRICS:
        least = MINUTE_INVOCATIONS[name]
        pairs = [
            (b_value, c_value)
            for b, c in zip(baseline, canary, strict=True)
            if (b_value := getattr(b, name)) is not None
            and (c_value := getattr(c, name)) is not None
            and min(b.invocations, c.invocations) >= least
        ]
        # a tail percentile is "not judged" only once there are enough minutes for the p50 to be
        tail = name != "p50_ms" and len(canary) >= cfg.min_minutes
        metrics.append(
            _latency(name.removesuffix("_ms"), pairs, n_canary, cfg, unjudged_below=least if tail else None)
        )
    outcomes = {m.outcome for m in metrics}
    outcome = (
        Outcome.FAIL
        if Outcome.FAIL in outcomes
        else Outcome.INCONCLUSIVE
        if Outcome.INCONCLUSIVE in outcomes
        else Outcome.PASS
    )
    return CanaryVerdict(
        outcome=outcome,
        minutes=len(canary),
        canary_invocations=n_canary,
        baseline_invocations=n_base,
        metrics=tuple(metrics),
    )


def _ratio(
    name: str,
    e_c: int,
    n_c: int,
    e_b: int,
    n_b: int,
    cfg: CanaryJudgeConfig,
    *,
    guard: bool,
    last_look: bool = False,
) -> MetricVerdict:
    if e_c > n_c or e_b > n_b:
        raise ValueError(f"{name}: more events than invocations ({e_c}/{n_c}, {e_b}/{n_b})")
    if n_c == 0 or n_b == 0:
        outcome = Outcome.PASS if guard else Outcome.INCONCLUSIVE
        return MetricVerdict(metric=name, outcome=outcome, reason="no invocations to compare")
    r_c, r_b = e_c / n_c, e_b / n_b
    common = {"metric": name, "baseline": r_b, "canary": r_c}
    seen = f"{e_c}/{n_c} = {r_c:.2%} on the canary against {e_b}/{n_b} = {r_b:.2%} on the baseline"
    p = 1.0
    if e_c > 0:
        p = float(stats.fisher_exact([[e_c, n_c - e_c], [e_b, n_b - e_b]], alternative="greater").pvalue)
    if p < cfg.error_alpha and r_c - r_b >= cfg.error_min_increase:
        return MetricVerdict(outcome=Outcome.FAIL, reason=f"{seen} (p = {p:.2g})", p_value=p, **common)
    if guard:
        return MetricVerdict(outcome=Outcome.PASS, reason=seen, p_value=p, **common)
    upper = float(stats.binomtest(e_c, n_c).proportion_ci(confidence_level=1 - 2 * cfg.pass_alpha).high)
    if upper < r_b + cfg.error_floor:
        reason = f"{seen}; at most {upper:.2%} on the canary ({1 - cfg.pass_alpha:.0%} bound)"
        return MetricVerdict(outcome=Outcome.PASS, reason=reason, p_value=p, **common)
    if (
        last_look
        and p < cfg.last_look_error_alpha
        and r_c - r_b >= cfg.error_min_increase
        and (llr := _floor_log_likelihood_ratio(e_c, n_c, e_b, n_b, cfg)) >= math.log(cfg.last_look_ratio)
    ):
        reason = (
            f"{seen} (p = {p:.2g}; still inconclusive at the end of the extended window, so decided at "
            f"p < {cfg.last_look_error_alpha:g}: {math.exp(min(llr, 50.0)):.3g} times as likely if the "
            f"canary errs {cfg.error_floor:.0%} more)"
        )
        return MetricVerdict(outcome=Outcome.FAIL, reason=reason, p_value=p, **common)
    reason = (
        f"{seen}: too little canary traffic to rule out +{cfg.error_floor:.0%} "
        f"(could be {upper:.2%}; about {_invocations_to_rule_out(r_b, cfg)} canary invocations needed)"
    )
    return MetricVerdict(outcome=Outcome.INCONCLUSIVE, reason=reason, p_value=p, **common)


def _floor_log_likelihood_ratio(e_c: int, n_c: int, e_b: int, n_b: int, cfg: CanaryJudgeConfig) -> float:
    """log P(canary's errors | ratio = baseline + floor) / P(... | ratio = baseline): the two hypotheses
    the volume gate separates. The baseline ratio is smoothed ((e + 1/2) / (n + 1)) so that a baseline
    without errors does not make one canary error infinitely telling."""
    p0 = (e_b + 0.5) / (n_b + 1)
    p1 = min(0.999, p0 + cfg.error_floor)
    return e_c * math.log(p1 / p0) + (n_c - e_c) * math.log((1 - p1) / (1 - p0))


def _invocations_to_rule_out(r_b: float, cfg: CanaryJudgeConfig) -> int:
    """Clean canary invocations (no error) whose upper bound stays under baseline + floor."""
    return math.ceil(math.log(cfg.pass_alpha) / math.log(1 - min(0.999, r_b + cfg.error_floor)))


def _latency(
    name: str,
    pairs: list[tuple[float, float]],
    n_c: int,
    cfg: CanaryJudgeConfig,
    *,
    unjudged_below: int | None = None,
) -> MetricVerdict:
    """`pairs`: the minutes that count. With ``unjudged_below`` (the invocations a minute needs for a
    tail percentile to count), too few such minutes pass as "not judged" instead of INCONCLUSIVE."""
    metric = f"duration_{name}"
    if unjudged_below is not None and len(pairs) < cfg.min_minutes and n_c >= cfg.min_invocations:
        reason = (
            f"not judged: {len(pairs)} minutes in which both versions served at least {unjudged_below} "
            "invocations "
            f"(at least {cfg.min_minutes} needed; a {name} of fewer is little more than their slowest)"
        )
        return MetricVerdict(metric=metric, outcome=Outcome.PASS, reason=reason)
    if len(pairs) < cfg.min_minutes or n_c < cfg.min_invocations:
        reason = (
            f"{len(pairs)} minutes with both versions and {n_c} canary invocations "
            f"(at least {cfg.min_minutes} and {cfg.min_invocations} needed)"
        )
        return MetricVerdict(metric=metric, outcome=Outcome.INCONCLUSIVE, reason=reason)
    base = [b for b, _ in pairs]
    can = [c for _, c in pairs]
    m_b, m_c = statistics.median(base), statistics.median(can)
    p = float(stats.mannwhitneyu(can, base, alternative="greater").pvalue)
    if math.isnan(p):  # every value tied
        p = 1.0
    effect = m_c / m_b - 1 if m_b > 0 else (math.inf if m_c > 0 else 0.0)
    seen = (
        f"per-minute {name} median {m_c:.1f} ms on the canary against {m_b:.1f} ms "
        f"({effect:+.0%}, Mann-Whitney p = {p:.2g}, {len(pairs)} minutes)"
    )
    common = {"metric": metric, "baseline": m_b, "canary": m_c, "p_value": p}
    if p < cfg.latency_alpha and effect >= cfg.latency_floor:
        return MetricVerdict(outcome=Outcome.FAIL, reason=seen, **common)
    return MetricVerdict(outcome=Outcome.PASS, reason=seen, **common)


def is_last_look(minutes: int, *, window_minutes: int) -> bool:
    """Whether the verdict after `minutes` is the rollout's last (the window extended once ends)."""
    return minutes >= 2 * window_minutes


def next_action(
    verdict: CanaryVerdict,
    *,
    window_minutes: int,
    on_inconclusive: Literal["promote", "rollback"] = "promote",
) -> Action:
    """What a rollout does after judging `verdict.minutes` minutes of a `window_minutes` canary."""
    if verdict.outcome == Outcome.FAIL:
        return Action.ROLLBACK
    if verdict.minutes < window_minutes:
        return Action.CONTINUE
    if verdict.outcome == Outcome.PASS:
        return Action.PROMOTE
    if verdict.minutes < 2 * window_minutes:  # INCONCLUSIVE: extend the window once
        return Action.CONTINUE
    return last_look_action(verdict, on_inconclusive=on_inconclusive)


def last_look_action(
    verdict: CanaryVerdict, *, on_inconclusive: Literal["promote", "rollback"] = "promote"
) -> Action:
    """What a rollout does with its last verdict: FAIL rolls back, PASS promotes, INCONCLUSIVE does
    what ``on_inconclusive`` says. `next_action` ends with it; a loop that knows its last look without
    a window of its own (the AWS judging loop under CodeDeploy's time-based canary) calls it directly."""
    if verdict.outcome == Outcome.FAIL:
        return Action.ROLLBACK
    if verdict.outcome == Outcome.PASS:
        return Action.PROMOTE
    return Action.PROMOTE if on_inconclusive == "promote" else Action.ROLLBACK
