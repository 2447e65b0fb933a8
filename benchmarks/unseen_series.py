"""Unseen serverless series: a second generator of metric series with labelled incidents.

Why a second generator: `ops.synthetic` feeds the detectors' tests and `bench_incidents`, so the
detectors end up fitted to its shapes. This module was written without reading it or the detectors'
internals, and it stays out of their tuning loop: `bench_unseen` prints figures on it, and those
figures only mean something while no parameter is fitted to this file. Change it to make it more
realistic, never to make a detector look better.

The model. A corpus is a few services (an API stage, Lambda functions, SQS queues with their DLQ),
each with its own demand, in requests per period:

    demand(t) = peak x shape(local hour, kind of day) x growth(t) x day factor x wobble(t)

- shape: a weekday curve (two commute peaks, an evening peak, or office hours) and a *different*
  weekend curve (a quiet single midday hump, a busy leisure evening, or almost nothing); a holiday
  is a weekday with the quiet weekend curve; hours are local (each service has a UTC offset);
- growth: exp(g x weeks), g = 3-8 % a week; day factor: lognormal, sd 5 %; wobble: a slow AR(1)
  multiplicative noise (about 3 %, correlated over about half an hour).

A service's series derive from its demand: requests / invocations ~ Poisson(demand); errors,
throttles and cold starts ~ Binomial(requests, ratio) with a ratio that varies from period to period
(lognormal), so error counts follow the traffic's daily shape; latency and duration are lognormal
around a load-dependent level, noisier when few requests make the period (empty when there are
none), with occasional single-period outliers of 2-5x that are *not* incidents; concurrency ~
invocations per second x duration; a queue's depth and age of oldest message are small and jittery
while its consumer keeps up; a DLQ holds a constant number of messages (often 0). Some services are
very low-volume (1-20 requests per period).

Incidents (each changes only the file it is labelled on, or both files of a queue backlog; every
other file is generated from the undisturbed demand, so an alert there is a false one; error, throttle
and cold-start files take their `volume` column from the undisturbed requests):

| shape | files | what |
|---|---|---|
| error_burst | 4XXError, 5XXError, Errors | error ratio +2 to +10 points for 10-120 periods at a busy hour |
| latency_regression | Latency, Duration | x1.3 to x3.0 for 4-60 periods |
| level_shift | Count, Invocations, ConcurrentExecutions | x1.3 to x1.8 for 4-48 periods at a busy hour |
| quiet_hour_spike | Count, Invocations | + 0.5-1x the day's peak demand for 2-8 periods at 01-05 local |
| traffic_drop | Count, Invocations | x0.1 to x0.5 for 6-60 periods at a busy hour |
| queue_backlog | the queue's age of oldest + visible | consumer stalls 10-60 periods, then drains at 3x |
| dlq_arrivals | the DLQ's visible messages | 1-10 a period for 2-20 periods, redriven 20-60 periods later |
| throttling | Throttles | 2-20 % of invocations throttled for 5-30 periods at a busy hour |
| cold_start_storm | ColdStart | 20-50 % of invocations cold for 3-12 periods |

An incident starts on day 7 or later (after a week of history), a file's incidents fall on different
days, and never on a holiday.

Layout: ``api/<stage>/{Count,4XXError,5XXError,Latency}.csv``,
``lambda/<function>/{Invocations,Errors,Throttles,Duration,ConcurrentExecutions,ColdStart}.csv``,
``sqs/<queue>/{ApproximateAgeOfOldestMessage,ApproximateNumberOfMessagesVisible}.csv`` and
``sqs/<queue>-dlq/ApproximateNumberOfMessagesVisible.csv``, columns ``timestamp,value`` (UTC,
``YYYY-MM-DD HH:MM:SS``) plus ``volume`` for error, throttle and cold-start counts, so that
``python -m monitor detect --profile auto`` gives each file the catalog's profile for its metric.
``labels.json`` (NAB style): every file's relative path -> a list of ``[first, last]`` timestamps of
its incidents (both rows inside the incident).

    python -m benchmarks.unseen_series OUT_DIR [--seed N]
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import numpy as np
from scipy.signal import lfilter

DEFAULT_SEED = 20261205
START = int(datetime(2026, 3, 2, tzinfo=UTC).timestamp())  # a Monday, 00:00 UTC
INCIDENTS_FROM_DAY = 7

Weekday = Literal["commute", "evening", "office"]
Weekend = Literal["quiet", "busy", "empty"]

# The profile the monitor's catalog gives each metric (written here, not imported: the test checks
# that `--profile auto` agrees with it).
CATALOG_PROFILE = {
    "Count": "traffic",
    "4XXError": "count",
    "5XXError": "count",
    "Latency": "latency",
    "Invocations": "traffic",
    "Errors": "count",
    "Throttles": "count",
    "Duration": "latency",
    "ConcurrentExecutions": "traffic",
    "ColdStart": "count",
    "ApproximateAgeOfOldestMessage": "backlog",
    "ApproximateNumberOfMessagesVisible": "backlog",
}
DLQ_CATALOG_PROFILE = "dlq"  # ...and a dead-letter queue's depth (the catalog knows its DLQs by name)
QUEUE = "queue"  # in `ServiceSpec.incidents`: both files of the service's queue
DLQ = "dlq"  # in `ServiceSpec.incidents`: the depth of the queue's DLQ
WITH_VOLUME = frozenset({"4XXError", "5XXError", "Errors", "Throttles", "ColdStart"})

# shape -> (duration range in periods, magnitude range); see the module docstring.
SHAPES: dict[str, tuple[tuple[int, int], tuple[float, float]]] = {
    "error_burst": ((10, 120), (0.02, 0.10)),
    "latency_regression": ((4, 60), (1.3, 3.0)),
    "level_shift": ((4, 48), (1.3, 1.8)),
    "quiet_hour_spike": ((2, 8), (0.5, 1.0)),
    "traffic_drop": ((6, 60), (0.1, 0.5)),
    "queue_backlog": ((10, 60), (3.0, 3.0)),
    "dlq_arrivals": ((2, 20), (1.0, 10.0)),
    "throttling": ((5, 30), (0.02, 0.20)),
    "cold_start_storm": ((3, 12), (0.2, 0.5)),
}
BUSY_HOUR_SHAPES = frozenset({"error_burst", "level_shift", "traffic_drop", "throttling"})


@dataclass(frozen=True)
class ServiceSpec:
    path: str  # "api/cars-api", "lambda/telemetry-ingest"
    period_s: int
    days: int
    first_weekday: int  # 0 = Monday
    utc_offset_h: int
    peak_per_min: float  # weekday peak demand, requests (invocations) per minute
    weekday: Weekday
    weekend: Weekend
    growth_per_week: float = 0.0
    holiday_after_day: int | None = None  # the first weekday on or after this day is a holiday
    latency_ms: float = 100.0  # latency (API) or duration (Lambda) at low load
    latency_noise: float = 0.08  # lognormal sigma of latency with many requests per period
    outlier_rate: float = 0.003  # single-period latency outliers (not incidents) per period
    error_ratio: float = 0.002  # 5XXError / Errors
    client_error_ratio: float = 0.02  # 4XXError
    queue: str | None = None  # a Lambda fed by this SQS queue (and its DLQ)
    dlq_level: int = 0  # messages that sit in the DLQ all along
    incidents: tuple[tuple[str, str], ...] = ()  # (metric, QUEUE or DLQ; shape), one entry per incident


SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec(
        path="api/cars-api", period_s=300, days=28, first_weekday=3, utc_offset_h=1,
        peak_per_min=600.0, weekday="commute", weekend="quiet", growth_per_week=0.05,
        holiday_after_day=18, latency_ms=120.0,
        incidents=(
            ("Count", "level_shift"), ("Count", "level_shift"), ("Count", "traffic_drop"),
            ("Count", "traffic_drop"), ("Count", "quiet_hour_spike"), ("5XXError", "error_burst"),
            ("5XXError", "error_burst"), ("4XXError", "error_burst"), ("4XXError", "error_burst"),
            ("Latency", "latency_regression"), ("Latency", "latency_regression"),
            ("Latency", "latency_regression"),
        ),
    ),
    ServiceSpec(  # 1-20 requests per period in office hours, almost none at weekends
        path="api/admin-api", period_s=300, days=21, first_weekday=0, utc_offset_h=-5,
        peak_per_min=4.0, weekday="office", weekend="empty", growth_per_week=0.03,
        holiday_after_day=10, latency_ms=250.0, latency_noise=0.25, outlier_rate=0.006,
        error_ratio=0.01, client_error_ratio=0.05,
        incidents=(
            ("Count", "quiet_hour_spike"), ("Count", "quiet_hour_spike"), ("Count", "traffic_drop"),
            ("5XXError", "error_burst"), ("5XXError", "error_burst"), ("Latency", "latency_regression"),
            ("Latency", "latency_regression"),
        ),
    ),
    ServiceSpec(
        path="api/partner-api", period_s=60, days=14, first_weekday=2, utc_offset_h=0,
        peak_per_min=15.0, weekday="office", weekend="quiet", latency_ms=180.0, latency_noise=0.2,
        outlier_rate=0.004, error_ratio=0.005, client_error_ratio=0.03,
        incidents=(
            ("Count", "traffic_drop"), ("Count", "level_shift"), ("4XXError", "error_burst"),
            ("4XXError", "error_burst"),
        ),
    ),
    ServiceSpec(
        path="lambda/cars-api", period_s=60, days=14, first_weekday=0, utc_offset_h=1,
        peak_per_min=1500.0, weekday="commute", weekend="quiet", growth_per_week=0.05,
        latency_ms=120.0, error_ratio=0.004,
        incidents=(
            ("Invocations", "quiet_hour_spike"), ("Invocations", "quiet_hour_spike"),
            ("Invocations", "level_shift"), ("Errors", "error_burst"), ("Errors", "error_burst"),
            ("Throttles", "throttling"), ("Throttles", "throttling"), ("Duration", "latency_regression"),
            ("Duration", "latency_regression"), ("Duration", "latency_regression"),
            ("ConcurrentExecutions", "level_shift"), ("ConcurrentExecutions", "level_shift"),
            ("ColdStart", "cold_start_storm"), ("ColdStart", "cold_start_storm"),
        ),
    ),
    ServiceSpec(
        path="lambda/telemetry-ingest", period_s=60, days=21, first_weekday=4, utc_offset_h=9,
        peak_per_min=300.0, weekday="evening", weekend="busy", growth_per_week=0.08,
        holiday_after_day=15, latency_ms=30.0, latency_noise=0.15, outlier_rate=0.004,
        error_ratio=0.003, queue="car-telemetry",
        incidents=(
            ("Invocations", "traffic_drop"), ("Invocations", "traffic_drop"), ("Invocations", "level_shift"),
            ("Invocations", "level_shift"), ("Errors", "error_burst"), ("Errors", "error_burst"),
            ("Duration", "latency_regression"), ("Duration", "latency_regression"),
            ("ColdStart", "cold_start_storm"), (QUEUE, "queue_backlog"), (QUEUE, "queue_backlog"),
            (DLQ, "dlq_arrivals"), (DLQ, "dlq_arrivals"),
        ),
    ),
    ServiceSpec(
        path="lambda/fleet-events-consumer", period_s=300, days=28, first_weekday=5, utc_offset_h=-5,
        peak_per_min=120.0, weekday="commute", weekend="busy", growth_per_week=0.04,
        holiday_after_day=22, latency_ms=800.0, error_ratio=0.002, queue="fleet-events", dlq_level=3,
        incidents=(
            ("Throttles", "throttling"), ("Throttles", "throttling"), ("ConcurrentExecutions", "level_shift"),
            ("ConcurrentExecutions", "level_shift"), ("ColdStart", "cold_start_storm"),
            (QUEUE, "queue_backlog"), (QUEUE, "queue_backlog"), (DLQ, "dlq_arrivals"), (DLQ, "dlq_arrivals"),
        ),
    ),
    ServiceSpec(  # 1-20 invocations per period
        path="lambda/driver-feedback", period_s=300, days=28, first_weekday=1, utc_offset_h=0,
        peak_per_min=2.0, weekday="commute", weekend="quiet", growth_per_week=0.03,
        holiday_after_day=12, latency_ms=900.0, latency_noise=0.3, outlier_rate=0.005, error_ratio=0.01,
        incidents=(
            ("Invocations", "quiet_hour_spike"), ("Errors", "error_burst"), ("Errors", "error_burst"),
            ("Duration", "latency_regression"), ("Duration", "latency_regression"),
        ),
    ),
)  # fmt: skip


@dataclass(frozen=True)
class Incident:
    shape: str
    start: int  # first row
    end: int  # last row + 1
    magnitude: float


@dataclass(frozen=True)
class NullModel:
    """A file's undisturbed distribution, per row, for the oracle bound in `bench_unseen`.

    - ``poisson``: value - `offset` ~ Poisson(`a` + `b`); an incident multiplies `a` by its magnitude
      (a quiet-hour spike adds it);
    - ``binomial``: value ~ Binomial(`a` requests, ratio `b`); an error burst adds its magnitude to the
      ratio, throttling and cold-start storms set it;
    - ``lognormal``: log(value) ~ Normal(`a`, `b`); an incident adds log(magnitude).

    The ratio's period-to-period spread and the latency outliers are left out: the oracle is told less
    noise than the data have, so its bound is generous."""

    kind: str
    a: np.ndarray
    b: np.ndarray
    offset: np.ndarray | None = None


@dataclass(frozen=True)
class SeriesFile:
    path: str  # relative to the corpus directory, "/"-separated
    kind: str  # "api Count", "lambda Errors", "sqs AgeOfOldestMessage", "dlq MessagesVisible"
    profile: str  # the catalog's profile for the metric
    period_s: int
    first: int  # epoch seconds of the first row
    rows: int
    incidents: tuple[Incident, ...] = field(default=())
    null: NullModel | None = field(default=None, compare=False)  # its undisturbed distribution (None: queues)


def generate_corpus(out_dir: Path, seed: int = DEFAULT_SEED) -> list[SeriesFile]:
    """Write every service's CSVs and ``labels.json`` under out_dir; return the files with their incidents."""
    files: list[SeriesFile] = []
    for index, spec in enumerate(SERVICES):
        rng = np.random.default_rng([seed, index])
        files.extend(_write_service(out_dir, spec, rng))
    files.sort(key=lambda f: f.path)
    windows = {f.path: [[_stamp(f, i.start), _stamp(f, i.end - 1)] for i in f.incidents] for f in files}
    labels = [f"  {json.dumps(path)}: {json.dumps(w)}" for path, w in windows.items()]
    (out_dir / "labels.json").write_text("{\n" + ",\n".join(labels) + "\n}\n", encoding="utf-8")
    return files


