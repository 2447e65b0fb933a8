"""The sandbox's incidents, offline: Given 1-minute series shaped like the sandbox's (the backfill's own
history model over the demand model), When they run through exactly what the monitor runs (catalog
entry -> `build_detector(profile, period_s=60)` fitted on 48 h of history -> `process` ->
`SeriesAlertState.step` with the entry's rule), Then an injected error burst or latency regression
opens an alert on the cars API's resources within a few points and resolves after it ends, a clean
day opens nothing, and tiny counts (1 -> 2 invocations, 2 errors on 3 requests) are not incidents.

Also the property the alert rule relies on: score and band agree (a point inside the band scores
below the rule's threshold, a point far outside it scores above).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache

import numpy as np
import pytest

from contract.resources import ResourceNames
from contract.topology import topology
from monitor.catalog import Catalog, DerivedSpec, MetricSpec, build_catalog
from monitor.detectors import PROFILES, build_detector, score_to_p
from monitor.detectors.base import Detector
from monitor.policy import SeriesAlertState, default_rule
from monitor.service import rule_for
from sandbox.history.backfill import HistoryModel, HistoryProfile
from sandbox.traffic.demand import DemandModel
from tests.detectors.conftest import PERIOD as PERIOD_5MIN
from tests.detectors.conftest import START, seasonal_series

PERIOD = 60  # the sandbox monitor's period
HISTORY = 48 * 60  # the backfill's 1-minute part (what the e2e monitor trains on)
LEAD = 30  # clean live points before an injection
INJECT = 5  # minutes of injected incident
TAIL = 40  # points after it (resolve needs 6 clear points)
DETECT_WITHIN = 5  # points from the start of the injection to the OPEN

TOPO = topology("local")
CATALOG: Catalog = build_catalog(ResourceNames.from_topology(TOPO), period_s=PERIOD)
API = f"api:{TOPO.api_name}"
CARS_FN = next(f.name for f in TOPO.functions if f.key == "cars-api")
MONITOR_FN = next(f.name for f in TOPO.functions if f.key == "monitor")
CARS_LAMBDA = f"lambda:{CARS_FN}"
WATCHED = (
    f"{API}:count",
    f"{API}:5xx",
    f"{API}:5xx-rate",
    f"{API}:latency-p50",
    f"{API}:latency-p99",
    f"{CARS_LAMBDA}:invocations",
    f"{CARS_LAMBDA}:errors",
    f"{CARS_LAMBDA}:error-rate",
    f"{CARS_LAMBDA}:duration-p99",
)


@dataclass
class Minutes:
    """Sandbox-shaped 1-minute series (what GetMetricData + `derive` hand the detectors)."""

    t: np.ndarray
    y: dict[str, np.ndarray] = field(default_factory=dict)
    volume: dict[str, np.ndarray] = field(default_factory=dict)


def _weighted_percentile(values: np.ndarray, counts: np.ndarray, q: float) -> np.ndarray:
    """Nearest-rank percentile per row of a (value, count) distribution, as CloudWatch computes it."""
    out = np.full(len(values), np.nan)
    for i in range(len(values)):
        keep = counts[i] > 0
        if not keep.any():
            continue
        v, c = values[i][keep], counts[i][keep]
        order = np.argsort(v)
        v, c = v[order], np.cumsum(c[order])
        out[i] = v[np.searchsorted(c, q / 100.0 * c[-1])]
    return out


def sandbox_minutes(
    end: datetime,
    n: int,
    *,
    seed: int,
    error_share: np.ndarray | None = None,
    delay_ms: np.ndarray | None = None,
) -> Minutes:
    """`n` minutes ending at `end`, from the backfill's history model (the live fleet follows the
    same demand model); `error_share` makes that share of cars-api invocations fail (502 at the API),
    `delay_ms` adds latency inside every invocation, per minute."""
    starts = [end - timedelta(minutes=n - i) for i in range(n)]
    model = HistoryModel(TOPO, DemandModel(), HistoryProfile(), np.random.default_rng(seed))
    shared = model.shared(starts, PERIOD)
    rng = np.random.default_rng(seed + 1000)
    requests = shared["requests"].astype(np.float64)
    errors = shared["5xx"].astype(np.float64)
    if error_share is not None:
        injected = rng.binomial(shared["requests"], np.clip(error_share, 0.0, 1.0))
        errors = np.maximum(errors, injected.astype(np.float64))
    out = Minutes(t=np.array([int(s.timestamp()) for s in starts], dtype=np.int64))
    delay = np.zeros(n) if delay_ms is None else delay_ms
    for sid in WATCHED:
        spec = CATALOG.get(sid)
        if isinstance(spec, DerivedSpec):
            continue
        if spec.metric_name in ("Count", "Invocations"):
            out.y[sid] = np.where(requests > 0, requests, np.nan)  # zero counts are not written
        elif spec.metric_name in ("5XXError", "Errors"):
            out.y[sid] = errors  # fill_zero
        else:
            column = model.column(spec, shared, PERIOD)
            assert column is not None, sid
            values, counts = column
            assert counts is not None, sid
            out.y[sid] = _weighted_percentile(values + delay[:, None], counts, float(spec.statistic[1:]))
    for rate, num in (
        (f"{API}:5xx-rate", f"{API}:5xx"),
        (f"{CARS_LAMBDA}:error-rate", f"{CARS_LAMBDA}:errors"),
    ):
        with np.errstate(divide="ignore", invalid="ignore"):
            out.y[rate] = np.where(requests > 0, out.y[num] / requests, np.nan)
        out.volume[rate] = requests
    return out


@dataclass(frozen=True)
class Run:
    opened: dict[str, list[int]]  # series id -> live indices that opened an alert
    resolved: dict[str, list[int]]


@cache
def fitted(series_id: str, hour_utc: int, seed: int) -> Detector:
    """The monitor's detector for one catalog entry, trained on 48 h of 1-minute history."""
    history = sandbox_minutes(_end(hour_utc), HISTORY, seed=seed)
    spec = CATALOG.get(series_id)
    return build_detector(spec.profile, period_s=PERIOD).fit(
        history.t, history.y[series_id], history.volume.get(series_id)
    )


