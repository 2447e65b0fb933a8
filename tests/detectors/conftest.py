"""Synthetic series helpers for the detector tests."""

from __future__ import annotations

import numpy as np

PERIOD = 300
DAY = 86400 // PERIOD
START = 1_700_006_400  # a midnight UTC


def seasonal_series(
    days: float, *, seed: int = 0, level: float = 100.0, amp: float = 30.0, noise: float = 3.0
):
    rng = np.random.default_rng(seed)
    n = int(days * DAY)
    t = START + np.arange(n, dtype=np.int64) * PERIOD
    phase = 2 * np.pi * ((t % 86400) / 86400.0)
    y = level + amp * np.sin(phase) + rng.normal(0.0, noise, n)
    return t, y
