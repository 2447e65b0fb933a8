"""What each widget of a synthesized CloudWatch dashboard draws, from metric data (pure, pandas).

`dashboard_specs` turns every metric line of a dashboard into a `MetricSpec` for the dashboard's one
GetMetricData reader (`queries.fetch_metrics`); `widget_lines` puts the results on the period grid and
evaluates the widget's metric math as CloudWatch does for the expressions the CDK libraries write:
arithmetic (``+ - * /``, comparisons), ``FILL(m, v)``, ``PERIOD(m)``, ``IF(cond, a, b)``, ``ABS``,
``MAX``/``MIN``/``SUM``/``AVG`` of one series (a number), and ``SEARCH`` (each matching metric a line,
found with ListMetrics by the caller). ``ANOMALY_DETECTION_BAND`` is CloudWatch's own model: reported
as not drawn. A label's ``${AVG}``, ``${MAX}``, ``${MIN}``, ``${SUM}`` and ``${LAST}`` are filled in.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from pydantic import ValidationError

from dashboard.cdk_preview import Dashboard, MetricLine, MetricRef, Widget, search_refs
from monitor.catalog import MetricSpec


class ExpressionError(ValueError):
    """An expression this preview does not evaluate; the message says which part."""


def spec_id(widget_index: int, line_id: str) -> str:
    return f"w{widget_index}.{line_id}"


def metric_spec(series_id: str, ref: MetricRef, stat: str, period_s: int) -> MetricSpec:
    """A GetMetricData query for one metric line (raises ValidationError for a stat it cannot read)."""
    return MetricSpec(
        id=series_id,
        title=ref.describe(),
        resource=ref.namespace,
        direction="up",
        severity="info",
        profile="default",
        namespace=ref.namespace,
        metric_name=ref.name,
        dimensions=dict(ref.dimensions),
        statistic=stat,
        period_s=period_s,
    )


def dashboard_specs(dashboard: Dashboard) -> tuple[list[MetricSpec], dict[str, str]]:
    """Every metric line of the dashboard as a spec, and the lines that cannot be read (id -> why)."""
    specs: list[MetricSpec] = []
    problems: dict[str, str] = {}
    for index, widget in enumerate(dashboard.widgets):
        for line in widget.lines:
            if line.metric is None:
                continue
            series_id = spec_id(index, line.id)
            try:
                specs.append(metric_spec(series_id, line.metric, line.stat, line.period_s))
            except ValidationError:
                problems[series_id] = f"statistic {line.stat!r} is not read by this preview"
    return specs, problems


def search_lines(widget: Widget) -> list[tuple[MetricLine, MetricRef]]:
    """The SEARCH expressions of a widget with the metric pattern each one searches."""
    found = []
    for line in widget.lines:
        if line.expression and "SEARCH(" in line.expression:
            for ref in search_refs(line.expression):
                found.append((line, ref))
    return found


# ------------------------------------------------------------------------------------- math


@dataclass
class _Env:
    series: Mapping[str, pd.Series]
    period_s: int
    grid: pd.DatetimeIndex


def _as_series(value: pd.Series | float, grid: pd.DatetimeIndex) -> pd.Series:
    if isinstance(value, pd.Series):
        return value
    return pd.Series(float(value), index=grid)


_COMPARE: dict[type[ast.cmpop], Callable[[pd.Series, pd.Series | float], pd.Series]] = {
    ast.Gt: lambda a, b: a > b,
    ast.GtE: lambda a, b: a >= b,
    ast.Lt: lambda a, b: a < b,
    ast.LtE: lambda a, b: a <= b,
    ast.Eq: lambda a, b: a == b,
    ast.NotEq: lambda a, b: a != b,
}


def _eval(node: ast.AST, env: _Env) -> pd.Series | float:
    if isinstance(node, ast.Expression):
        return _eval(node.body, env)
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return float(node.value)
    if isinstance(node, ast.Name):
        if node.id not in env.series:
            raise ExpressionError(f"unknown id {node.id!r}")
        return env.series[node.id]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_eval(node.operand, env)
    if isinstance(node, ast.BinOp):
        left, right = _eval(node.left, env), _eval(node.right, env)
        if isinstance(node.op, ast.Add):
            return left + right
        if isinstance(node.op, ast.Sub):
            return left - right
        if isinstance(node.op, ast.Mult):
            return left * right
        if isinstance(node.op, ast.Div):
            result = _as_series(left, env.grid) / right
            return result.replace([np.inf, -np.inf], np.nan)
        raise ExpressionError(f"operator {type(node.op).__name__} is not evaluated")
    if isinstance(node, ast.Compare) and len(node.ops) == 1:
        compare = _COMPARE.get(type(node.ops[0]))
        if compare is None:
            raise ExpressionError("comparison not evaluated")
        left = _as_series(_eval(node.left, env), env.grid)
        return compare(left, _eval(node.comparators[0], env)).astype(float).where(left.notna())
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        return _call(node.func.id.upper(), node.args, env)
    raise ExpressionError(f"{ast.dump(node)[:60]} is not evaluated")


def _call(name: str, args: Sequence[ast.expr], env: _Env) -> pd.Series | float:
    if name == "ANOMALY_DETECTION_BAND":
        raise ExpressionError("ANOMALY_DETECTION_BAND is CloudWatch's own model: not drawn locally")
    values = [_eval(arg, env) for arg in args]
    if name == "FILL" and len(values) == 2:
        return _as_series(values[0], env.grid).reindex(env.grid).fillna(values[1])
    if name == "PERIOD" and len(values) == 1:
        return float(env.period_s)
    if name == "IF" and len(values) in (2, 3):
        cond = _as_series(values[0], env.grid)
        then = _as_series(values[1], env.grid)
        other = _as_series(values[2] if len(values) == 3 else np.nan, env.grid)
        return then.where(cond.fillna(0) != 0, other).where(cond.notna())
    if name == "ABS" and len(values) == 1:
        value = values[0]
        return value.abs() if isinstance(value, pd.Series) else abs(value)
    if name in ("MAX", "MIN", "SUM", "AVG") and len(values) == 1 and isinstance(values[0], pd.Series):
        series = values[0]
        reduced = {"MAX": series.max(), "MIN": series.min(), "SUM": series.sum(), "AVG": series.mean()}
        return float(reduced[name])
    raise ExpressionError(f"function {name} is not evaluated by this preview")


def evaluate(
    expression: str, series: Mapping[str, pd.Series], *, period_s: int, grid: pd.DatetimeIndex
) -> pd.Series:
    """One metric-math expression over `series` (each on `grid`, NaN where CloudWatch has no point)."""
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as err:
        raise ExpressionError(f"cannot parse {expression!r}: {err.msg}") from err
    return _as_series(_eval(tree, _Env(series=series, period_s=period_s, grid=grid)), grid)


# ------------------------------------------------------------------------------------- lines


_PLACEHOLDER = re.compile(r"\$\{(AVG|MAX|MIN|SUM|LAST)\}")


def fill_label(label: str, values: pd.Series) -> str:
    clean = values.dropna()

    def one(match: re.Match[str]) -> str:
        if clean.empty:
            return "-"
        kind = match.group(1)
        number = {
            "AVG": clean.mean(),
            "MAX": clean.max(),
            "MIN": clean.min(),
            "SUM": clean.sum(),
            "LAST": clean.iloc[-1],
        }[kind]
        return f"{number:.4g}"

    return _PLACEHOLDER.sub(one, label)


@dataclass
class WidgetData:
    """What a metric widget draws: long-format lines (`label`, `timestamp`, `value`) and notes."""

    lines: pd.DataFrame
    notes: list[str] = field(default_factory=list)


def widget_lines(
    widget: Widget,
    index: int,
    data: pd.DataFrame,
    *,
    grid: pd.DatetimeIndex,
    unreadable: Mapping[str, str],
    searched: Mapping[str, Sequence[tuple[str, pd.Series]]] | None = None,
) -> WidgetData:
    """The visible lines of one metric widget. `data` is the long frame (`id`, `timestamp`, `value`) of
    the dashboard's metrics; `searched` maps a SEARCH line's id to its matches' (label, series)."""
    series: dict[str, pd.Series] = {}
    notes: list[str] = []
    for line in widget.lines:
        if line.metric is None:
            continue
        sid = spec_id(index, line.id)
        rows = data[data["id"] == sid]
        values = pd.Series(rows["value"].to_numpy(dtype=float), index=pd.DatetimeIndex(rows["timestamp"]))
        series[line.id] = values[~values.index.duplicated()].reindex(grid)
        if sid in unreadable:
            notes.append(f"{line.label or line.metric.describe()}: {unreadable[sid]}")
    frames = []
    for line in widget.lines:
        if not line.visible:
            continue
        if line.expression and "SEARCH(" in line.expression:
            for label, values in (searched or {}).get(line.id, ()):
                frames.append(_frame(label, values.reindex(grid)))
            if not (searched or {}).get(line.id):
                notes.append(f"{line.expression[:80]}…: no metric matches yet")
            continue
        if line.expression:
            try:
                values = evaluate(line.expression, series, period_s=line.period_s, grid=grid)
            except ExpressionError as err:
                notes.append(f"{line.label or line.expression}: {err}")
                continue
        elif line.metric is not None:
            values = series[line.id]
        else:
            continue
        label = line.label if line.label is not None else (line.metric.name if line.metric else line.id)
        frames.append(_frame(fill_label(label, values), values))
    lines = pd.concat(frames, ignore_index=True) if frames else _frame("", pd.Series(dtype=float))
    return WidgetData(lines=lines.dropna(subset=["value"]), notes=notes)


def _frame(label: str, values: pd.Series) -> pd.DataFrame:
    return pd.DataFrame({"label": label, "timestamp": values.index, "value": values.to_numpy(dtype=float)})
