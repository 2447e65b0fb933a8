"""Cached data access for the pages: `st.cache_resource` for the target and clients,
`st.cache_data(ttl=...)` for query results. Pages call these and never boto3.

Every function takes the target's key (its JSON) so cached results never cross deployments; errors
surface as `QueryError` / `TargetError` (never cached) for the page to show.
"""

from __future__ import annotations

import atexit
import re
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from dashboard import cdk_preview, cdk_render, cdk_synth, queries, specs
from dashboard.analysis import Band, BandUnavailableError, expected_band, training_span
from dashboard.power_curve import PowerCurve, load_curve
from dashboard.settings import get_settings
from dashboard.target import Target, TargetError, aws_target, read_sandbox_file, sandbox_target
from monitor.catalog import DerivedSpec, MetricSpec
from sandbox.home import EmbeddedSandbox, SandboxState, StateFileError, read_state

# Query results stay cached this long (seconds): CloudWatch's finest period is a minute, and the
# sandbox's fleet changes by the second, so a minute keeps pages fresh while reruns stay instant.
TTL_S = 60
_embedded_lock = threading.Lock()
_embedded: list[EmbeddedSandbox] = []  # the sandbox this process started, if any (stopped at exit)


class SandboxStartingError(TargetError):
    """The embedded sandbox was launched and its API does not answer yet (the page says so and waits)."""

    def __init__(self, elapsed_s: float, log_path: str) -> None:
        super().__init__(f"Starting the AWS emulator and the local API ({elapsed_s:.0f} s)…")
        self.elapsed_s = elapsed_s
        self.log_path = log_path


@st.cache_resource(show_spinner="Connecting…")
def get_target() -> Target:
    """Resolve the target once per process (FLEETSCOPE_TARGET; see dashboard.settings).

    With `auto` and no running sandbox, an embedded one is launched: until its API answers this
    raises `SandboxStartingError` (not cached), so each rerun checks again without blocking."""
    settings = get_settings()
    if settings.target == "aws":
        return aws_target(
            settings, lambda: queries.describe_stacks(queries.aws_client(settings.region, "cloudformation"))
        )
    info = read_sandbox_file(settings.home)
    embedded = _embedded_sandbox() if _embedded else None
    if info is not None and (embedded is None or info.pid == embedded.pid):
        return sandbox_target(info, settings, embedded=embedded is not None)
    if settings.target == "sandbox":
        raise TargetError(
            f"FLEETSCOPE_TARGET=sandbox but no running sandbox is described in {settings.sandbox_file}: "
            "start one with `fleetscope sandbox up --no-dashboard`."
        )
    return _embedded_target()


def _embedded_sandbox() -> EmbeddedSandbox:
    """The sandbox this process started, launched on first use (`fleetscope sandbox up --no-dashboard`
    with the same home as a child process) and stopped when this process exits."""
    settings = get_settings()
    with _embedded_lock:
        if not _embedded:
            sandbox = EmbeddedSandbox(settings.home, start_timeout_s=settings.sandbox_start_timeout_s)
            _embedded.append(sandbox)
            atexit.register(stop_embedded_sandbox)
            sandbox.launch()
        return _embedded[0]


def _embedded_target() -> Target:
    sandbox = _embedded_sandbox()
    try:
        info = sandbox.poll()
    except StateFileError as err:
        with _embedded_lock:
            _embedded.clear()  # the next rerun may try again
        raise TargetError(
            f"No sandbox is running and the embedded sandbox did not start: {err}. Start one with "
            "`fleetscope sandbox up --no-dashboard`, or set FLEETSCOPE_TARGET=aws."
        ) from err
    if info is None:
        raise SandboxStartingError(time.monotonic() - sandbox.launched_at, str(sandbox.log_path))
    return sandbox_target(info, get_settings(), embedded=True)


def stop_embedded_sandbox() -> None:
    """Stop the sandbox this process started (idempotent); the target cache forgets it."""
    with _embedded_lock:
        while _embedded:
            _embedded.pop().stop()
    get_target.clear()


def sandbox_phase() -> SandboxState | None:
    """The shown sandbox's state file, read fresh (its phase and progress change while it starts)."""
    target = get_target()
    if not target.is_sandbox:
        return None
    try:
        return read_state(target.home)
    except StateFileError:
        return None


def target_key() -> str:
    return get_target().model_dump_json()


