"""Alert messages and `SnsNotifier`.

Every message is published with ``MessageStructure="json"``:

- ``default`` and ``email``: plain text for people (what is anomalous, observed vs expected band,
  score, since when, related metrics, a CloudWatch console link, the runbook to follow);
- ``sqs``, ``lambda``, ``https``: the same facts as one JSON document (`AlertPayload`) for machines.

The subject (at most 100 ASCII characters) reads ``[CRITICAL] OPEN cars-api: API 5XX rate``.
Message attributes ``severity``, ``service``, ``kind``, ``stage`` and ``resource`` let subscriptions
filter (e.g. only critical alerts to the pager).

The runbook is chosen by the incident's lead anomaly (the highest severity, then score): the page for
its CloudWatch metric (`contract.runbooks.runbook_for_metric`; a rate by its numerator), on the
documentation site at the base URL the monitor is given (`MONITOR_RUNBOOK_BASE_URL`).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import cache
from typing import Any, Literal, Protocol
from urllib.parse import urlencode

from pydantic import BaseModel, ConfigDict, Field

from contract.runbooks import DEFAULT_RUNBOOK_BASE_URL, INDEX, runbook_for_metric, runbook_url
from monitor.catalog import Catalog, DerivedSpec, MetricSpec
from monitor.deployments import Deployment, describe_deployment
from monitor.incidents import Member, Transition

SUBJECT_MAX = 100
PAYLOAD_VERSION = 1


class NotifierError(RuntimeError):
    """The alerts topic cannot be found or SNS refused a message."""


class MetricRef(BaseModel):
    namespace: str
    metric_name: str
    dimensions: dict[str, str]
    statistic: str


class Anomaly(BaseModel):
    series_id: str
    title: str
    unit: str
    severity: str
    alerting: bool
    observed: float | None
    expected_lower: float | None
    expected_upper: float | None
    score: float | None
    peak_score: float
    since: str
    last_anomalous_at: str
    metrics: list[MetricRef]


class DeploymentRef(BaseModel):
    """A deployment of the incident's functions in the 30 minutes before it opened."""

    deployment_id: str
    function: str
    from_version: str
    to_version: str
    canary_percent: float
    state: str
    verdict: str | None
    started_at: str
    began_after_min: int  # minutes from the deployment's traffic shift to the incident's opening
    text: str  # "began 2 min after cars-api version 8 took 10 % of traffic (...)"


class AlertPayload(BaseModel):
    """The machine-readable part of every alert (the `sqs`/`lambda`/`https` message)."""

    model_config = ConfigDict(extra="forbid")

    version: int = PAYLOAD_VERSION
    source: Literal["fleetscope.monitor"] = "fleetscope.monitor"
    kind: Literal["OPEN", "UPDATED", "RESOLVED"]
    incident_id: str
    seq: int
    dedup_key: str
    stage: str
    service: str
    severity: str
    resource: str  # the incident's group: `service:<name>` or a resource of its own
    resources: list[str] = Field(default_factory=list)  # the resources whose metrics are members
    status: str
    at: str
    opened_at: str
    resolved_at: str | None
    reason: str
    anomalies: list[Anomaly]
    related_metrics: list[str]
    console_url: str
    dashboard_url: str | None = None  # the dashboard's Service health page of the lead resource
    runbook_url: str = ""  # the runbook page for the lead anomaly's metric (docs/runbooks/)
    deployments: list[DeploymentRef] = Field(default_factory=list)  # newest first


class SnsMessage(BaseModel):
    subject: str
    text: str
    payload: AlertPayload
    attributes: dict[str, str]

    def publish_input(self, topic_arn: str) -> dict[str, Any]:
        payload = self.payload.model_dump_json()
        message = {
            "default": self.text,
            "email": self.text,
            "sqs": payload,
            "lambda": payload,
            "https": payload,
        }
        return {
            "TopicArn": topic_arn,
            "Subject": self.subject,
            "Message": json.dumps(message),
            "MessageStructure": "json",
            "MessageAttributes": {
                k: {"DataType": "String", "StringValue": v} for k, v in sorted(self.attributes.items()) if v
            },
        }