def _end(hour_utc: int) -> datetime:
    # Wednesday 25 Nov 2026; Lisbon is on UTC in winter, so hour_utc is the city's local hour
    return datetime(2026, 11, 25, hour_utc, tzinfo=UTC)


def run_monitor(live: Minutes, hour_utc: int, seed: int, series: tuple[str, ...] = WATCHED) -> Run:
    opened: dict[str, list[int]] = {}
    resolved: dict[str, list[int]] = {}
    for sid in series:
        spec: MetricSpec | DerivedSpec = CATALOG.get(sid)
        scored = fitted(sid, hour_utc, seed).score(live.t, live.y[sid], live.volume.get(sid))
        state = SeriesAlertState(rule_for(spec))
        vol = live.volume.get(sid)
        for i in range(len(live.t)):
            decision = state.step(
                score=float(scored.score[i]),
                value=float(live.y[sid][i]),
                lower=float(scored.lower[i]),
                upper=float(scored.upper[i]),
                volume=None if vol is None else float(vol[i]),
            )
            if decision.opened:
                opened.setdefault(sid, []).append(i)
            if decision.resolved:
                resolved.setdefault(sid, []).append(i)
    return Run(opened, resolved)


def resource_of(series_id: str) -> str:
    return CATALOG.get(series_id).resource


@dataclass(frozen=True)
class IncidentCase:
    name: str
    kind: str  # "error-burst" (share of invocations) or "latency" (ms added)
    intensity: float
    hour_utc: int
    must_open: tuple[str, ...]  # resources that must open within DETECT_WITHIN points
    seed: int = 1


