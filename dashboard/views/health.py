"""Service health: each resource's series with the monitor's expected band and anomalies marked, and
the canary deployments of the resource's service in the window as marks on its charts."""

from __future__ import annotations

from datetime import timedelta

import altair as alt
import pandas as pd
import streamlit as st

from dashboard import data, specs, ui
from dashboard.analysis import WINDOWS, Band, period_for
from dashboard.queries import QueryError

st.title("Service health")
target = data.get_target()
res = target.resources
# The selection lives in the query string (`?resource=api:...&window=24h`), so a link opens this chart.
windows = {label.replace(" ", ""): label for label in WINDOWS}
cols = st.columns([1, 2])
with cols[0]:
    label, hours = ui.window_picker("health_window", windows.get(st.query_params.get("window", ""), "24 h"))
period_s = period_for(hours)
cat = specs.catalog(res, period_s)
resources = list(dict.fromkeys(s.resource for s in cat.series))
asked_resource = st.query_params.get("resource", "")
if asked_resource and asked_resource not in resources:
    st.warning(f"No resource {asked_resource!r} in this deployment's catalog; showing the first.")
with cols[1]:
    resource = st.selectbox(
        "Resource",
        resources,
        index=resources.index(asked_resource) if asked_resource in resources else 0,
        key="health_resource",
        format_func=lambda r: r.replace(":", " · ", 1),
    )
assert resource is not None
st.query_params.update({"resource": resource, "window": label.replace(" ", "")})
end = data.now_aligned(period_s)
start = end - timedelta(hours=hours)
st.caption(
    f"{label} to {end:%Y-%m-%d %H:%M} UTC at {period_s // 60}-minute periods. Bands and scores come from the "
    "monitor's own detectors, fitted on the history before the window and run causally through it; "
    "red points reach the monitor's alert threshold."
)


def deployment_markers() -> pd.DataFrame | None:
    """The deployments in the window of the functions whose service this resource belongs to (all of
    them on the latency chart); None when the records cannot be read (said once, below the charts)."""
    try:
        frame, _ = data.deployments()
    except QueryError as err:  # a missing permission or table must not hide the charts
        problems.append(f"Deployments not shown: {err}")
        return None
    return frame[
        (frame["started_at"] < pd.Timestamp(end))
        & (frame["ended_at"].isna() | (frame["ended_at"] >= pd.Timestamp(start)))
    ]


problems: list[str] = []
markers = deployment_markers()


def markers_for(group: str | None) -> pd.DataFrame | None:
    if markers is None or markers.empty:
        return None
    if group is None:
        return markers
    services = {f.key: f"service:{f.service}" for f in res.functions}
    mine = markers[markers["function"].map(services) == group]
    return mine if not mine.empty else None


def bands() -> None:
    results = data.resource_bands(resource, start, end, period_s)
    anomalous = sum(int(b.frame["anomalous"].sum()) for b in results.values() if isinstance(b, Band))
    st.metric("Anomalous points in the window", anomalous, border=True)
    grid = st.columns(2)
    for i, spec in enumerate(s for s in cat.series if s.resource == resource):
        with grid[i % 2]:
            result = results.get(spec.id, "not computed")
            if isinstance(result, Band):
                chart = ui.band_chart(
                    result.frame, title=spec.title, unit=spec.unit, markers=markers_for(spec.group)
                )
                st.altair_chart(chart, width="stretch")
                st.caption(f"{result.detector} · threshold {result.threshold:.2f}")
            else:
                st.markdown(f"**{spec.title}**")
                st.info(f"No band: {result}", icon=":material/info:")


def latency() -> None:
    api = f"api:{res.api_name}"
    wanted = [f"{api}:latency-p50", f"{api}:latency-p99"] + [
        f"lambda:{f.name}:duration-p99" for f in res.functions
    ]
    frame = data.metrics("catalog", start, end, period_s, tuple(wanted))
    rows = []
    for series_id in wanted:
        series = frame.series(series_id)
        name = cat.get(series_id).title
        rows.append(pd.DataFrame({"timestamp": series.index, "value": series.to_numpy(), "series": name}))
    long = (
        pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=["timestamp", "value", "series"])
    )
    if frame.unavailable:
        st.warning(
            "Percentiles are not available from this endpoint: " + next(iter(frame.unavailable.values())),
            icon=":material/info:",
        )
    if long.empty:
        st.info("No latency datapoints in this window.")
        return
    chart: alt.Chart | alt.LayerChart = ui.line_chart(
        long, x="timestamp", y="value", color="series", title="Latency percentiles", y_title="ms"
    )
    shown = markers_for(None)
    if shown is not None:
        chart = alt.layer(chart, ui.deployment_marks(shown)).resolve_scale(color="independent")
    st.altair_chart(chart, width="stretch")


def queues() -> None:
    snapshot = data.queues()
    cols = st.columns(3)
    main = snapshot[snapshot["queue"] == res.telemetry_queue]
    dlq = snapshot[snapshot["queue"] == res.telemetry_dlq]
    cols[0].metric("Telemetry queue: visible now", int(main["visible"].sum()), border=True)
    cols[1].metric("In flight now", int(main["in_flight"].sum()), border=True)
    cols[2].metric("Dead-letter queue now", int(dlq["visible"].sum()), border=True)
    wanted = (
        f"sqs:{res.telemetry_queue}:visible",
        f"sqs:{res.telemetry_queue}:age",
        f"sqs:{res.telemetry_dlq}:depth",
    )
    frame = data.metrics("catalog", start, end, period_s, wanted)
    charts = st.columns(3)
    for col, series_id in zip(charts, wanted, strict=True):
        series = frame.series(series_id)
        long = pd.DataFrame({"timestamp": series.index, "value": series.to_numpy()})
        spec = cat.get(series_id)
        with col:
            if long.empty:
                st.info(f"{spec.title}: no datapoints in this window.")
            else:
                st.altair_chart(
                    ui.line_chart(long, x="timestamp", y="value", title=spec.title, y_title=spec.unit),
                    width="stretch",
                )


st.subheader(resource.replace(":", " · ", 1))
if markers is not None and not markers.empty:
    st.caption(
        f"{len(markers)} deployment(s) in the window are marked: the shaded span is the canary, the dashed "
        "rule where the new version took its share of traffic; green promoted, red rolled back, orange in "
        "progress (details on the Deployments page)."
    )
for problem in problems:
    st.warning(problem, icon=":material/info:")
ui.section("Expected bands", bands)
st.subheader("Latency percentiles")
ui.section("Latency percentiles", latency)
st.subheader("Telemetry queue")
ui.section("Queues", queues)
