"""Drawing helpers the pages share: guarded sections, the window picker and Altair charts."""

from __future__ import annotations

import logging
from collections.abc import Callable

import altair as alt
import pandas as pd
import streamlit as st

from dashboard.analysis import WINDOWS, BandUnavailableError
from dashboard.queries import QueryError
from dashboard.target import TargetError

log = logging.getLogger("fleetscope.dashboard")

# Map colours per status, and the Markdown colour that matches each in legends.
STATUS_MARKDOWN = {
    "available": "green",
    "reserved": "orange",
    "in_trip": "blue",
    "charging": "violet",
    "maintenance": "red",
    "retired": "gray",
}
STATUS_COLORS: dict[str, tuple[int, int, int]] = {
    "available": (46, 160, 67),
    "reserved": (255, 193, 7),
    "in_trip": (30, 136, 229),
    "charging": (142, 36, 170),
    "maintenance": (229, 57, 53),
    "retired": (120, 120, 120),
}


def section(what: str, draw: Callable[[], None]) -> bool:
    """Draw a part of a page; a failed read shows a clear message instead of a traceback."""
    try:
        draw()
    except QueryError as err:
        icon = ":material/lock:" if err.kind == "denied" else ":material/cloud_off:"
        st.warning(f"**{what}** — {err}", icon=icon)
        return False
    except (TargetError, BandUnavailableError) as err:
        st.warning(f"**{what}** — {err}", icon=":material/info:")
        return False
    except Exception as err:
        log.exception("dashboard section %s failed", what)
        st.error(f"**{what}** could not be drawn: {type(err).__name__}: {err}", icon=":material/error:")
        return False
    return True


def window_picker(
    key: str, default: str = "24 h", options: tuple[str, ...] | None = None
) -> tuple[str, float]:
    choices = list(options or WINDOWS)
    label = st.selectbox("Window", choices, index=choices.index(default), key=key)
    assert label is not None
    return label, WINDOWS[label]


def line_chart(
    frame: pd.DataFrame,
    *,
    x: str,
    y: str,
    color: str | None = None,
    title: str = "",
    y_title: str = "",
    height: int = 220,
) -> alt.Chart:
    enc: dict[str, object] = {
        "x": alt.X(f"{x}:T", title=None),
        "y": alt.Y(f"{y}:Q", title=y_title or None),
        "tooltip": [alt.Tooltip(f"{x}:T"), alt.Tooltip(f"{y}:Q", format=",.2f")],
    }
    if color:
        enc["color"] = alt.Color(f"{color}:N", title=None)
    return alt.Chart(frame, title=title or alt.Undefined).mark_line().encode(**enc).properties(height=height)


STATE_COLORS = {"IN_PROGRESS": "#fb8c00", "SUCCEEDED": "#43a047", "ROLLED_BACK": "#e53935"}


def deployment_marks(markers: pd.DataFrame) -> alt.LayerChart | alt.FacetChart:
    """Deployments as marks on a time axis: the canary window shaded, a rule where the new version took
    its share of traffic, coloured by how it ended. `markers` has the columns of
    `dashboard.queries.deployments_frame` (the `deployment` objects are left out of the chart data)."""
    shown = markers.drop(columns=["deployment"], errors="ignore").assign(
        label=lambda f: f["function"] + " v" + f["from_version"] + " → v" + f["to_version"],
        until=lambda f: f["ended_at"].fillna(pd.Timestamp.now(tz="UTC")),
    )
    color = alt.Color(
        "state:N",
        scale=alt.Scale(domain=list(STATE_COLORS), range=list(STATE_COLORS.values())),
        legend=None,  # the page's caption names the colours: a legend per small chart would squeeze it
    )
    tooltip = [
        alt.Tooltip("deployment_id:N", title="deployment"),
        alt.Tooltip("label:N", title="versions"),
        alt.Tooltip("canary_percent:Q", title="canary %"),
        alt.Tooltip("state:N"),
        alt.Tooltip("verdict:N"),
        alt.Tooltip("started_at:T", title="started"),
    ]
    base = alt.Chart(shown)
    window = base.mark_rect(opacity=0.12).encode(x="started_at:T", x2="until:T", color=color, tooltip=tooltip)
    rule = base.mark_rule(strokeDash=[4, 3], strokeWidth=2).encode(
        x="started_at:T", color=color, tooltip=tooltip
    )
    return alt.layer(window, rule)


def band_chart(
    frame: pd.DataFrame, *, title: str, unit: str, height: int = 220, markers: pd.DataFrame | None = None
) -> alt.LayerChart | alt.FacetChart:
    """Observed line, the expected band as an area, anomalous points as red dots (and `markers`:
    deployments, see `deployment_marks`).

    A series that never goes below 0 (counts, latencies, rates) shows its band from 0: a detector's
    symmetric band can reach below 0, which would draw "-500 requests" or "-10,000 ms"."""
    if bool(frame["value"].dropna().ge(0).all()):
        frame = frame.assign(lower=frame["lower"].clip(lower=0.0), upper=frame["upper"].clip(lower=0.0))
    base = alt.Chart(frame).encode(x=alt.X("timestamp:T", title=None))
    band = base.mark_area(opacity=0.25, color="#1e88e5").encode(
        y=alt.Y("lower:Q", title=unit or None), y2="upper:Q"
    )
    line = base.mark_line(color="#263238").encode(
        y="value:Q",
        tooltip=[
            alt.Tooltip("timestamp:T"),
            alt.Tooltip("value:Q", format=",.2f"),
            alt.Tooltip("lower:Q", format=",.2f"),
            alt.Tooltip("upper:Q", format=",.2f"),
            alt.Tooltip("score:Q", format=".2f"),
        ],
    )
    points = (
        alt.Chart(frame[frame["anomalous"]])
        .mark_circle(color="#e53935", size=60)
        .encode(x="timestamp:T", y="value:Q", tooltip=["timestamp:T", "value:Q", "score:Q"])
    )
    layers: list[alt.Chart | alt.LayerChart | alt.FacetChart] = [band, line, points]
    if markers is not None and not markers.empty:
        layers.append(deployment_marks(markers))
    return alt.layer(*layers, title=title, height=height)
