"""`CloudWatchMetricSource`: the catalog's raw series from CloudWatch GetMetricData.

GetMetricData limits (per call): at most 500 queries and 100,800 datapoints returned. Requests are
split accordingly (fewer queries per call for long windows, time windows split when one query alone
would exceed the datapoint limit), results are paged with botocore's GetMetricData paginator, a
result with StatusCode `PartialData` is continued with the NextToken, throttling and transient
errors are retried by botocore's standard retry mode only (`monitor.budget`: one retry layer, bounded
time per call), and CloudWatch's `Messages` are logged. Metric math is never used: derived series
are computed here, in Python, from the raw series (`derive`).

`fetch` returns series aligned on a regular grid ``t = start, start + period, ..., < end`` with NaN
for a period without a datapoint, except for metrics flagged `fill_zero` (CloudWatch omits periods in
which an error counter stayed at zero). `read` is the reader beneath it: every result as CloudWatch
returned it, for any window (the dashboard reads its metrics through it).

A spec with `each` (e.g. ``ExecutedVersion``) stands for every metric ListMetrics finds with its
dimensions plus that one: each is read like any other, and `fetch` keeps the per-period maximum (a
failed ListMetrics fails that series only).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import Any, Protocol

import numpy as np
from botocore.exceptions import ClientError, PaginationError
from botocore.model import OperationModel
from botocore.paginate import Paginator
from botocore.session import get_session

from monitor.catalog import Catalog, DerivedSpec, MetricSpec

logger = logging.getLogger(__name__)

MAX_QUERIES_PER_CALL = 500
MAX_DATAPOINTS_PER_CALL = 100_800


class MetricSourceError(RuntimeError):
    """GetMetricData failed for good (after retries), or returned something unusable."""


@dataclass(frozen=True)
class Series:
    """One series on a regular grid: t int64 epoch seconds, y float64 (NaN = missing)."""

    t: np.ndarray
    y: np.ndarray
    volume: np.ndarray | None = None

    def after(self, t0: int) -> Series:
        return self.between(t0, None)

    def between(self, t0: int, t1: int | None) -> Series:
        """Points with t0 < t <= t1 (t1 None: no upper bound)."""
        keep = self.t > t0 if t1 is None else (self.t > t0) & (self.t <= t1)
        return Series(self.t[keep], self.y[keep], None if self.volume is None else self.volume[keep])


@dataclass
class FetchStats:
    calls: int = 0
    metrics_requested: int = 0
    datapoints: int = 0
    retries: int = 0
    partial_pages: int = 0
    latest_t: int | None = None  # newest period holding a real datapoint (any series)
    messages: list[str] = field(default_factory=list)
    failed_series: list[str] = field(default_factory=list)

    def add(self, other: FetchStats) -> None:
        self.calls += other.calls
        self.metrics_requested += other.metrics_requested
        self.datapoints += other.datapoints
        self.retries += other.retries
        self.partial_pages += other.partial_pages
        if other.latest_t is not None:
            self.latest_t = max(self.latest_t or other.latest_t, other.latest_t)
        self.messages.extend(other.messages)
        self.failed_series.extend(other.failed_series)


@dataclass(frozen=True)
class FetchResult:
    series: dict[str, Series]
    stats: FetchStats


class MetricSource(Protocol):
    def fetch(self, metrics: Sequence[MetricSpec], *, start: int, end: int, period_s: int) -> FetchResult: ...


class CloudWatchClient(Protocol):
    def get_metric_data(self, **kwargs: Any) -> Mapping[str, Any]: ...

    def list_metrics(self, **kwargs: Any) -> Mapping[str, Any]: ...


@cache
def _get_metric_data_paging() -> tuple[dict[str, Any], OperationModel]:
    """botocore's paging rules and model of GetMetricData (what `client.get_paginator` is built from)."""
    session = get_session()
    rules: dict[str, Any] = session.get_paginator_model("cloudwatch").get_paginator("GetMetricData")
    return rules, session.get_service_model("cloudwatch").operation_model("GetMetricData")