INCIDENTS = [
    # fleetscope incident error-burst: half of cars-api invocations fail (the CLI default)
    IncidentCase("error burst 50% at night (~12 req/min)", "error-burst", 0.5, 2, (API, CARS_LAMBDA)),
    IncidentCase("error burst 50% at the evening rush", "error-burst", 0.5, 18, (API, CARS_LAMBDA), seed=2),
    IncidentCase("error burst 20% mid-afternoon", "error-burst", 0.2, 15, (API, CARS_LAMBDA), seed=3),
    IncidentCase("error burst 30% at night", "error-burst", 0.3, 3, (API, CARS_LAMBDA), seed=4),
    # fleetscope incident latency: 0.8 s (the old CLI default; now 3 s), 1.5 s (the e2e test), 0.5 s
    IncidentCase("latency +800 ms at night", "latency", 800.0, 2, (API,)),
    IncidentCase("latency +1.5 s at the evening rush", "latency", 1500.0, 18, (API,), seed=2),
    IncidentCase("latency +500 ms mid-afternoon", "latency", 500.0, 15, (API,), seed=3),
]


@pytest.mark.parametrize("case", INCIDENTS, ids=lambda c: c.name)
def test_an_injected_incident_opens_within_minutes_on_the_cars_api_and_resolves(case: IncidentCase) -> None:
    # Given 48 h of history and live minutes with the incident injected after LEAD clean ones
    n = LEAD + INJECT + TAIL
    window = np.zeros(n)
    window[LEAD : LEAD + INJECT] = case.intensity
    live = sandbox_minutes(
        _end(case.hour_utc) + timedelta(minutes=n),
        n,
        seed=case.seed + 500,
        error_share=window if case.kind == "error-burst" else None,
        delay_ms=window if case.kind == "latency" else None,
    )
    # When the monitor's pipeline scores them
    run = run_monitor(live, case.hour_utc, case.seed)
    # Then every expected resource opens within DETECT_WITHIN points of the start, nothing before it
    first_open = {
        res: min((i for sid, idx in run.opened.items() if resource_of(sid) == res for i in idx), default=None)
        for res in {resource_of(s) for s in run.opened}
    }
    detail = f"opened={run.opened} resolved={run.resolved}"
    for res in case.must_open:
        at = first_open.get(res)
        assert at is not None, f"{res} never opened: {detail}"
        assert LEAD <= at < LEAD + DETECT_WITHIN, f"{res}: {detail}"
    assert all(i >= LEAD for idx in run.opened.values() for i in idx), detail
    assert set(first_open) <= {API, CARS_LAMBDA}, detail
    # and each series opens once and resolves once after the injection ends
    for sid, idx in run.opened.items():
        assert len(idx) == 1, detail
        assert [r for r in run.resolved.get(sid, []) if r >= LEAD + INJECT] != [], (
            f"{sid} unresolved: {detail}"
        )


@pytest.mark.parametrize(("hour_utc", "seed"), [(0, 11), (12, 12)])
def test_a_clean_day_of_one_minute_points_opens_no_alert(hour_utc: int, seed: int) -> None:
    # Given 48 h of history and the following 24 h of normal sandbox traffic
    live = sandbox_minutes(_end(hour_utc) + timedelta(days=1), 24 * 60, seed=seed + 500)
    # When the monitor's pipeline scores them
    run = run_monitor(live, hour_utc, seed)
    # Then nothing opens
    assert run.opened == {}


def _scheduled_runs(values: list[float], *, t0: int) -> tuple[np.ndarray, np.ndarray]:
    t = t0 + PERIOD * np.arange(len(values), dtype=np.int64)
    return t, np.asarray(values, dtype=np.float64)