@st.cache_resource
def _client(key: str, service: str) -> Any:
    return queries.make_client(Target.model_validate_json(key), service)


def client(service: str) -> Any:
    return _client(target_key(), service)


def now_aligned(step_s: int = 60) -> datetime:
    """Now, rounded down to `step_s`, so repeated renders in the same step hit the cache."""
    return queries.align(datetime.now(tz=UTC), step_s)


# --------------------------------------------------------------------------------------------- metrics


@st.cache_data(ttl=TTL_S, show_spinner=False)
def metric_frame(
    key: str, kind: str, start: datetime, end: datetime, period_s: int, ids: tuple[str, ...] = ()
) -> queries.MetricFrame:
    """Metrics of one kind (`overview`, `catalog`, `usage`) between start and end at `period_s`."""
    target = Target.model_validate_json(key)
    if kind == "overview":
        wanted = specs.overview_specs(target.resources, period_s)
    elif kind == "catalog":
        wanted = list(specs.catalog(target.resources, period_s).metrics)
    elif kind == "usage":
        wanted = specs.usage_specs(target.resources, period_s)
    else:
        raise ValueError(f"unknown metric kind {kind!r}")
    if ids:
        wanted = [s for s in wanted if s.id in ids]
    return queries.fetch_metrics(_client(key, "cloudwatch"), wanted, start=start, end=end, period_s=period_s)


def metrics(
    kind: str, start: datetime, end: datetime, period_s: int, ids: tuple[str, ...] = ()
) -> queries.MetricFrame:
    return metric_frame(target_key(), kind, start, end, period_s, ids)


# --------------------------------------------------------------------------------------------- tables


@st.cache_data(ttl=TTL_S, show_spinner=False)
def _cars(key: str) -> pd.DataFrame:
    target = Target.model_validate_json(key)
    return queries.list_cars(_client(key, "dynamodb"), target.resources.cars_table)


def cars() -> pd.DataFrame:
    return _cars(target_key())


@st.cache_data(ttl=120, show_spinner=False)
def _status_events(key: str, since: datetime) -> pd.DataFrame:
    target = Target.model_validate_json(key)
    return queries.status_events(_client(key, "dynamodb"), target.resources.outbox_table, since=since)


def status_events(hours: float = 24) -> pd.DataFrame:
    """Status changes of the last `hours` (at most the outbox's 7-day retention)."""
    return _status_events(target_key(), now_aligned(300) - timedelta(hours=min(hours, 168) + 1))


@st.cache_data(ttl=30, show_spinner=False)
def _incidents(key: str) -> pd.DataFrame:
    target = Target.model_validate_json(key)
    return queries.list_incidents(_client(key, "dynamodb"), target.resources.monitor_table)


def incidents() -> pd.DataFrame:
    return _incidents(target_key())


@st.cache_data(ttl=30, show_spinner=False)
def _deployments(key: str) -> tuple[pd.DataFrame, list[str]]:
    target = Target.model_validate_json(key)
    return queries.list_deployments(_client(key, "dynamodb"), target.resources.monitor_table)


def deployments() -> tuple[pd.DataFrame, list[str]]:
    """Recorded canary deployments, newest first, and the items that could not be read."""
    return _deployments(target_key())


@st.cache_data(ttl=30, show_spinner=False)
def _notifications(key: str, incident_id: str) -> list[dict[str, Any]]:
    target = Target.model_validate_json(key)
    return queries.incident_notifications(
        _client(key, "dynamodb"), target.resources.monitor_table, incident_id
    )


def notifications(incident_id: str) -> list[dict[str, Any]]:
    return _notifications(target_key(), incident_id)


@st.cache_data(ttl=15, show_spinner=False)
def _queues(key: str) -> pd.DataFrame:
    target = Target.model_validate_json(key)
    res = target.resources
    return queries.queue_snapshot(_client(key, "sqs"), [res.telemetry_queue, res.telemetry_dlq])


def queues() -> pd.DataFrame:
    return _queues(target_key())


def inbox(limit: int = 500) -> list[dict[str, Any]]:
    """The sandbox's delivered alerts (a local file: read fresh every time)."""
    return queries.read_inbox(get_target().inbox_file, limit=limit)


# --------------------------------------------------------------------------------------------- cost inputs


