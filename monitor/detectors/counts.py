"""CountRateDetector: tail probabilities for sparse counts and for rates with their volume.

With a volume (requests), the value is a rate (errors / requests) and the point is tested with a
binomial upper tail: P(X >= k | n = volume, rate = tolerated baseline). Without a volume the value
is a count per period and the test is a Poisson upper tail against the tolerated mean. The baseline
rate (or mean) is an exponentially weighted ratio of sums, with a weak prior, absorbing each point's
events capped at the band so an incident does not become the new normal within minutes. The
tolerated baseline adds a relative and an absolute margin, and a point needs at least
``min_excess`` events above it: a 2-error blip on 3 requests is not an incident; 40% errors on
2,000 requests is.

Seasonal counts (``seasonal``): errors, throttles and cold starts follow the traffic's daily and
weekly shape, so more errors at the evening peak are normal. The expected count of a point is then
the baseline times a time-of-day x day-of-week factor, learnt from the counts themselves: per hour of
the day (and per weekday) an exponentially weighted ratio of the events seen to the events expected,
shrunk towards 1 by ``season_prior`` events, so a sparse series (a few errors a day) keeps a flat
expectation until it has shown a shape. Without a volume the baseline is then a rate per unit of that
factor (the factor plays the part of the volume); with one, a factor above 1 raises the expected ratio
(cold starts per invocation are higher at night, when instances go cold between requests) and the
baseline is a rate per unit of volume x factor.

With a volume and ``volume_slots``, the shape's slots are load levels instead of hours of the day
(``1.5 log2(1 + volume)``, a slot per factor of ~1.6 in volume): a ratio that follows the load, as cold
starts per invocation do, is then expected from the load of the period, whatever day it is. By the hour
of the day, an hour that is quiet on weekdays and busy at the weekend (or on a holiday) averages two
ratios, and the weekdays' quiet hour rose above a too-low expectation every day (on `bench_unseen`,
49 of its 59 false alert episodes on one seed were cold starts). The weekday factor stays.

Sustained excess (``cusum_ratio``): one point must be a 1e-5 event to score, which a doubled error
ratio never is in a single period (10 errors where 4 are expected). A CUSUM of the log-likelihood
ratio "the rate is ``cusum_ratio`` times the baseline" against "it is the baseline" accumulates that
evidence, point by point, without a window: S = max(0, S + log LR(point)), capped at
``cusum_cap`` x h so it drains within a few normal points after a recovery. ``exp(-S)`` bounds the
probability of reaching S under the baseline (Ville's inequality for the likelihood ratio), so it is
a tail probability like the point test's and the score is the smaller of the two. A rate of up to
1 / ln(ratio) times the baseline (1.44x for 2x) drifts S down: a baseline that lags by a few tens of
percent does not accumulate.

A second CUSUM (``cusum_ratio_large``, 4x in the rate profile) looks for a larger excess: per event
it gains ln 4 where the 2x test gains ln 2, so on a route of a few requests per period an hour at ten
times the ratio (about ten errors where one is expected) reaches its alarm level within the hour,
where the 2x test, against a baseline that absorbs part of the burst, did not. With two tests the
alarm level is raised by ln 2 (a union bound), and the band is the smaller count that alarms either.

Overdispersion: real counts come in bursts (a scale-out brings several cold starts at once, one bad
request is retried), so their variance exceeds the Poisson or binomial one. The model keeps an
exponentially weighted dispersion ``phi`` (the mean squared Pearson residual of ordinary points,
each capped, floored at 1) and tests with the effective sample size: counts, volumes and the CUSUM's
log-likelihood ratios are divided by ``phi`` (the quasi-likelihood correction). A series with Poisson
noise keeps ``phi`` = 1 and the exact tests.

The band comes from the same tests as the score: ``upper`` sits half an event below the smallest count
that is anomalous at the band level (tail probability <= ``band_p`` and at least ``min_excess`` events
over the tolerated expectation, or a count that brings the CUSUM to ``-ln(band_p)``), so a point is
above the band exactly when its score reaches ``p_to_score(band_p)`` (0.5, the count and rate rules'
threshold). ``lower`` is 0: the model only tests the upper tail, nothing below its band is anomalous
to it. Before ``warmup_points`` valid points the model has no opinion: score 0 and no band (NaN).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Self

import numpy as np

from monitor.detectors.base import OnlineDetector, ScoredPoints, p_to_score


@dataclass(frozen=True)
class CountConfig:
    alpha: float = 0.01  # EW weight of each point in the baseline sums
    prior_rate: float = 0.01  # prior rate (with volume) or prior mean count per point (without)
    prior_weight: float = 20.0  # prior strength, in requests (with volume) or points (without)
    rel_tol: float = 0.5  # tolerated relative excess over the baseline
    abs_tol: float = 0.005  # tolerated absolute excess (rate units; count units x 100 without volume)
    min_excess: float = 3.0  # events above the tolerated expectation needed to score at all
    band_p: float = 1e-5  # band level: the tail probability at which the score reaches 0.5
    warmup_points: int = 12  # valid points seen before giving an opinion (score 0, no band before)
    period_s: int = 300  # seconds per point (for the seasonal slots)
    seasonal: bool = False  # expect the time-of-day / day-of-week shape (of counts, or of the ratio)
    tod_slots: int = 24  # time-of-day resolution of the seasonal factor
    volume_slots: bool = False  # with a volume: the shape's slots are load levels (log volume), not hours
    season_days: float = 7.0  # memory of a time-of-day slot, in days (a weekday: twice that)
    season_prior: float = 10.0  # events of shrinkage towards a flat shape, per slot
    cusum_ratio: float | None = None  # alternative rate / baseline of the CUSUM (None: no CUSUM)
    cusum_ratio_large: float | None = None  # a second CUSUM's, for a larger excess (alarm level + ln 2)
    cusum_cap: float = 1.5  # the CUSUM is capped at this many times its alarm level
    cusum_steps: int = 4  # one point adds at most 1/cusum_steps of the alarm level: sustained only
    dispersion: bool = True  # learn the overdispersion and test with the effective sample size
    dispersion_cap: float = 16.0  # one point's squared Pearson residual counts at most this much
    dispersion_alpha: float = 0.003  # EW weight of a point in the dispersion (slow: it is a noisy mean)


class CountRateDetector(OnlineDetector):
    kind = "count_rate"
    version = 3  # 3: seasonal expectation and CUSUM (2: band from the score's own tail quantile)

    def __init__(self, config: CountConfig | None = None, **overrides: Any) -> None:
        base = config or CountConfig()
        self.config = CountConfig(**{**asdict(base), **overrides})
        self.reset()

    def reset(self) -> None:
        self.last_t_ = None
        self.events_ = 0.0  # EW sum of events
        self.exposure_ = 0.0  # EW sum of volume (or of seasonal factors / points, without volume)
        self.n_ = 0
        self.cusum_ = 0.0  # log-likelihood ratio of the sustained-excess test (nats)
        self.cusum_large_ = 0.0  # ...and of the second one (cusum_ratio_large)
        self.dispersion_ = 1.0  # EW mean squared Pearson residual (variance / mean) of ordinary points
        slots = self.config.tod_slots
        self.tod_events_ = [0.0] * slots  # per time-of-day slot: EW events...
        self.tod_points_ = [0.0] * slots  # ...and EW points
        self.dow_events_ = [0.0] * 7  # per weekday: EW events...
        self.dow_expected_ = [0.0] * 7  # ...and EW events the time-of-day shape expected

    def to_state(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "version": self.version,
            "config": asdict(self.config),
            "last_t": self.last_t_,
            "events": self.events_,
            "exposure": self.exposure_,
            "n": self.n_,
            "cusum": self.cusum_,
            "cusum_large": self.cusum_large_,
            "dispersion": self.dispersion_,
            "season": [self.tod_events_, self.tod_points_, self.dow_events_, self.dow_expected_],
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        det = cls(CountConfig(**state.get("config", {})))
        det._check_state(state)
        det.last_t_ = state["last_t"]
        det.events_ = float(state["events"])
        det.exposure_ = float(state["exposure"])
        det.n_ = int(state["n"])
        det.cusum_ = float(state["cusum"])
        det.cusum_large_ = float(state.get("cusum_large", 0.0))  # states written before it have none
        det.dispersion_ = float(state.get("dispersion", 1.0))  # states written before it: Poisson
        tod_events, tod_points, dow_events, dow_expected = state["season"]
        det.tod_events_ = [float(v) for v in tod_events]
        det.tod_points_ = [float(v) for v in tod_points]
        det.dow_events_ = [float(v) for v in dow_events]
        det.dow_expected_ = [float(v) for v in dow_expected]
        return det

    def baseline(self) -> float:
        cfg = self.config
        return (self.events_ + cfg.prior_rate * cfg.prior_weight) / (self.exposure_ + cfg.prior_weight)

    def null_rate(self) -> float:
        """The CUSUM's baseline: the observed rate once there is data, never below the shrunk one.

        The EW sums saturate at 1/alpha points, so the prior never fades from `baseline()` (a dense
        series reads ~17 % low); a sustained-excess test against that would drift upwards."""
        observed = self.events_ / self.exposure_ if self.exposure_ > 0 else 0.0
        return max(observed, self.baseline())

    def _process(self, t: np.ndarray, y: np.ndarray, volume: np.ndarray | None) -> ScoredPoints:
        p, lower, upper = self.process_raw(t, y, volume)
        return ScoredPoints(score=p_to_score(p), lower=lower, upper=upper)

    def _slots(self, ti: int, volume: float | None) -> tuple[int, int]:
        """The shape's slot of a point (its hour of the day; with ``volume_slots``, its load level) and its
        weekday."""
        cfg = self.config
        if cfg.volume_slots and volume is not None and not math.isnan(volume):
            slot = min(cfg.tod_slots - 1, int(1.5 * math.log2(1.0 + max(volume, 0.0))))
        else:
            slot = int((ti % 86400) * cfg.tod_slots // 86400)
        day = int((ti // 86400 + 3) % 7)  # epoch day 0 was a Thursday; Monday = 0
        return slot, day

    def _season_factor(self, slot: int, day: int) -> tuple[float, float]:
        """(time-of-day x weekday factor, time-of-day factor alone), both shrunk towards 1."""
        prior = self.config.season_prior
        events, points = sum(self.tod_events_), sum(self.tod_points_)
        if events <= 0.0 or points <= 0.0:
            return 1.0, 1.0
        mean = events / points
        f_tod = (self.tod_events_[slot] + prior) / (self.tod_points_[slot] * mean + prior)
        f_dow = (self.dow_events_[day] + prior) / (self.dow_expected_[day] + prior)
        return f_tod * f_dow, f_tod

    def _absorb_season(self, slot: int, day: int, k: float, f_tod: float, weight: float) -> None:
        """Absorb `k` events over `weight` units of exposure (1 point, or its volume)."""
        cfg = self.config
        per_slot_day = max(86400.0 / cfg.tod_slots / max(cfg.period_s, 1), 1.0)
        per_day = max(86400.0 / max(cfg.period_s, 1), 1.0)
        d_tod = 1.0 - 1.0 / (cfg.season_days * per_slot_day)
        d_dow = 1.0 - 1.0 / (2.0 * cfg.season_days / 7.0 * per_day)
        points = sum(self.tod_points_)
        mean = sum(self.tod_events_) / points if points > 0 else 0.0
        self.tod_events_[slot] = d_tod * self.tod_events_[slot] + k
        self.tod_points_[slot] = d_tod * self.tod_points_[slot] + weight
        self.dow_events_[day] = d_dow * self.dow_events_[day] + k
        self.dow_expected_[day] = d_dow * self.dow_expected_[day] + (
            mean * f_tod * weight if points > 0 else k
        )

    def process_raw(
        self, t: np.ndarray, y: np.ndarray, volume: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Upper-tail p-value and band per point (rate units with volume, counts without)."""
        cfg = self.config
        n = len(y)
        with_volume = volume is not None
        seasonal = cfg.seasonal
        vol = volume if volume is not None else np.ones(n)
        k_arr = np.full(n, np.nan)
        n_arr = np.full(n, np.nan)
        tol_arr = np.full(n, np.nan)
        base_arr = np.full(n, np.nan)
        ratios = self._ratios()
        s_prev = np.zeros((n, len(ratios)))  # each CUSUM before each point
        s_after = np.zeros(n)  # the evidence after it: the largest CUSUM
        warm = np.zeros(n, dtype=bool)
        phi_arr = np.ones(n)  # the dispersion each point is tested with
        ts = t.tolist()
        ys = y.tolist()
        vs = vol.tolist()
        abs_tol = cfg.abs_tol if with_volume else cfg.abs_tol * 100.0
        decay = 1.0 - cfg.alpha
        h = self._alarm_level()
        for i in range(n):
            yi, vi = ys[i], vs[i]
            slot, day, factor, f_tod = 0, 0, 1.0, 1.0
            if seasonal:
                slot, day = self._slots(ts[i], vi if with_volume else None)
                factor, f_tod = self._season_factor(slot, day)
                if not with_volume:
                    vi = factor  # the factor is the exposure
            # with a volume the factor scales the expected ratio (the volume carries the traffic's shape)
            rate_factor = factor if with_volume else 1.0
            base = self.baseline() * rate_factor
            tol = base * (1.0 + cfg.rel_tol) + abs_tol
            if with_volume:
                tol = min(tol, 1.0)
            tol_arr[i] = tol
            base_arr[i] = null = self.null_rate() * rate_factor
            n_arr[i] = vi
            warm[i] = self.n_ >= cfg.warmup_points
            phi_arr[i] = phi = max(self.dispersion_, 1.0) if cfg.dispersion else 1.0
            sums = [self.cusum_, self.cusum_large_][: len(ratios)]
            s_prev[i] = sums
            s_after[i] = max(sums, default=0.0)
            if math.isnan(yi) or math.isnan(vi) or yi < 0:
                continue
            k = round(yi * vi) if with_volume else round(yi)
            k_arr[i] = k
            building = s_after[i] >= h / 2  # evidence of an excess is building up (or an alarm)
            if ratios and warm[i]:
                for j, ratio in enumerate(ratios):
                    step = min(self._llr(k, vi, null, with_volume, ratio) / phi, h / cfg.cusum_steps)
                    sums[j] = min(max(0.0, sums[j] + step), cfg.cusum_cap * h)
                self.cusum_ = sums[0]
                if len(sums) > 1:
                    self.cusum_large_ = sums[1]
                s_after[i] = max(sums)
            # an incident must not become the new normal: absorb at most ~4 sd above the tolerance
            cap = tol * vi + cfg.min_excess + 4.0 * math.sqrt(max(tol * vi, 1.0))
            absorbed = min(k, cap)
            self.events_ = decay * self.events_ + absorbed
            self.exposure_ = decay * self.exposure_ + vi * rate_factor
            if cfg.dispersion and not building and warm[i]:
                mean = max(null * vi, 1e-9)
                spread = mean * (1.0 - min(null, 0.999)) if with_volume else mean
                pearson = min((k - mean) ** 2 / spread, cfg.dispersion_cap)
                self.dispersion_ += cfg.dispersion_alpha * (pearson - self.dispersion_)
            if seasonal and not building:
                # the shape learns from ordinary points only, each capped near its relative tolerance (the
                # absolute margin left out: it dwarfs a rare error's expectation): an incident would
                # otherwise raise its hours' factors and, through the mean, lower all the others
                expected = base * vi
                season_cap = expected * (1.0 + cfg.rel_tol) + 2.0 * math.sqrt(max(expected, 1.0))
                self._absorb_season(slot, day, min(k, season_cap), f_tod, vi if with_volume else 1.0)
            self.n_ += 1
        p = np.ones(n)
        valid = ~np.isnan(k_arr) & warm
        excess_ok = valid & (k_arr - tol_arr * n_arr >= cfg.min_excess)
        if excess_ok.any():
            from scipy import stats  # imported on first use: keeps `import monitor.detectors` cheap

            phi = phi_arr[excess_ok]
            k = np.round(k_arr[excess_ok] / phi)  # the effective sample: counts and volumes / phi
            if with_volume:
                trials = np.round(n_arr[excess_ok] / phi).astype(np.int64)
                p[excess_ok] = stats.binom.sf(k - 1, trials, tol_arr[excess_ok])
            else:
                p[excess_ok] = stats.poisson.sf(k - 1, tol_arr[excess_ok] * n_arr[excess_ok] / phi)
        k_star = np.where(warm, self._first_anomalous(tol_arr, n_arr, phi_arr, with_volume), np.nan)
        if ratios:
            valid_s = ~np.isnan(k_arr) & warm
            # exp(-S) bounds one CUSUM's tail; with two, the union bound doubles it (h is raised by ln 2)
            p = np.where(valid_s, np.minimum(p, np.minimum(1.0, len(ratios) * np.exp(-s_after))), p)
            for j, ratio in enumerate(ratios):
                k_cusum = self._first_alarming(h - s_prev[:, j], n_arr, base_arr, phi_arr, with_volume, ratio)
                k_star = np.where(warm, np.fmin(k_star, k_cusum), np.nan)
        upper = k_star - 0.5
        lower = np.zeros(n)
        if with_volume:
            with np.errstate(invalid="ignore", divide="ignore"):
                upper = np.where(n_arr > 0, np.minimum(upper / n_arr, 1.0), np.nan)
        return np.where(np.isnan(p), 1.0, p), lower, upper

    def _ratios(self) -> list[float]:
        """The alternative rate / baseline of each CUSUM."""
        cfg = self.config
        if cfg.cusum_ratio is None:
            return []
        return [cfg.cusum_ratio] + ([cfg.cusum_ratio_large] if cfg.cusum_ratio_large is not None else [])

    def _alarm_level(self) -> float:
        """The CUSUMs' alarm level in nats: -ln band_p, plus ln 2 with two of them (union bound)."""
        return -math.log(self.config.band_p) + (math.log(2.0) if len(self._ratios()) > 1 else 0.0)

    def _llr(self, k: float, exposure: float, base: float, with_volume: bool, ratio: float) -> float:
        """Log-likelihood ratio of one point: rate `ratio` x base against base."""
        if with_volume:
            p0 = min(max(base, 1e-9), 0.5)
            p1 = min(p0 * ratio, 0.999)
            return k * math.log(p1 / p0) + (exposure - k) * math.log((1.0 - p1) / (1.0 - p0))
        mu = max(base * exposure, 1e-9)
        return k * math.log(ratio) - mu * (ratio - 1.0)

    def _first_alarming(
        self,
        need: np.ndarray,
        n: np.ndarray,
        base: np.ndarray,
        phi: np.ndarray,
        with_volume: bool,
        ratio: float,
    ) -> np.ndarray:
        """Per point, the smallest count whose log-likelihood ratio (/ phi) at `ratio` adds ``need`` to
        that CUSUM."""
        with np.errstate(invalid="ignore", divide="ignore"):
            if with_volume:
                p0 = np.clip(base, 1e-9, 0.5)
                p1 = np.minimum(p0 * ratio, 0.999)
                per_event = np.log(p1 / p0) - np.log((1.0 - p1) / (1.0 - p0))
                offset = n * np.log((1.0 - p1) / (1.0 - p0))
            else:
                per_event = np.full(len(n), math.log(ratio))
                offset = -np.maximum(base * n, 1e-9) * (ratio - 1.0)
            k = np.ceil((need * phi - offset) / per_event - 1e-9)
        k = np.maximum(k, 1.0)
        if with_volume:
            k = np.where(k > np.round(n), np.inf, k)
        # one point adds at most h / cusum_steps: beyond that, no count of this point alarms
        k = np.where(need > self._alarm_level() / self.config.cusum_steps + 1e-9, np.inf, k)
        return np.where(np.isnan(n), np.nan, k)

    def _first_anomalous(
        self, tol: np.ndarray, n: np.ndarray, phi: np.ndarray, with_volume: bool
    ) -> np.ndarray:
        """Per point, the smallest event count the score calls anomalous at the band level ``band_p``
        (the same tail on the same effective sample, and the same ``min_excess`` as the p-value; NaN
        without a usable volume)."""
        from scipy import stats

        cfg = self.config
        out = np.full(len(tol), np.nan)
        ok = ~np.isnan(tol) & ~np.isnan(n) & (n > 0)
        if not ok.any():
            return out
        f = phi[ok]
        mean = tol[ok] * n[ok] / f  # the effective sample
        rate = tol[ok]
        if with_volume:
            trials = np.round(n[ok] / f).astype(np.int64)

            def tail(k: np.ndarray) -> np.ndarray:  # P(X >= k), exactly as the score computes it
                return np.asarray(stats.binom.sf(k - 1, trials, rate))

            k_p = stats.binom.isf(cfg.band_p, trials, rate) + 1.0
        else:

            def tail(k: np.ndarray) -> np.ndarray:
                return np.asarray(stats.poisson.sf(k - 1, mean))

            k_p = stats.poisson.isf(cfg.band_p, mean) + 1.0
        # isf is a numerical inverse: settle the boundary on the very tail function the score uses
        k_p = np.where(tail(k_p - 1.0) <= cfg.band_p, k_p - 1.0, k_p)
        k_p = np.where(tail(k_p) > cfg.band_p, k_p + 1.0, k_p)
        if with_volume:
            k_p = np.where(k_p > trials, np.inf, k_p)  # no count of this volume is that unlikely
        # back to raw counts: the smallest k whose effective count round(k / phi) reaches k_p
        k_p = np.where(f > 1.0, np.ceil((k_p - 0.5) * f - 1e-9), k_p)
        k_e = np.ceil(tol[ok] * n[ok] + cfg.min_excess - 1e-9)
        out[ok] = np.maximum(np.maximum(k_p, k_e), 1.0)
        return out
