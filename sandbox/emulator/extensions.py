"""The sandbox's fixes to moto, installed inside the emulator process before the server starts.

`install()` replaces moto's CloudWatch metric storage and queries with `sandbox.emulator.metric_store`:
PutMetricData, GetMetricData (every statistic incl. percentiles, ScanBy, MaxDatapoints/NextToken
paging, Label, ReturnData, arithmetic metric math such as ``m1/m2*100``), GetMetricStatistics (incl.
ExtendedStatistics) and ListMetrics. Application code keeps using plain boto3 CloudWatch calls.
Everything else in moto (alarms, dashboards, X-Ray, ...) is untouched.
"""

from __future__ import annotations

import ast
import base64
import binascii
import json
import operator
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np

from sandbox.emulator.metric_store import (
    BASIC_STATS,
    Datapoints,
    FloatArray,
    MetricStore,
    StatError,
    dimension_key,
    validate_stat,
)

DEFAULT_MAX_DATAPOINTS = 100_800
LIST_METRICS_PAGE = 500
_STORE_ATTR = "_fleetscope_metric_store"
_store_lock = threading.Lock()
_installed = False


def store_of(backend: Any) -> MetricStore:
    """The metric store of one moto CloudWatch backend (one per account and region; moto reset drops it)."""
    store = backend.__dict__.get(_STORE_ATTR)
    if store is None:
        with _store_lock:
            store = backend.__dict__.get(_STORE_ATTR)
            if store is None:
                store = MetricStore()
                backend.__dict__[_STORE_ATTR] = store
    return store


def to_epoch(value: Any) -> float:
    """A request timestamp (datetime, ISO string or epoch number) as epoch seconds; naive means UTC."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.timestamp()
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return to_epoch(datetime.fromisoformat(value.replace("Z", "+00:00")))
    raise ValueError(f"not a timestamp: {value!r}")


def _to_datetimes(timestamps: FloatArray) -> list[datetime]:
    return [datetime.fromtimestamp(float(ts), tz=UTC) for ts in timestamps]


def _with_datetimes(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Results for moto's generic serializer: datetimes and plain floats."""
    return [
        r | {"Timestamps": _to_datetimes(r["Timestamps"]), "Values": [float(v) for v in r["Values"]]}
        for r in results
    ]


def _json_body(results: list[dict[str, Any]], token: str | None) -> str:
    """The JSON-protocol response body, built directly: moto's generic serializer walks every
    datapoint through the service model and costs seconds for 100k datapoints."""
    body: dict[str, Any] = {
        "MetricDataResults": [
            r | {"Timestamps": r["Timestamps"].tolist(), "Values": r["Values"].tolist()} for r in results
        ],
        "Messages": [],
    }
    if token:
        body["NextToken"] = token
    return json.dumps(body)


# ---- PutMetricData ------------------------------------------------------------------------------
def put_metric_data(backend: Any, namespace: str, metric_data: list[dict[str, Any]]) -> None:
    from moto.cloudwatch.exceptions import InvalidParameterValue

    for i, metric in enumerate(metric_data):
        backend._validate_parameters_put_metric_data(metric, i + 1)
    store = store_of(backend)
    now = time.time()
    for member in metric_data:
        name = member["MetricName"]
        dims = dimension_key(member.get("Dimensions"))
        unit = member.get("Unit")
        ts = to_epoch(member["Timestamp"]) if member.get("Timestamp") else now
        if member.get("Values"):
            values = [float(v) for v in member["Values"]]
            counts = [float(c) for c in member.get("Counts") or [1.0] * len(values)]
            if len(counts) != len(values):
                raise InvalidParameterValue("The Values and Counts arrays must be the same length.")
            store.put_values(namespace, name, dims, ts, values, counts, unit, now)
        elif member.get("StatisticValues"):
            sv = member["StatisticValues"]
            store.put_statistics(
                namespace,
                name,
                dims,
                ts,
                total=float(sv["Sum"]),
                minimum=float(sv["Minimum"]),
                maximum=float(sv["Maximum"]),
                count=float(sv["SampleCount"]),
                unit=unit,
                now=now,
            )
        else:
            store.put_value(namespace, name, dims, ts, float(member.get("Value", 0)), 1.0, unit, now)


