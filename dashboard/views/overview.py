"""Overview: the headline figures of the chosen window, each against the window before it."""

from __future__ import annotations

import calendar
from datetime import timedelta

import pandas as pd
import streamlit as st

from dashboard import cost, data, specs, ui
from dashboard.analysis import Kpi, fmt_money_delta, fmt_number, period_for, safe_ratio
from dashboard.queries import QueryError, align, status_mix
from dashboard.usage import daily_usage

st.title("Overview")
label, hours = ui.window_picker("overview_window", "24 h", ("1 h", "6 h", "24 h", "7 d", "14 d"))
target = data.get_target()
ids = specs.api_ids(target.resources)
window_s = int(hours * 3600)
end = data.now_aligned(60)
boundary = end - timedelta(seconds=window_s)
st.caption(f"Last {label} (to {end:%Y-%m-%d %H:%M} UTC) compared with the {label} before.")


def traffic() -> None:
    kpi = data.metrics("overview", end - timedelta(seconds=2 * window_s), end, window_s)
    spark = data.metrics("overview", boundary, end, period_for(hours))

    def pair(series_id: str) -> Kpi:
        s = kpi.series(series_id)
        prev = s[s.index < pd.Timestamp(boundary)]
        cur = s[s.index >= pd.Timestamp(boundary)]
        return Kpi(
            current=float(cur.sum()) if len(cur) else None, previous=float(prev.sum()) if len(prev) else None
        )

    requests, e4, e5 = pair(ids["count"]), pair(ids["4xx"]), pair(ids["5xx"])
    err_rate = Kpi(
        current=safe_ratio(e5.current or 0, requests.current or 0),
        previous=safe_ratio(e5.previous or 0, requests.previous or 0),
    )
    p99 = pair(ids["p99"])
    cols = st.columns(3)
    counts = spark.series(ids["count"])
    cols[0].metric(
        "API requests",
        fmt_number(requests.current),
        delta=None if requests.delta_pct is None else f"{requests.delta_pct:+.1f}%",
        chart_data=counts.to_list(),
        border=True,
    )
    rate_series = (spark.series(ids["5xx"]) / counts.replace(0, float("nan"))).fillna(0) * 100
    cols[1].metric(
        "5XX error rate",
        "—" if err_rate.current is None else f"{err_rate.current * 100:.2f}%",
        delta=None if err_rate.delta is None else f"{err_rate.delta * 100:+.2f} pp",
        delta_color="inverse",
        chart_data=rate_series.to_list(),
        border=True,
        help=f"4XX responses in the window: {fmt_number(e4.current)} (client errors, not counted here).",
    )
    if ids["p99"] in kpi.unavailable:
        cols[2].metric("p99 latency", "—", border=True, help=kpi.unavailable[ids["p99"]])
    else:
        cols[2].metric(
            "p99 latency",
            fmt_number(p99.current, " ms"),
            delta=None if p99.delta is None else f"{p99.delta:+.0f} ms",
            delta_color="inverse",
            chart_data=spark.series(ids["p99"]).to_list(),
            border=True,
        )


def fleet() -> None:
    cars = data.cars()
    if cars.empty:
        st.info("No cars in the inventory yet.")
        return
    try:
        events = data.status_events(hours)
    except QueryError:  # no status history: today's counts still show, without deltas
        events = pd.DataFrame(columns=["at", "car_id", "from_status", "to_status"])
    mix = status_mix(cars, events, start=boundary, freq=f"{max(period_for(hours), 300)}s")
    then = mix[mix["at"] == mix["at"].min()].set_index("status")["cars"] if not mix.empty else pd.Series()
    statuses = [s for s in ui.STATUS_COLORS if s != "retired"]
    now_counts = cars["status"].value_counts()
    cols = st.columns(len(statuses))
    for col, status in zip(cols, statuses, strict=True):
        cur = int(now_counts.get(status, 0))
        prev = int(then.get(status, cur)) if len(then) else None
        col.metric(
            f"Cars {status.replace('_', ' ')}",
            cur,
            delta=None if prev is None else cur - prev,
            delta_color="off",
            chart_data=mix[mix["status"] == status]["cars"].to_list() if not mix.empty else None,
            chart_type="area",
            border=True,
        )


def incidents_and_cost() -> None:
    cols = st.columns(2)
    with cols[0]:
        ui.section("Open incidents", _incidents)
    with cols[1]:
        ui.section("Cost", _cost)


def _incidents() -> None:
    frame = data.incidents()
    open_now = int((frame["status"] == "open").sum())
    opened_before = frame[(frame["opened_at"] < pd.Timestamp(boundary))]
    open_then = int(
        (opened_before["resolved_at"].isna() | (opened_before["resolved_at"] >= pd.Timestamp(boundary))).sum()
    )
    st.metric("Open incidents", open_now, delta=open_now - open_then, delta_color="inverse", border=True)


def _cost() -> None:
    now = data.now_aligned(300)
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    start = min(month_start, align(now, 86400) - timedelta(days=1))
    frame = data.metrics("usage", start, now, 86400)
    inventory = _inventory()
    per_day = daily_usage(frame, target.resources, **inventory)
    daily = {day: cost.total(cost.estimate(usage)) for day, usage in per_day.items()}
    mtd = sum(v for day, v in daily.items() if day >= pd.Timestamp(month_start))
    elapsed = (now - month_start).total_seconds() / 86400
    days_in_month = calendar.monthrange(now.year, now.month)[1]
    forecast = cost.month_end_forecast(mtd, elapsed, days_in_month)
    values = [daily[d] for d in sorted(daily)]
    st.metric(
        "Month-to-date cost (estimate)",
        f"${mtd:,.2f}",
        delta=f"{fmt_money_delta(values[-2] - values[-3])} yesterday vs the day before"
        if len(values) >= 3
        else None,
        delta_color="inverse",
        chart_data=values,
        chart_type="bar",
        border=True,
        help=f"Month-end forecast at the current run-rate: ${forecast:,.2f}. "
        f"List prices of {cost.PRICES_AS_OF:%Y-%m-%d}, {cost.REGION}.",
    )
    st.caption(f"Month-end forecast: **${forecast:,.2f}** (linear run-rate)")


def _inventory() -> dict[str, int]:
    try:
        inv = data.cloudwatch_inventory()
    except QueryError:  # the estimate then leaves out custom metrics and alarms
        inv = {}
    cat = specs.catalog(target.resources, 300)
    return {
        "custom_metrics": inv.get("custom_metrics", 0),
        "standard_alarms": inv.get("standard", 0),
        "anomaly_alarms": inv.get("anomaly", 0),
        "monitor_metrics_per_run": len(cat.metrics),
    }


st.subheader("Traffic")
ui.section("Traffic", traffic)
st.subheader("Fleet")
ui.section("Fleet", fleet)
st.subheader("Incidents and cost")
incidents_and_cost()
