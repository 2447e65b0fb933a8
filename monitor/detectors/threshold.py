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

``increase`` (a dead-letter queue's depth): the event is an *arrival*, a rise of at least
``threshold`` over the last present value, whatever the level (a DLQ that has held 3 old messages for
a week is not an incident; 6 more this period are: each is a message that failed for good). The band
is [0, last value + ``threshold`` / 2]; the first present point, with nothing before it, scores 0.
A fall (a redrive, a purge) is no event. The state keeps the last present value.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Self

import numpy as np

from monitor.detectors.base import OnlineDetector, ScoredPoints


@dataclass(frozen=True)
class ThresholdConfig:
    threshold: float = 1.0  # a point at or above it is an event (one FAIL verdict)
    increase: bool = False  # the event is a rise of at least `threshold` over the last present value

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
        self.last_value_: float | None = None  # `increase`: the last present value

    def _process(self, t: np.ndarray, y: np.ndarray, volume: np.ndarray | None) -> ScoredPoints:
        threshold = self.config.threshold
        if not self.config.increase:
            hit = np.nan_to_num(y, nan=0.0) >= threshold
            return ScoredPoints(
                score=np.where(hit, 1.0, 0.0),
                lower=np.zeros(len(y)),
                upper=np.full(len(y), threshold / 2),
            )
        # the value each point rises from: the last present value before it (NaN before the first)
        before = np.full(len(y), np.nan)
        last = np.nan if self.last_value_ is None else self.last_value_
        for i, v in enumerate(y.tolist()):
            before[i] = last
            if not np.isnan(v):
                last = v
        if not np.isnan(last):
            self.last_value_ = float(last)
        with np.errstate(invalid="ignore"):
            hit = (y - before) >= threshold  # False where either is NaN
        return ScoredPoints(
            score=np.where(hit, 1.0, 0.0),
            lower=np.zeros(len(y)),
            upper=before + threshold / 2,
        )

    def to_state(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "version": self.version,
            "config": asdict(self.config),
            "last_t": self.last_t_,
            "last_value": self.last_value_,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        det = cls(ThresholdConfig(**state.get("config", {})))
        det._check_state(state)
        last = state.get("last_t")
        det.last_t_ = None if last is None else int(last)
        value = state.get("last_value")  # states written before `increase` have none
        det.last_value_ = None if value is None else float(value)
        return det
