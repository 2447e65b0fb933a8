"""14 days of simulated metric history, so the monitor has a baseline the moment the sandbox starts.

`backfill_history(topo, demand=...)` writes, with plain boto3 ``cloudwatch.put_metric_data``, every
series the monitor's catalog watches (`monitor.catalog.build_catalog`), derived from the SAME demand
model that drives the live fleet (`sandbox.traffic.demand.DemandModel`): API requests follow the day and the
week, errors are a small share of them, latencies are distributions (``Values``/``Counts``, so
percentiles work), queue age stays small, the DLQ stays empty, cold starts are occasional.

Latencies are lognormal per series (`HistoryProfile`). The running sandbox fits them to what it
measures itself during its first seconds of live traffic (`HistoryProfile.calibrated`, fed by
`sandbox.history.calibration.LatencyRecorder`); without a measurement the profile's defaults apply, which
were taken on a heavily loaded 2-core machine (slow and wide). Every period also draws one machine
slowdown factor shared by all latency series (`HistoryProfile.latency_jitter`), because how fast the
sandbox answers depends on how busy the machine is, minute to minute.

Resolution: 5-minute periods for the 14 days, and 1-minute periods for the last `fine_hours`
(the sandbox monitor runs on 1-minute metrics). Both land in the same series; a 5-minute query over
the fine part sums the same totals. History ends at `end` (default: the start of the current minute;
the sandbox passes the minute its fleet started), where live metrics take over. Counters that are
zero are not written (CloudWatch omits them; the catalog marks them ``fill_zero``), except the
error counters AWS publishes with every request or invocation: API Gateway 4XXError/5XXError
(0 or 1 per request) and Lambda Errors (0 or 1 per invocation) are written as 0 in periods with
requests / invocations of that function, exactly as the sandbox's gateway and runtime publish them.
Gauges are written even when zero.

The history is simulated and says so: ``${FLEETSCOPE_HOME}/backfill.json`` records the range, the
resolution, the seed, the latency profile and its calibration, and a note. No marker dimension is
added (it would split the catalog's series).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import numpy as np
from botocore.config import Config

from contract.resources import ResourceNames
from contract.topology import Topology
from monitor.catalog import MetricSpec, build_catalog
from sandbox.home.settings import fleetscope_home
from sandbox.traffic.demand import DemandModel

MARKER_FILE = "backfill.json"
MAX_DATUMS_PER_CALL = 1000
SeriesKey = tuple[str, str, tuple[tuple[str, str], ...]]

# The lognormal latency series of a HistoryProfile (median ms, sigma).
LATENCY_SERIES = ("api_latency", "cars_api_duration", "ingest_duration", "relay_duration", "monitor_duration")
CALIBRATION_MIN_SAMPLES = 20  # fewer measured samples: the series keeps its base value
CALIBRATION_TAIL_SAMPLES = 100  # from this many samples on, the p99 also bounds sigma from below
SIGMA_RANGE = (0.25, 1.6)
# The spread of a live minute of the cars API, whatever the calibration window measured: the window
# is mostly the fleet's registration POSTs (one kind of request), while live traffic mixes key reads,
# GSI queries and transactional writes. Measured on the live sandbox (10-20 requests a minute at
# night): a minute's p99 is 5-10x its p50, i.e. sigma 0.9-1.3. A narrower history made the monitor
# alert on the live p99 of a clean run.
MIX_SIGMA_FLOOR: dict[str, float] = {"api_latency": 1.25, "cars_api_duration": 1.25}
MIN_MEDIAN_MS = 0.1
_Z90 = 1.2816  # standard normal quantiles
_Z99 = 2.3263


@dataclass(frozen=True, kw_only=True)
class HistoryProfile:
    """How the simulated service behaved: error shares, latency shapes, queue behaviour.

    Latencies are lognormal (median ms, sigma per series). The defaults below were measured on a
    small, shared machine under heavy load (2 cores at load ~10: API p50 146-220 ms, p99 3.9-7 s):
    they are what a history looks like when nothing better is known, e.g. with ``--no-fleet``. The
    running sandbox replaces them with `HistoryProfile.calibrated`: the medians and sigmas of the
    latencies it measured itself in its first seconds of live traffic (the API latency and the
    cars-api, ingest and relay durations; the monitor's duration keeps its default, it has not run
    yet). So the history is as fast as this machine is now, not faster — the monitor would alert on
    the sandbox's normal speed — and not so much slower that a real regression hides in the band.

    `latency_jitter` is the sigma of a lognormal slowdown factor (median 1) drawn once per period
    and shared by all latency series: the machine is busier in some minutes than in others, and a
    band learned from such history holds a ~2x slowdown of the whole machine. Latencies also grow
    by up to 15% with the city's demand (`HistoryModel._latency`).
    """

    api_clients: int = 4  # concurrent API clients of the fleet (FleetSimulator.workers)
    api_4xx_share: float = 0.002
    api_5xx_share: float = 0.0004
    api_latency: tuple[float, float] = (130.0, 1.45)  # median ms, sigma
    cars_api_duration: tuple[float, float] = (60.0, 1.2)
    ingest_batch_mean: float = 4.3  # telemetry messages per ingest invocation (measured)
    ingest_duration: tuple[float, float] = (150.0, 1.0)
    relay_batch_mean: float = 2.0  # outbox events per relay invocation
    relay_duration: tuple[float, float] = (35.0, 1.5)
    monitor_every_s: int = 60  # the sandbox's default monitor schedule
    monitor_duration: tuple[float, float] = (1800.0, 1.0)
    latency_jitter: float = 0.35  # sigma of the per-period machine slowdown shared by all latencies
    cold_starts_per_hour: float = 0.6  # per function, when it is invoked at all
    queue_age_s: float = 1.5
    registrations_per_day: float = 1.0

    def __post_init__(self) -> None:
        for name, raw in asdict(self).items():
            for value in raw if isinstance(raw, tuple) else (raw,):
                if value < 0 or not math.isfinite(value):
                    raise ValueError(f"HistoryProfile.{name} must be finite and >= 0, got {raw}")

    def latencies(self) -> dict[str, Any]:
        """The latency shapes and the jitter, as the marker file records them."""
        shapes: dict[str, Any] = {name: list(getattr(self, name)) for name in LATENCY_SERIES}
        return shapes | {"latency_jitter": self.latency_jitter}

    @classmethod
    def calibrated(
        cls, measured: Mapping[str, Iterable[float]], base: HistoryProfile | None = None
    ) -> tuple[HistoryProfile, dict[str, Any]]:
        """`base` with the latency series fitted to measured milliseconds; and a report of the fit.

        A series with at least `CALIBRATION_MIN_SAMPLES` usable samples (finite, >= 0) gets
        median = the measured p50 and sigma = ln(p90/p50)/z90, or, with at least
        `CALIBRATION_TAIL_SAMPLES`, the larger of that and ln(p99/p50)/z99 (so a heavy tail is kept),
        clipped to `SIGMA_RANGE` and at least the series' `MIX_SIGMA_FLOOR`. A series with fewer
        samples whose p50 is above the base median gets that p50 as its median (base sigma): history
        is never faster than what was measured. Other series, and names that are not latency series,
        keep the base value; the report says which series were calibrated and why not. Never raises
        on bad input.
        """
        base = base or cls()
        changes: dict[str, tuple[float, float]] = {}
        raised: list[str] = []  # too few samples to fit, but slower than the base: median raised
        series: dict[str, dict[str, Any]] = {}
        for name in LATENCY_SERIES:
            values, dropped = _usable_ms(measured.get(name))
            entry: dict[str, Any] = {"calibrated": False, "n": len(values)}
            if dropped:
                entry["dropped"] = dropped  # not finite, negative or not a number
            if values:
                p50, p90, p99 = (float(q) for q in np.percentile(values, [50, 90, 99]))
                entry |= {"p50": round(p50, 3), "p90": round(p90, 3), "p99": round(p99, 3)}
                if len(values) >= CALIBRATION_MIN_SAMPLES:
                    median, sigma = _fit_lognormal(
                        p50, p90, p99 if len(values) >= CALIBRATION_TAIL_SAMPLES else None
                    )
                    floor = MIX_SIGMA_FLOOR.get(name, 0.0)
                    if sigma < floor:
                        entry["fitted_sigma"] = sigma
                        sigma = floor
                    changes[name] = (median, sigma)
                    entry["calibrated"] = True
                elif p50 > getattr(base, name)[0]:
                    # Too few to fit a shape, enough to know the series is slower than the base: raise
                    # the median (never make history faster than what was measured), keep the sigma.
                    changes[name] = (round(p50, 3), getattr(base, name)[1])
                    raised.append(name)
                    few = f"{len(values)} samples < {CALIBRATION_MIN_SAMPLES}"
                    entry["reason"] = f"{few}: median raised to the measured p50"
                else:
                    entry["reason"] = f"{len(values)} samples < {CALIBRATION_MIN_SAMPLES}"
            else:
                entry["reason"] = "not measured"
            median_ms, sigma = changes.get(name, getattr(base, name))
            series[name] = entry | {"median_ms": median_ms, "sigma": sigma}
        profile = replace(base, **changes)  # type: ignore[arg-type]  # only the (median, sigma) fields
        report = {
            "calibrated": sorted(set(changes) - set(raised)),
            "median_raised": sorted(raised),
            "min_samples": CALIBRATION_MIN_SAMPLES,
            "tail_min_samples": CALIBRATION_TAIL_SAMPLES,
            "sigma_range": list(SIGMA_RANGE),
            "mix_sigma_floor": MIX_SIGMA_FLOOR,
            "latency_jitter": profile.latency_jitter,
            "series": series,
            "ignored": sorted(str(k) for k in measured if k not in LATENCY_SERIES),
        }
        return profile, report


def _usable_ms(raw: Iterable[float] | None) -> tuple[list[float], int]:
    """The finite, non-negative numbers of `raw`, and how many items were dropped (never raises)."""
    values: list[float] = []
    dropped = 0
    if raw is None:
        return values, dropped
    try:
        for item in raw:
            try:
                value = float(item)
            except (TypeError, ValueError):
                dropped += 1
                continue
            if math.isfinite(value) and value >= 0:
                values.append(value)
            else:
                dropped += 1
    except TypeError:  # not iterable
        return [], 1
    return values, dropped


def _fit_lognormal(p50: float, p90: float, p99: float | None) -> tuple[float, float]:
    """(median ms, sigma) of the lognormal with this p50 whose p90 (and p99, if given) are reached."""
    median = max(p50, MIN_MEDIAN_MS)
    sigma = math.log(max(p90, median) / median) / _Z90
    if p99 is not None:
        sigma = max(sigma, math.log(max(p99, median) / median) / _Z99)
    low, high = SIGMA_RANGE
    return round(median, 3), round(min(max(sigma, low), high), 4)


@dataclass
class BackfillReport:
    start: datetime
    end: datetime
    fine_start: datetime
    series: int
    datums: int
    calls: int
    seconds: float
    all_zero: list[str] = field(default_factory=list)  # catalog counters that stayed 0 (not written)
    latency: dict[str, Any] = field(default_factory=dict)  # the profile's latency shapes and jitter
    latency_calibration: dict[str, Any] | None = None  # how they were fitted (None: profile as given)

    def to_marker(self, *, seed: int, stage: str, coarse_period_s: int, fine_period_s: int) -> dict[str, Any]:
        return {
            "simulated": True,
            "note": (
                "Metric history before `end` was generated by the sandbox backfill from the fleet's "
                "demand model; it is not measured traffic. Live metrics start at `end`."
            ),
            "stage": stage,
            "start": self.start.isoformat(),
            "fine_start": self.fine_start.isoformat(),
            "end": self.end.isoformat(),
            "coarse_period_s": coarse_period_s,
            "fine_period_s": fine_period_s,
            "seed": seed,
            "series": self.series,
            "datums": self.datums,
            "calls": self.calls,
            "seconds": round(self.seconds, 2),
            "all_zero_series": self.all_zero,
            "latency": self.latency,
            "latency_calibration": self.latency_calibration,
            "written_at": datetime.now(UTC).isoformat(),
        }


def catalog_series(topo: Topology, period_s: int = 300) -> list[MetricSpec]:
    """The distinct CloudWatch series of the monitor's catalog (p50 and p99 of one metric are one series)."""
    catalog = build_catalog(ResourceNames.from_topology(topo), period_s=period_s)
    seen: dict[SeriesKey, MetricSpec] = {}
    for spec in catalog.metrics:
        seen.setdefault(series_key(spec), spec)
    return list(seen.values())


