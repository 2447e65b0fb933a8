"""KnnConformalDetector: nearest-neighbour conformal p-values on lagged-window features (a la KNN-CAD).

Each point is embedded with the ``dim`` values ending at it, normalised by the robust centre and
scale of the reference history. Its anomaly measure is the mean distance to its ``k`` nearest
reference windows; the conformal p-value is the share of calibration windows (recent windows scored
against the same reference) that are at least as far. The scikit-learn index is rebuilt every
``refit_every`` points from the last ``reference + calibration`` windows, so scoring a batch is a
few vectorised queries, not a Python loop per point. The model at any moment is a deterministic
function of the stored value history and the refit phase, so the state holds only those.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Self

import numpy as np

from monitor.detectors.base import (
    OnlineDetector,
    ScoredPoints,
    floats_from_json,
    floats_to_json,
    p_to_score,
)

if TYPE_CHECKING:
    from sklearn.neighbors import KDTree


@dataclass(frozen=True)
class KnnConfig:
    dim: int = 6
    k: int = 5
    reference: int = 480
    calibration: int = 160
    refit_every: int = 96
    min_windows: int = 96  # fewer usable windows than this: no opinion (p = 1)


@dataclass
class _Model:
    index: KDTree
    k: int
    center: float
    scale: float
    cal_sorted: np.ndarray


class KnnConformalDetector(OnlineDetector):
    kind = "knn_conformal"
    version = 1

    def __init__(self, config: KnnConfig | None = None, **overrides: Any) -> None:
        base = config or KnnConfig()
        self.config = KnnConfig(**{**asdict(base), **overrides})
        self.reset()

    @property
    def _keep(self) -> int:
        c = self.config
        return c.reference + c.calibration + c.dim - 1 + c.refit_every

    def reset(self) -> None:
        self.last_t_ = None
        self.history_: list[float] = []
        self.since_refit_ = 0
        self._model: _Model | None = None
        self._model_stale = True

    def to_state(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "version": self.version,
            "config": asdict(self.config),
            "last_t": self.last_t_,
            "history": floats_to_json(self.history_),
            "since_refit": self.since_refit_,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        det = cls(KnnConfig(**state.get("config", {})))
        det._check_state(state)
        det.last_t_ = state["last_t"]
        det.history_ = floats_from_json(state["history"])
        det.since_refit_ = int(state["since_refit"])
        return det

    def __deepcopy__(self, memo: dict[int, Any]) -> KnnConformalDetector:
        # The fitted index is immutable once built: share it instead of copying it.
        clone = type(self)(self.config)
        clone.last_t_ = self.last_t_
        clone.history_ = list(self.history_)
        clone.since_refit_ = self.since_refit_
        clone._model = self._model
        clone._model_stale = self._model_stale
        return clone

    def _process(self, t: np.ndarray, y: np.ndarray, volume: np.ndarray | None) -> ScoredPoints:
        p = self.process_raw(y)
        nan = np.full(len(y), np.nan)
        return ScoredPoints(score=p_to_score(p), lower=nan, upper=nan.copy())

    def process_raw(self, y: np.ndarray) -> np.ndarray:
        """Conformal p-value per point (1 where the model has no opinion); absorbs the points."""
        cfg = self.config
        n = len(y)
        p_out = np.ones(n)
        if self._model_stale:
            # Rebuild the model as it was at the last refit (after a restore from state).
            upto = len(self.history_) - self.since_refit_
            self._model = self._build(np.asarray(self.history_[:upto], dtype=np.float64))
            self._model_stale = False
        start = 0
        while start < n:
            stop = min(n, start + cfg.refit_every - self.since_refit_)
            hist_len = len(self.history_)
            chunk = y[start:stop]
            if self._model is not None:
                tail = np.asarray(self.history_[max(0, hist_len - cfg.dim + 1) :], dtype=np.float64)
                seq = np.concatenate([tail, chunk])
                if len(seq) >= cfg.dim:
                    wins = np.lib.stride_tricks.sliding_window_view(seq, cfg.dim)
                    offset = len(chunk) - len(wins)  # leading points without a full window
                    ok = ~np.isnan(wins).any(axis=1)
                    if ok.any():
                        m = self._model
                        feats = (wins[ok] - m.center) / m.scale
                        dist, _ = m.index.query(feats, k=m.k)
                        d = dist.mean(axis=1)
                        ge = len(m.cal_sorted) - np.searchsorted(m.cal_sorted, d, side="left")
                        pv = (1.0 + ge) / (len(m.cal_sorted) + 1.0)
                        idx = np.nonzero(ok)[0] + offset + start
                        p_out[idx] = pv
            self.history_.extend(chunk.tolist())
            self.since_refit_ += len(chunk)
            if self.since_refit_ >= cfg.refit_every:
                if len(self.history_) > self._keep:
                    del self.history_[: len(self.history_) - self._keep]
                self._model = self._build(np.asarray(self.history_, dtype=np.float64))
                self.since_refit_ = 0
            start = stop
        return p_out

    def _build(self, values: np.ndarray) -> _Model | None:
        from sklearn.neighbors import KDTree

        cfg = self.config
        if len(values) < cfg.dim:
            return None
        values = values[-(cfg.reference + cfg.calibration + cfg.dim - 1) :]
        wins = np.lib.stride_tricks.sliding_window_view(values, cfg.dim)
        wins = wins[~np.isnan(wins).any(axis=1)]
        if len(wins) < cfg.min_windows:
            return None
        n_cal = min(cfg.calibration, len(wins) // 3)
        ref, cal = wins[:-n_cal], wins[-n_cal:]
        finite = values[~np.isnan(values)]
        center = float(np.median(finite))
        q75, q25 = np.percentile(finite, [75, 25])
        scale = float(q75 - q25) / 1.349
        if not scale > 0:
            scale = float(np.std(finite))
        scale = max(scale, 1e-9 * max(1.0, abs(center)))
        k = min(cfg.k, len(ref))
        index = KDTree((ref - center) / scale)
        dist, _ = index.query((cal - center) / scale, k=k)
        cal_scores = np.sort(dist.mean(axis=1))
        return _Model(index=index, k=k, center=center, scale=scale, cal_sorted=cal_scores)


def fisher_combine(p1: np.ndarray, p2: np.ndarray) -> np.ndarray:
    """Fisher's method for two p-values: P(chi2_4 >= -2 ln(p1 p2)) = P (1 - ln P), P = p1 p2."""
    prod = np.clip(p1 * p2, 1e-300, 1.0)
    return np.clip(prod * (1.0 - np.log(prod)), 0.0, 1.0)


__all__ = ["KnnConfig", "KnnConformalDetector", "fisher_combine"]