# --- demand -------------------------------------------------------------------------------------


# Daily curves: a floor plus bumps (Gaussian: weight, centre hour, width) and plateaus (weight, start,
# end hour), in hours from the day's local midnight. A day's bumps spill into its neighbours, so a busy
# Sunday evening runs on past midnight into a quiet Monday.
Element = tuple[Literal["bump", "plateau"], float, float, float]
DAY_CURVES: dict[str, tuple[float, tuple[Element, ...]]] = {
    "commute": (0.06, (("bump", 1.0, 8.5, 1.3), ("bump", 0.85, 18.0, 1.8), ("bump", 0.4, 13.0, 2.5))),
    "evening": (0.12, (("bump", 0.35, 9.0, 2.5), ("bump", 1.0, 20.5, 2.2))),
    "office": (0.03, (("plateau", 1.0, 8.5, 17.5), ("bump", -0.25, 12.5, 0.7))),  # a lunch dip
    "quiet": (0.045, (("bump", 0.45, 14.0, 3.5),)),
    "busy": (0.2, (("bump", 0.65, 13.0, 3.0), ("bump", 1.3, 21.5, 2.5))),
    "empty": (0.02, (("bump", 0.03, 12.0, 3.0),)),
}


def _curve(kind: str, hours: np.ndarray) -> np.ndarray:
    """The bumps and plateaus of one kind of day at `hours` from its midnight (no floor)."""
    out = np.zeros(len(hours))
    for element, weight, a, b in DAY_CURVES[kind][1]:
        if element == "bump":
            out += weight * np.exp(-0.5 * ((hours - a) / b) ** 2)
        else:
            out += weight / (1.0 + np.exp(-(hours - a) * 2.0)) / (1.0 + np.exp((hours - b) * 2.0))
    return out