# ---- GetMetricData ------------------------------------------------------------------------------
def _metric_stat_result(store: MetricStore, query: dict[str, Any], start: float, end: float) -> Datapoints:
    from moto.cloudwatch.exceptions import InvalidParameterValue

    metric_stat = query["MetricStat"]
    metric = metric_stat["Metric"]
    try:
        period = int(metric_stat["Period"])
        stat = str(metric_stat["Stat"])
        validate_stat(stat)
    except (KeyError, ValueError) as err:
        raise InvalidParameterValue(f"MetricDataQuery {query.get('Id')}: {err}") from err
    if period <= 0 or (period >= 60 and period % 60) or (period < 60 and period not in (1, 5, 10, 20, 30)):
        raise InvalidParameterValue(
            f"MetricDataQuery {query.get('Id')}: Period must be 1, 5, 10, 20, 30 or a multiple of 60."
        )
    return store.query(
        metric["Namespace"],
        metric["MetricName"],
        dimension_key(metric.get("Dimensions")),
        start=start,
        end=end,
        period=period,
        stats=[stat],
        unit=metric_stat.get("Unit"),
    )[stat]


Operand = Datapoints | float
_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
}


class ExpressionError(ValueError):
    pass


def evaluate_expression(expression: str, results: dict[str, Datapoints]) -> Datapoints:
    """Arithmetic metric math: ids, numbers, + - * / ^, parentheses, unary minus, FILL(m, value).

    Binary operations between two series keep the timestamps both have (like CloudWatch); a series
    and a scalar combine point by point. Non-finite results (division by zero) are dropped.
    """
    try:
        tree = ast.parse(expression.replace("^", "**"), mode="eval")
    except SyntaxError as err:
        raise ExpressionError(f"cannot parse metric math expression {expression!r}") from err
    value = _eval(tree.body, results, expression)
    if isinstance(value, Datapoints):
        ok = np.isfinite(value.values)
        return Datapoints(value.timestamps[ok], value.values[ok])
    raise ExpressionError(f"expression {expression!r} does not reference any metric")


def _eval(node: ast.AST, results: dict[str, Datapoints], source: str) -> Operand:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return float(node.value)
    if isinstance(node, ast.Name):
        if node.id not in results:
            raise ExpressionError(f"unknown metric id {node.id!r} in expression {source!r}")
        return results[node.id]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        inner = _eval(node.operand, results, source)
        sign = -1.0 if isinstance(node.op, ast.USub) else 1.0
        if isinstance(inner, Datapoints):
            return Datapoints(inner.timestamps, inner.values * sign)
        return inner * sign
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        fn = _BINARY[type(node.op)]
        left, right = _eval(node.left, results, source), _eval(node.right, results, source)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            if isinstance(left, Datapoints) and isinstance(right, Datapoints):
                common, li, ri = np.intersect1d(left.timestamps, right.timestamps, return_indices=True)
                return Datapoints(common, np.asarray(fn(left.values[li], right.values[ri]), dtype=float))
            if isinstance(left, Datapoints):
                return Datapoints(left.timestamps, np.asarray(fn(left.values, right), dtype=float))
            if isinstance(right, Datapoints):
                return Datapoints(right.timestamps, np.asarray(fn(left, right.values), dtype=float))
            if right == 0 and isinstance(node.op, ast.Div):
                raise ExpressionError(f"division by zero in expression {source!r}")
            return float(fn(left, right))
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "FILL"
        and len(node.args) == 2
    ):
        series = _eval(node.args[0], results, source)
        fill = _eval(node.args[1], results, source)
        if not isinstance(series, Datapoints) or isinstance(fill, Datapoints):
            raise ExpressionError("FILL takes a metric and a number")
        return series  # stored periods are never empty; FILL only matters for absent periods
    raise ExpressionError(
        f"metric math expression {source!r} is not supported by the sandbox "
        "(arithmetic on metric ids and numbers only)"
    )


def _encode_token(position: tuple[int, int], fingerprint: str) -> str:
    raw = json.dumps({"q": position[0], "o": position[1], "f": fingerprint}).encode()
    return base64.urlsafe_b64encode(raw).decode()


