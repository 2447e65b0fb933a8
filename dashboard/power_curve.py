"""The memory → duration → cost curve that `python -m benchmarks bench_power_tuning` measures. No I/O but
`load_curve`.

On Lambda the CPU share grows with the memory setting (one vCPU at 1,769 MB, proportionally less below,
a second vCPU's share above), so the duration of a CPU-bound function falls as memory rises and the
cheapest setting is where GB-seconds stop falling — the curve AWS Lambda Power Tuning draws. The
benchmark runs each function's real handler at each memory size under that CPU share and saves one
`PowerCurve` as JSON; the dashboard's right-sizing reads it (`dashboard/cost.py::right_size_with_curve`).

A `SizePoint` is one memory size: its vCPU share, the duration percentiles, the mean billed duration and
the cost per million invocations at the Lambda arm64 prices the file names. `feasible` is False when the
function's peak memory (measured in the same run) does not fit: Lambda would end those invocations.
"""

from __future__ import annotations

import itertools
import math
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

FULL_VCPU_MB = 1769  # Lambda: one full vCPU at 1,769 MB of memory, proportional below and above


class PowerCurveError(ValueError):
    """The curve file exists but cannot be used (not JSON, wrong shape)."""


def vcpu_share(memory_mb: int) -> float:
    """The vCPUs' worth of CPU time Lambda gives a function of `memory_mb` (0.072 at 128 MB)."""
    if memory_mb <= 0:
        raise ValueError(f"memory must be > 0 MB, got {memory_mb}")
    return memory_mb / FULL_VCPU_MB


def cost_per_million(memory_mb: int, mean_billed_ms: float, *, gb_s_usd: float, request_usd: float) -> float:
    """USD per million invocations: compute (billed ms x GB) plus the request charge."""
    return 1e6 * (mean_billed_ms / 1000 * memory_mb / 1024 * gb_s_usd + request_usd)


def billed_ms(duration_ms: float) -> int:
    """Lambda bills every invocation in whole milliseconds, rounded up, at least 1 ms."""
    return max(1, math.ceil(duration_ms))


class SizePoint(BaseModel):
    model_config = ConfigDict(frozen=True)

    memory_mb: int = Field(gt=0)
    vcpu: float = Field(gt=0)
    invocations: int = Field(ge=0)
    errors: int = Field(default=0, ge=0)
    p50_ms: float = Field(ge=0)
    p99_ms: float = Field(ge=0)
    mean_ms: float = Field(ge=0)
    mean_billed_ms: float = Field(ge=0)
    cpu_ms_mean: float | None = Field(default=None, ge=0)
    cost_per_million_usd: float = Field(ge=0)
    feasible: bool = True


class FunctionCurve(BaseModel):
    model_config = ConfigDict(frozen=True)

    function: str
    configured_mb: int = Field(gt=0)
    peak_memory_mb: float = Field(ge=0)
    mix: str
    points: tuple[SizePoint, ...]

    def feasible(self) -> list[SizePoint]:
        return sorted((p for p in self.points if p.feasible and p.invocations), key=lambda p: p.memory_mb)

    def cheapest(self) -> SizePoint | None:
        """Lowest cost per million invocations among the sizes the function fits in (ties: faster)."""
        points = self.feasible()
        return min(points, key=lambda p: (p.cost_per_million_usd, p.mean_ms)) if points else None

    def fastest(self, tolerance: float = 0.05) -> SizePoint | None:
        """The smallest size whose mean duration is within `tolerance` of the lowest mean: above one vCPU a
        single-threaded handler gains nothing, and picking the noise's minimum would pay for nothing."""
        points = self.feasible()
        if not points:
            return None
        best = min(p.mean_ms for p in points)
        return next(p for p in points if p.mean_ms <= best * (1 + tolerance))

    def duration_ratio(self, memory_mb: int, reference_mb: int) -> float | None:
        """Mean duration at `memory_mb` over the mean at `reference_mb`, linearly interpolated in memory
        between measured sizes; None outside the measured range."""
        at, ref = self._mean_at(memory_mb), self._mean_at(reference_mb)
        if at is None or ref is None or ref <= 0:
            return None
        return at / ref

    def _mean_at(self, memory_mb: int) -> float | None:
        points = sorted((p for p in self.points if p.invocations), key=lambda p: p.memory_mb)
        for low, high in itertools.pairwise(points):
            if low.memory_mb <= memory_mb <= high.memory_mb:
                if high.memory_mb == low.memory_mb:
                    return low.mean_ms
                share = (memory_mb - low.memory_mb) / (high.memory_mb - low.memory_mb)
                return low.mean_ms + share * (high.mean_ms - low.mean_ms)
        if len(points) == 1 and points[0].memory_mb == memory_mb:
            return points[0].mean_ms
        return None


class PowerCurve(BaseModel):
    """One run of the benchmark: how the CPU was limited, the prices used, and a curve per function."""

    model_config = ConfigDict(frozen=True)

    measured_at: datetime
    host: str
    cpu_limit: str  # "cgroup-v2 cpu.max", "cgroup-v1 cpu.cfs_quota_us" or "model"
    cpu_limit_detail: str
    gb_s_usd: float = Field(gt=0)
    request_usd: float = Field(ge=0)
    prices_note: str
    functions: tuple[FunctionCurve, ...]

    def function(self, key: str) -> FunctionCurve | None:
        return next((f for f in self.functions if f.function == key), None)


def load_curve(path: Path) -> PowerCurve | None:
    """The saved curve, or None if there is no file; a file that is not a curve raises PowerCurveError."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as err:
        raise PowerCurveError(f"{path}: {err}") from err
    try:
        return PowerCurve.model_validate_json(text)
    except ValidationError as err:
        raise PowerCurveError(
            f"{path} is not a bench_power_tuning curve: {err.error_count()} error(s), "
            f"first: {err.errors()[0]['loc']} {err.errors()[0]['msg']}"
        ) from err
