"""Deployments: the canary deployments the judging loops recorded, their verdicts, and for each one the
canary-vs-baseline comparison of every metric the judge used, verdict and minute by minute."""

from __future__ import annotations

from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from dashboard import data, ui
from monitor.canary import LATENCY_METRICS, VersionMinute
from monitor.deployments import Deployment

st.title("Deployments")
target = data.get_target()
st.caption(
    "Canary deployments of the functions behind their `live` alias, as the judging loop recorded them in "
    "the monitor table (`fleetscope deploy` in the sandbox; CodeDeploy's judging loop on AWS): the canary "
    "judge compares the new version with the old one over the same minutes and rolls a bad one back."
)


def _duration(row: pd.Series) -> str:
    if pd.isna(row["ended_at"]):
        return "in progress"
    return f"{(row['ended_at'] - row['started_at']).total_seconds() / 60:.1f} min"


def history(frame: pd.DataFrame) -> None:
    cols = st.columns(4)
    cols[0].metric("Deployments", len(frame), border=True)
    cols[1].metric("Rolled back", int((frame["state"] == "ROLLED_BACK").sum()), border=True)
    cols[2].metric("Promoted", int((frame["state"] == "SUCCEEDED").sum()), border=True)
    cols[3].metric("In progress", int((frame["state"] == "IN_PROGRESS").sum()), border=True)
    shown = frame.drop(columns=["deployment"]).assign(
        versions=lambda f: "v" + f["from_version"] + " → v" + f["to_version"],
        until=lambda f: f["ended_at"].fillna(pd.Timestamp.now(tz="UTC")),
    )
    chart = (
        alt.Chart(shown, title="History")
        .mark_bar(cornerRadius=3, height=14)
        .encode(
            x=alt.X("started_at:T", title=None),
            x2="until:T",
            y=alt.Y("function:N", title=None),
            color=alt.Color(
                "state:N",
                scale=alt.Scale(domain=list(ui.STATE_COLORS), range=list(ui.STATE_COLORS.values())),
                title=None,
            ),
            tooltip=["deployment_id:N", "function:N", "versions:N", "state:N", "verdict:N", "started_at:T"],
        )
        .properties(height=max(100, 45 * shown["function"].nunique()))
    )
    st.altair_chart(chart, width="stretch")
    table = shown.assign(duration=frame.apply(_duration, axis=1))[
        [
            "started_at",
            "function",
            "versions",
            "canary_percent",
            "state",
            "verdict",
            "duration",
            "deployment_id",
        ]
    ]
    st.dataframe(
        table,
        hide_index=True,
        width="stretch",
        column_config={
            "started_at": st.column_config.DatetimeColumn("started (UTC)", format="YYYY-MM-DD HH:mm:ss"),
            "canary_percent": st.column_config.NumberColumn("canary %", format="%g"),
        },
    )


def _value(metric: str, value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.2%}" if metric.endswith("ratio") else f"{value:,.1f} ms"


def comparison(deployment: Deployment) -> None:
    """Each metric of the judge's last verdict: baseline, canary, change, p-value, outcome, reason."""
    if not deployment.metrics:
        st.info("Not judged yet: the first verdict comes one minute after the traffic shift.")
        return
    rows: list[dict[str, Any]] = []
    for m in deployment.metrics:
        change = None
        if m.baseline is not None and m.canary is not None and m.baseline > 0:
            change = (m.canary - m.baseline) / m.baseline
        rows.append(
            {
                "metric": m.metric,
                "outcome": m.outcome.value,
                f"baseline v{deployment.from_version}": _value(m.metric, m.baseline),
                f"canary v{deployment.to_version}": _value(m.metric, m.canary),
                "change": "—" if change is None else f"{change:+.0%}",
                "p-value": "—" if m.p_value is None else f"{m.p_value:.3g}",
                "reason": m.reason,
            }
        )
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", key="deployment_comparison")


def verdicts_frame(deployment: Deployment) -> pd.DataFrame:
    """One row per verdict the judging loop gave, oldest first (how the verdict evolved)."""
    rows = [
        {
            "minutes judged": v.minutes,
            "judged at (UTC)": f"{v.at:%H:%M:%S}",
            "verdict": v.outcome.value,
            "canary invocations": v.canary_invocations,
            "baseline invocations": v.baseline_invocations,
            "reasons": "; ".join(v.reasons),
        }
        for v in deployment.verdicts
    ]
    columns = [
        "minutes judged",
        "judged at (UTC)",
        "verdict",
        "canary invocations",
        "baseline invocations",
        "reasons",
    ]
    return pd.DataFrame(rows, columns=columns)


