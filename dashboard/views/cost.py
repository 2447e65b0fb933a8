"""Cost: estimated daily cost by AWS service from usage metrics, and where it could go down."""

from __future__ import annotations

from datetime import timedelta

import altair as alt
import pandas as pd
import streamlit as st

from dashboard import cost, data, specs, ui
from dashboard.power_curve import PowerCurveError
from dashboard.queries import QueryError, align
from dashboard.usage import daily_usage

st.title("Cost")
target = data.get_target()
res = target.resources
days = st.selectbox("Days", [7, 14], index=1, key="cost_days")
assert days is not None
st.caption(
    f"Estimated from usage metrics with the {cost.REGION} list prices of {cost.PRICES_AS_OF:%Y-%m-%d} "
    "(on demand, Lambda on arm64, no free tier). Monthly charges (metrics, alarms) are prorated per day."
)


def inventory() -> dict[str, int]:
    cat = specs.catalog(res, 300)
    try:
        inv = data.cloudwatch_inventory()
    except QueryError as err:
        st.caption(f"CloudWatch metric and alarm counts unavailable: {err}")
        inv = {}
    return {
        "custom_metrics": inv.get("custom_metrics", 0),
        "standard_alarms": inv.get("standard", 0),
        "anomaly_alarms": inv.get("anomaly", 0),
        "monitor_metrics_per_run": len(cat.metrics),
    }


def estimate() -> None:
    end = data.now_aligned(300)
    start = align(end, 86400) - timedelta(days=days - 1)
    frame = data.metrics("usage", start, end, 86400)
    per_day = daily_usage(frame, res, **inventory())
    if not per_day:
        st.info("No usage metrics in this period.")
        return
    rows = []
    for day, usage in per_day.items():
        for service, usd in cost.by_service(cost.estimate(usage)).items():
            rows.append({"day": day, "service": service, "usd": usd})
    long = pd.DataFrame(rows)
    chart = (
        alt.Chart(long, title="Estimated daily cost by service")
        .mark_bar()
        .encode(
            x=alt.X("yearmonthdate(day):T", title=None),
            y=alt.Y("sum(usd):Q", title="USD"),
            color=alt.Color("service:N", title=None),
            tooltip=["day:T", "service:N", alt.Tooltip("usd:Q", format="$.4f")],
        )
        .properties(height=300)
    )
    st.altair_chart(chart, width="stretch")
    full_days = sorted(d for d in per_day if d < pd.Timestamp(align(end, 86400)))
    last = full_days[-1] if full_days else max(per_day)
    lines = cost.estimate(per_day[last])
    total = cost.total(lines)
    per_1000 = cost.cost_per_1000_requests(total, per_day[last].api_requests)
    cols = st.columns(3)
    cols[0].metric(f"Estimated cost on {last:%Y-%m-%d}", f"${total:,.4f}", border=True)
    cols[1].metric(
        "Cost per 1,000 API requests", "—" if per_1000 is None else f"${per_1000:,.5f}", border=True
    )
    cols[2].metric("API requests that day", f"{per_day[last].api_requests:,.0f}", border=True)
    table = pd.DataFrame([line.model_dump() for line in lines if line.quantity > 0])
    st.dataframe(
        table,
        hide_index=True,
        width="stretch",
        column_config={"usd": st.column_config.NumberColumn("USD", format="$%.5f")},
    )


