"""Synthetic serverless metric series with injected incidents, for benchmarks and tests.

Each generator returns a `SyntheticSeries`: 5-minute points of a realistic metric (diurnal and weekly
traffic with noise), the detector profile that watches it, and the index windows of the injected
incident (empty for a clean series). Pure numpy; deterministic for a seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

Severity = Literal["major", "minor"]
IncidentKind = Literal[
    "error_burst",
    "latency_regression",
    "traffic_drop",
    "traffic_spike",
    "throttling",
    "queue_backlog",
    "dlq_arrivals",
    "cold_start_storm",
]
KINDS: tuple[IncidentKind, ...] = (
    "error_burst",
    "latency_regression",
    "traffic_drop",
    "traffic_spike",
    "throttling",
    "queue_backlog",
    "dlq_arrivals",
    "cold_start_storm",
)
PROFILE_OF: dict[str, str] = {
    "error_burst": "rate",
    "latency_regression": "latency",
    "traffic_drop": "traffic",
    "traffic_spike": "traffic",
    "throttling": "count",
    "queue_backlog": "backlog",
    "dlq_arrivals": "backlog",  # the catalog watches DLQ depth (a gauge), as it does queue age
    "cold_start_storm": "count",
}
START = 1_764_547_200  # 2025-12-01 00:00 UTC, a Monday


@dataclass(frozen=True)
class SyntheticSeries:
    name: str
    kind: str
    profile: str
    period_s: int
    t: np.ndarray
    y: np.ndarray
    volume: np.ndarray | None
    incidents: list[tuple[int, int]] = field(default_factory=list)  # [start, end) indices


def _traffic(t: np.ndarray, rng: np.random.Generator, base: float) -> np.ndarray:
    """Expected requests per point: diurnal peak in the afternoon, quieter weekends, slow drift."""
    hours = (t % 86400) / 3600.0
    weekday = ((t // 86400) + 3) % 7
    diurnal = 0.55 + 0.45 * np.sin(2 * np.pi * (hours - 9.0) / 24.0)
    weekly = np.where(weekday >= 5, 0.7, 1.0)
    drift = 1.0 + 0.05 * np.sin(2 * np.pi * t / (9 * 86400.0) + rng.uniform(0, 6.28))
    return base * (0.15 + diurnal) * weekly * drift


def generate(
    kind: IncidentKind,
    *,
    seed: int,
    days: float = 8.0,
    period_s: int = 300,
    incident: bool = True,
    incident_after_days: float = 5.0,
    severity: Severity = "major",
) -> SyntheticSeries:
    """One series of `kind`; with `incident`, one incident starts at a random time after
    `incident_after_days` (the monitor has that much history before it). A "minor" incident is the
    same failure at a fraction of the magnitude (the hard cases)."""
    if severity not in ("major", "minor"):
        raise ValueError(f"severity must be major or minor, got {severity!r}")
    minor = severity == "minor"
    if kind not in PROFILE_OF:
        raise ValueError(f"unknown incident kind {kind!r}; known: {', '.join(KINDS)}")
    rng = np.random.default_rng(seed)
    n = int(days * 86400 / period_s)
    t = START + np.arange(n, dtype=np.int64) * period_s
    per_hour = 3600 // period_s
    lam = _traffic(t, rng, base=rng.uniform(800, 3000))
    requests = rng.poisson(lam).astype(np.float64)
    first = int(incident_after_days * 86400 / period_s)
    start = int(rng.integers(first, n - 12 * per_hour))
    volume: np.ndarray | None = None
    if kind == "error_burst":
        length = int(rng.integers(per_hour // 2, 2 * per_hour))
        rate = np.full(n, rng.uniform(0.002, 0.01))
        if incident:
            rate[start : start + length] = rng.uniform(0.02, 0.04) if minor else rng.uniform(0.05, 0.2)
        errors = rng.binomial(requests.astype(np.int64), np.clip(rate * rng.lognormal(0, 0.3, n), 0, 1))
        y = np.where(requests > 0, errors / np.maximum(requests, 1), 0.0)
        volume = requests
    elif kind == "latency_regression":
        length = n - start  # a bad deploy stays until rolled back (here: never)
        base = rng.uniform(80, 250)
        y = base * (1.0 + 0.25 * lam / lam.max()) * rng.lognormal(0, 0.08, n)
        if incident:
            y[start:] *= rng.uniform(1.15, 1.3) if minor else rng.uniform(1.4, 2.0)
    elif kind in ("traffic_drop", "traffic_spike"):
        length = int(rng.integers(per_hour, 3 * per_hour))
        if kind == "traffic_drop":
            factor = rng.uniform(0.6, 0.75) if minor else rng.uniform(0.2, 0.5)
        else:
            factor = rng.uniform(1.5, 1.8) if minor else rng.uniform(2.5, 4.0)
        if incident:
            lam = lam.copy()
            lam[start : start + length] *= factor
        y = rng.poisson(lam).astype(np.float64)
    elif kind == "throttling":
        length = int(rng.integers(per_hour // 2, 2 * per_hour))
        mean = np.full(n, 0.05)
        if incident:
            mean[start : start + length] = rng.uniform(3, 10) if minor else rng.uniform(20, 200)
        y = rng.poisson(mean).astype(np.float64)
    elif kind == "dlq_arrivals":
        # Dead-letter depth: zero until failed messages arrive; they stay until someone redrives them.
        length = int(rng.integers(2, 6))
        y = np.zeros(n)
        if incident:
            arrivals = rng.integers(1, 3, length) if minor else rng.integers(3, 15, length)
            y[start : start + length] = np.cumsum(arrivals)
            y[start + length : start + length + 8 * per_hour] = arrivals.sum()
    elif kind == "cold_start_storm":
        length = int(rng.integers(per_hour // 4, per_hour))
        mean = 0.002 * lam
        if incident:
            mean = mean.copy()
            mean[start : start + length] = rng.uniform(10, 25) if minor else rng.uniform(40, 120)
        y = rng.poisson(mean).astype(np.float64)
    else:  # queue_backlog: age of the oldest message grows while consumers are stuck
        length = int(rng.integers(per_hour, 3 * per_hour))
        y = rng.gamma(2.0, rng.uniform(2, 10), n)
        if incident:
            y[start : start + length] += (
                np.arange(length) * period_s * (rng.uniform(0.05, 0.1) if minor else rng.uniform(0.5, 1.0))
            )
    windows = [(start, min(n, start + length))] if incident else []
    name = f"{kind}-{seed}-{severity if incident else 'clean'}"
    return SyntheticSeries(name, kind, PROFILE_OF[kind], period_s, t, y, volume, windows)