@pytest.mark.parametrize(
    ("name", "live", "expect_open"),
    [
        ("one retried scheduled run (1 -> 2)", [1.0] * 10 + [2.0] + [1.0] * 20, False),
        ("retries for a few minutes (1 -> 2, 2, 2)", [1.0] * 10 + [2.0, 2.0, 2.0] + [1.0] * 20, False),
        ("a run storm (1 -> 12 per minute)", [1.0] * 10 + [12.0] * 5 + [1.0] * 20, True),
    ],
)
def test_the_monitors_own_invocations_ignore_a_retried_run(
    name: str, live: list[float], expect_open: bool
) -> None:
    # Given the monitor's own Invocations entry, trained on two days of exactly 1 run per minute
    spec = CATALOG.get(f"lambda:{MONITOR_FN}:invocations")
    t_hist, y_hist = _scheduled_runs([1.0] * HISTORY, t0=int(_end(0).timestamp()))
    detector = build_detector(spec.profile, period_s=PERIOD).fit(t_hist, y_hist)
    t, y = _scheduled_runs(live, t0=int(t_hist[-1]) + PERIOD)
    # When the live minutes are scored under the entry's rule
    scored = detector.process(t, y)
    state = SeriesAlertState(rule_for(spec))
    opened = [
        i
        for i in range(len(y))
        if state.step(
            score=float(scored.score[i]),
            value=float(y[i]),
            lower=float(scored.lower[i]),
            upper=float(scored.upper[i]),
        ).opened
    ]
    # Then only a real change in volume opens
    assert (opened != []) is expect_open, (name, opened, scored.score.round(2).tolist())


@pytest.mark.parametrize(
    ("errors", "requests", "points", "expect_open"),
    [
        (2, 3, 3, False),  # a 2-error blip on 3 requests is not an incident
        (3, 3, 3, False),  # nor is every request of a quiet minute failing, 3 minutes running
        (800, 2000, 3, True),  # 40% errors on 2,000 requests is
        (60, 2000, 3, True),  # 3% on 2,000 (baseline 0.04%)
        (6, 2000, 3, False),  # 0.3%: within the tolerance
    ],
)
@pytest.mark.parametrize("series_id", [f"{API}:5xx-rate", f"{CARS_LAMBDA}:error-rate"])
def test_error_rates_weigh_the_errors_against_the_volume(
    series_id: str, errors: int, requests: int, points: int, expect_open: bool
) -> None:
    # Given the catalog's error-rate entry trained on the sandbox's history (0.04% errors)
    detector = fitted(series_id, 14, 1)
    last = int(sandbox_minutes(_end(14), 1, seed=1).t[-1])
    t = last + PERIOD * np.arange(1, points + 1, dtype=np.int64)
    volume = np.full(points, float(requests))
    y = np.full(points, errors / requests)
    # When `points` minutes with that many errors are scored under the entry's rule
    scored = detector.score(t, y, volume)
    state = SeriesAlertState(rule_for(CATALOG.get(series_id)))
    opened = [
        state.step(
            score=float(scored.score[i]),
            value=float(y[i]),
            lower=float(scored.lower[i]),
            upper=float(scored.upper[i]),
            volume=float(volume[i]),
        ).opened
        for i in range(points)
    ]
    # Then
    assert any(opened) is expect_open, (scored.score.tolist(), scored.upper.tolist())


# -- score and band agree ----------------------------------------------------------------------


