"""Pure helpers the pages share: time windows, KPI deltas and the monitor's expected bands. No I/O."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

# Selectable windows (label -> hours) and the period each one is drawn at (<= ~720 points).
WINDOWS: dict[str, float] = {
    "1 h": 1,
    "6 h": 6,
    "24 h": 24,
    "3 d": 72,
    "7 d": 168,
    "14 d": 336,
}


def period_for(hours: float) -> int:
    """A CloudWatch period (seconds) that draws the window in at most ~720 points."""
    for period_s in (60, 300, 900, 1800, 3600, 10800, 21600, 86400):
        if hours * 3600 / period_s <= 720:
            return period_s
    return 86400


@dataclass(frozen=True)
class Kpi:
    """A figure for the current window and the same figure for the window before it."""

    current: float | None
    previous: float | None

    @property
    def delta(self) -> float | None:
        if self.current is None or self.previous is None:
            return None
        return self.current - self.previous

    @property
    def delta_pct(self) -> float | None:
        if self.current is None or self.previous in (None, 0):
            return None
        assert self.previous is not None
        return (self.current - self.previous) / abs(self.previous) * 100


def split_windows(series: pd.Series, boundary: datetime) -> tuple[pd.Series, pd.Series]:
    """(previous, current) parts of a series indexed by period start; `boundary` starts the current one."""
    stamp = pd.Timestamp(boundary)
    return series[series.index < stamp], series[series.index >= stamp]


def safe_ratio(numerator: float, denominator: float) -> float | None:
    return None if denominator <= 0 else numerator / denominator


def fmt_money_delta(delta: float) -> str:
    """A signed dollar change with the sign first ("-$1.20", "+$0.00"): Streamlit's metric reads the
    direction of its arrow from a leading "-", so "$-1.20" would be drawn as an increase."""
    cents = round(delta, 2)
    return f"{'-' if cents < 0 else '+'}${abs(cents):,.2f}"


def fmt_number(value: float | None, unit: str = "", digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if abs(value) >= 1_000_000:
        text = f"{value / 1_000_000:.2f} M"
    elif abs(value) >= 10_000:
        text = f"{value / 1000:.1f} k"
    else:
        text = f"{value:,.{digits}f}"
    return f"{text}{unit}"


@dataclass(frozen=True)
class Band:
    """A series with the monitor's expected band and anomaly scores, one row per period."""

    frame: pd.DataFrame  # columns: timestamp, value, lower, upper, score, anomalous
    threshold: float
    detector: str


class BandUnavailableError(RuntimeError):
    """The monitor's detectors or alert policy cannot be loaded (not installed yet, or broken)."""


# Catalog profile -> detector profile, used only if the monitor's detectors do not know the catalog's name.
_PROFILE_FALLBACK = {"sparse_count": "count", "level": "backlog", "count": "traffic"}


def alert_threshold(profile: str) -> float:
    try:
        from monitor.policy import default_rule
    except ImportError as err:  # pragma: no cover - depends on the monitor package being present
        raise BandUnavailableError(f"the monitor's alert policy is not available: {err}") from err
    return float(default_rule(profile).threshold)


def _detector_and_threshold(profile: str, period_s: int) -> tuple[object, float, str]:
    """The monitor's detector and alert threshold for a catalog profile (and the profile used)."""
    try:
        from monitor.detectors import build_detector
    except ImportError as err:
        raise BandUnavailableError(f"the monitor's detectors are not available: {err}") from err
    tried: list[str] = []
    for name in (profile, _PROFILE_FALLBACK.get(profile, "default"), "default"):
        if name in tried:
            continue
        tried.append(name)
        try:
            return build_detector(name, period_s=period_s), alert_threshold(name), name
        except ValueError:
            continue
    raise BandUnavailableError(f"the monitor has no detector for profile {profile!r} (tried {tried})")


def expected_band(
    series: pd.Series,
    *,
    profile: str,
    period_s: int,
    scored_from: datetime,
    volume: pd.Series | None = None,
) -> Band:
    """Fit the monitor's detector for `profile` on the points before `scored_from`, then score the rest.

    This is what the monitor does: the band and scores of a point depend only on earlier points.
    """
    detector: Any
    detector, threshold, used = _detector_and_threshold(profile, period_s)
    clean = series.sort_index()
    clean = clean[~clean.index.duplicated()]
    t = pd.DatetimeIndex(clean.index).as_unit("s").asi8.astype(np.int64)
    y = clean.to_numpy(dtype=np.float64)
    v = None
    if volume is not None:
        v = volume.reindex(clean.index).to_numpy(dtype=np.float64)
    cut = int(np.searchsorted(t, int(pd.Timestamp(scored_from).timestamp())))
    detector.fit(t[:cut], y[:cut], None if v is None else v[:cut])
    out = detector.process(t[cut:], y[cut:], None if v is None else v[cut:])
    frame = pd.DataFrame(
        {
            "timestamp": clean.index[cut:],
            "value": y[cut:],
            "lower": np.asarray(out.lower, dtype=np.float64),
            "upper": np.asarray(out.upper, dtype=np.float64),
            "score": np.asarray(out.score, dtype=np.float64),
        }
    )
    frame["anomalous"] = (frame["score"] >= threshold) & frame["value"].notna()
    return Band(frame=frame, threshold=threshold, detector=f"{type(detector).__name__} ({used})")


def training_span(hours: float) -> timedelta:
    """History fetched before a window to fit the detector: the window's length, 1 to 7 days."""
    return timedelta(hours=min(max(hours, 24.0), 168.0))
