"""The CDK app's CloudWatch dashboards and alarms, read from their synthesized CloudFormation (pure).

Input: the JSON file ``python -m infra.preview`` writes (the ``AWS::CloudWatch::Dashboard``,
``...::Alarm`` and ``...::CompositeAlarm`` resources of a stage, intrinsics unresolved). This module

- resolves the intrinsic functions the CDK leaves in them (``Ref`` of pseudo parameters and of
  resources, ``Fn::Join``, ``Fn::Select``, ``Fn::Split``, ``Fn::GetAtt ... Arn``/``Fn::Sub``) for a region
  and account, as CloudFormation would at deploy time;
- parses each ``DashboardBody`` into widgets (CloudWatch's dashboard body structure: ``metric``,
  ``text``, ``alarm``, ``log`` widgets on a 24-column grid; a metric line is
  ``[Namespace, MetricName, DimName, DimValue, ..., {options}]``, with ``"."`` repeating the line
  above and ``"..."`` repeating its head, or ``[{"expression": ...}]``);
- lists every metric (namespace, name, dimensions) the alarms and widgets reference, ``SEARCH``
  expressions included (their fixed dimensions, the others as ``*``).

No I/O, no boto3, no Streamlit.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

DEFAULT_PERIOD_S = 300
DEFAULT_STAT = "Average"  # what CloudWatch draws for a metric line with no stat
ANY = "*"  # a SEARCH dimension whose value is not fixed


class PreviewError(ValueError):
    """The synthesized file cannot be read as dashboards and alarms; the message says where."""


@dataclass(frozen=True)
class Pseudo:
    """The values CloudFormation gives pseudo parameters at deploy time (the sandbox's, by default)."""

    region: str = "us-east-1"
    account: str = "123456789012"
    partition: str = "aws"
    url_suffix: str = "amazonaws.com"

    def get(self, name: str) -> str | None:
        return {
            "AWS::Region": self.region,
            "AWS::AccountId": self.account,
            "AWS::Partition": self.partition,
            "AWS::URLSuffix": self.url_suffix,
        }.get(name)


def _physical_name(resource: Mapping[str, Any]) -> str | None:
    props = resource.get("Properties", {})
    for key in ("AlarmName", "DashboardName"):
        if isinstance(props.get(key), str):
            return str(props[key])
    return None


def resolve(value: Any, *, pseudo: Pseudo, resources: Mapping[str, Mapping[str, Any]]) -> Any:
    """`value` with every intrinsic function replaced by what CloudFormation would put there."""
    if isinstance(value, list):
        return [resolve(v, pseudo=pseudo, resources=resources) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) != 1:
        return {k: resolve(v, pseudo=pseudo, resources=resources) for k, v in value.items()}
    ((key, arg),) = value.items()
    if key == "Ref":
        known = pseudo.get(arg)
        if known is not None:
            return known
        name = _physical_name(resources.get(arg, {}))
        if name is None:
            raise PreviewError(f"Ref to {arg!r}: not a pseudo parameter nor a named CloudWatch resource")
        return name
    if key == "Fn::GetAtt":
        logical_id, attribute = arg if isinstance(arg, list) else str(arg).split(".", 1)
        name = _physical_name(resources.get(logical_id, {}))
        if attribute != "Arn" or name is None:
            raise PreviewError(f"Fn::GetAtt {logical_id}.{attribute}: cannot be resolved locally")
        return f"arn:{pseudo.partition}:cloudwatch:{pseudo.region}:{pseudo.account}:alarm:{name}"
    if key == "Fn::Join":
        separator, parts = arg
        return str(separator).join(str(resolve(p, pseudo=pseudo, resources=resources)) for p in parts)
    if key == "Fn::Select":
        index, items = arg
        return resolve(items, pseudo=pseudo, resources=resources)[int(index)]
    if key == "Fn::Split":
        separator, text = arg
        return str(resolve(text, pseudo=pseudo, resources=resources)).split(separator)
    if key == "Fn::Sub" and isinstance(arg, str):
        return re.sub(
            r"\$\{([^}!]+)\}",
            lambda m: str(resolve({"Ref": m.group(1)}, pseudo=pseudo, resources=resources)),
            arg,
        )
    if key.startswith("Fn::"):
        raise PreviewError(f"{key} is not resolved locally")
    return {key: resolve(arg, pseudo=pseudo, resources=resources)}


# ------------------------------------------------------------------------------------------ model


@dataclass(frozen=True)
class MetricRef:
    """A metric as CloudWatch identifies it; `where` says who references it."""

    namespace: str
    name: str
    dimensions: tuple[tuple[str, str], ...]  # sorted by name; value ANY for a SEARCH wildcard
    where: str = field(default="", compare=False)

    @property
    def key(self) -> tuple[str, str, tuple[tuple[str, str], ...]]:
        return (self.namespace, self.name, self.dimensions)

    def describe(self) -> str:
        dims = ", ".join(f"{k}={v}" for k, v in self.dimensions)
        return f"{self.namespace} {self.name} [{dims}]"


@dataclass(frozen=True)
class MetricLine:
    """One line of a metric widget: a metric with its stat, or an expression."""

    id: str  # the line's id in the widget (its own, or m<index>)
    label: str | None
    visible: bool
    stat: str
    period_s: int
    metric: MetricRef | None = None
    expression: str | None = None
    y_axis: str = "left"


@dataclass(frozen=True)
class Widget:
    type: str  # metric, text, alarm, log, ...
    x: int
    y: int
    width: int
    height: int
    title: str
    properties: Mapping[str, Any]
    lines: tuple[MetricLine, ...] = ()

    @property
    def markdown(self) -> str:
        return str(self.properties.get("markdown", ""))

    @property
    def view(self) -> str:
        return str(self.properties.get("view", "timeSeries"))

    @property
    def annotations(self) -> list[dict[str, Any]]:
        return list((self.properties.get("annotations") or {}).get("horizontal") or [])


@dataclass(frozen=True)
class Dashboard:
    name: str
    widgets: tuple[Widget, ...]
    start: str = "-PT3H"
    period_override: str = "auto"

    def rows(self) -> list[list[Widget]]:
        """Widgets grouped by their top edge, left to right: how the console lays them out."""
        by_y: dict[int, list[Widget]] = {}
        for widget in self.widgets:
            by_y.setdefault(widget.y, []).append(widget)
        return [sorted(by_y[y], key=lambda w: w.x) for y in sorted(by_y)]


@dataclass(frozen=True)
class Alarm:
    name: str
    description: str
    metrics: tuple[MetricRef, ...]
    expression: str | None
    threshold: float | None
    comparison: str
    composite_rule: str | None = None


@dataclass(frozen=True)
class Preview:
    stage: str
    dashboards: tuple[Dashboard, ...]
    alarms: tuple[Alarm, ...]

    def referenced_metrics(self) -> list[MetricRef]:
        """Every metric an alarm or a widget references, once each (the first reference's `where`)."""
        seen: dict[tuple[str, str, tuple[tuple[str, str], ...]], MetricRef] = {}
        for ref in self._all_refs():
            seen.setdefault(ref.key, ref)
        return sorted(seen.values(), key=lambda r: r.key)

    def _all_refs(self) -> Iterator[MetricRef]:
        for alarm in self.alarms:
            yield from alarm.metrics
        for dashboard in self.dashboards:
            for widget in dashboard.widgets:
                for line in widget.lines:
                    if line.metric is not None:
                        yield line.metric
                    elif line.expression is not None:
                        yield from search_refs(
                            line.expression, where=f"{dashboard.name}: {widget.title or widget.type}"
                        )


# ------------------------------------------------------------------------------------------ parsing


def _dims(pairs: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((str(k), str(v)) for k, v in pairs))


_SEARCH = re.compile(r"SEARCH\(\s*'((?:[^'\\]|\\.)*)'", re.S)
_SCHEMA = re.compile(r"\{([^}]*)\}")
_TERM = re.compile(r'"?([A-Za-z0-9_:./-]+)"?\s*=\s*"([^"]*)"')


def search_refs(expression: str, *, where: str = "") -> list[MetricRef]:
    """The metrics a ``SEARCH('{Namespace,Dim1,Dim2} Dim1="v" MetricName="M"', ...)`` can match: its
    schema's dimensions, fixed where the search fixes them and ``*`` otherwise. Needs a schema and a
    MetricName term (what the CDK libraries write); other searches give nothing."""
    refs: list[MetricRef] = []
    for match in _SEARCH.finditer(expression):
        text = match.group(1).replace("\\'", "'")
        schema = _SCHEMA.search(text)
        if schema is None:
            continue
        parts = [p.strip().strip('"') for p in schema.group(1).split(",")]
        namespace, dim_names = parts[0], parts[1:]
        terms = dict(_TERM.findall(text[schema.end() :]))
        name = terms.pop("MetricName", None)
        if name is None:
            continue
        dims = _dims((d, terms.get(d, ANY)) for d in dim_names)
        refs.append(MetricRef(namespace, name, dims, where=where))
    return refs


def _metric_lines(props: Mapping[str, Any], *, where: str) -> tuple[MetricLine, ...]:
    widget_stat = str(props.get("stat", DEFAULT_STAT))
    widget_period = int(props.get("period", DEFAULT_PERIOD_S))
    lines: list[MetricLine] = []
    previous: list[Any] = []
    for index, raw in enumerate(props.get("metrics") or []):
        if not isinstance(raw, list) or not raw:
            raise PreviewError(f"{where}: metric line {index} is not a non-empty list: {raw!r}")
        options: dict[str, Any] = raw[-1] if isinstance(raw[-1], dict) else {}
        head = raw[:-1] if options or isinstance(raw[-1], dict) else list(raw)
        line_id = str(options.get("id", f"m{index + 1}"))
        common: dict[str, Any] = {
            "id": line_id,
            "label": options.get("label"),
            "visible": bool(options.get("visible", True)),
            "stat": str(options.get("stat", widget_stat)),
            "period_s": int(options.get("period", widget_period)),
            "y_axis": str(options.get("yAxis", "left")),
        }
        if "expression" in options and not head:
            lines.append(MetricLine(expression=str(options["expression"]), **common))
            continue
        if head and head[0] == "...":
            # "..." repeats the line above, but for the trailing values given after it
            head = previous[: len(previous) - (len(head) - 1)] + head[1:]
        else:
            head = [previous[i] if v == "." and i < len(previous) else v for i, v in enumerate(head)]
        if len(head) < 2 or len(head) % 2:
            raise PreviewError(
                f"{where}: metric line {index} must be [Namespace, MetricName, Dim, Value, ...]: {raw!r}"
            )
        previous = list(head)
        namespace, name = str(head[0]), str(head[1])
        dims = _dims(zip(head[2::2], head[3::2], strict=True))
        lines.append(MetricLine(metric=MetricRef(namespace, name, dims, where=where), **common))
    return tuple(lines)


def parse_dashboard(name: str, body: str | Mapping[str, Any]) -> Dashboard:
    """A dashboard from its (resolved) DashboardBody JSON."""
    try:
        doc = json.loads(body) if isinstance(body, str) else dict(body)
    except json.JSONDecodeError as err:
        raise PreviewError(f"dashboard {name}: DashboardBody is not JSON: {err}") from err
    widgets: list[Widget] = []
    for index, raw in enumerate(doc.get("widgets") or []):
        props = raw.get("properties") or {}
        kind = str(raw.get("type", ""))
        title = str(props.get("title", ""))
        where = f"{name}: {title or kind + ' widget ' + str(index)}"
        widgets.append(
            Widget(
                type=kind,
                x=int(raw.get("x", 0)),
                y=int(raw.get("y", index)),
                width=int(raw.get("width", 6)),
                height=int(raw.get("height", 6)),
                title=title,
                properties=props,
                lines=_metric_lines(props, where=where) if kind == "metric" else (),
            )
        )
    return Dashboard(
        name=name,
        widgets=tuple(widgets),
        start=str(doc.get("start", "-PT3H")),
        period_override=str(doc.get("periodOverride", "auto")),
    )


def _alarm(resource: Mapping[str, Any]) -> Alarm:
    props = resource.get("Properties", {})
    name = str(props.get("AlarmName") or props.get("AlarmDescription") or "alarm")
    where = f"alarm {name}"
    refs: list[MetricRef] = []
    expression: str | None = None
    if "MetricName" in props:
        dims = _dims((d["Name"], d["Value"]) for d in props.get("Dimensions") or [])
        refs.append(MetricRef(str(props["Namespace"]), str(props["MetricName"]), dims, where=where))
    for query in props.get("Metrics") or []:
        stat = query.get("MetricStat")
        if stat:
            metric = stat["Metric"]
            dims = _dims((d["Name"], d["Value"]) for d in metric.get("Dimensions") or [])
            refs.append(MetricRef(str(metric["Namespace"]), str(metric["MetricName"]), dims, where=where))
        elif query.get("ReturnData", True) and "Expression" in query:
            expression = str(query["Expression"])
    threshold = props.get("Threshold")
    return Alarm(
        name=name,
        description=str(props.get("AlarmDescription", "")),
        metrics=tuple(refs),
        expression=expression,
        threshold=float(threshold) if threshold is not None else None,
        comparison=str(props.get("ComparisonOperator", "")),
    )


# The properties read here (alarm actions, for instance, name SNS topics and are left alone).
_RESOLVED = {
    "AWS::CloudWatch::Dashboard": ("DashboardName", "DashboardBody"),
    "AWS::CloudWatch::Alarm": (
        "AlarmName",
        "AlarmDescription",
        "Namespace",
        "MetricName",
        "Dimensions",
        "Metrics",
        "Threshold",
        "ComparisonOperator",
    ),
    "AWS::CloudWatch::CompositeAlarm": ("AlarmName", "AlarmDescription", "AlarmRule"),
}


def load_preview(document: Mapping[str, Any], *, pseudo: Pseudo | None = None) -> Preview:
    """Dashboards and alarms from what ``python -m infra.preview`` wrote, resolved for `pseudo`."""
    pseudo = pseudo or Pseudo()
    try:
        stage = str(document["stage"])
        stacks: Mapping[str, Mapping[str, Any]] = document["stacks"]
    except (KeyError, TypeError) as err:
        raise PreviewError(f"not a synthesized preview file (missing {err})") from err
    dashboards: list[Dashboard] = []
    alarms: list[Alarm] = []
    for stack_name in sorted(stacks):
        resources = stacks[stack_name]
        for logical_id in sorted(resources):
            raw = resources[logical_id]
            kind = raw.get("Type")
            wanted = _RESOLVED.get(str(kind), ())
            props = {
                key: resolve(value, pseudo=pseudo, resources=resources)
                for key, value in (raw.get("Properties") or {}).items()
                if key in wanted
            }
            resource = {"Type": kind, "Properties": props}
            if kind == "AWS::CloudWatch::Dashboard":
                dashboards.append(
                    parse_dashboard(str(props.get("DashboardName", logical_id)), props["DashboardBody"])
                )
            elif kind == "AWS::CloudWatch::Alarm":
                alarms.append(_alarm(resource))
            elif kind == "AWS::CloudWatch::CompositeAlarm":
                alarms.append(
                    Alarm(
                        name=str(props.get("AlarmName", logical_id)),
                        description=str(props.get("AlarmDescription", "")),
                        metrics=(),
                        expression=None,
                        threshold=None,
                        comparison="",
                        composite_rule=str(props.get("AlarmRule", "")),
                    )
                )
    dashboards.sort(key=lambda d: d.name)
    return Preview(stage=stage, dashboards=tuple(dashboards), alarms=tuple(alarms))


# ------------------------------------------------------------------------------------------ coverage


def is_published(ref: MetricRef, published: Iterable[tuple[str, str, tuple[tuple[str, str], ...]]]) -> bool:
    """Whether CloudWatch lists `ref` among `published` (namespace, name, sorted dimensions): exactly,
    or, for a SEARCH reference, any metric with the same dimension names and the fixed values."""
    wildcard = any(value == ANY for _, value in ref.dimensions)
    for namespace, name, dims in published:
        if namespace != ref.namespace or name != ref.name:
            continue
        if not wildcard:
            if dims == ref.dimensions:
                return True
            continue
        if [k for k, _ in dims] == [k for k, _ in ref.dimensions] and all(
            want in (ANY, got) for (_, want), (_, got) in zip(ref.dimensions, dims, strict=True)
        ):
            return True
    return False


def unpublished(
    refs: Iterable[MetricRef], published: Iterable[tuple[str, str, tuple[tuple[str, str], ...]]]
) -> list[MetricRef]:
    """The references CloudWatch has no metric for (a misspelt name or dimension is one of them)."""
    listed = list(published)
    return [ref for ref in refs if not is_published(ref, listed)]
