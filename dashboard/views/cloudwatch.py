"""CloudWatch dashboards: the CDK app's dashboards as synthesized for this stage, drawn from its metrics.

Each widget of each ``AWS::CloudWatch::Dashboard`` the CDK app synthesizes (its widget JSON) is drawn
here on the console's 24-column grid: text as Markdown, metric graphs with their metric math,
horizontal annotations (the alarm thresholds) and labels, single values as numbers. Below, the
stage's alarms and whether CloudWatch has each metric they reference. Selection in the query string
(`/cloudwatch?dashboard=fleet-service&window=8h`).
"""

from __future__ import annotations

import time
from datetime import timedelta

import altair as alt
import pandas as pd
import streamlit as st

from dashboard import cdk_preview, cdk_render, cdk_synth, data, ui
from dashboard.cdk_preview import Dashboard, Widget
from dashboard.queries import QueryError, period_grid

WINDOWS = {"1h": 1, "3h": 3, "8h": 8, "24h": 24}
ROW_PX = 42  # height of one grid row (the console's is about 40 px)

st.title("CloudWatch dashboards")
target = data.get_target()
try:
    preview = data.cdk_dashboards()
except data.CdkSynthesizingError as err:
    st.info(
        "Synthesizing the CDK app for this stage (`python -m infra.preview`; once per change to "
        "`infra/` or `contract/`, then read from the cache).",
        icon=":material/construction:",
    )
    st.progress(min(err.elapsed_s / cdk_synth.EXPECTED_S, 0.95), text=str(err))
    time.sleep(1)
    st.rerun()
except (cdk_synth.SynthError, cdk_preview.PreviewError) as err:
    st.error(f"The CDK dashboards cannot be shown: {err}", icon=":material/error:")
    st.stop()

st.caption(
    f"As `cdk deploy -c stage={preview.stage}` would create them: the widget JSON of the CDK app's "
    f"dashboards, drawn from {target.describe()}'s metrics."
)
if not preview.dashboards:
    st.info("The CDK app defines no dashboard for this stage.")
    st.stop()


def _short(name: str) -> str:
    return name.removeprefix(f"fleetscope-{preview.stage}-")


# The service's dashboard first: what an operator opens most.
ordered = sorted(preview.dashboards, key=lambda d: (not d.name.endswith("-fleet-service"), d.name))
names = [_short(d.name) for d in ordered]
params = st.query_params
chosen = params.get("dashboard", names[0])
picked_col, window_col = st.columns([3, 1])
with picked_col:
    picked = st.selectbox("Dashboard", names, index=names.index(chosen) if chosen in names else 0)
dashboard = ordered[names.index(picked or names[0])]
default_window = "8h" if dashboard.start == "-PT8H" else "3h"
wanted = params.get("window", default_window)
with window_col:
    window = st.selectbox(
        "Window", list(WINDOWS), index=list(WINDOWS).index(wanted) if wanted in WINDOWS else 2
    )
window = window or default_window
st.query_params.update({"dashboard": picked or names[0], "window": window})


def _chart(widget: Widget, lines: pd.DataFrame) -> alt.Chart | alt.LayerChart | alt.FacetChart:
    y_axis = (widget.properties.get("yAxis") or {}).get("left") or {}
    y = alt.Y("value:Q", title=y_axis.get("label") or None)
    if "min" in y_axis:
        y = alt.Y("value:Q", title=y_axis.get("label") or None, scale=alt.Scale(domainMin=y_axis["min"]))
    base = (
        alt.Chart(lines)
        .mark_line(point=len(lines) < 40)
        .encode(
            x=alt.X("timestamp:T", title=None),
            y=y,
            color=alt.Color("label:N", title=None, legend=alt.Legend(orient="bottom", labelLimit=260)),
            tooltip=["label:N", "timestamp:T", alt.Tooltip("value:Q", format=".4~g")],
        )
    )
    annotations = pd.DataFrame(
        [{"value": float(a["value"]), "label": str(a.get("label", ""))} for a in widget.annotations]
    )
    if annotations.empty:
        return base.properties(height=max(widget.height * ROW_PX - 80, 120))
    rules = (
        alt.Chart(annotations)
        .mark_rule(color="#d62728", strokeDash=[4, 3])
        .encode(y="value:Q", tooltip=["label:N", "value:Q"])
    )
    return alt.layer(base, rules).properties(height=max(widget.height * ROW_PX - 80, 120))