def verdict_history(deployment: Deployment) -> None:
    frame = verdicts_frame(deployment)
    if frame.empty:
        st.info("No verdict history stored with this record (not judged, or recorded before it was kept).")
        return
    st.dataframe(frame, hide_index=True, width="stretch", key="deployment_verdicts")


def _minutes_frame(deployment: Deployment) -> pd.DataFrame:
    """One row per (minute, version, metric) of what the last verdict judged."""
    rows: list[dict[str, Any]] = []
    sides: tuple[tuple[str, list[VersionMinute]], ...] = (
        (f"baseline v{deployment.from_version}", deployment.baseline_minutes),
        (f"canary v{deployment.to_version}", deployment.canary_minutes),
    )
    for version, minutes in sides:
        for i, m in enumerate(minutes, start=1):
            values: dict[str, float | None] = {
                "invocations": float(m.invocations),
                "error ratio (%)": 100 * m.errors / m.invocations if m.invocations else None,
            }
            for name in LATENCY_METRICS:
                values[f"duration {name.removesuffix('_ms')} (ms)"] = getattr(m, name)
            for metric, value in values.items():
                if value is not None:
                    rows.append({"minute": i, "version": version, "metric": metric, "value": value})
    return pd.DataFrame(rows, columns=["minute", "version", "metric", "value"])


def per_minute(deployment: Deployment) -> None:
    long = _minutes_frame(deployment)
    if long.empty:
        st.info("No per-minute metrics stored with this record (recorded before they were kept).")
        return
    grid = st.columns(3)
    for i, metric in enumerate(long["metric"].unique()):
        part = long[long["metric"] == metric]
        chart = (
            alt.Chart(part, title=metric)
            .mark_line(point=True)
            .encode(
                x=alt.X("minute:O", title="canary minute"),
                y=alt.Y("value:Q", title=None),
                color=alt.Color("version:N", title=None, scale=alt.Scale(range=["#546e7a", "#e53935"])),
                tooltip=["minute:O", "version:N", alt.Tooltip("value:Q", format=",.2f")],
            )
            .properties(height=200)
        )
        with grid[i % 3]:
            st.altair_chart(chart, width="stretch")


def detail(frame: pd.DataFrame) -> None:
    ids = list(frame["deployment_id"])
    records: list[Deployment] = list(frame["deployment"])
    labels = {
        d.deployment_id: f"{d.deployment_id} · {d.function} v{d.from_version} → v{d.to_version} · "
        f"{d.state.value.lower().replace('_', ' ')}"
        for d in records
    }
    asked = st.query_params.get("deployment", "")
    chosen = st.selectbox(
        "Deployment",
        ids,
        index=ids.index(asked) if asked in ids else 0,
        key="deployment_choice",
        format_func=lambda i: labels.get(i, i),
    )
    assert chosen is not None
    st.query_params["deployment"] = chosen
    deployment: Deployment = frame.loc[frame["deployment_id"] == chosen, "deployment"].iloc[0]
    verdict = deployment.verdict.value if deployment.verdict else "not judged yet"
    ended = f", ended {deployment.ended_at:%Y-%m-%d %H:%M:%S} UTC" if deployment.ended_at else ""
    st.markdown(
        f"**{deployment.function}** version {deployment.to_version} took {deployment.canary_percent:g} % of "
        f"traffic from version {deployment.from_version} at {deployment.started_at:%Y-%m-%d %H:%M:%S} UTC"
        f"{ended}: **{deployment.state.value.replace('_', ' ').lower()}**, canary verdict **{verdict}**."
    )
    for reason in deployment.reasons:
        st.markdown(f"- {reason}")
    fn = target.resources.function(deployment.function)
    if fn is not None:
        st.markdown(f"[Service health of {fn.key}](./health?resource=lambda:{fn.name}&window=1h)")
    st.subheader("Canary vs baseline, per metric the judge used")
    ui.section("Comparison", lambda: comparison(deployment))
    st.subheader("How the verdict evolved")
    ui.section("Verdict history", lambda: verdict_history(deployment))
    st.subheader("Minute by minute")
    ui.section("Per-minute metrics", lambda: per_minute(deployment))


def page() -> None:
    frame, skipped = data.deployments()
    if skipped:
        st.warning(
            f"{len(skipped)} item(s) of the deployment log could not be read and are left out: "
            + "; ".join(skipped[:5]),
            icon=":material/info:",
        )
    if frame.empty:
        st.info(
            "No deployments recorded yet. In the sandbox: `fleetscope deploy cars-api` "
            "(add `--fault latency` to see one rolled back).",
            icon=":material/info:",
        )
        return
    history(frame)
    detail(frame)


ui.section("Deployments", page)