def _fitted_for_profile(profile: str, seed: int) -> tuple[Detector, int, np.ndarray | None]:
    """A detector of `profile` fitted on a clean series of its kind; the next timestamp; a volume."""
    rng = np.random.default_rng(seed)
    if profile in ("count", "rate"):
        n = 4 * 288
        t = START + PERIOD_5MIN * np.arange(n, dtype=np.int64)
        if profile == "count":
            y = rng.poisson(0.3, n).astype(np.float64)
            volume = None
        else:
            volume = rng.poisson(300, n).astype(np.float64)
            y = rng.binomial(volume.astype(np.int64), 0.01) / volume
        det = build_detector(profile, period_s=PERIOD_5MIN).fit(t, y, volume)
        return det, int(t[-1]) + PERIOD_5MIN, None if volume is None else np.array([300.0])
    t, y = seasonal_series(6, seed=seed, noise=4.0 + seed)
    if profile == "traffic":
        y = rng.poisson(np.maximum(y, 0.0)).astype(np.float64)
    det = build_detector(profile, period_s=PERIOD_5MIN).fit(t, y)
    return det, int(t[-1]) + PERIOD_5MIN, None


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("profile", PROFILES)
def test_score_and_band_agree_a_point_inside_scores_low_and_far_outside_scores_high(
    profile: str, seed: int
) -> None:
    # Given a detector of each profile fitted on a clean series of its kind
    det, t_next, volume = _fitted_for_profile(profile, seed)
    threshold = default_rule(profile).threshold
    probe = det.score(np.array([t_next]), np.array([np.nan]), volume)
    lower, upper = float(probe.lower[0]), float(probe.upper[0])
    assert np.isfinite(lower)
    assert np.isfinite(upper)
    assert lower <= upper
    width = max(upper - lower, 1e-9)
    # When the next point takes values across and far beyond the band (each scored on its own)
    candidates = np.linspace(lower - 4 * width, upper + 4 * width, 321)
    if profile == "rate":
        candidates = np.unique(np.clip(np.round(candidates * 300.0), 0, 300) / 300.0)
    elif profile == "count":
        candidates = np.unique(np.clip(np.round(candidates), 0, None))
    for value in candidates.tolist():
        out = det.score(np.array([t_next]), np.array([value]), volume)
        score, lo, hi = float(out.score[0]), float(out.lower[0]), float(out.upper[0])
        assert (lo, hi) == (lower, upper)  # the band does not depend on the point itself
        inside = lo <= value <= hi
        # Then a point inside the band scores below the rule's threshold (every profile the monitor
        # runs; `default` is NAB's onset score, a window's likelihood, deliberately not gated)...
        if inside and profile != "default":
            assert score < threshold, (profile, value, score, lo, hi)
        # ...a point far outside it (3 band widths beyond, on a side the profile watches) above it;
        # the default profile (NAB's onset score) has no single-point term: far means novel for it
        far_up = value >= hi + 3 * width
        far_down = value <= lo - 3 * width and profile in ("default", "traffic")
        if profile == "default":
            seen = det.max_ - det.min_  # type: ignore[attr-defined]
            novel = value > det.max_ + 0.05 * seen or value < det.min_ - 0.05 * seen  # type: ignore[attr-defined]
            far_up, far_down = far_up and novel, far_down and novel
        if far_up or far_down:
            assert score >= threshold, (profile, value, score, lo, hi)
        # ...and the count models' band is exactly their test's quantile at the threshold
        if profile in ("count", "rate"):
            assert (score >= threshold) is (value > hi), (profile, value, score, hi)


def test_the_count_models_band_level_is_their_rules_threshold() -> None:
    for profile in ("count", "rate"):
        cfg = build_detector(profile, period_s=PERIOD).config.count  # type: ignore[attr-defined]
        assert cfg is not None
        assert cfg.band_p == pytest.approx(score_to_p(default_rule(profile).threshold))


@pytest.mark.parametrize("series_id", [f"{API}:5xx", f"{CARS_LAMBDA}:errors"])
def test_the_error_count_band_stays_near_the_rare_errors_of_the_history(series_id: str) -> None:
    # Given the error-count entry trained on 48 h of the sandbox's history (a few errors a day)
    detector = fitted(series_id, 2, 1)
    t_next = int(sandbox_minutes(_end(2), 1, seed=1).t[-1]) + PERIOD
    # When the next minute is scored
    out = detector.score(np.array([t_next]), np.array([0.0]))
    # Then the band's upper edge is a handful of errors per minute (it was ~8 with a 0.01/min history),
    # and the first count above it is an alert under the entry's rule
    assert float(out.upper[0]) <= 4.5, float(out.upper[0])
    k = float(np.floor(out.upper[0]) + 1.0)
    burst = detector.score(np.array([t_next]), np.array([k]))
    assert burst.score[0] >= rule_for(CATALOG.get(series_id)).threshold