def _decode_token(token: str, fingerprint: str) -> tuple[int, int]:
    from moto.cloudwatch.exceptions import InvalidParameterValue

    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        if data["f"] != fingerprint:
            raise ValueError("token belongs to a different request")
        return int(data["q"]), int(data["o"])
    except (binascii.Error, ValueError, KeyError, TypeError) as err:
        raise InvalidParameterValue(f"The NextToken is invalid: {err}") from err


def get_metric_data(
    backend: Any,
    queries: list[dict[str, Any]],
    start_time: Any,
    end_time: Any,
    scan_by: str = "TimestampDescending",
    max_datapoints: int | None = None,
    next_token: str | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """Results (response-shaped dicts with numpy Timestamps/Values) and the next token."""
    from moto.cloudwatch.exceptions import InvalidParameterValue, ValidationError

    start, end = to_epoch(start_time), to_epoch(end_time)
    if start >= end:
        raise ValidationError("The parameter StartTime must be less than the parameter EndTime.")
    if scan_by not in ("TimestampDescending", "TimestampAscending"):
        raise InvalidParameterValue("ScanBy must be TimestampDescending or TimestampAscending.")
    limit = DEFAULT_MAX_DATAPOINTS if not max_datapoints else int(max_datapoints)
    if limit <= 0:
        raise InvalidParameterValue("MaxDatapoints must be a positive number.")
    ids = [q.get("Id") for q in queries]
    if len(set(ids)) != len(ids):
        raise ValidationError("The values for parameter Id in MetricDataQueries must be unique.")
    store = store_of(backend)
    computed: dict[str, Datapoints] = {}
    for query in queries:
        if "MetricStat" in query:
            computed[query["Id"]] = _metric_stat_result(store, query, start, end)
    for query in queries:
        if "Expression" in query:
            try:
                computed[query["Id"]] = evaluate_expression(query["Expression"], computed)
            except ExpressionError as err:
                raise ValidationError(str(err)) from err
    returned = [q for q in queries if str(q.get("ReturnData", True)).lower() != "false"]
    fingerprint = f"{start}:{end}:{scan_by}:{','.join(str(q['Id']) for q in returned)}"
    first_q, offset = _decode_token(next_token, fingerprint) if next_token else (0, 0)
    results: list[dict[str, Any]] = []
    budget = limit
    token: str | None = None
    for qi in range(first_q, len(returned)):
        query = returned[qi]
        data = computed[query["Id"]]
        ts, values = data.timestamps, data.values
        if scan_by == "TimestampDescending":
            ts, values = ts[::-1], values[::-1]
        begin = offset if qi == first_q else 0
        take = min(budget, len(ts) - begin)
        budget -= take
        partial = begin + take < len(ts)
        default_label = query["MetricStat"]["Metric"]["MetricName"] if "MetricStat" in query else query["Id"]
        results.append(
            {
                "Id": query["Id"],
                "Label": query.get("Label") or default_label,
                "Timestamps": ts[begin : begin + take],
                "Values": values[begin : begin + take],
                "StatusCode": "PartialData" if partial else "Complete",
                "Messages": [],
            }
        )
        if partial:
            token = _encode_token((qi, begin + take), fingerprint)
            break
    return results, token


# ---- GetMetricStatistics ------------------------------------------------------------------------
def get_metric_statistics(
    backend: Any,
    namespace: str,
    metric_name: str,
    start_time: Any,
    end_time: Any,
    period: int,
    stats: list[str],
    dimensions: list[dict[str, str]],
    unit: str | None = None,
    extended_stats: list[str] | None = None,
) -> list[dict[str, Any]]:
    from moto.cloudwatch.exceptions import InvalidParameterValue

    start, end = to_epoch(start_time), to_epoch(end_time)
    if start >= end:
        raise InvalidParameterValue("The parameter StartTime must be less than the parameter EndTime.")
    extended = list(extended_stats or [])
    for stat in stats:
        if stat not in BASIC_STATS:
            raise InvalidParameterValue(f"The value {stat} for parameter Statistics is not supported.")
    store = store_of(backend)
    try:
        per_stat = store.query(
            namespace,
            metric_name,
            dimension_key(dimensions),
            start=start,
            end=end,
            period=int(period),
            stats=list(stats) + extended,
            unit=unit,
        )
    except StatError as err:
        raise InvalidParameterValue(str(err)) from err
    series = store.get(namespace, metric_name, dimension_key(dimensions))
    series_unit = (series.unit if series else None) or "None"
    points: dict[float, dict[str, Any]] = {}
    for stat, data in per_stat.items():
        for ts, value in zip(data.timestamps, data.values, strict=True):
            point = points.setdefault(
                float(ts), {"Timestamp": datetime.fromtimestamp(float(ts), tz=UTC), "Unit": series_unit}
            )
            if stat in BASIC_STATS:
                point[stat] = float(value)
            else:
                point.setdefault("ExtendedStatistics", {})[stat] = float(value)
    return [points[ts] for ts in sorted(points)]


# ---- ListMetrics --------------------------------------------------------------------------------
def list_metrics(
    backend: Any,
    next_token: str | None,
    namespace: str | None,
    metric_name: str | None,
    dimensions: list[dict[str, Any]] | None,
    recently_active: str | None = None,
) -> tuple[str | None, list[dict[str, Any]]]:
    from moto.cloudwatch.exceptions import InvalidParameterValue

    if recently_active not in (None, "", "PT3H"):
        raise InvalidParameterValue("RecentlyActive must be PT3H.")
    cutoff = time.time() - 3 * 3600 if recently_active else None
    wanted = [(str(d["Name"]), d.get("Value")) for d in dimensions or []]
    matches: list[dict[str, Any]] = []
    for series in backend_store_series(backend):
        if namespace and series.namespace != namespace:
            continue
        if metric_name and series.name != metric_name:
            continue
        if cutoff is not None and series.last_put < cutoff:
            continue
        dims = dict(series.dimensions)
        if any(name not in dims or (value is not None and dims[name] != value) for name, value in wanted):
            continue
        matches.append(
            {
                "Namespace": series.namespace,
                "MetricName": series.name,
                "Dimensions": [{"Name": n, "Value": v} for n, v in series.dimensions],
            }
        )
    try:
        offset = int(next_token) if next_token else 0
    except ValueError as err:
        raise InvalidParameterValue("Request parameter NextToken is invalid") from err
    page = matches[offset : offset + LIST_METRICS_PAGE]
    more = offset + LIST_METRICS_PAGE < len(matches)
    return (str(offset + LIST_METRICS_PAGE) if more else None), page


def backend_store_series(backend: Any) -> list[Any]:
    return list(store_of(backend).iter_series())


# ---- installation -------------------------------------------------------------------------------
def _patch_responses() -> None:
    from moto.cloudwatch.exceptions import InvalidParameterCombination, InvalidParameterValue, ValidationError
    from moto.cloudwatch.responses import CloudWatchResponse
    from moto.core.responses import ActionResult

    def response_get_metric_data(self: Any) -> ActionResult | tuple[int, dict[str, str], str]:
        params = self._get_params()
        queries = params.get("MetricDataQueries", [])
        for i, query in enumerate(queries, start=1):
            if "MetricStat" not in query and "Expression" not in query:
                raise ValidationError(f"The parameter MetricDataQueries.member.{i}.MetricStat is required.\n")
        results, token = get_metric_data(
            self.cloudwatch_backend,
            queries,
            params["StartTime"],
            params["EndTime"],
            scan_by=params.get("ScanBy") or "TimestampDescending",
            max_datapoints=params.get("MaxDatapoints"),
            next_token=params.get("NextToken"),
        )
        content_type = str(self.headers.get("Content-Type", ""))
        if content_type.startswith("application/x-amz-json"):
            return 200, {"Content-Type": content_type}, _json_body(results, token)
        result: dict[str, Any] = {"MetricDataResults": _with_datetimes(results), "Messages": []}
        if token:
            result["NextToken"] = token
        return ActionResult(result)

    original_put_metric_data = CloudWatchResponse.put_metric_data
    original_parse_parameters = CloudWatchResponse.parse_parameters

    def parse_parameters(self: Any, request: Any) -> None:
        # A JSON PutMetricData is decoded by response_put_metric_data itself.
        if str(request.content_type or "").startswith("application/x-amz-json") and (
            self._get_action() == "PutMetricData"
        ):
            self.params = {}
            return
        original_parse_parameters(self, request)

    def response_put_metric_data(self: Any) -> Any:
        """JSON requests are decoded directly: moto's generic parser walks every datum through the
        service model, which made a 1,000-datum call cost ~0.3 s."""
        content_type = str(self.headers.get("Content-Type", ""))
        if not content_type.startswith("application/x-amz-json"):
            return original_put_metric_data(self)
        try:
            payload = json.loads(self.body or "{}")
        except ValueError as err:
            raise InvalidParameterValue(f"The request body is not valid JSON: {err}") from err
        namespace = payload.get("Namespace") if isinstance(payload, dict) else None
        data = payload.get("MetricData") if isinstance(payload, dict) else None
        if not isinstance(namespace, str) or not namespace:
            raise InvalidParameterValue("The parameter Namespace is required.")
        if not isinstance(data, list) or not all(isinstance(d, dict) and d.get("MetricName") for d in data):
            raise InvalidParameterValue(
                "The parameter MetricData must be a list of datums with a MetricName."
            )
        put_metric_data(self.cloudwatch_backend, namespace, data)
        return 200, {"Content-Type": content_type}, "{}"

    def response_get_metric_statistics(self: Any) -> ActionResult:
        statistics = self._get_param("Statistics", [])
        extended = self._get_param("ExtendedStatistics", [])
        if not statistics and not extended:
            raise InvalidParameterCombination("Must specify either Statistics or ExtendedStatistics")
        metric_name = self._get_param("MetricName")
        datapoints = get_metric_statistics(
            self.cloudwatch_backend,
            self._get_param("Namespace"),
            metric_name,
            self._get_param("StartTime"),
            self._get_param("EndTime"),
            self._get_int_param("Period"),
            statistics,
            self._get_param("Dimensions", []),
            unit=self._get_param("Unit"),
            extended_stats=extended,
        )
        return ActionResult({"Label": metric_name, "Datapoints": datapoints})

    def response_list_metrics(self: Any) -> ActionResult:
        token, metrics = list_metrics(
            self.cloudwatch_backend,
            self._get_param("NextToken"),
            self._get_param("Namespace"),
            self._get_param("MetricName"),
            self._get_params().get("Dimensions", []),
            self._get_param("RecentlyActive"),
        )
        result: dict[str, Any] = {"Metrics": metrics}
        if token:
            result["NextToken"] = token
        return ActionResult(result)

    CloudWatchResponse.parse_parameters = parse_parameters  # type: ignore[method-assign]
    CloudWatchResponse.put_metric_data = response_put_metric_data  # type: ignore[method-assign]
    CloudWatchResponse.get_metric_data = response_get_metric_data  # type: ignore[method-assign,assignment]
    CloudWatchResponse.get_metric_statistics = response_get_metric_statistics  # type: ignore[method-assign]
    CloudWatchResponse.list_metrics = response_list_metrics  # type: ignore[method-assign]


def _patch_backend() -> None:
    from moto.cloudwatch.models import CloudWatchBackend

    def backend_get_metric_data(
        self: Any,
        queries: list[dict[str, Any]],
        start_time: datetime,
        end_time: datetime,
        scan_by: str = "TimestampAscending",
    ) -> list[dict[str, Any]]:
        return _with_datetimes(get_metric_data(self, queries, start_time, end_time, scan_by)[0])

    def backend_list_metrics(
        self: Any,
        next_token: str | None,
        namespace: str,
        metric_name: str,
        dimensions: list[dict[str, str]],
    ) -> tuple[str | None, list[dict[str, Any]]]:
        return list_metrics(self, next_token, namespace, metric_name, dimensions)

    CloudWatchBackend.put_metric_data = put_metric_data  # type: ignore[method-assign,assignment]
    CloudWatchBackend.get_metric_data = backend_get_metric_data  # type: ignore[method-assign]
    CloudWatchBackend.get_metric_statistics = get_metric_statistics  # type: ignore[method-assign,assignment]
    CloudWatchBackend.list_metrics = backend_list_metrics  # type: ignore[method-assign,assignment]


def install() -> None:
    """Patch moto's CloudWatch (idempotent). Called by sandbox.emulator.server before the server starts."""
    global _installed
    if _installed:
        return
    _patch_backend()
    _patch_responses()
    _installed = True