@dataclass(frozen=True)
class _Clock:
    t: np.ndarray  # epoch seconds (UTC)
    hour: np.ndarray  # local hour of day, float
    day: np.ndarray  # local day index from the series' first local day
    first_weekday: int  # of local day 0, 0 = Monday
    holiday: int | None  # day index


def _clock(spec: ServiceSpec) -> _Clock:
    n = spec.days * 86400 // spec.period_s
    t = START + spec.first_weekday * 86400 + np.arange(n, dtype=np.int64) * spec.period_s
    local = t + spec.utc_offset_h * 3600
    day_number = local // 86400
    day = day_number - day_number[0]
    first_weekday = int((day_number[0] + 3) % 7)  # of the first local day; 1970-01-01 was a Thursday
    holiday = None
    if spec.holiday_after_day is not None:
        holiday = next(d for d in range(spec.holiday_after_day, spec.days) if (first_weekday + d) % 7 < 5)
    return _Clock(t, (local % 86400) / 3600.0, day, first_weekday, holiday)


def _day_kind(spec: ServiceSpec, clock: _Clock, day: int) -> str:
    if day == clock.holiday:
        return "quiet"
    return spec.weekend if _is_weekend(clock, day) else spec.weekday


def _demand(spec: ServiceSpec, clock: _Clock, rng: np.random.Generator) -> np.ndarray:
    """Expected requests per period, undisturbed."""
    kinds = [_day_kind(spec, clock, d) for d in range(-1, spec.days + 2)]  # kinds[d + 1] is day d's
    floor = np.array([DAY_CURVES[k][0] for k in kinds])[clock.day + 1]
    shape = floor.astype(np.float64)
    for offset in (-1, 0, 1):  # yesterday's late bumps, today's, tomorrow's early ones
        day_kind = np.array(kinds)[clock.day + 1 + offset]
        for kind in set(kinds):
            rows = day_kind == kind
            shape[rows] += _curve(kind, clock.hour[rows] - 24.0 * offset)
    # The floor changes at midnight between kinds of day: smooth it (noise-free) over about an hour.
    sd = 2700.0 / spec.period_s
    kernel = np.exp(-0.5 * (np.arange(-int(3 * sd), int(3 * sd) + 1) / sd) ** 2)
    shape = np.convolve(np.pad(shape, len(kernel) // 2, mode="edge"), kernel / kernel.sum(), mode="valid")
    weekday = np.linspace(-24.0, 48.0, 865)
    shape /= float((DAY_CURVES[spec.weekday][0] + _curve(spec.weekday, weekday)).max())
    growth = np.exp(spec.growth_per_week * (clock.t - clock.t[0]) / (7 * 86400.0))
    day_factor = rng.lognormal(0.0, 0.05, int(clock.day.max()) + 1)[clock.day]
    phi = np.exp(-spec.period_s / 1800.0)  # AR(1) correlated over ~30 minutes
    shocks = rng.normal(0.0, 0.03 * np.sqrt(1 - phi**2), len(shape))
    wobble = lfilter([1.0], [1.0, -phi], shocks)
    return np.asarray(spec.peak_per_min * spec.period_s / 60.0 * shape * growth * day_factor * np.exp(wobble))


# --- incidents ----------------------------------------------------------------------------------


def _plan(
    spec: ServiceSpec, clock: _Clock, demand: np.ndarray, rng: np.random.Generator
) -> dict[str, list[Incident]]:
    """Incident windows per metric (or DLQ): after day 7, one per day per file, never on the holiday."""
    plans: dict[str, list[Incident]] = {}
    for metric, shape in spec.incidents:
        (dur_lo, dur_hi), (mag_lo, mag_hi) = SHAPES[shape]
        taken = {int(clock.day[i.start]) for i in plans.get(metric, [])}
        days = [
            d
            for d in range(INCIDENTS_FROM_DAY, spec.days - 1)
            if d not in taken
            and d != clock.holiday
            and not (shape in BUSY_HOUR_SHAPES and _is_weekend(clock, d))
        ]
        d = int(rng.choice(days))
        rows = np.flatnonzero(clock.day == d)
        if shape == "quiet_hour_spike":
            candidates = rows[(clock.hour[rows] >= 1.0) & (clock.hour[rows] < 5.0)]
        elif shape in BUSY_HOUR_SHAPES:
            candidates = rows[demand[rows] >= 0.6 * demand[rows].max()]
        else:
            candidates = rows[(clock.hour[rows] >= 6.0) & (clock.hour[rows] < 22.0)]
        start = int(rng.choice(candidates))
        duration = int(rng.integers(dur_lo, dur_hi + 1))
        magnitude = float(rng.uniform(mag_lo, mag_hi))
        if shape == "quiet_hour_spike":  # extra requests per period: a share of the day's peak demand
            magnitude *= float(demand[rows].max())
        plans.setdefault(metric, []).append(Incident(shape, start, start + duration, magnitude))
    return plans


def _is_weekend(clock: _Clock, day: int) -> bool:
    return (clock.first_weekday + day) % 7 >= 5


def _windows(incidents: list[Incident], n: int) -> np.ndarray:
    mask = np.zeros(n, dtype=bool)
    for inc in incidents:
        mask[inc.start : inc.end] = True
    return mask


# --- series -------------------------------------------------------------------------------------


def _scaled(y: np.ndarray, incidents: list[Incident]) -> np.ndarray:
    """y with each incident's window multiplied by its magnitude."""
    out = y.copy()
    for inc in incidents:
        out[inc.start : inc.end] *= inc.magnitude
    return out


def _requests(rng: np.random.Generator, demand: np.ndarray, incidents: list[Incident]) -> np.ndarray:
    """Requests drawn from the disturbed demand (a spike adds its magnitude, other shapes scale)."""
    lam = _scaled(demand, [i for i in incidents if i.shape != "quiet_hour_spike"])
    for inc in incidents:
        if inc.shape == "quiet_hour_spike":
            lam[inc.start : inc.end] += inc.magnitude
    return rng.poisson(lam).astype(np.float64)


def _ratio_counts(
    rng: np.random.Generator, volume: np.ndarray, ratio: np.ndarray, incidents: list[Incident], spread: float
) -> np.ndarray:
    """Binomial counts of volume at a ratio that varies from period to period; an incident sets the ratio."""
    r = ratio * rng.lognormal(0.0, spread, len(volume))
    for inc in incidents:
        window = slice(inc.start, inc.end)
        if inc.shape == "error_burst":
            r[window] += inc.magnitude
        else:  # throttling, cold_start_storm: the ratio itself
            r[window] = inc.magnitude * rng.lognormal(0.0, 0.1, inc.end - inc.start)
    return rng.binomial(volume.astype(np.int64), np.clip(r, 0.0, 0.95)).astype(np.float64)


def _latency(
    rng: np.random.Generator,
    spec: ServiceSpec,
    volume: np.ndarray,
    load: np.ndarray,
    incidents: list[Incident],
) -> np.ndarray:
    """Mean latency of the period's requests (NaN without requests), with single-period outliers."""
    null = _latency_null(spec, volume, load)
    y = np.exp(null.a) * rng.lognormal(0.0, 1.0, len(volume)) ** null.b
    outliers = rng.random(len(volume)) < spec.outlier_rate
    y[outliers] *= rng.uniform(2.0, 5.0, int(outliers.sum()))
    y = _scaled(y, incidents)
    y[volume == 0] = np.nan
    return np.asarray(y)


def _latency_null(spec: ServiceSpec, volume: np.ndarray, load: np.ndarray) -> NullModel:
    """Latency's log level and its sd: noisier when few requests make the period."""
    sigma = spec.latency_noise + 0.5 / np.sqrt(np.maximum(volume, 1.0))
    return NullModel("lognormal", np.log(spec.latency_ms * (1.0 + 0.25 * load)), sigma)


def _concurrency_null(spec: ServiceSpec, volume: np.ndarray, duration_ms: np.ndarray) -> NullModel:
    """Maximum concurrent executions: 1.6 x the mean concurrency + 0.3 (Poisson), plus 1 when busy."""
    mean = volume / spec.period_s * np.nan_to_num(duration_ms, nan=0.0) / 1000.0
    return NullModel("poisson", 1.6 * mean, np.full(len(mean), 0.3), (volume > 0).astype(np.float64))


def _concurrency(
    rng: np.random.Generator,
    spec: ServiceSpec,
    volume: np.ndarray,
    duration_ms: np.ndarray,
    incidents: list[Incident],
) -> np.ndarray:
    """Maximum concurrent executions in a period: mean concurrency x a burst factor, 1+ when busy."""
    null = _concurrency_null(spec, volume, duration_ms)
    assert null.offset is not None
    return np.asarray(rng.poisson(_scaled(null.a, incidents) + null.b) + null.offset).astype(np.float64)


def _queue(
    rng: np.random.Generator,
    spec: ServiceSpec,
    arrivals: np.ndarray,
    load: np.ndarray,
    incidents: list[Incident],
) -> tuple[np.ndarray, np.ndarray, list[Incident]]:
    """(age of oldest message s, messages visible, incidents with their end moved to the drained point)."""
    visible = rng.poisson(0.02 * arrivals + 0.3).astype(np.float64)
    age = np.round(1.0 + rng.exponential(3.0 + 5.0 * load)).astype(np.float64)
    mean_arrivals = max(float(arrivals.mean()), 1.0)
    placed: list[Incident] = []
    for inc in incidents:
        backlog, i = 0.0, inc.start
        capacity = inc.magnitude * mean_arrivals
        while i < len(arrivals) and (i < inc.end or backlog > 0):
            backlog = backlog + arrivals[i] if i < inc.end else max(0.0, backlog + arrivals[i] - capacity)
            visible[i] += backlog
            stalled_for = (i - inc.start + 1) * spec.period_s
            age[i] = max(age[i], stalled_for if i < inc.end else backlog / mean_arrivals * spec.period_s)
            i += 1
        placed.append(Incident(inc.shape, inc.start, i, inc.magnitude))
    return age, visible, placed


def _dlq(
    rng: np.random.Generator, spec: ServiceSpec, n: int, incidents: list[Incident]
) -> tuple[np.ndarray, list[Incident]]:
    """DLQ depth: a constant level; arrivals accumulate until a redrive 20-60 periods after they stop."""
    depth = np.full(n, float(spec.dlq_level))
    placed: list[Incident] = []
    for inc in incidents:
        arrivals = rng.poisson(inc.magnitude, inc.end - inc.start).astype(np.float64)
        arrivals[0] = max(arrivals[0], 1.0)
        redrive = min(n, inc.end + int(rng.integers(20, 61)))
        depth[inc.start : inc.end] += np.cumsum(arrivals)
        depth[inc.end : redrive] += arrivals.sum()
        placed.append(Incident(inc.shape, inc.start, redrive, inc.magnitude))
    return depth, placed


def _write_service(out_dir: Path, spec: ServiceSpec, rng: np.random.Generator) -> list[SeriesFile]:
    clock = _clock(spec)
    demand = _demand(spec, clock, rng)
    plans = _plan(spec, clock, demand, rng)
    n = len(demand)
    load = demand / demand.max()

    def plan(metric: str) -> list[Incident]:
        return plans.get(metric, [])

    base = rng.poisson(demand).astype(np.float64)
    series: dict[str, tuple[np.ndarray, np.ndarray | None, list[Incident]]] = {}
    requests_null = NullModel("poisson", demand, np.zeros(n))
    nulls: dict[str, NullModel] = {}
    if spec.path.startswith("api/"):
        count = np.where(_windows(plan("Count"), n), _requests(rng, demand, plan("Count")), base)
        series["Count"] = (count, None, plan("Count"))
        nulls["Count"] = requests_null
        client_ratio = spec.client_error_ratio * (1.0 + 0.6 * (1.0 - load))  # more bots at night
        series["4XXError"] = (
            _ratio_counts(rng, base, client_ratio, plan("4XXError"), 0.2),
            base,
            plan("4XXError"),
        )
        server_ratio = np.full(n, spec.error_ratio)
        series["5XXError"] = (
            _ratio_counts(rng, base, server_ratio, plan("5XXError"), 0.3),
            base,
            plan("5XXError"),
        )
        series["Latency"] = (_latency(rng, spec, base, load, plan("Latency")), None, plan("Latency"))
        nulls["4XXError"] = NullModel("binomial", base, client_ratio)
        nulls["5XXError"] = NullModel("binomial", base, server_ratio)
        nulls["Latency"] = _latency_null(spec, base, load)
    else:
        invocations = np.where(
            _windows(plan("Invocations"), n), _requests(rng, demand, plan("Invocations")), base
        )
        series["Invocations"] = (invocations, None, plan("Invocations"))
        nulls["Invocations"] = requests_null
        error_ratio = np.full(n, spec.error_ratio)
        errors = _ratio_counts(rng, base, error_ratio, plan("Errors"), 0.3)
        series["Errors"] = (errors, base, plan("Errors"))
        throttle_ratio = np.where(load > 0.9, 2e-4, 0.0)  # a rare throttle at the very top of a peak
        series["Throttles"] = (
            _ratio_counts(rng, base, throttle_ratio, plan("Throttles"), 0.3),
            base,
            plan("Throttles"),
        )
        duration = _latency(rng, spec, base, load, [])
        series["Duration"] = (_scaled(duration, plan("Duration")), None, plan("Duration"))
        concurrency = _concurrency(rng, spec, base, duration, plan("ConcurrentExecutions"))
        series["ConcurrentExecutions"] = (concurrency, None, plan("ConcurrentExecutions"))
        cold_ratio = 0.004 + 0.04 * (1.0 - load) ** 2  # idle containers are recycled at night
        cold = _ratio_counts(rng, base, cold_ratio, plan("ColdStart"), 0.3)
        series["ColdStart"] = (cold, base, plan("ColdStart"))
        nulls["Errors"] = NullModel("binomial", base, error_ratio)
        nulls["Throttles"] = NullModel("binomial", base, throttle_ratio)
        nulls["Duration"] = _latency_null(spec, base, load)
        nulls["ConcurrentExecutions"] = _concurrency_null(spec, base, duration)
        nulls["ColdStart"] = NullModel("binomial", base, cold_ratio)
    written = [
        _write(out_dir, spec, metric, y, volume, incidents, null=nulls[metric])
        for metric, (y, volume, incidents) in series.items()
    ]
    if spec.queue is not None:
        age, visible, backlog = _queue(rng, spec, base, load, plan(QUEUE))
        queue_dir = f"sqs/{spec.queue}"
        written.append(_write(out_dir, spec, "ApproximateAgeOfOldestMessage", age, None, backlog, queue_dir))
        written.append(
            _write(out_dir, spec, "ApproximateNumberOfMessagesVisible", visible, None, backlog, queue_dir)
        )
        depth, arrivals = _dlq(rng, spec, n, plan(DLQ))
        written.append(
            _write(
                out_dir, spec, "ApproximateNumberOfMessagesVisible", depth, None, arrivals, f"{queue_dir}-dlq"
            )
        )
    return written


# --- files --------------------------------------------------------------------------------------


def _kind(folder: str, metric: str) -> str:
    """The kind of series, short: "api Count", "lambda Errors", "sqs AgeOfOldestMessage", "dlq ..."."""
    short = metric.removeprefix("ApproximateNumberOf").removeprefix("Approximate")
    return f"dlq {short}" if folder.endswith("-dlq") else f"{folder.split('/')[0]} {short}"


def _write(
    out_dir: Path,
    spec: ServiceSpec,
    metric: str,
    y: np.ndarray,
    volume: np.ndarray | None,
    incidents: list[Incident],
    folder: str | None = None,
    *,
    null: NullModel | None = None,
) -> SeriesFile:
    folder = folder or spec.path
    rel = f"{folder}/{metric}.csv"
    n = len(y)
    t = START + spec.first_weekday * 86400 + np.arange(n, dtype=np.int64) * spec.period_s
    stamps = np.datetime_as_string(t.astype("datetime64[s]"), unit="s")
    ints = metric not in ("Latency", "Duration")
    values = [("" if np.isnan(v) else f"{v:.0f}" if ints else f"{v:.1f}") for v in y.tolist()]
    lines = ["timestamp,value" + (",volume" if volume is not None else "")]
    if volume is None:
        lines += [f"{s.replace('T', ' ')},{v}" for s, v in zip(stamps.tolist(), values, strict=True)]
    else:
        vols = volume.astype(np.int64).tolist()
        lines += [
            f"{s.replace('T', ' ')},{v},{w}" for s, v, w in zip(stamps.tolist(), values, vols, strict=True)
        ]
    path = out_dir / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    kept = tuple(sorted((i for i in incidents if i.start < n), key=lambda i: i.start))
    kept = tuple(Incident(i.shape, i.start, min(i.end, n), i.magnitude) for i in kept)
    profile = DLQ_CATALOG_PROFILE if folder.endswith("-dlq") else CATALOG_PROFILE[metric]
    return SeriesFile(rel, _kind(folder, metric), profile, spec.period_s, int(t[0]), n, kept, null)


def _stamp(f: SeriesFile, row: int) -> str:
    return datetime.fromtimestamp(f.first + row * f.period_s, UTC).strftime("%Y-%m-%d %H:%M:%S")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.unseen_series", description=__doc__.split("\n")[0]
    )
    parser.add_argument("out_dir", help="where the corpus (CSVs + labels.json) is written")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args(argv)
    files = generate_corpus(Path(args.out_dir), seed=args.seed)
    incidents = sum(len(f.incidents) for f in files)
    print(f"{len(files)} files, {sum(f.rows for f in files)} rows, {incidents} incidents -> {args.out_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