def _metric_widget(
    widget: Widget, index: int, frame: pd.DataFrame, grid: pd.DatetimeIndex, extra: dict
) -> None:
    drawn = cdk_render.widget_lines(
        widget, index, frame, grid=grid, unreadable=extra["unreadable"], searched=extra["searched"]
    )
    st.markdown(f"**{widget.title or 'Metrics'}**")
    lines = drawn.lines
    if lines.empty:
        st.caption("No datapoints in this window.")
    elif widget.view == "singleValue":
        for label, rows in lines.groupby("label", sort=False):
            st.metric(str(label), f"{rows['value'].iloc[-1]:.4g}")
    else:
        st.altair_chart(_chart(widget, lines), width="stretch")
    for note in drawn.notes:
        st.caption(f":material/info: {note}")


def _alarm_widget(widget: Widget) -> None:
    st.markdown(f"**{widget.title or 'Alarms'}**")
    arns = [str(a) for a in widget.properties.get("alarms") or []]
    st.markdown("\n".join(f"- {arn.rsplit(':alarm:', 1)[-1]}" for arn in arns) or "(no alarms)")


def draw(dashboard: Dashboard) -> None:
    end = data.now_aligned(60)
    start = end - timedelta(hours=WINDOWS[window])
    frame, unreadable, searched = data.cdk_dashboard_data(dashboard.name, start, end)
    extra = {"unreadable": unreadable, "searched": searched}
    index_of = {id(w): i for i, w in enumerate(dashboard.widgets)}
    for row in dashboard.rows():
        used = sum(w.width for w in row)
        widths = [w.width for w in row] + ([24 - used] if used < 24 else [])
        columns = st.columns(widths)
        for column, widget in zip(columns, row, strict=False):
            with column:
                if widget.type == "text":
                    st.markdown(widget.markdown)
                elif widget.type == "metric":
                    period = widget.lines[0].period_s if widget.lines else 300
                    grid = period_grid(start, end, period)
                    _metric_widget(widget, index_of[id(widget)], frame, grid, extra)
                elif widget.type == "alarm":
                    _alarm_widget(widget)
                else:
                    st.caption(f"{widget.type} widget: not drawn by this preview")


def alarms() -> None:
    rows = []
    namespaces = tuple(sorted({ref.namespace for a in preview.alarms for ref in a.metrics}))
    try:
        published = data.published_metrics(namespaces)
    except QueryError as err:
        st.caption(f"Cannot tell which metrics CloudWatch has: {err}")
        published = None
    for alarm in preview.alarms:
        refs = alarm.metrics
        if published is None or not refs:
            status = ""
        else:
            missing = cdk_preview.unpublished(refs, published)
            status = "yes" if not missing else "no: " + "; ".join(r.describe() for r in missing)
        rows.append(
            {
                "alarm": alarm.name,
                "metrics": "; ".join(r.describe() for r in refs) or (alarm.composite_rule or "")[:120],
                "math": alarm.expression or "",
                "threshold": alarm.threshold,
                "comparison": alarm.comparison,
                "metrics in CloudWatch": status,
            }
        )
    st.subheader(f"Alarms ({len(rows)})")
    st.caption(
        "A metric missing here stays INSUFFICIENT_DATA on AWS. Some are published only when the event "
        "happens (throttles, system errors, failed rule invocations, a canary verdict): see the README."
    )
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")


ui.section(f"the dashboard {dashboard.name}", lambda: draw(dashboard))
ui.section("the stage's alarms", alarms)
