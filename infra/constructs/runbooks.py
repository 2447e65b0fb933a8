"""Every CloudWatch alarm's description ends with the URL of its runbook (docs/runbooks/).

`RunbookLinks` is an aspect added to each stack: it visits every `CfnAlarm` and `CfnCompositeAlarm`,
ours and cdk-monitoring-constructs' alike, and appends ``Runbook: <base>/<page>/``. The page comes from
the alarm's metric (`contract.runbooks.runbook_for_metric`; for a metric-math alarm, its first metric
with a page of its own, so the 5XX-rate alarm is an API-errors alarm, not a traffic one) unless the
alarm was pinned with `pin_runbook` (canary rollback alarms, the composite), whose metric would say
something else. The same mapping picks the runbook of the monitor's SNS alerts.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import jsii
from aws_cdk import IAspect, Stack, Token
from aws_cdk import aws_cloudwatch as cloudwatch
from constructs import IConstruct

from contract.runbooks import INDEX, TRAFFIC, runbook_for_metric, runbook_url

_PIN = "fleetscope:runbook"
DESCRIPTION_MAX = 1024  # CloudWatch's limit on AlarmDescription


def pin_runbook(alarm: cloudwatch.AlarmBase, slug: str) -> None:
    """Give `alarm` this runbook whatever its metric says (kept in the construct's metadata)."""
    runbook_url("https://check.invalid", slug)  # raises for a page that does not exist
    alarm.node.add_metadata(_PIN, slug)


def _pinned(node: IConstruct) -> str | None:
    scope = node.node.scope
    for owner in (node, scope):
        if owner is None:
            continue
        for entry in owner.node.metadata:
            if entry.type == _PIN:
                return str(entry.data)
    return None


def _plain(stack: Stack, value: Any) -> Any:
    return stack.resolve(value) if Token.is_unresolved(value) else value


def _dimensions(stack: Stack, dims: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for dim in _plain(stack, dims) or []:
        name = dim.get("name", dim.get("Name")) if isinstance(dim, dict) else getattr(dim, "name", None)
        value = dim.get("value", dim.get("Value")) if isinstance(dim, dict) else getattr(dim, "value", None)
        if isinstance(name, str) and isinstance(value, str):
            out[name] = value
    return out


def _metric_slugs(stack: Stack, alarm: cloudwatch.CfnAlarm) -> Iterable[str]:
    if alarm.metric_name and alarm.namespace:
        yield runbook_for_metric(alarm.namespace, alarm.metric_name, _dimensions(stack, alarm.dimensions))
    for query in _plain(stack, alarm.metrics) or []:
        stat = query.get("metricStat") if isinstance(query, dict) else getattr(query, "metric_stat", None)
        metric = (
            (stat.get("metric") if isinstance(stat, dict) else getattr(stat, "metric", None))
            if stat
            else None
        )
        if metric is None:
            continue
        get = metric.get if isinstance(metric, dict) else lambda key, m=metric: getattr(m, _snake(key), None)
        namespace, name = get("namespace"), get("metricName")
        if isinstance(namespace, str) and isinstance(name, str):
            yield runbook_for_metric(namespace, name, _dimensions(stack, get("dimensions")))


def _snake(key: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in key)


def alarm_runbook(stack: Stack, alarm: cloudwatch.CfnAlarm) -> str:
    """The page for a metric alarm: pinned, else its first metric with a page of its own."""
    pinned = _pinned(alarm)
    if pinned:
        return pinned
    slugs = list(_metric_slugs(stack, alarm))
    specific = [s for s in slugs if s not in (INDEX, TRAFFIC)]
    return (specific or [s for s in slugs if s != INDEX] or [INDEX])[0]


def with_runbook(description: str | None, url: str) -> str:
    """`description` + the runbook line, cut so the whole stays within CloudWatch's 1,024 characters."""
    line = f"Runbook: {url}"
    text = (description or "").strip()
    room = DESCRIPTION_MAX - len(line) - 1
    if len(text) > room:
        text = text[: max(0, room - 3)] + "..."
    return f"{text} {line}".strip()


@jsii.implements(IAspect)
class RunbookLinks:
    """Appends its runbook's URL to every alarm's description (see the module docstring)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    def visit(self, node: IConstruct) -> None:
        if isinstance(node, cloudwatch.CfnAlarm):
            slug = alarm_runbook(Stack.of(node), node)
        elif isinstance(node, cloudwatch.CfnCompositeAlarm):
            slug = _pinned(node) or INDEX
        else:
            return
        current = node.alarm_description
        if isinstance(current, str) and "Runbook: " in current:
            return  # visited already (aspects may run more than once)
        node.alarm_description = with_runbook(
            current if isinstance(current, str) else None, runbook_url(self.base_url, slug)
        )
