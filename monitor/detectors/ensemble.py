"""EnsembleDetector: one calibrated score from several models.

Per point, the component p-values (seasonal baseline, kNN conformal, count/rate tail) are combined
with Fisher's method. The combined surprise ``-log10(p)`` then goes through the anomaly-likelihood
step (is this burst of surprise unusual for this series?). A value beyond the running minimum or
maximum by a margin of the seen range is novel and scores high on its own, and (unless
``direct_penalty`` is None) so does a single point whose combined p-value survives the penalty.
The final tail probability is the smallest of these, mapped to [0, 1] by `p_to_score`; the band is
the seasonal baseline's (or the count model's).

Score and band agree: the band is the set of values the point model (the seasonal baseline's
calibrated tail, or the count model's test) does not call unusual at its band level, and a point
inside it scores no more than that point model does; the windowed and combined evidence (likelihood,
kNN, novelty) only raises the score of a point outside the band. So an elevated likelihood after an
incident never makes a normal point look anomalous, and a point the alert rule ignores for being
inside the band is never reported with a high score.

With ``mask_points > 0`` the score reports onsets, as NAB's best detectors do (ARTime, CAD OSE,
KNN-CAD stay quiet for a while after a hit): once a score reaches ``mask_level`` the episode has been
reported and the following ``mask_points`` scores are held at 0. Profiles whose alert rule needs
several confirming points leave masking off; notifications are still the alert policy's call.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Self

import numpy as np

from monitor.detectors.base import (
    SCORE_DECADES,
    DetectorStateError,
    OnlineDetector,
    ScoredPoints,
    p_to_score,
)
from monitor.detectors.counts import CountConfig, CountRateDetector
from monitor.detectors.knn import KnnConfig, KnnConformalDetector, fisher_combine
from monitor.detectors.likelihood import AnomalyLikelihood, LikelihoodConfig
from monitor.detectors.seasonal import SeasonalBaselineDetector, SeasonalConfig

DOMAINS = ("real", "nonnegative", "unit", "observed")


@dataclass(frozen=True)
class EnsembleConfig:
    seasonal: SeasonalConfig | None = field(default_factory=SeasonalConfig)
    knn: KnnConfig | None = field(default_factory=KnnConfig)
    count: CountConfig | None = None
    likelihood: LikelihoodConfig | None = field(default_factory=LikelihoodConfig)
    direct_penalty: float | None = 1.0  # a lone point's combined p (x penalty) also stands on its own
    novelty_margin: float = 0.02  # share of the seen range beyond min/max that makes a value novel
    novelty_p: float = 1e-6  # tail probability given to a novel value
    novelty_after: int = 200  # valid points seen before novelty is judged
    mask_level: float = 0.5  # a score at or above this reports an episode onset...
    mask_points: int = 0  # ...and the next points' scores are held at 0 (0 = no masking)
    band_gate: bool = True  # a point inside the band scores no more than the band's point model
    # The values the metric can take, so the band never leaves them: "real" (anything), "nonnegative"
    # (counts, latencies, ages, depths), "unit" (ratios in [0, 1]), or "observed" (>= 0 for as long as
    # every value seen before the point was >= 0: a series of unknown kind). Scores are unaffected.
    domain: str = "real"

    def __post_init__(self) -> None:
        if self.domain not in DOMAINS:
            raise ValueError(f"domain must be one of {', '.join(DOMAINS)}, got {self.domain!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EnsembleConfig:
        def sub(key: str, typ: type) -> Any:
            value = data.get(key)
            return None if value is None else typ(**value)

        return cls(
            seasonal=sub("seasonal", SeasonalConfig),
            knn=sub("knn", KnnConfig),
            count=sub("count", CountConfig),
            likelihood=sub("likelihood", LikelihoodConfig),
            **{k: v for k, v in data.items() if k not in ("seasonal", "knn", "count", "likelihood")},
        )


class EnsembleDetector(OnlineDetector):
    kind = "ensemble"
    version = 2  # 2: score gated by the band; component models at version 2

    def __init__(self, config: EnsembleConfig | None = None) -> None:
        self.config = config or EnsembleConfig()
        if self.config.seasonal is None and self.config.count is None:
            raise ValueError("an ensemble needs a seasonal or a count model (they provide the band)")
        self.reset()

    def reset(self) -> None:
        cfg = self.config
        self.last_t_ = None
        self.seasonal_ = SeasonalBaselineDetector(cfg.seasonal) if cfg.seasonal else None
        self.knn_ = KnnConformalDetector(cfg.knn) if cfg.knn else None
        self.count_ = CountRateDetector(cfg.count) if cfg.count else None
        self.likelihood_ = AnomalyLikelihood(cfg.likelihood) if cfg.likelihood else None
        self.n_ = 0
        self.min_ = math.inf
        self.max_ = -math.inf
        self.masked_ = 0  # points left in the current mask

    def to_state(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "version": self.version,
            "config": self.config.to_dict(),
            "last_t": self.last_t_,
            "n": self.n_,
            "min": None if math.isinf(self.min_) else self.min_,
            "max": None if math.isinf(self.max_) else self.max_,
            "masked": self.masked_,
            "seasonal": self.seasonal_.to_state() if self.seasonal_ else None,
            "knn": self.knn_.to_state() if self.knn_ else None,
            "count": self.count_.to_state() if self.count_ else None,
            "likelihood": self.likelihood_.to_state() if self.likelihood_ else None,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        try:
            det = cls(EnsembleConfig.from_dict(state["config"]))
            det._check_state(state)
            det.last_t_ = state["last_t"]
            det.n_ = int(state["n"])
            det.min_ = math.inf if state["min"] is None else float(state["min"])
            det.max_ = -math.inf if state["max"] is None else float(state["max"])
            det.masked_ = int(state["masked"])
            if det.seasonal_ is not None:
                det.seasonal_ = SeasonalBaselineDetector.from_state(state["seasonal"])
            if det.knn_ is not None:
                det.knn_ = KnnConformalDetector.from_state(state["knn"])
            if det.count_ is not None:
                det.count_ = CountRateDetector.from_state(state["count"])
            if det.likelihood_ is not None:
                det.likelihood_ = AnomalyLikelihood.from_state(state["likelihood"])
        except (KeyError, TypeError) as exc:
            raise DetectorStateError(f"malformed ensemble state: {exc!r}") from exc
        return det

    def __deepcopy__(self, memo: dict[int, Any]) -> EnsembleDetector:
        clone = type(self).__new__(type(self))
        clone.__dict__.update({k: copy.deepcopy(v, memo) for k, v in self.__dict__.items()})
        return clone

    def _process(self, t: np.ndarray, y: np.ndarray, volume: np.ndarray | None) -> ScoredPoints:
        cfg = self.config
        n = len(y)
        p_point = np.ones(n)
        p_band = np.ones(n)  # the point model whose band this is: its p-value bounds the score inside
        p_shift = np.ones(n)  # the seasonal model's sustained-shift test
        lower = np.full(n, np.nan)
        upper = np.full(n, np.nan)
        if self.seasonal_ is not None:
            s_out = self.seasonal_.process_raw(t, y)
            p_point = s_out.p
            p_band = np.minimum(s_out.p, s_out.p_shift)
            p_shift = s_out.p_shift
            lower, upper = s_out.lower, s_out.upper
        if self.knn_ is not None:
            p_point = fisher_combine(p_point, self.knn_.process_raw(y))
        if self.count_ is not None:
            p_c, c_lo, c_hi = self.count_.process_raw(t, y, volume)
            p_point = p_c if self.seasonal_ is None else fisher_combine(p_point, p_c)
            if self.seasonal_ is None:
                lower, upper = c_lo, c_hi
                p_band = p_c
        valid = ~np.isnan(y)
        p_final = np.ones(n)
        if self.likelihood_ is not None:
            surprise = np.where(
                valid, np.minimum(-np.log10(np.clip(p_point, 1e-300, 1.0)), SCORE_DECADES), np.nan
            )
            p_final = self.likelihood_.run(surprise)
            if cfg.direct_penalty is not None:
                p_final = np.minimum(p_final, np.minimum(p_point * cfg.direct_penalty, 1.0))
        else:
            p_final = p_point
        p_final = np.minimum(p_final, p_shift)
        seen_min = np.fmin.accumulate(np.concatenate(([self.min_], y)))[:-1]  # before each point
        if cfg.novelty_margin > 0:
            p_final = np.minimum(p_final, self._novelty(y))
        else:
            self.n_ += int(valid.sum())
            if valid.any():
                self.min_ = min(self.min_, float(np.nanmin(y)))
                self.max_ = max(self.max_, float(np.nanmax(y)))
        if cfg.band_gate:
            with np.errstate(invalid="ignore"):
                inside = valid & (y >= lower) & (y <= upper)  # NaN band: no claim either way
            p_final = np.where(inside, np.maximum(p_final, p_band), p_final)
        p_final = np.where(valid, p_final, 1.0)
        score = p_to_score(p_final)
        if cfg.mask_points > 0:
            score = self._mask(score, valid)
        lower, upper = self._in_domain(lower, upper, seen_min)
        return ScoredPoints(score=score, lower=lower, upper=upper)

    def _in_domain(
        self, lower: np.ndarray, upper: np.ndarray, seen_min: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """The band clipped to the values the metric can take (NaN stays NaN: no band)."""
        domain = self.config.domain
        if domain == "real":
            return lower, upper
        floor = np.where(seen_min >= 0, 0.0, -np.inf) if domain == "observed" else 0.0
        ceiling = 1.0 if domain == "unit" else np.inf
        with np.errstate(invalid="ignore"):
            return np.clip(lower, floor, ceiling), np.clip(upper, floor, ceiling)

    def _mask(self, score: np.ndarray, valid: np.ndarray) -> np.ndarray:
        cfg = self.config
        out = score.copy()
        left = self.masked_
        for i, (s, ok) in enumerate(zip(score.tolist(), valid.tolist(), strict=True)):
            if not ok:
                continue
            if left > 0:
                out[i] = 0.0
                left -= 1
            elif s >= cfg.mask_level:
                left = cfg.mask_points
        self.masked_ = left
        return out

    def _novelty(self, y: np.ndarray) -> np.ndarray:
        cfg = self.config
        p = np.ones(len(y))
        lo, hi, seen = self.min_, self.max_, self.n_
        for i, yi in enumerate(y.tolist()):
            if math.isnan(yi):
                continue
            if seen >= cfg.novelty_after:
                margin = cfg.novelty_margin * (hi - lo)
                if yi > hi + margin or yi < lo - margin:
                    p[i] = cfg.novelty_p
            lo = min(lo, yi)
            hi = max(hi, yi)
            seen += 1
        self.min_, self.max_, self.n_ = lo, hi, seen
        return p
