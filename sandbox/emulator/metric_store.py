"""An indexed CloudWatch metric store (runs inside the emulator process, see `sandbox.emulator.extensions`).

moto keeps every datapoint in one flat list and scans all of it for every period of every query.
This store keeps one series per (namespace, metric name, sorted dimensions), with time-sorted numpy
arrays of raw values (value, count) and of pre-aggregated StatisticValues (sum, min, max, count).
A query slices the series by time with a binary search and aggregates all periods at once, so
a 14-day, 1-minute query costs O(points in range · log), independent of everything else stored.

Statistics follow CloudWatch: Sum, Average, Minimum, Maximum, SampleCount over raw values and
StatisticValues together; percentiles ``pNN`` (nearest rank) and trimmed means ``tmNN`` over raw
values only (CloudWatch cannot derive them from StatisticValues either). Periods start at
StartTime rounded down to the minute (to the second for high-resolution periods under 60 s).
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
DimensionKey = tuple[tuple[str, str], ...]
SeriesKey = tuple[str, str, DimensionKey]

BASIC_STATS = ("Sum", "Average", "Minimum", "Maximum", "SampleCount")
_PERCENTILE = re.compile(r"^p(\d{1,2}(?:\.\d+)?|100)$")
_TRIMMED_MEAN = re.compile(r"^tm(\d{1,2}(?:\.\d+)?|100)$")


class StatError(ValueError):
    """A statistic name the store does not understand."""


def validate_stat(stat: str) -> None:
    if stat in BASIC_STATS:
        return
    match = _PERCENTILE.match(stat) or _TRIMMED_MEAN.match(stat)
    if not match or not 0.0 <= float(match.group(1)) <= 100.0:
        raise StatError(
            f"The value {stat} for parameter Stat is not supported: use Sum, Average, Minimum, "
            "Maximum, SampleCount, pNN(.NN) or tmNN(.NN)."
        )


def dimension_key(dimensions: Iterable[dict[str, Any]] | None) -> DimensionKey:
    return tuple(sorted((str(d["Name"]), str(d["Value"])) for d in dimensions or ()))


class _Columns:
    """Append-only columns, turned into time-sorted numpy arrays lazily (only after new writes)."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = names
        self._pending: dict[str, list[float]] = {name: [] for name in ("ts", *names)}
        self._arrays: dict[str, FloatArray] = {name: np.empty(0) for name in ("ts", *names)}

    def append(self, ts: float, *values: float) -> None:
        self._pending["ts"].append(ts)
        for name, value in zip(self.names, values, strict=True):
            self._pending[name].append(value)

    def extend(self, ts: list[float], columns: dict[str, list[float]]) -> None:
        self._pending["ts"].extend(ts)
        for name in self.names:
            self._pending[name].extend(columns[name])

    def __len__(self) -> int:
        return len(self._arrays["ts"]) + len(self._pending["ts"])

    def arrays(self) -> dict[str, FloatArray]:
        if self._pending["ts"]:
            merged = {
                name: np.concatenate([self._arrays[name], np.asarray(self._pending[name], dtype=np.float64)])
                for name in self._arrays
            }
            order = np.argsort(merged["ts"], kind="stable")
            self._arrays = {name: column[order] for name, column in merged.items()}
            for pending in self._pending.values():
                pending.clear()
        return self._arrays


@dataclass
class Series:
    namespace: str
    name: str
    dimensions: DimensionKey
    unit: str | None = None
    last_put: float = 0.0
    raw: _Columns = field(default_factory=lambda: _Columns(("value", "count")))
    agg: _Columns = field(default_factory=lambda: _Columns(("sum", "min", "max", "count")))

    @property
    def size(self) -> int:
        return len(self.raw) + len(self.agg)


@dataclass(frozen=True)
class Datapoints:
    """Per-period results of one series and statistic: ascending period starts (epoch s) and values."""

    timestamps: FloatArray
    values: FloatArray

    @staticmethod
    def empty() -> Datapoints:
        return Datapoints(np.empty(0), np.empty(0))


def align_start(start: float, period: int) -> float:
    """CloudWatch rounds StartTime down: to the minute for periods >= 60 s, else to the second."""
    step = 60 if period >= 60 else 1
    return math.floor(start / step) * step