def rightsizing() -> None:
    end = data.now_aligned(300)
    frame = data.metrics("usage", end - timedelta(days=1), end, 86400)
    try:
        curve = data.power_curve()
    except PowerCurveError as err:
        st.warning(
            f"The power-tuning curve cannot be read, so it is not used: {err}", icon=":material/warning:"
        )
        curve = None
    if curve is None:
        st.info(
            "No power-tuning curve in this checkout "
            "(`python -m benchmarks bench_power_tuning` measures one). "
            "The suggestions below come from peak memory alone and assume the duration does not change with "
            "memory, which is wrong for CPU-bound code: Lambda's CPU share scales with memory.",
            icon=":material/info:",
        )
    else:
        st.caption(
            f"Suggestions from the memory → duration curve measured by `bench_power_tuning` on "
            f"{curve.measured_at:%Y-%m-%d %H:%M} UTC (CPU limit: {curve.cpu_limit}): each size's duration is "
            "this deployment's average duration scaled by the curve, the cheapest size that fits the peak "
            "memory with 30 % headroom is suggested. The curve was measured on a workstation, not on Lambda: "
            "its shape, not its milliseconds, is what carries over."
        )
    rows = []
    missing = []
    for fn in res.functions:
        reports = data.lambda_reports(fn.key)
        if reports.empty:
            missing.append(fn.key)
            continue
        invocations = frame.total(f"usage:lambda:{fn.key}:invocations")
        memory_mb = int(reports["memory_mb"].iloc[-1]) or fn.memory_mb
        max_used_mb = float(reports["max_used_mb"].max())
        avg_ms = float(reports["duration_ms"].mean())
        fn_curve = curve.function(fn.key) if curve is not None else None
        measured = (
            None
            if fn_curve is None
            else cost.right_size_with_curve(
                function=fn.name,
                memory_mb=memory_mb,
                max_used_mb=max_used_mb,
                avg_duration_ms=avg_ms,
                invocations_per_day=invocations,
                curve=fn_curve,
            )
        )
        if measured is not None:
            row = {
                "suggested (MB)": measured.suggested_mb,
                "fastest (MB)": measured.fastest_mb,
                "duration now (ms)": measured.duration_ms_now,
                "duration suggested (ms)": measured.duration_ms_suggested,
                "monthly now": measured.monthly_usd_now,
                "monthly suggested": measured.monthly_usd_suggested,
                "basis": "measured curve",
                "note": measured.note,
            }
        else:
            peak = cost.right_size(
                function=fn.name,
                memory_mb=memory_mb,
                max_used_mb=max_used_mb,
                avg_duration_ms=avg_ms,
                invocations_per_day=invocations,
            )
            why = (
                "no curve"
                if curve is None
                else ("not in the curve" if fn_curve is None else f"{memory_mb} MB outside the curve's sizes")
            )
            row = {
                "suggested (MB)": peak.suggested_mb,
                "fastest (MB)": None,
                "duration now (ms)": avg_ms,
                "duration suggested (ms)": avg_ms,
                "monthly now": peak.monthly_usd_now,
                "monthly suggested": peak.monthly_usd_suggested,
                "basis": f"peak memory only ({why})",
                "note": peak.note,
            }
        rows.append({"function": fn.key, "memory (MB)": memory_mb, "peak used (MB)": max_used_mb} | row)
    if rows:
        st.dataframe(
            pd.DataFrame(rows),
            hide_index=True,
            width="stretch",
            column_config={
                "duration now (ms)": st.column_config.NumberColumn(format="%.1f"),
                "duration suggested (ms)": st.column_config.NumberColumn(format="%.1f"),
                "monthly now": st.column_config.NumberColumn(format="$%.4f"),
                "monthly suggested": st.column_config.NumberColumn(format="$%.4f"),
            },
        )
    if missing:
        st.info(
            "No Lambda REPORT lines (duration and memory used) in the last 24 h for: "
            + ", ".join(missing)
            + ".",
            icon=":material/info:",
        )


def monitor_vs_alarms() -> None:
    cat = specs.catalog(res, 300)
    mon = res.function("monitor")
    end = data.now_aligned(300)
    frame = data.metrics("usage", end - timedelta(days=1), end, 86400)
    runs = frame.total("usage:lambda:monitor:invocations")
    duration = frame.total("usage:lambda:monitor:duration")
    avg_ms = duration / runs if runs else 3000.0
    comparison = cost.monitor_vs_anomaly_alarms(
        series=len(cat.series),
        raw_metrics=len(cat.metrics),
        period_s=300,
        avg_duration_ms=avg_ms,
        memory_mb=mon.memory_mb if mon else 1024,
    )
    cols = st.columns(2)
    cols[0].metric("Fleetscope monitor, per month", f"${comparison.monitor_total_usd:,.2f}", border=True)
    cols[1].metric(
        f"CloudWatch anomaly-detection alarms for the same {comparison.series} series",
        f"${comparison.anomaly_alarms_usd:,.2f}",
        border=True,
    )
    st.caption(
        f"Monitor: every 5 minutes ({comparison.runs_per_month:,.0f} runs/month), Lambda "
        f"${comparison.monitor_lambda_usd:,.2f} (avg {avg_ms:,.0f} ms{'' if runs else ', assumed'}), "
        f"GetMetricData ${comparison.monitor_get_metric_data_usd:,.2f} "
        f"({comparison.raw_metrics} metrics per run), Scheduler ${comparison.monitor_scheduler_usd:,.2f}, "
        f"DynamoDB state ${comparison.monitor_dynamodb_usd:,.2f}. "
        "Alarms: each anomaly-detection alarm bills as 3 standard alarm metrics ($0.10 each), i.e. $0.30 per "
        "alarm-month, one alarm per watched series (CloudWatch pricing page)."
    )


def actuals() -> None:
    if target.is_sandbox:
        st.caption("Cost Explorer actuals appear here when the dashboard points at AWS.")
        return
    try:
        frame = data.cost_explorer(14)
    except QueryError as err:
        if err.kind == "denied":
            st.warning(
                "Cost Explorer actuals are not shown: this role may not call ce:GetCostAndUsage. " + str(err),
                icon=":material/lock:",
            )
            return
        raise
    if frame.empty:
        st.info("Cost Explorer has no cost for these days.")
        return
    chart = (
        alt.Chart(frame, title="Cost Explorer: actual daily cost by service (whole account)")
        .mark_bar()
        .encode(x=alt.X("day:T", title=None), y=alt.Y("sum(usd):Q", title="USD"), color="service:N")
        .properties(height=260)
    )
    st.altair_chart(chart, width="stretch")


st.subheader("Estimate")
ui.section("Cost estimate", estimate)
st.subheader("Lambda memory right-sizing")
ui.section("Right-sizing", rightsizing)
st.subheader("Monitor vs CloudWatch anomaly detection")
ui.section("Monitor cost", monitor_vs_alarms)
st.subheader("Actuals")
ui.section("Cost Explorer", actuals)
