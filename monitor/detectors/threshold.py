"""ThresholdDetector: a series whose every non-zero point is an event by definition, not by surprise.

Some series are not measurements with noise but verdicts already decided elsewhere: the canary
judge's ``CanaryFail`` (1 when the judge failed a canary that minute, else 0) has its own statistics
inside the judge. Learning a baseline for it would be wrong twice: a count model needs several
events over its tolerated mean before it scores (one FAIL would never alert), and a baseline that
absorbed past failures would make the next one less alarming.

Model: a point at or above ``threshold`` scores 1 (the calibrated maximum: tail probability 1e-10),
any other present point 0; a missing point (NaN) scores 0. The band is [0, ``threshold`` / 2], so a
point is above the band exactly when it scores. It has no state beyond the last timestamp, needs no
history (``fit`` only records where it ends) and gives its opinion from the first point.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Self

import numpy as np

from monitor.detectors.base import OnlineDetector, ScoredPoints


@dataclass(frozen=True)
class ThresholdConfig:
    threshold: float = 1.0  # a point at or above it is an event (one FAIL verdict)

    def __post_init__(self) -> None:
        if not self.threshold > 0:
            raise ValueError(f"threshold must be > 0, got {self.threshold}")


class ThresholdDetector(OnlineDetector):
    kind = "threshold"
    version = 1

    def __init__(self, config: ThresholdConfig | None = None) -> None:
        self.config = config or ThresholdConfig()
        self.reset()

    def reset(self) -> None:
        self.last_t_ = None

    def _process(self, t: np.ndarray, y: np.ndarray, volume: np.ndarray | None) -> ScoredPoints:
        hit = np.nan_to_num(y, nan=0.0) >= self.config.threshold
        return ScoredPoints(
            score=np.where(hit, 1.0, 0.0),
            lower=np.zeros(len(y)),
            upper=np.full(len(y), self.config.threshold / 2),
        )

    def to_state(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "version": self.version,
            "config": asdict(self.config),
            "last_t": self.last_t_,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        det = cls(ThresholdConfig(**state.get("config", {})))
        det._check_state(state)
        last = state.get("last_t")
        det.last_t_ = None if last is None else int(last)
        return det