@st.cache_data(ttl=300, show_spinner=False)
def _lambda_reports(key: str, function_key: str, start: datetime, end: datetime) -> pd.DataFrame:
    target = Target.model_validate_json(key)
    fn = target.resources.function(function_key)
    if fn is None:
        raise queries.QueryError(f"No function {function_key!r} in this deployment.")
    return queries.lambda_reports(_client(key, "logs"), f"/aws/lambda/{fn.name}", start=start, end=end)


def lambda_reports(function_key: str, hours: float = 24) -> pd.DataFrame:
    end = now_aligned(300)
    return _lambda_reports(target_key(), function_key, end - timedelta(hours=hours), end)


@st.cache_data(ttl=300, show_spinner=False)
def _cloudwatch_inventory(key: str) -> dict[str, int]:
    target = Target.model_validate_json(key)
    cw = _client(key, "cloudwatch")
    alarms = queries.count_alarms(cw, target.resources.api_name.rsplit("-cars-api", 1)[0])
    return {"custom_metrics": queries.count_custom_metrics(cw, target.resources.namespace), **alarms}


def cloudwatch_inventory() -> dict[str, int]:
    return _cloudwatch_inventory(target_key())


@st.cache_data(ttl=3600, show_spinner=False)
def _cost_explorer(key: str, start: datetime, end: datetime) -> pd.DataFrame:
    return queries.cost_explorer_daily(_client(key, "ce"), start=start, end=end)


def cost_explorer(days: int = 14) -> pd.DataFrame:
    end = now_aligned(86400)
    return _cost_explorer(target_key(), end - timedelta(days=days), end + timedelta(days=1))


# --------------------------------------------------------------------------------------------- bands


@st.cache_data(ttl=TTL_S, show_spinner="Scoring with the monitor's detectors…")
def _resource_bands(
    key: str,
    resource: str,
    start: datetime,
    end: datetime,
    period_s: int,
    train_from: datetime,
    group: bool = False,
) -> dict[str, Band | str]:
    """Each series of one resource (or incident group) with the monitor's expected band (or why not)."""
    target = Target.model_validate_json(key)
    cat = specs.catalog(target.resources, period_s)
    members = [s for s in cat.series if (s.group if group else s.resource) == resource]
    raw_ids = {s.id for s in members if isinstance(s, MetricSpec)}
    for d in members:
        if isinstance(d, DerivedSpec):
            raw_ids |= set(d.numerator) | set(d.denominator)
    frame = metric_frame(key, "catalog", train_from, end, period_s, tuple(sorted(raw_ids)))
    out: dict[str, Band | str] = {}
    for spec in members:
        if spec.id in frame.unavailable:
            out[spec.id] = frame.unavailable[spec.id]
            continue
        volume = None
        if isinstance(spec, DerivedSpec):
            series = queries.ratio(frame, spec.numerator, spec.denominator)
            volume = queries.sum_series(frame, spec.denominator)
        else:
            series = frame.series(spec.id)
        if series.dropna().empty:
            out[spec.id] = "no datapoints in this window"
            continue
        try:
            out[spec.id] = expected_band(
                series, profile=spec.profile, period_s=period_s, scored_from=start, volume=volume
            )
        except BandUnavailableError as err:
            out[spec.id] = str(err)
        except ValueError as err:  # detector input errors: report, keep the rest of the page
            out[spec.id] = f"the detector could not score this series: {err}"
    return out


def resource_bands(
    resource: str, start: datetime, end: datetime, period_s: int, *, group: bool = False
) -> dict[str, Band | str]:
    """Bands of the series of `resource`, or of the incident group `resource` when `group`."""
    hours = (end - start).total_seconds() / 3600
    return _resource_bands(target_key(), resource, start, end, period_s, start - training_span(hours), group)


# ------------------------------------------------------------------------------------- power tuning


def power_curve() -> PowerCurve | None:
    """The curve `python -m benchmarks bench_power_tuning` saved (None: not measured in this checkout);
    a file that is not a curve raises `PowerCurveError`. A small local file: read on every render."""
    return load_curve(get_settings().power_curve)


# --------------------------------------------------------------------------- CDK dashboards preview


class CdkSynthesizingError(RuntimeError):
    """The CDK app is being synthesized for the preview (the page says so and redraws)."""

    def __init__(self, elapsed_s: float) -> None:
        super().__init__(f"Synthesizing the CDK app ({elapsed_s:.0f} s)…")
        self.elapsed_s = elapsed_s


