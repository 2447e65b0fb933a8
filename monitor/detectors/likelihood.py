"""Anomaly likelihood (after Numenta): is the recent surprise level unusual *for this series*?

The input is a per-point surprise ``s = -log10(p)`` from any model. The short-term mean of the last
``short_window`` surprises is compared with the long-run distribution of that mean (exponentially
weighted mean and variance over about ``long_window`` points); the output is the Gaussian upper tail
probability. A series whose model is often surprised thus needs a larger burst to alarm than one
whose model is rarely wrong, which is what makes one threshold work across very different metrics.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any, Self

import numpy as np

_SQRT2 = math.sqrt(2.0)


@dataclass(frozen=True)
class LikelihoodConfig:
    short_window: int = 15
    long_window: int = 2000
    warmup: int = 120  # surprises to see before giving an opinion
    min_sd: float = 0.05  # floor of the long-run sd of the short mean (in decades)


class AnomalyLikelihood:
    def __init__(self, config: LikelihoodConfig | None = None) -> None:
        self.config = config or LikelihoodConfig()
        self.recent: deque[float] = deque(maxlen=self.config.short_window)
        self.n = 0
        self.mean = 0.0
        self.var = 0.0

    def step(self, surprise: float) -> float:
        """Tail probability of the current short-term mean; then absorb it. NaN: skipped (p = 1)."""
        if math.isnan(surprise):
            return 1.0
        cfg = self.config
        self.recent.append(surprise)
        m = sum(self.recent) / len(self.recent)
        p = 1.0
        if self.n >= cfg.warmup:
            sd = max(math.sqrt(self.var), cfg.min_sd)
            z = (m - self.mean) / sd
            p = 0.5 * math.erfc(z / _SQRT2) if z > 0 else 1.0
        self.n += 1
        w = max(1.0 / self.n, 1.0 / cfg.long_window)
        delta = m - self.mean
        self.mean += w * delta
        self.var = (1.0 - w) * (self.var + w * delta * delta)
        return p

    def run(self, surprises: np.ndarray) -> np.ndarray:
        return np.array([self.step(s) for s in surprises.tolist()], dtype=np.float64)

    def to_state(self) -> dict[str, Any]:
        return {
            "config": asdict(self.config),
            "recent": list(self.recent),
            "n": self.n,
            "mean": self.mean,
            "var": self.var,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        obj = cls(LikelihoodConfig(**state["config"]))
        obj.recent.extend(float(v) for v in state["recent"])
        obj.n = int(state["n"])
        obj.mean = float(state["mean"])
        obj.var = float(state["var"])
        return obj