class MetricStore:
    """Thread-safe store of all series of one account and region."""

    def __init__(self) -> None:
        self._series: dict[SeriesKey, Series] = {}
        self._lock = threading.RLock()

    # ---- writes -------------------------------------------------------------------------------
    def _get_or_create(self, namespace: str, name: str, dims: DimensionKey) -> Series:
        key = (namespace, name, dims)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = Series(namespace, name, dims)
        return series

    def put_value(
        self,
        namespace: str,
        name: str,
        dimensions: DimensionKey,
        ts: float,
        value: float,
        count: float = 1.0,
        unit: str | None = None,
        now: float = 0.0,
    ) -> None:
        with self._lock:
            series = self._get_or_create(namespace, name, dimensions)
            series.raw.append(ts, value, count)
            series.unit = unit or series.unit
            series.last_put = max(series.last_put, now)

    def put_values(
        self,
        namespace: str,
        name: str,
        dimensions: DimensionKey,
        ts: float,
        values: list[float],
        counts: list[float],
        unit: str | None = None,
        now: float = 0.0,
    ) -> None:
        with self._lock:
            series = self._get_or_create(namespace, name, dimensions)
            series.raw.extend([ts] * len(values), {"value": values, "count": counts})
            series.unit = unit or series.unit
            series.last_put = max(series.last_put, now)

    def put_statistics(
        self,
        namespace: str,
        name: str,
        dimensions: DimensionKey,
        ts: float,
        *,
        total: float,
        minimum: float,
        maximum: float,
        count: float,
        unit: str | None = None,
        now: float = 0.0,
    ) -> None:
        with self._lock:
            series = self._get_or_create(namespace, name, dimensions)
            series.agg.append(ts, total, minimum, maximum, count)
            series.unit = unit or series.unit
            series.last_put = max(series.last_put, now)

    # ---- reads --------------------------------------------------------------------------------
    def get(self, namespace: str, name: str, dimensions: DimensionKey) -> Series | None:
        return self._series.get((namespace, name, dimensions))

    def iter_series(self) -> Iterator[Series]:
        with self._lock:
            items = list(self._series.values())
        yield from items

    def point_count(self) -> int:
        with self._lock:
            return sum(series.size for series in self._series.values())

    def query(
        self,
        namespace: str,
        name: str,
        dimensions: DimensionKey,
        *,
        start: float,
        end: float,
        period: int,
        stats: list[str],
        unit: str | None = None,
    ) -> dict[str, Datapoints]:
        """Each statistic per period over [align_start(start), end); periods without data are absent."""
        if period <= 0:
            raise StatError("The parameter Period must be a positive number of seconds.")
        for stat in stats:
            validate_stat(stat)
        with self._lock:
            series = self._series.get((namespace, name, dimensions))
            if series is None or (unit and series.unit and unit != series.unit):
                return {stat: Datapoints.empty() for stat in stats}
            raw = series.raw.arrays()
            agg = series.agg.arrays()
        base = align_start(start, period)
        return {stat: _aggregate(raw, agg, base, end, period, stat) for stat in stats}


def _slice(columns: dict[str, FloatArray], base: float, end: float) -> dict[str, FloatArray]:
    ts = columns["ts"]
    lo, hi = np.searchsorted(ts, base, side="left"), np.searchsorted(ts, end, side="left")
    return {name: column[lo:hi] for name, column in columns.items()}


def _buckets(ts: FloatArray, base: float, period: int) -> npt.NDArray[np.int64]:
    return np.floor((ts - base) / period).astype(np.int64)


def _weighted_bincount(index: npt.NDArray[np.int64], weights: FloatArray, n: int) -> FloatArray:
    return np.asarray(np.bincount(index, weights=weights, minlength=n), dtype=np.float64)


def _aggregate(
    raw_all: dict[str, FloatArray],
    agg_all: dict[str, FloatArray],
    base: float,
    end: float,
    period: int,
    stat: str,
) -> Datapoints:
    raw = _slice(raw_all, base, end)
    if stat.startswith(("p", "tm")):
        return _rank_stat(raw, base, period, stat)
    agg = _slice(agg_all, base, end)
    raw_b = _buckets(raw["ts"], base, period)
    agg_b = _buckets(agg["ts"], base, period)
    buckets = np.union1d(raw_b, agg_b)
    if buckets.size == 0:
        return Datapoints.empty()
    n = buckets.size
    raw_i, agg_i = np.searchsorted(buckets, raw_b), np.searchsorted(buckets, agg_b)
    count = _weighted_bincount(raw_i, raw["count"], n) + _weighted_bincount(agg_i, agg["count"], n)
    values: FloatArray
    if stat == "SampleCount":
        values = count
    elif stat in ("Sum", "Average"):
        total = _weighted_bincount(raw_i, raw["value"] * raw["count"], n) + _weighted_bincount(
            agg_i, agg["sum"], n
        )
        values = total if stat == "Sum" else total / np.where(count > 0, count, 1)
    elif stat == "Minimum":
        values = np.full(n, np.inf)
        np.minimum.at(values, raw_i, raw["value"])
        np.minimum.at(values, agg_i, agg["min"])
    else:  # Maximum
        values = np.full(n, -np.inf)
        np.maximum.at(values, raw_i, raw["value"])
        np.maximum.at(values, agg_i, agg["max"])
    timestamps = base + buckets.astype(np.float64) * period
    return Datapoints(timestamps, values.astype(np.float64))


def _rank_stat(raw: dict[str, FloatArray], base: float, period: int, stat: str) -> Datapoints:
    """Nearest-rank percentile (pNN) or trimmed mean (tmNN) per period, weighted by counts."""
    keep = raw["count"] > 0
    ts, vals, weights = raw["ts"][keep], raw["value"][keep], raw["count"][keep]
    if ts.size == 0:
        return Datapoints.empty()
    order = np.lexsort((vals, _buckets(ts, base, period)))
    bucket = _buckets(ts[order], base, period)
    vals, weights = vals[order], weights[order]
    starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
    ends = np.r_[starts[1:], bucket.size]
    cum = np.cumsum(weights)
    before = np.r_[0.0, cum][starts]  # cumulative weight before each bucket
    totals = cum[ends - 1] - before
    q = float(stat[1:] if stat.startswith("p") else stat[2:]) / 100.0
    timestamps = base + bucket[starts].astype(np.float64) * period
    if stat.startswith("p"):
        rank = np.maximum(np.ceil(q * totals - 1e-9), 1.0)
        idx = np.searchsorted(cum, before + rank - 1e-9, side="left")
        idx = np.minimum(np.maximum(idx, starts), ends - 1)
        return Datapoints(timestamps, vals[idx])
    values = np.empty(starts.size)
    for i, (s, e) in enumerate(zip(starts, ends, strict=True)):
        limit = q * totals[i]
        local_cum = cum[s:e] - before[i]
        taken = np.clip(limit - (local_cum - weights[s:e]), 0.0, weights[s:e])
        kept = taken.sum()
        values[i] = float((vals[s:e] * taken).sum() / kept) if kept > 0 else math.nan
    ok = ~np.isnan(values)
    return Datapoints(timestamps[ok], values[ok])
