"""The detector contract: arrays in, calibrated scores and an expected band out.

Every detector is pure and causal: `score` never mutates the model and the score of point j depends
only on the fitted history and the points before j of the same batch. Scores are calibrated the
same way everywhere: a tail probability ``p`` (how likely a point at least this surprising is under
the model) becomes ``score = -log10(p) / SCORE_DECADES`` clipped to [0, 1], so 0.5 means p = 1e-5
on every metric, whatever its unit.
"""

from __future__ import annotations

import copy
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Protocol, Self, runtime_checkable

import numpy as np

SCORE_DECADES = 10.0
_MIN_P = 10.0 ** (-SCORE_DECADES)


class DetectorInputError(ValueError):
    """Arrays given to a detector are unusable (shape, dtype, ordering)."""


class DetectorStateError(ValueError):
    """A stored detector state cannot be restored (unknown kind or version, missing keys)."""


@dataclass(frozen=True)
class ScoredPoints:
    """Per-point output of a detector; all arrays have the input's length."""

    score: np.ndarray  # float64 in [0, 1], calibrated (comparable across metrics)
    lower: np.ndarray  # expected band
    upper: np.ndarray

    def __post_init__(self) -> None:
        if not (len(self.score) == len(self.lower) == len(self.upper)):
            raise ValueError("score, lower and upper must have the same length")

    def __len__(self) -> int:
        return len(self.score)


@runtime_checkable
class Detector(Protocol):
    """fit / score / update / process, and a compact JSON-serialisable state."""

    def fit(self, t: np.ndarray, y: np.ndarray, volume: np.ndarray | None = None) -> Self: ...

    def score(self, t: np.ndarray, y: np.ndarray, volume: np.ndarray | None = None) -> ScoredPoints: ...

    def update(self, t: np.ndarray, y: np.ndarray, volume: np.ndarray | None = None) -> None: ...

    def process(self, t: np.ndarray, y: np.ndarray, volume: np.ndarray | None = None) -> ScoredPoints: ...

    def to_state(self) -> dict[str, Any]: ...

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self: ...


def p_to_score(p: np.ndarray) -> np.ndarray:
    """Tail probabilities -> calibrated scores in [0, 1] (NaN p -> 0)."""
    p = np.asarray(p, dtype=np.float64)
    p = np.where(np.isnan(p), 1.0, p)
    # `+ 0.0` turns the -0.0 of p = 1 into 0.0
    return np.clip(-np.log10(np.clip(p, _MIN_P, 1.0)) / SCORE_DECADES, 0.0, 1.0) + 0.0


def p_to_score_scalar(p: float) -> float:
    if not p < 1.0:
        return 0.0
    return min(1.0, -math.log10(max(p, _MIN_P)) / SCORE_DECADES)


def score_to_p(score: float) -> float:
    """Inverse of `p_to_score` (for thresholds expressed as a tail probability)."""
    return float(10.0 ** (-SCORE_DECADES * min(max(score, 0.0), 1.0)))


def check_inputs(
    t: np.ndarray, y: np.ndarray, volume: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Validate and convert the arrays every detector takes; raises `DetectorInputError`."""
    try:
        t_arr = np.asarray(t, dtype=np.int64)
        y_arr = np.asarray(y, dtype=np.float64)
        v_arr = None if volume is None else np.asarray(volume, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DetectorInputError(f"t must be integer epoch seconds and y numeric: {exc}") from exc
    if t_arr.ndim != 1 or y_arr.ndim != 1 or t_arr.shape != y_arr.shape:
        raise DetectorInputError(
            f"t and y must be 1-D arrays of equal length, got {t_arr.shape}, {y_arr.shape}"
        )
    if v_arr is not None and v_arr.shape != y_arr.shape:
        raise DetectorInputError(f"volume must match y's length, got {v_arr.shape} vs {y_arr.shape}")
    if len(t_arr) > 1 and np.any(np.diff(t_arr) <= 0):
        raise DetectorInputError("timestamps must be strictly increasing")
    y_arr = np.where(np.isfinite(y_arr), y_arr, np.nan)
    if v_arr is not None:
        v_arr = np.where(np.isfinite(v_arr) & (v_arr >= 0), v_arr, np.nan)
    return t_arr, y_arr, v_arr


class OnlineDetector(ABC):
    """Base for detectors that walk the points in time order: `process` is the one primitive.

    `score` runs `process` on a deep copy (so it is pure), `update` runs it and drops the output,
    `fit` resets and absorbs a history. Subclasses implement `_process`, `reset`, `to_state` and
    `from_state`.
    """

    kind: str = "abstract"
    version: int = 1
    last_t_: int | None = None

    @abstractmethod
    def reset(self) -> None: ...

    @abstractmethod
    def _process(self, t: np.ndarray, y: np.ndarray, volume: np.ndarray | None) -> ScoredPoints: ...

    @abstractmethod
    def to_state(self) -> dict[str, Any]: ...

    @classmethod
    @abstractmethod
    def from_state(cls, state: dict[str, Any]) -> Self: ...

    def fit(self, t: np.ndarray, y: np.ndarray, volume: np.ndarray | None = None) -> Self:
        self.reset()
        self.update(t, y, volume)
        return self

    def process(self, t: np.ndarray, y: np.ndarray, volume: np.ndarray | None = None) -> ScoredPoints:
        t_arr, y_arr, v_arr = check_inputs(t, y, volume)
        if len(t_arr) and self.last_t_ is not None and int(t_arr[0]) <= self.last_t_:
            raise DetectorInputError(
                f"points must come after the last absorbed timestamp {self.last_t_}, got {int(t_arr[0])}"
            )
        out = self._process(t_arr, y_arr, v_arr)
        if len(t_arr):
            self.last_t_ = int(t_arr[-1])
        return out

    def score(self, t: np.ndarray, y: np.ndarray, volume: np.ndarray | None = None) -> ScoredPoints:
        return copy.deepcopy(self).process(t, y, volume)

    def update(self, t: np.ndarray, y: np.ndarray, volume: np.ndarray | None = None) -> None:
        self.process(t, y, volume)

    def _check_state(self, state: dict[str, Any]) -> None:
        if state.get("kind") != self.kind or state.get("version") != self.version:
            raise DetectorStateError(
                f"expected state kind={self.kind!r} version={self.version}, "
                f"got kind={state.get('kind')!r} version={state.get('version')!r}"
            )


def floats_to_json(values: list[float] | np.ndarray) -> list[float | None]:
    """JSON-safe list of floats at full precision (NaN -> None), so a restored model is bit-identical."""
    return [None if math.isnan(v) else v for v in (float(x) for x in values)]


def floats_from_json(values: list[float | None]) -> list[float]:
    return [math.nan if v is None else float(v) for v in values]