def series_key(spec: MetricSpec) -> SeriesKey:
    return (spec.namespace, spec.metric_name, tuple(sorted(spec.dimensions.items())))


def written_dimensions(spec: MetricSpec) -> list[dict[str, str]]:
    """The dimensions the history is written with: a spec read for `each` version is written as version 1
    (the one version the sandbox's functions have before any deployment)."""
    dims = dict(spec.dimensions)
    if spec.each is not None:
        dims[spec.each] = "1"
    return [{"Name": k, "Value": v} for k, v in sorted(dims.items())]


Column = tuple[np.ndarray[Any, Any], np.ndarray[Any, Any] | None]
"""One series over a region: values per period (NaN = write nothing) and, for distributions,
counts per period (then values and counts are period-by-bucket matrices; count 0 = no bucket)."""

LATENCY_SAMPLE = 120  # draws per period behind each latency distribution
_BUCKET_EDGES = np.concatenate((np.linspace(0.0, 0.9, 5), np.linspace(0.9, 1.0, 9)[1:]))


class HistoryModel:
    """Every catalog series over a run of periods, from the demand model plus noise (vectorised)."""

    def __init__(
        self, topo: Topology, demand: DemandModel, profile: HistoryProfile, rng: np.random.Generator
    ):
        self.topo = topo
        self.demand = demand
        self.p = profile
        self.rng = rng
        self._functions = {fn.name: fn.key for fn in topo.functions}

    def shared(self, starts: list[datetime], period_s: int) -> dict[str, Any]:
        """The draws every series of these periods derives from (so related series stay consistent)."""
        d, p, rng = self.demand, self.p, self.rng
        minutes = period_s / 60.0
        mids = [t + timedelta(seconds=period_s / 2) for t in starts]
        load = np.array([d.intensity(t) for t in mids])
        api_rate = np.array([d.api_requests_per_minute(t) for t in mids])
        transition_rate = np.array([d.status_transitions_per_minute(t) for t in mids])
        n = len(starts)
        requests = rng.poisson(api_rate * minutes)
        e5 = rng.binomial(requests, p.api_5xx_share)
        e4 = rng.binomial(requests - e5, p.api_4xx_share)
        telemetry = rng.poisson(np.full(n, d.telemetry_per_minute() * minutes))
        # Every reading is a POST /cars/{car_id}/telemetry through API Gateway (its SQS integration): the
        # stage's Count, 4XX/5XX denominators and Latency cover it as well as the cars-api requests.
        gateway = requests + telemetry
        transitions = rng.poisson(transition_rate * minutes)
        # How much slower than its median the machine runs in each period, for every latency alike.
        slowdown = np.exp(p.latency_jitter * rng.standard_normal(n))
        runs = max(1, round(period_s / p.monitor_every_s)) if p.monitor_every_s else 0
        return {
            "load": load,
            "slowdown": slowdown,
            "requests": requests,
            "gateway": gateway,
            "4xx": e4,
            "5xx": e5,
            "telemetry": telemetry,
            "transitions": transitions,
            "invocations": {
                "cars-api": (requests, p.cars_api_duration),
                "telemetry-ingest": (
                    rng.poisson(telemetry / p.ingest_batch_mean),
                    p.ingest_duration,
                ),
                "outbox-relay": (rng.poisson(transitions / p.relay_batch_mean), p.relay_duration),
                "monitor": (np.full(n, runs), p.monitor_duration),
            },
        }

    def column(self, spec: MetricSpec, shared: dict[str, Any], period_s: int) -> Column | None:
        """One series over the periods of `shared`, or None when the model never writes it."""
        p, rng, topo = self.p, self.rng, self.topo
        ns, name = spec.namespace, spec.metric_name
        n = len(shared["requests"])
        fn_key = self._functions.get(
            spec.dimensions.get("FunctionName") or spec.dimensions.get("function_name", "")
        )
        if ns == "AWS/ApiGateway":
            if name == "Count":
                return _counts(shared["gateway"])
            # API Gateway publishes 4XXError and 5XXError (0 or 1) with every request.
            if name == "4XXError":
                return _per_event(shared["4xx"], shared["gateway"])
            if name == "5XXError":
                return _per_event(shared["5xx"], shared["gateway"])
            if name == "Latency":  # one shape for both routes, as calibration measures the stage's mix
                return self._latency(shared["gateway"], p.api_latency, shared["load"], shared["slowdown"])
        if ns == "AWS/Lambda" and fn_key is not None:
            invocations, shape = shared["invocations"][fn_key]
            if name == "Invocations":
                return _counts(invocations)
            if name == "Errors":  # Lambda publishes Errors (0 or 1) with every invocation
                errors = shared["5xx"] if fn_key == "cars-api" else np.zeros(n)
                return _per_event(errors, invocations)
            if name == "Duration":
                return self._latency(invocations, shape, shared["load"], shared["slowdown"])
            if name == "ConcurrentExecutions":
                if fn_key == "cars-api":
                    # The fleet sends from `FleetSimulator.workers` (4) threads: overlapping requests
                    # are common, more so when the city is busy (measured live: 1-3 per minute).
                    peak = 1.0 + rng.binomial(p.api_clients - 1, 0.2 + 0.3 * shared["load"])
                else:
                    busy = invocations * shape[0] / 1000.0 / period_s
                    peak = 1.0 + rng.poisson(busy * 3)
                return np.where(invocations > 0, peak, np.nan), None
            return None  # Throttles: zero (published only when a request is throttled)
        if ns == topo.metrics_namespace and name == "ColdStart" and fn_key is not None:
            invoked = shared["invocations"][fn_key][0] > 0
            cold = rng.poisson(np.full(n, p.cold_starts_per_hour * period_s / 3600.0))
            return _counts(np.where(invoked, cold, 0))
        if ns == "AWS/DynamoDB":
            return None  # throttles stay at zero (consumed capacity is not in the catalog)
        if ns == "AWS/SQS":
            if spec.dimensions.get("QueueName") == topo.telemetry_dlq.name:
                return np.zeros(n), None  # a gauge: an empty DLQ is reported as 0
            if name == "ApproximateAgeOfOldestMessage":
                return np.round(rng.gamma(2.0, p.queue_age_s / 2.0, n), 1), None
            if name == "ApproximateNumberOfMessagesVisible":
                backlog = np.maximum(0.1, shared["telemetry"] / period_s * p.queue_age_s)
                return rng.poisson(backlog).astype(np.float64), None
        if ns == topo.metrics_namespace:
            if name == "CarsRegistered":
                return _counts(rng.poisson(np.full(n, p.registrations_per_day * period_s / 86400.0)))
            if name == "StatusTransitions":
                return _counts(shared["transitions"])
            if name == "TelemetryApplied":
                return _counts(shared["telemetry"])
        return None  # AWS/Events failures, TelemetryRejected, anything new: zero / not modelled

    def _latency(
        self,
        n: np.ndarray[Any, Any],
        shape: tuple[float, float],
        load: np.ndarray[Any, Any],
        slowdown: np.ndarray[Any, Any] | None = None,
    ) -> Column:
        """`n[i]` lognormal latencies per period as at most 12 Values with Counts.

        Period i's median is the shape's median, times up to 1.15 with the city's load, times the
        machine's `slowdown[i]` (shared by all latency series of the period; 1 if not given).

        Up to `LATENCY_SAMPLE` draws per period are sorted; the body (lowest 90%) becomes 4 groups
        and the tail (top 10%) 8, each sent as its middle draw with the group's share of `n[i]`.
        Nearest-rank p50 and p99 read back close to the sample's own (noise included), while the
        requests stay small: serialising floats is the backfill's main cost.
        """
        periods = len(n)
        size = np.minimum(n, LATENCY_SAMPLE)
        median_ms, sigma = shape
        centre = np.log(median_ms * (1.0 + 0.15 * load))
        if slowdown is not None:
            centre = centre + np.log(slowdown)
        draws = np.exp(centre[:, None] + sigma * self.rng.standard_normal((periods, LATENCY_SAMPLE)))
        draws[np.arange(LATENCY_SAMPLE)[None, :] >= size[:, None]] = np.inf
        draws.sort(axis=1)
        edges = np.floor(_BUCKET_EDGES[None, :] * size[:, None]).astype(np.int64)
        middles = np.clip((edges[:, :-1] + edges[:, 1:]) // 2, 0, np.maximum(size - 1, 0)[:, None])
        values = np.round(np.take_along_axis(draws, middles, axis=1), 2)
        scale = np.where(size > 0, n / np.maximum(size, 1), 0.0)
        counts = np.diff(edges, axis=1) * scale[:, None]
        return values, counts


def _counts(values: np.ndarray[Any, Any]) -> Column:
    """A counter: zero periods are not written (CloudWatch omits them; the catalog fills zeros)."""
    as_float = np.asarray(values, dtype=np.float64)
    return np.where(as_float > 0, as_float, np.nan), None


def _per_event(values: np.ndarray[Any, Any], events: np.ndarray[Any, Any]) -> Column:
    """A counter AWS publishes with every request or invocation: written (0 too) where `events` > 0."""
    as_float = np.asarray(values, dtype=np.float64)
    return np.where(np.asarray(events) > 0, as_float, np.nan), None


def period_starts(start: datetime, end: datetime, period_s: int) -> Iterator[datetime]:
    t = start
    step = timedelta(seconds=period_s)
    while t < end:
        yield t
        t += step


def floor_time(t: datetime, seconds: int) -> datetime:
    epoch = int(t.timestamp())
    return datetime.fromtimestamp(epoch - epoch % seconds, tz=UTC)


def backfill_history(
    topo: Topology,
    *,
    demand: DemandModel | None = None,
    profile: HistoryProfile | None = None,
    end: datetime | None = None,
    days: float = 14.0,
    period_s: int = 300,
    fine_hours: float = 6.0,
    fine_period_s: int = 60,
    seed: int = 7,
    cloudwatch: Any = None,
    home: Path | str | None = None,
    workers: int = 3,
    calibration: dict[str, Any] | None = None,
    progress: Callable[[float], None] | None = None,
) -> BackfillReport:
    """Write the simulated history into CloudWatch (the emulator) and the marker file; return figures.

    `calibration` is the report of `HistoryProfile.calibrated` that made `profile`, for the marker;
    `progress` is called with the share of the history written so far (0 to 1).
    """
    if not 0 < days <= 15:
        raise ValueError(f"days must be in (0, 15], got {days}")
    if period_s <= 0 or period_s % 60 or fine_period_s <= 0 or period_s % fine_period_s:
        raise ValueError("period_s must be a positive multiple of 60 and of fine_period_s")
    if not 0 <= fine_hours <= days * 24:
        raise ValueError(f"fine_hours must be in [0, days*24], got {fine_hours}")
    started = time.monotonic()
    demand = demand or DemandModel()
    profile = profile or HistoryProfile()
    model = HistoryModel(topo, demand, profile, np.random.default_rng(seed))
    # Series read for `each` version draw from a stream of their own, so adding one leaves every
    # other series' history as it was for the same seed.
    per_version = HistoryModel(topo, demand, profile, np.random.default_rng([seed, 1]))
    specs = catalog_series(topo, period_s)
    end_t = floor_time(end or datetime.now(UTC), period_s if fine_hours == 0 else fine_period_s)
    fine_start = floor_time(end_t - timedelta(hours=fine_hours), period_s)
    start = floor_time(end_t - timedelta(days=days), period_s) + timedelta(seconds=period_s)

    batches: dict[str, list[dict[str, Any]]] = {}
    written: set[SeriesKey] = set()
    datums = 0
    for begin, stop, step in ((start, fine_start, period_s), (fine_start, end_t, fine_period_s)):
        starts = list(period_starts(begin, stop, step))
        if not starts:
            continue
        shared = model.shared(starts, step)
        for spec in specs:
            column = (per_version if spec.each is not None else model).column(spec, shared, step)
            if column is None:
                continue
            base = {"MetricName": spec.metric_name, "Dimensions": written_dimensions(spec)}
            if spec.unit == "ms":
                base["Unit"] = "Milliseconds"
            out = batches.setdefault(spec.namespace, [])
            before = len(out)
            values, counts = column
            if counts is None:
                for t, value in zip(starts, values.tolist(), strict=True):
                    if value == value:  # not NaN
                        out.append({**base, "Timestamp": t, "Value": value})
            else:
                for t, row_v, row_c in zip(starts, values.tolist(), counts.tolist(), strict=True):
                    kept = [(v, c) for v, c in zip(row_v, row_c, strict=True) if c > 0]
                    if kept:
                        out.append(
                            {
                                **base,
                                "Timestamp": t,
                                "Values": [v for v, _ in kept],
                                "Counts": [c for _, c in kept],
                            }
                        )
            if len(out) > before:
                written.add(series_key(spec))
                datums += len(out) - before
    all_zero = [
        f"{s.namespace}/{s.metric_name} {s.dimensions}" for s in specs if series_key(s) not in written
    ]

    # Parameter validation costs a third of the client's time on these large, generated requests.
    client = cloudwatch or boto3.client("cloudwatch", config=Config(parameter_validation=False))
    calls = [
        (namespace, data[i : i + MAX_DATUMS_PER_CALL])
        for namespace, data in batches.items()
        for i in range(0, len(data), MAX_DATUMS_PER_CALL)
    ]
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for done, _ in enumerate(
            pool.map(lambda c: client.put_metric_data(Namespace=c[0], MetricData=c[1]), calls), start=1
        ):
            if progress is not None and (done % 10 == 0 or done == len(calls)):
                progress(done / len(calls))
    report = BackfillReport(
        start=start,
        end=end_t,
        fine_start=fine_start,
        series=len(written),
        datums=datums,
        calls=len(calls),
        seconds=time.monotonic() - started,
        all_zero=all_zero,
        latency=profile.latencies(),
        latency_calibration=calibration,
    )
    write_marker(
        Path(home) if home is not None else fleetscope_home(),
        report.to_marker(seed=seed, stage=topo.stage, coarse_period_s=period_s, fine_period_s=fine_period_s),
    )
    return report


def write_marker(home: Path, marker: dict[str, Any]) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    path = home / MARKER_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(marker, indent=2) + "\n")
    os.replace(tmp, path)
    return path


