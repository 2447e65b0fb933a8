"""Incidents: the monitor's open and resolved incidents, and what each one looked like and said."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import altair as alt
import pandas as pd
import streamlit as st

from dashboard import data, specs, ui
from dashboard.analysis import Band, period_for

st.title("Incidents")
target = data.get_target()


def timeline(frame: pd.DataFrame) -> None:
    now = pd.Timestamp.now(tz=UTC)
    shown = frame.assign(
        until=frame["resolved_at"].fillna(now),
        label=frame["resource"].str.replace(":", " · ", n=1, regex=False),
    )
    chart = (
        alt.Chart(shown, title="Timeline")
        .mark_bar(cornerRadius=3, height=14)
        .encode(
            x=alt.X("opened_at:T", title=None),
            x2="until:T",
            y=alt.Y("label:N", title=None, axis=alt.Axis(labelLimit=320)),
            color=alt.Color(
                "status:N",
                scale=alt.Scale(domain=["open", "resolved"], range=["#e53935", "#90a4ae"]),
                title=None,
            ),
            tooltip=["incident_id:N", "status:N", "severity:N", "opened_at:T", "resolved_at:T", "reason:N"],
        )
        .properties(height=max(120, 40 * shown["label"].nunique()))
    )
    st.altair_chart(chart, width="stretch")


def notifications(incident_id: str) -> None:
    """The SNS messages of an incident, as the monitor sent them (its outbox) and as delivered (inbox)."""
    sent = data.notifications(incident_id)
    for note in sent:
        stamp = "" if note["sent_at"] is None else f" · sent {note['sent_at']:%Y-%m-%d %H:%M:%S} UTC"
        head = f"`#{note['seq']}` **{note['kind']}** · {note['status']}{stamp}"
        st.markdown(f"{head} · MessageId `{note['message_id']}`")
        st.code(json.dumps(note["message"], indent=2, default=str), language="json")
    delivered: list[Any] = []
    if target.is_sandbox:
        delivered = [m for m in data.inbox() if incident_id in json.dumps(m)]
        if delivered:
            st.markdown(f"Delivered to the sandbox inbox ({len(delivered)}):")
            for message in delivered:
                st.code(json.dumps(message, indent=2, default=str), language="json")
    if not sent and not delivered:
        st.info("No notification recorded for this incident yet.")


def deployments(item: Any) -> None:
    """The deployments of its functions in the 30 minutes before it opened (monitor/deployments.py)."""
    listed = (item or {}).get("deployments") if isinstance(item, dict) else None
    if not listed:
        return
    st.markdown("**Deployments in the 30 minutes before it opened**")
    for d in listed:
        ident = str(d.get("deployment_id") or "")
        link = f"[`{ident}`](./deployments?deployment={quote(ident)})" if ident else "`?`"
        st.markdown(f"- {link}: {d.get('text', '')}")


def detail(row: pd.Series) -> None:
    opened: pd.Timestamp = row["opened_at"]
    resolved: pd.Timestamp | None = None if pd.isna(row["resolved_at"]) else row["resolved_at"]
    end_at = (resolved or pd.Timestamp.now(tz=UTC)) + timedelta(hours=1)
    start_at = opened - timedelta(hours=3)
    now = datetime.now(tz=UTC)
    end = min(end_at.to_pydatetime(), now)
    hours = max((end - start_at.to_pydatetime()).total_seconds() / 3600, 1.0)
    period_s = period_for(hours)
    end = data.now_aligned(period_s) if end >= now - timedelta(minutes=1) else end
    start = end - timedelta(hours=hours)
    cols = st.columns(4)
    cols[0].metric("Status", str(row["status"]))
    cols[1].metric("Severity", str(row["severity"]) or "—")
    cols[2].metric("Opened at", f"{opened:%m-%d %H:%M}")
    cols[3].metric("Resolved at", "—" if resolved is None else f"{resolved:%m-%d %H:%M}")
    if row["reason"]:
        st.caption(f"Resolution: {row['reason']}")
    deployments(row["item"])
    members = list(row["series"])
    cat = specs.catalog(target.resources, period_s)
    known = {s.id for s in cat.series}
    st.markdown("**Observed vs expected**")
    results = data.resource_bands(str(row["resource"]), start, end, period_s, group=True)
    member_ids = [m for m in members if m in known] or [
        s.id for s in cat.series if s.group == row["resource"]
    ][:2]
    charts = st.columns(2)
    for i, series_id in enumerate(member_ids):
        with charts[i % 2]:
            result = results.get(series_id, "not in the catalog")
            title = cat.get(series_id).title
            if isinstance(result, Band):
                chart = ui.band_chart(result.frame, title=title, unit=cat.get(series_id).unit)
                st.altair_chart(chart, width="stretch")
            else:
                st.info(f"{title}: {result}")
    others = [s for s in cat.series if s.group == row["resource"] and s.id not in member_ids]
    if others:
        with st.expander(f"Related metrics of {row['resource']} ({len(others)})"):
            for spec in others:
                other = results.get(spec.id)
                if isinstance(other, Band):
                    chart = ui.band_chart(other.frame, title=spec.title, unit=spec.unit, height=160)
                    st.altair_chart(chart, width="stretch")
    st.markdown("**Notifications sent (SNS)**")
    notifications(str(row["incident_id"]))


def page() -> None:
    frame = data.incidents()
    if frame.empty:
        st.success("No incidents recorded by the monitor.", icon=":material/check_circle:")
        return
    open_count = int((frame["status"] == "open").sum())
    cols = st.columns(3)
    cols[0].metric("Open", open_count, border=True)
    cols[1].metric("Resolved", int((frame["status"] == "resolved").sum()), border=True)
    cols[2].metric("Critical", int((frame["severity"] == "critical").sum()), border=True)
    ui.section("Timeline", lambda: timeline(frame))
    st.dataframe(
        frame[["incident_id", "status", "severity", "resource", "opened_at", "resolved_at", "reason"]],
        hide_index=True,
        width="stretch",
    )
    statuses = dict(zip(frame["incident_id"], frame["status"], strict=True))
    choice = st.selectbox(
        "Incident",
        frame["incident_id"].tolist(),
        key="incident_choice",
        format_func=lambda i: f"{i} ({statuses.get(i, '')})",
    )
    if choice is not None:
        row = frame.set_index("incident_id").loc[choice].copy()
        row["incident_id"] = choice
        st.subheader(f"Incident {choice}")
        ui.section("Incident detail", lambda: detail(row))


ui.section("Incidents", page)
