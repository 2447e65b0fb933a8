"""CountRateDetector: tail probabilities for sparse counts and for rates with their volume.

With a volume (requests), the value is a rate (errors / requests) and the point is tested with a
binomial upper tail: P(X >= k | n = volume, rate = tolerated baseline). Without a volume the value
is a count per period and the test is a Poisson upper tail against the tolerated mean. The baseline
rate (or mean) is an exponentially weighted ratio of sums, with a weak prior, absorbing each point's
events capped at the band so an incident does not become the new normal within minutes. The
tolerated baseline adds a relative and an absolute margin, and a point needs at least
``min_excess`` events above it: a 2-error blip on 3 requests is not an incident; 40% errors on
2,000 requests is.

The band comes from the same test as the score: ``upper`` sits half an event below the smallest count
that is anomalous at the band level (tail probability <= ``band_p`` and at least ``min_excess`` events
over the tolerated expectation), so a point is above the band exactly when its score reaches
``p_to_score(band_p)`` (0.5, the count and rate rules' threshold). ``lower`` is 0: the model only
tests the upper tail, nothing below its band is anomalous to it. Before ``warmup_points`` valid
points the model has no opinion: score 0 and no band (NaN).
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


class CountRateDetector(OnlineDetector):
    kind = "count_rate"
    version = 2  # 2: band from the score's own tail quantile (was a Poisson z-band)

    def __init__(self, config: CountConfig | None = None, **overrides: Any) -> None:
        base = config or CountConfig()
        self.config = CountConfig(**{**asdict(base), **overrides})
        self.reset()

    def reset(self) -> None:
        self.last_t_ = None
        self.events_ = 0.0  # EW sum of events
        self.exposure_ = 0.0  # EW sum of volume (or of points, without volume)
        self.n_ = 0

    def to_state(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "version": self.version,
            "config": asdict(self.config),
            "last_t": self.last_t_,
            "events": self.events_,
            "exposure": self.exposure_,
            "n": self.n_,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        det = cls(CountConfig(**state.get("config", {})))
        det._check_state(state)
        det.last_t_ = state["last_t"]
        det.events_ = float(state["events"])
        det.exposure_ = float(state["exposure"])
        det.n_ = int(state["n"])
        return det

    def baseline(self) -> float:
        cfg = self.config
        return (self.events_ + cfg.prior_rate * cfg.prior_weight) / (self.exposure_ + cfg.prior_weight)

    def _process(self, t: np.ndarray, y: np.ndarray, volume: np.ndarray | None) -> ScoredPoints:
        p, lower, upper = self.process_raw(y, volume)
        return ScoredPoints(score=p_to_score(p), lower=lower, upper=upper)

    def process_raw(
        self, y: np.ndarray, volume: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Upper-tail p-value and band per point (rate units with volume, counts without)."""
        cfg = self.config
        n = len(y)
        with_volume = volume is not None
        vol = volume if volume is not None else np.ones(n)
        k_arr = np.full(n, np.nan)
        n_arr = np.full(n, np.nan)
        tol_arr = np.full(n, np.nan)
        warm = np.zeros(n, dtype=bool)
        ys = y.tolist()
        vs = vol.tolist()
        abs_tol = cfg.abs_tol if with_volume else cfg.abs_tol * 100.0
        decay = 1.0 - cfg.alpha
        for i in range(n):
            yi, vi = ys[i], vs[i]
            base = self.baseline()
            tol = base * (1.0 + cfg.rel_tol) + abs_tol
            if with_volume:
                tol = min(tol, 1.0)
            tol_arr[i] = tol
            n_arr[i] = vi
            warm[i] = self.n_ >= cfg.warmup_points
            if math.isnan(yi) or math.isnan(vi) or yi < 0:
                continue
            k = round(yi * vi) if with_volume else round(yi)
            k_arr[i] = k
            # an incident must not become the new normal: absorb at most ~4 sd above the tolerance
            cap = tol * vi + cfg.min_excess + 4.0 * math.sqrt(max(tol * vi, 1.0))
            self.events_ = decay * self.events_ + min(k, cap)
            self.exposure_ = decay * self.exposure_ + vi
            self.n_ += 1
        p = np.ones(n)
        valid = ~np.isnan(k_arr) & warm
        excess_ok = valid & (k_arr - tol_arr * n_arr >= cfg.min_excess)
        if excess_ok.any():
            from scipy import stats  # imported on first use: keeps `import monitor.detectors` cheap

            k = k_arr[excess_ok]
            if with_volume:
                p[excess_ok] = stats.binom.sf(
                    k - 1, np.round(n_arr[excess_ok]).astype(np.int64), tol_arr[excess_ok]
                )
            else:
                p[excess_ok] = stats.poisson.sf(k - 1, tol_arr[excess_ok])
        k_star = np.where(warm, self._first_anomalous(tol_arr, n_arr, with_volume), np.nan)
        upper = k_star - 0.5
        lower = np.zeros(n)
        if with_volume:
            with np.errstate(invalid="ignore", divide="ignore"):
                upper = np.where(n_arr > 0, np.minimum(upper / n_arr, 1.0), np.nan)
        return np.where(np.isnan(p), 1.0, p), lower, upper

    def _first_anomalous(self, tol: np.ndarray, n: np.ndarray, with_volume: bool) -> np.ndarray:
        """Per point, the smallest event count the score calls anomalous at the band level ``band_p``
        (the same tail and the same ``min_excess`` as the p-value; NaN without a usable volume)."""
        from scipy import stats

        cfg = self.config
        out = np.full(len(tol), np.nan)
        ok = ~np.isnan(tol) & ~np.isnan(n) & (n > 0)
        if not ok.any():
            return out
        mean = tol[ok] * n[ok]
        rate = tol[ok]
        if with_volume:
            trials = np.round(n[ok]).astype(np.int64)

            def tail(k: np.ndarray) -> np.ndarray:  # P(X >= k), exactly as the score computes it
                return np.asarray(stats.binom.sf(k - 1, trials, rate))

            k_p = stats.binom.isf(cfg.band_p, trials, rate) + 1.0
        else:

            def tail(k: np.ndarray) -> np.ndarray:
                return np.asarray(stats.poisson.sf(k - 1, rate))

            k_p = stats.poisson.isf(cfg.band_p, rate) + 1.0
        # isf is a numerical inverse: settle the boundary on the very tail function the score uses
        k_p = np.where(tail(k_p - 1.0) <= cfg.band_p, k_p - 1.0, k_p)
        k_p = np.where(tail(k_p) > cfg.band_p, k_p + 1.0, k_p)
        if with_volume:
            k_p = np.where(k_p > trials, np.inf, k_p)  # no count of this volume is that unlikely
        k_e = np.ceil(mean + cfg.min_excess - 1e-9)
        out[ok] = np.maximum(np.maximum(k_p, k_e), 1.0)
        return out