@st.cache_resource(show_spinner=False)
def _synth_job(path: str, stage: str) -> cdk_synth.SynthJob:
    return cdk_synth.SynthJob(stage, Path(path)).start()


@st.cache_resource(show_spinner=False)
def _load_preview(path: str, region: str) -> cdk_preview.Preview:
    document = cdk_synth.read_preview_file(Path(path))
    return cdk_preview.load_preview(document, pseudo=cdk_preview.Pseudo(region=region))


@st.cache_resource(show_spinner=False)
def _source_hash() -> str:
    # The checkout does not change under a running dashboard often; a restart re-reads it.
    return cdk_synth.source_hash()


def cdk_dashboards() -> cdk_preview.Preview:
    """The target stage's dashboards and alarms as the CDK app synthesizes them: read from the cached
    file, else synthesized in the background (`CdkSynthesizingError` until done; `SynthError` if it
    failed, and the next visit tries again)."""
    target = get_target()
    stage = target.resources.stage
    path = cdk_synth.preview_file(target.home, stage, _source_hash())
    if not path.exists():
        job = _synth_job(str(path), stage)
        if not job.done:
            raise CdkSynthesizingError(job.elapsed_s)
        if job.error is not None:
            _synth_job.clear()
            raise job.error
    return _load_preview(str(path), target.region)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def _cdk_dashboard_data(
    key: str, preview_id: str, dashboard_name: str, start: datetime, end: datetime
) -> tuple[pd.DataFrame, dict[str, str], dict[str, list[tuple[str, pd.Series]]]]:
    """The data of one synthesized dashboard: its metric lines (one GetMetricData pass per period),
    the lines that cannot be read, and each SEARCH line's matches (ListMetrics, then GetMetricData)."""
    preview = cdk_dashboards()
    dashboard = next(d for d in preview.dashboards if d.name == dashboard_name)
    cw = _client(key, "cloudwatch")
    specs_, unreadable = cdk_render.dashboard_specs(dashboard)
    frames = []
    for period_s in sorted({s.period_s for s in specs_}):
        group = [s for s in specs_ if s.period_s == period_s]
        frame = queries.fetch_metrics(cw, group, start=start, end=end, period_s=period_s)
        unreadable.update(frame.unavailable)
        frames.append(frame.data)
    empty = pd.DataFrame(columns=["id", "timestamp", "value"])
    data = pd.concat(frames, ignore_index=True) if frames else empty
    searched: dict[str, list[tuple[str, pd.Series]]] = {}
    for index, widget in enumerate(dashboard.widgets):
        for line, pattern in cdk_render.search_lines(widget):
            listed = queries.list_metrics(cw, [pattern.namespace])
            matches = [
                cdk_preview.MetricRef(ns, name, dims)
                for ns, name, dims in listed
                if cdk_preview.is_published(pattern, [(ns, name, dims)])
            ]
            stat = re.search(r",\s*'(\w+)'\s*,\s*(\d+)\s*\)\s*$", line.expression or "")
            stat_name, period_s = (stat.group(1), int(stat.group(2))) if stat else ("Average", line.period_s)
            found = []
            match_specs = [
                cdk_render.metric_spec(f"s{index}.{j}", ref, stat_name, period_s)
                for j, ref in enumerate(matches)
            ]
            fixed = dict(pattern.dimensions)
            if match_specs:
                frame = queries.fetch_metrics(cw, match_specs, start=start, end=end, period_s=period_s)
                for spec, ref in zip(match_specs, matches, strict=True):
                    free = [v for k, v in ref.dimensions if fixed.get(k) == cdk_preview.ANY]
                    found.append((" ".join(free) or ref.name, frame.series(spec.id)))
            searched[line.id] = found
    return data, unreadable, searched


def cdk_dashboard_data(
    dashboard_name: str, start: datetime, end: datetime
) -> tuple[pd.DataFrame, dict[str, str], dict[str, list[tuple[str, pd.Series]]]]:
    preview = cdk_dashboards()
    return _cdk_dashboard_data(target_key(), preview.stage, dashboard_name, start, end)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def _published_metrics(key: str, namespaces: tuple[str, ...]) -> list[queries.MetricKey]:
    return queries.list_metrics(_client(key, "cloudwatch"), namespaces)


def published_metrics(namespaces: tuple[str, ...]) -> list[queries.MetricKey]:
    return _published_metrics(target_key(), namespaces)