def _get_metric_data_paginator(call: Callable[..., Mapping[str, Any]]) -> Paginator[Mapping[str, Any]]:
    """The GetMetricData paginator over `call` (any client's get_metric_data, or a wrapper of it)."""
    rules, model = _get_metric_data_paging()
    return Paginator(call, rules, model)  # type: ignore[arg-type]  # the stubs say str; botocore calls it


@cache
def _default_cloudwatch_client() -> Any:
    import boto3

    from monitor.budget import CLOUDWATCH_READ_S, client_config

    return boto3.client("cloudwatch", config=client_config(read_timeout_s=CLOUDWATCH_READ_S))


@dataclass(frozen=True)
class _Window:
    start: int
    end: int

    def points(self, period_s: int) -> int:
        return max(1, -(-(self.end - self.start) // period_s))


def plan_requests(
    n_metrics: int,
    *,
    start: int,
    end: int,
    period_s: int,
    max_queries: int = MAX_QUERIES_PER_CALL,
    max_datapoints: int = MAX_DATAPOINTS_PER_CALL,
) -> list[tuple[range, _Window]]:
    """Split (metrics x time) into GetMetricData calls that each respect both per-call limits."""
    if end <= start or n_metrics <= 0:
        return []
    points_total = -(-(end - start) // period_s)
    # Time windows: one query alone must not exceed the datapoint limit.
    window_points = min(points_total, max_datapoints)
    windows: list[_Window] = []
    t = start
    while t < end:
        w_end = min(end, t + window_points * period_s)
        windows.append(_Window(t, w_end))
        t = w_end
    plan: list[tuple[range, _Window]] = []
    for window in windows:
        per_call = max(1, min(max_queries, max_datapoints // window.points(period_s)))
        for first in range(0, n_metrics, per_call):
            plan.append((range(first, min(n_metrics, first + per_call)), window))
    return plan


def _epoch(ts: Any) -> int:
    if isinstance(ts, datetime):
        if ts.tzinfo is None:
            ts = ts.replace(tzinfo=UTC)
        return int(ts.timestamp())
    return int(ts)


class CloudWatchMetricSource:
    """Raw series of catalog metrics over plain GetMetricData (no metric math, no anomaly bands)."""

    def __init__(
        self,
        client: CloudWatchClient | None = None,
        *,
        max_pages: int = 1000,
        max_queries: int = MAX_QUERIES_PER_CALL,
        max_datapoints: int = MAX_DATAPOINTS_PER_CALL,
    ) -> None:
        self._client = client
        self.max_pages = max_pages
        self.max_queries = max_queries
        self.max_datapoints = max_datapoints

    @property
    def client(self) -> CloudWatchClient:
        if self._client is None:
            self._client = _default_cloudwatch_client()
        return self._client

    def fetch(self, metrics: Sequence[MetricSpec], *, start: int, end: int, period_s: int) -> FetchResult:
        if start % period_s or end % period_s:
            raise ValueError(f"start and end must be aligned on the period ({period_s}s)")
        stats = FetchStats()
        grid = np.arange(start, end, period_s, dtype=np.int64)
        values = {m.id: np.full(len(grid), np.nan) for m in metrics}
        failed: set[str] = set()
        for metric, result in self.read(metrics, start=start, end=end, period_s=period_s, stats=stats):
            series_id = metric.id
            status = result.get("StatusCode", "Complete")
            if status in ("InternalError", "Forbidden"):
                failed.add(series_id)
                stats.messages.append(f"{series_id}: {status}")
            for m in result.get("Messages") or ():
                stats.messages.append(f"{series_id}: {m.get('Code')}: {m.get('Value')}")
            stamps = result.get("Timestamps") or []
            points = result.get("Values") or []
            if len(stamps) != len(points):
                failed.add(series_id)
                stats.messages.append(f"{series_id}: {len(stamps)} timestamps but {len(points)} values")
                continue
            newest = _place(
                values[series_id], grid, start, period_s, stamps, points, keep_max=metric.each is not None
            )
            if newest is not None:
                stats.latest_t = max(stats.latest_t or newest, newest)
            stats.datapoints += len(points)
        series: dict[str, Series] = {}
        for m in metrics:
            y = values[m.id]
            if m.fill_zero and m.id not in failed:
                y = np.where(np.isnan(y), 0.0, y)
            series[m.id] = Series(grid.copy(), y)
        stats.failed_series.extend(sorted(failed))
        for message in stats.messages:
            logger.warning("GetMetricData: %s", message)
        return FetchResult(series=series, stats=stats)

    def read(
        self, metrics: Sequence[MetricSpec], *, start: int, end: int, period_s: int, stats: FetchStats
    ) -> Iterator[tuple[MetricSpec, Mapping[str, Any]]]:
        """Every GetMetricData result for `metrics` over [start, end) as CloudWatch returned it.

        One result per metric, call and page, in the order they arrive. The window need not be
        aligned: CloudWatch starts its periods at `start` rounded down to the minute, and the
        result's timestamps say where they fell. Calls respect both per-call limits, pages are
        followed with botocore's GetMetricData paginator, throttling is retried; `stats` counts it all.
        A spec with `each` gives one result per value of that dimension (and call and page); a
        ListMetrics that fails gives one result with StatusCode ``InternalError`` and its message.
        """
        concrete: list[MetricSpec] = []
        for spec in metrics:
            if spec.each is None:
                concrete.append(spec)
                continue
            try:
                concrete.extend(self._expand(spec))
            except (ClientError, PaginationError) as err:
                message = {"Code": "ListMetrics", "Value": str(err)}
                yield spec, {"Id": "", "StatusCode": "InternalError", "Messages": [message]}
        metrics = concrete
        plan = plan_requests(
            len(metrics),
            start=start,
            end=end,
            period_s=period_s,
            max_queries=self.max_queries,
            max_datapoints=self.max_datapoints,
        )
        for indexes, window in plan:
            batch = {f"q{j}": metrics[i] for j, i in enumerate(indexes)}
            queries = [_query(query_id, m, period_s) for query_id, m in batch.items()]
            for result in self._paged_results(queries, window, stats):
                metric = batch.get(result.get("Id", ""))
                if metric is None:
                    stats.messages.append(f"result for an unknown query id {result.get('Id')!r} ignored")
                    continue
                yield metric, result

    def _expand(self, spec: MetricSpec) -> list[MetricSpec]:
        """`spec` once per value of its `each` dimension that ListMetrics finds (same id, `each` kept)."""
        assert spec.each is not None
        found: set[str] = set()
        kwargs: dict[str, Any] = {
            "Namespace": spec.namespace,
            "MetricName": spec.metric_name,
            "Dimensions": [*spec.dimension_list(), {"Name": spec.each}],
        }
        while True:
            page = self.client.list_metrics(**kwargs)
            for metric in page.get("Metrics") or ():
                dims = {d["Name"]: d["Value"] for d in metric.get("Dimensions") or ()}
                if set(dims) == {*spec.dimensions, spec.each}:  # exactly one more dimension
                    found.add(dims[spec.each])
            if not page.get("NextToken"):
                break
            kwargs["NextToken"] = page["NextToken"]
        return [
            spec.model_copy(update={"dimensions": {**spec.dimensions, spec.each: value}})
            for value in sorted(found)
        ]

    def _paged_results(
        self, queries: list[dict[str, Any]], window: _Window, stats: FetchStats
    ) -> Iterator[dict[str, Any]]:
        # botocore's paginator follows NextToken; every page goes through `_call`.
        pages = _get_metric_data_paginator(lambda **kwargs: self._call(kwargs, stats)).paginate(
            MetricDataQueries=queries,
            StartTime=datetime.fromtimestamp(window.start, tz=UTC),
            EndTime=datetime.fromtimestamp(window.end, tz=UTC),
            ScanBy="TimestampAscending",
        )
        try:
            for number, response in enumerate(pages, 1):
                stats.metrics_requested += len(queries)  # per call, pages included (a conservative bill)
                for message in response.get("Messages") or ():
                    stats.messages.append(f"{message.get('Code')}: {message.get('Value')}")
                results = list(response.get("MetricDataResults") or [])
                if any(r.get("StatusCode") == "PartialData" for r in results):
                    stats.partial_pages += 1
                yield from results
                if number >= self.max_pages and response.get("NextToken"):
                    raise MetricSourceError(f"GetMetricData still paging after {self.max_pages} pages")
        except PaginationError as err:  # the same NextToken twice
            raise MetricSourceError(f"GetMetricData paging failed: {err}") from err

    def _call(self, kwargs: dict[str, Any], stats: FetchStats) -> Mapping[str, Any]:
        """One GetMetricData call (the client's standard retry mode retries it; nothing more here)."""
        stats.calls += 1
        try:
            return self.client.get_metric_data(**kwargs)
        except ClientError as err:
            code = err.response.get("Error", {}).get("Code", "")
            retried = err.response.get("ResponseMetadata", {}).get("RetryAttempts", 0)
            stats.retries += int(retried)
            raise MetricSourceError(f"GetMetricData failed ({code}) after {retried} retries: {err}") from err


def _query(query_id: str, m: MetricSpec, period_s: int) -> dict[str, Any]:
    return {
        "Id": query_id,
        "MetricStat": {
            "Metric": {
                "Namespace": m.namespace,
                "MetricName": m.metric_name,
                "Dimensions": m.dimension_list(),
            },
            "Period": period_s,
            "Stat": m.statistic,
        },
        "ReturnData": True,
    }


def _place(
    out: np.ndarray,
    grid: np.ndarray,
    start: int,
    period_s: int,
    stamps: Iterable[Any],
    points: Iterable[Any],
    *,
    keep_max: bool = False,
) -> int | None:
    """Put datapoints on the grid (`keep_max`: keep the larger of two values of a period); returns the
    newest timestamp placed."""
    newest: int | None = None
    for ts, value in zip(stamps, points, strict=True):
        epoch = _epoch(ts)
        i = (epoch - start) // period_s
        if 0 <= i < len(grid) and (epoch - start) % period_s == 0:
            try:
                number = float(value)
            except (TypeError, ValueError):
                continue
            out[i] = max(out[i], number) if keep_max and not np.isnan(out[i]) else number
            newest = epoch if newest is None else max(newest, epoch)
    return newest


def derive(catalog: Catalog, raw: Mapping[str, Series]) -> dict[str, Series]:
    """Derived series (ratios) from raw ones on the same grid; volume = the denominator.

    A period where the denominator is missing or zero has no rate (NaN): no traffic is not an error
    rate of 0 %, and a gap in the data must not look like one.
    """
    out: dict[str, Series] = {}
    for d in catalog.derived:
        parts = [raw.get(i) for i in (*d.numerator, *d.denominator)]
        if any(p is None for p in parts):
            continue
        first = raw[d.denominator[0]]
        num = _sum(d, [raw[i] for i in d.numerator], first.t)
        den = _sum(d, [raw[i] for i in d.denominator], first.t)
        with np.errstate(divide="ignore", invalid="ignore"):
            rate = np.where(den > 0, num / den, np.nan)
        out[d.id] = Series(first.t.copy(), rate, np.where(np.isnan(den), 0.0, den))
    return out


def _sum(d: DerivedSpec, parts: list[Series], t: np.ndarray) -> np.ndarray:
    for p in parts:
        if len(p.t) != len(t) or not np.array_equal(p.t, t):
            raise MetricSourceError(f"derived series {d.id!r}: inputs are not on the same time grid")
    stacked = np.vstack([p.y for p in parts])
    total = np.nansum(stacked, axis=0)
    return np.where(np.all(np.isnan(stacked), axis=0), np.nan, total)