def _iso(t: int | None) -> str | None:
    return None if t is None else datetime.fromtimestamp(t, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _hm(t: int) -> str:
    return datetime.fromtimestamp(t, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


def _fmt(x: float | None) -> str:
    if x is None or math.isnan(x):
        return "n/a"
    if x != 0 and (abs(x) >= 1e6 or abs(x) < 1e-3):
        return f"{x:.3g}"
    return f"{x:,.4g}" if abs(x) < 1000 else f"{x:,.0f}"


def console_domain(region: str) -> str:
    if region.startswith("cn-"):
        return f"https://{region}.console.amazonaws.cn"
    if region.startswith("us-gov-"):
        return f"https://{region}.console.amazonaws-us-gov.com"
    return f"https://{region}.console.aws.amazon.com"


def _jsurl_str(s: str) -> str:
    def enc(ch: str) -> str:
        if ch == "$":
            return "!"
        code = ord(ch)
        return f"*{code:02x}" if code < 0x100 else f"**{code:04x}"

    return re.sub(r"[^\w\-.]", lambda m: enc(m.group(0)), s)


def jsurl(value: Any) -> str:
    """JSURL encoding, as the CloudWatch console uses in `#metricsV2:graph=` links."""
    if value is None:
        return "~null"
    if isinstance(value, bool):
        return "~true" if value else "~false"
    if isinstance(value, int | float):
        return f"~{value}" if math.isfinite(value) else "~null"
    if isinstance(value, str):
        return "~'" + _jsurl_str(value)
    if isinstance(value, list | tuple):
        return "~(" + ("".join(jsurl(v) for v in value) or "~") + ")"
    if isinstance(value, dict):
        return "~(" + "~".join(_jsurl_str(str(k)) + jsurl(v) for k, v in value.items()) + ")"
    raise TypeError(f"cannot encode {type(value).__name__}")


def metric_refs(catalog: Catalog, series_id: str) -> list[MetricRef]:
    spec = catalog.get(series_id)
    specs: list[MetricSpec] = (
        [s for i in (*spec.numerator, *spec.denominator) if isinstance(s := catalog.get(i), MetricSpec)]
        if isinstance(spec, DerivedSpec)
        else [spec]
    )
    return [
        MetricRef(
            namespace=s.namespace, metric_name=s.metric_name, dimensions=s.dimensions, statistic=s.statistic
        )
        for s in specs
    ]


def console_url(region: str, refs: list[MetricRef], *, period_s: int, start: int, end: int) -> str:
    metrics = []
    for ref in refs:
        row: list[Any] = [ref.namespace, ref.metric_name]
        for k, v in sorted(ref.dimensions.items()):
            row += [k, v]
        row.append({"stat": ref.statistic})
        metrics.append(row)
    graph = {
        "view": "timeSeries",
        "stacked": False,
        "region": region,
        "period": period_s,
        "start": _iso(start),
        "end": _iso(end),
        "metrics": metrics,
    }
    return f"{console_domain(region)}/cloudwatch/home?region={region}#metricsV2:graph={jsurl(graph)}"


def _subject(severity: str, kind: str, owner: str, headline: str) -> str:
    subject = f"[{severity.upper()}] {kind} {owner}: {headline}"
    subject = re.sub(r"[^\x20-\x7e]", "?", subject)  # SNS subjects: printable ASCII, no line breaks
    return subject if len(subject) <= SUBJECT_MAX else subject[: SUBJECT_MAX - 3] + "..."


def dashboard_link(base_url: str, resource: str, period_s: int) -> str:
    """The dashboard's Service health page for `resource`, over the last 24 h (6 h at 1-minute periods)."""
    window = "6h" if period_s < 300 else "24h"
    return f"{base_url.rstrip('/')}/health?{urlencode({'resource': resource, 'window': window})}"


def deployment_refs(deployments: Sequence[Deployment], opened_at: int) -> list[DeploymentRef]:
    """The deployments as an alert lists them (pure; `deployments` already chosen for the incident)."""
    opened = datetime.fromtimestamp(opened_at, tz=UTC)
    return [
        DeploymentRef(
            **d.summary(),
            began_after_min=max(0, round((opened - d.started_at).total_seconds() / 60)),
            text=describe_deployment(d, opened),
        )
        for d in deployments
    ]


def runbook_slug(catalog: Catalog, series_id: str | None) -> str:
    """The runbook page for an alert led by `series_id`: by its first metric (a rate's numerator)."""
    refs = metric_refs_or_empty(catalog, series_id) if series_id else []
    if not refs:
        return INDEX
    return runbook_for_metric(refs[0].namespace, refs[0].metric_name, refs[0].dimensions)


def render(
    transition: Transition,
    catalog: Catalog,
    *,
    region: str,
    stage: str,
    dashboard_url: str | None = None,
    deployments: Sequence[Deployment] = (),
    runbook_base_url: str = DEFAULT_RUNBOOK_BASE_URL,
) -> SnsMessage:
    """The alert for one incident transition (pure). `dashboard_url` (the dashboard's base URL), when
    known, adds a link to the Service health page of the incident's lead resource; `deployments`:
    of its functions, before it opened; `runbook_base_url`: where the runbook pages are published."""
    inc = transition.incident
    members = sorted(inc.members.values(), key=lambda m: (-m.severity.rank, -m.peak_score, m.series_id))
    specs = {m.series_id: _safe_spec(catalog, m.series_id) for m in members}
    lead = members[0] if members else None
    lead_spec = specs.get(lead.series_id) if lead else None
    service = lead_spec.service if lead_spec else "fleetscope"
    headline = lead_spec.title if lead_spec else inc.resource
    if len(members) > 1:
        headline += f" (+{len(members) - 1} related)"
    anomalies = [_anomaly(m, specs[m.series_id], catalog) for m in members]
    member_ids = {m.series_id for m in members}
    related = [s.title for s in catalog.series if s.group == inc.resource and s.id not in member_ids]
    window_end = (inc.resolved_at or transition.at) + 6 * catalog.period_s
    refs = [r for m in members for r in metric_refs_or_empty(catalog, m.series_id)]
    url = console_url(
        region, refs, period_s=catalog.period_s, start=inc.opened_at - 36 * catalog.period_s, end=window_end
    )
    payload = AlertPayload(
        kind=transition.kind,
        incident_id=inc.id,
        seq=transition.seq,
        dedup_key=transition.dedup_key,
        stage=stage,
        service=service,
        severity=str(inc.severity),
        resource=inc.resource,
        resources=inc.resources,
        status=inc.status,
        at=_iso(transition.at) or "",
        opened_at=_iso(inc.opened_at) or "",
        resolved_at=_iso(inc.resolved_at),
        reason=transition.reason,
        anomalies=anomalies,
        related_metrics=related,
        console_url=url,
        dashboard_url=(
            dashboard_link(dashboard_url, lead_spec.resource, catalog.period_s)
            if dashboard_url and lead_spec
            else None
        ),
        runbook_url=runbook_url(runbook_base_url, runbook_slug(catalog, lead.series_id if lead else None)),
        deployments=deployment_refs(deployments, inc.opened_at),
    )
    owner = inc.resource.split(":", 1)[-1]
    lines = [
        f"{transition.kind}: {inc.severity} incident on {inc.resource} ({stage})"
        + (f": {', '.join(inc.resources)}" if inc.resources != [inc.resource] else ""),
        f"Incident {inc.id}, open since {_hm(inc.opened_at)}"
        + (f", resolved at {_hm(inc.resolved_at)}" if inc.resolved_at else ""),
        f"Why this message: {transition.reason}",
        f"Runbook: {payload.runbook_url}",
        *(f"Deployment: this incident {d.text}" for d in payload.deployments),
        "",
        "What is anomalous:" if transition.kind != "RESOLVED" else "What was anomalous:",
    ]
    for a in anomalies:
        state = "still anomalous" if a.alerting else "back to normal"
        unit = f" {a.unit}" if a.unit and a.unit != "ratio" else ""
        lines.append(
            f"  - {a.title}: observed {_fmt(a.observed)}{unit}, expected {_fmt(a.expected_lower)} to "
            f"{_fmt(a.expected_upper)}{unit}, score {_fmt(a.score)} (peak {_fmt(a.peak_score)}), "
            f"since {a.since} [{state}]"
        )
    if related:
        lines += ["", f"Other metrics of {inc.resource}: " + ", ".join(related)]
    lines += ["", f"CloudWatch: {url}"]
    if payload.dashboard_url:
        lines += [f"Dashboard: {payload.dashboard_url}"]
    lines += ["", f"dedup key: {transition.dedup_key}"]
    attributes = {
        "severity": str(inc.severity),
        "service": service,
        "kind": transition.kind,
        "stage": stage,
        "resource": inc.resource,
    }
    return SnsMessage(
        subject=_subject(str(inc.severity), transition.kind, owner, headline),
        text="\n".join(lines),
        payload=payload,
        attributes=attributes,
    )


def metric_refs_or_empty(catalog: Catalog, series_id: str) -> list[MetricRef]:
    try:
        return metric_refs(catalog, series_id)
    except KeyError:
        return []


def _safe_spec(catalog: Catalog, series_id: str) -> MetricSpec | DerivedSpec | None:
    try:
        return catalog.get(series_id)
    except KeyError:  # the catalog changed while the incident was open
        return None


def _anomaly(m: Member, spec: MetricSpec | DerivedSpec | None, catalog: Catalog) -> Anomaly:
    return Anomaly(
        series_id=m.series_id,
        title=spec.title if spec else m.series_id,
        unit=spec.unit if spec else "",
        severity=str(m.severity),
        alerting=m.firing,
        observed=m.value,
        expected_lower=m.lower,
        expected_upper=m.upper,
        score=m.score,
        peak_score=m.peak_score,
        since=_iso(m.since) or "",
        last_anomalous_at=_iso(m.last_anomalous_at) or "",
        metrics=metric_refs_or_empty(catalog, m.series_id),
    )


class Notifier(Protocol):
    def publish(self, message_input: dict[str, Any]) -> str: ...


@cache
def _default_sns_client() -> Any:
    import boto3

    from monitor.budget import SNS_READ_S, client_config

    return boto3.client("sns", config=client_config(read_timeout_s=SNS_READ_S))


class SnsNotifier:
    def __init__(self, *, topic_name: str, topic_arn: str | None = None, client: Any | None = None) -> None:
        self.topic_name = topic_name
        self._topic_arn = topic_arn
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = _default_sns_client()
        return self._client

    @property
    def topic_arn(self) -> str:
        if self._topic_arn is None:
            self._topic_arn = self._find_topic()
        return self._topic_arn

    def _find_topic(self) -> str:
        for page in self.client.get_paginator("list_topics").paginate():
            for topic in page.get("Topics", []):
                arn = str(topic["TopicArn"])
                if arn.rsplit(":", 1)[-1] == self.topic_name:
                    return arn
        raise NotifierError(f"SNS topic {self.topic_name!r} not found")

    def publish(self, message_input: dict[str, Any]) -> str:
        """Publish a prepared `SnsMessage.publish_input` (topic filled in here); returns the MessageId."""
        try:
            response = self.client.publish(**(message_input | {"TopicArn": self.topic_arn}))
        except Exception as err:
            raise NotifierError(f"SNS publish failed: {err}") from err
        return str(response["MessageId"])