def read_marker(home: Path | str | None = None) -> dict[str, Any] | None:
    """The backfill marker of a FLEETSCOPE_HOME, or None if no history was backfilled."""
    path = (Path(home) if home else fleetscope_home()) / MARKER_FILE
    try:
        value = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except ValueError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from err
    return value if isinstance(value, dict) else None


def run_backfill(
    topo: Topology,
    *,
    days: float = 14.0,
    session: boto3.Session | None = None,
    home: Path | str | None = None,
    fleet_size: int = 50,
    fine_hours: float = 48.0,
    seed: int = 7,
    profile: HistoryProfile | None = None,
    end: datetime | None = None,
    calibration: dict[str, Any] | None = None,
    progress: Callable[[float], None] | None = None,
) -> BackfillReport:
    """The sandbox's entry point: history for a fleet of `fleet_size` (the same demand model it drives).

    The last 48 hours are at 1-minute resolution: the sandbox monitor runs on 1-minute periods and
    its seasonal model needs two days of them (`SeasonalConfig.min_season_days`). A monitor on
    1-minute periods should read only that much history (``MONITOR_HISTORY_DAYS=2``): older history
    is at 5-minute resolution.

    `profile` (default `HistoryProfile()`) and its `calibration` report come from
    `HistoryProfile.calibrated` when the sandbox measured itself; `end` is where live metrics begin.
    """
    session = session or boto3.Session()
    client = session.client("cloudwatch", config=Config(parameter_validation=False))
    return backfill_history(
        topo,
        demand=DemandModel(fleet_size=fleet_size),
        profile=profile,
        end=end,
        days=days,
        fine_hours=min(fine_hours, days * 24),
        seed=seed,
        cloudwatch=client,
        home=home,
        calibration=calibration,
        progress=progress,
    )
