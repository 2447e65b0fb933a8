"""Fleet: where the cars are and what they are doing."""

from __future__ import annotations

from datetime import timedelta

import altair as alt
import pandas as pd
import pydeck as pdk
import streamlit as st

from dashboard import city, data, ui
from dashboard.queries import status_mix

st.title("Fleet")


def city_layers() -> list[pdk.Layer]:
    """The service area's districts, their names and the main roads (shipped data, no tile server)."""
    return [
        pdk.Layer(
            "GeoJsonLayer",
            data={"type": "FeatureCollection", "features": city.districts()},
            stroked=True,
            filled=True,
            get_fill_color=[96, 125, 139, 18],
            get_line_color=[96, 125, 139, 160],
            line_width_min_pixels=1,
        ),
        pdk.Layer(
            "PathLayer",
            data=city.roads(),
            get_path="path",
            get_color=[255, 152, 0, 170],
            width_min_pixels=2,
        ),
        pdk.Layer(
            "TextLayer",
            data=city.district_labels(),
            get_position="position",
            get_text="name",
            get_size=12,
            get_color=[69, 90, 100, 200],
        ),
    ]


def fleet_map(cars: pd.DataFrame) -> None:
    located = cars.dropna(subset=["lat", "lon"]).copy()
    if located.empty:
        st.info("No car has reported a position yet.")
        return
    located["color"] = located["status"].map(lambda s: list(ui.STATUS_COLORS.get(str(s), (0, 0, 0))))
    layer = pdk.Layer(
        "ScatterplotLayer",
        data=located[["car_id", "model", "status", "battery_level", "lat", "lon", "color"]],
        get_position="[lon, lat]",
        get_fill_color="color",
        get_radius=60,
        radius_min_pixels=4,
        pickable=True,
    )
    view = pdk.ViewState(
        latitude=float(located["lat"].mean()), longitude=float(located["lon"].mean()), zoom=11
    )
    st.pydeck_chart(
        pdk.Deck(
            layers=[*city_layers(), layer],
            initial_view_state=view,
            # A light basemap when its tiles can be fetched; offline, the city layers alone.
            map_provider="carto",
            map_style=pdk.map_styles.CARTO_LIGHT,
            tooltip={"text": "{car_id} · {model}\n{status} · battery {battery_level}%"},
        ),
        height=420,
    )
    counts = located["status"].value_counts()
    legend = [
        f":{ui.STATUS_MARKDOWN[status]}[●] **{status.replace('_', ' ')}** {int(counts.get(status, 0))}"
        for status in ui.STATUS_COLORS
    ]
    st.caption(" · ".join(legend))


def _status_scale() -> alt.Scale:
    """The map's colour per status, for every chart that colours by status."""
    return alt.Scale(domain=list(ui.STATUS_COLORS), range=[f"rgb{c}" for c in ui.STATUS_COLORS.values()])


def mix_and_trips(cars: pd.DataFrame) -> None:
    events = data.status_events()
    end = data.now_aligned(300)
    start = end - timedelta(hours=24)
    if events.empty:
        st.info("No status changes recorded in the outbox yet: the status mix over time needs them.")
        return
    covered_from = max(pd.Timestamp(start), events["at"].min().floor("h"))
    mix = status_mix(cars, events, start=covered_from.to_pydatetime(), freq="15min")
    cols = st.columns(2)
    with cols[0]:
        chart = (
            alt.Chart(mix, title="Status mix over time")
            .mark_area()
            .encode(
                x=alt.X("at:T", title=None),
                y=alt.Y("cars:Q", stack="zero", title="cars"),
                color=alt.Color("status:N", scale=_status_scale()),
                tooltip=["at:T", "status:N", "cars:Q"],
            )
            .properties(height=260)
        )
        st.altair_chart(chart, width="stretch")
    with cols[1]:
        trips = events[(events["to_status"] == "in_trip") & (events["at"] >= covered_from)]
        per_hour = trips.set_index("at").resample("1h").size().rename("trips").reset_index()
        per_hour["until"] = per_hour["at"] + pd.Timedelta(hours=1)
        chart = (
            alt.Chart(per_hour, title="Trips started per hour")
            .mark_bar(stroke="white", strokeWidth=1)
            .encode(
                x=alt.X("at:T", title=None),
                x2="until:T",
                y=alt.Y("trips:Q", title="trips"),
                y2=alt.datum(0),  # with x2 and no y2, Vega-Lite draws each bar as a line at its value
                tooltip=["at:T", "trips:Q"],
            )
            .properties(height=260)
        )
        st.altair_chart(chart, width="stretch")
    st.caption(f"From the service's status-change events since {covered_from:%Y-%m-%d %H:%M} UTC.")


def battery(cars: pd.DataFrame) -> None:
    live = cars[cars["status"] != "retired"].dropna(subset=["battery_level"])
    chart = (
        alt.Chart(live, title="Battery level")
        .mark_bar()
        .encode(
            x=alt.X("battery_level:Q", bin=alt.Bin(step=10), title="state of charge (%)"),
            y=alt.Y("count():Q", title="cars"),
            color=alt.Color("status:N", title=None, scale=_status_scale()),
        )
        .properties(height=240)
    )
    st.altair_chart(chart, width="stretch")
    low = int((live["battery_level"] < 20).sum())
    st.caption(f"{low} car(s) below 20% charge.")


def table(cars: pd.DataFrame) -> None:
    query = st.text_input("Search cars", placeholder="car id, VIN, model or status", key="fleet_search")
    statuses = st.multiselect("Status", sorted(cars["status"].dropna().unique()), key="fleet_status")
    shown = cars
    if query:
        needle = query.strip().lower()
        hay = cars[["car_id", "vin", "model", "status"]].astype(str).apply(lambda col: col.str.lower())
        shown = cars[hay.apply(lambda col: col.str.contains(needle, regex=False)).any(axis=1)]
    if statuses:
        shown = shown[shown["status"].isin(statuses)]
    st.dataframe(
        shown,
        hide_index=True,
        width="stretch",
        column_config={
            "battery_level": st.column_config.ProgressColumn(
                "battery", min_value=0, max_value=100, format="%.0f%%"
            ),
            "bike_rack": st.column_config.CheckboxColumn("bike rack"),
        },
    )
    st.caption(f"{len(shown)} of {len(cars)} cars")


def page() -> None:
    cars = data.cars()
    if cars.empty:
        st.info(
            "The inventory is empty: register cars through the API (the sandbox's fleet does it for you)."
        )
        return
    st.subheader("Map")
    ui.section("Map", lambda: fleet_map(cars))
    st.subheader("Activity")
    ui.section("Status mix and trips", lambda: mix_and_trips(cars))
    st.subheader("Battery")
    ui.section("Battery distribution", lambda: battery(cars))
    st.subheader("Cars")
    ui.section("Cars table", lambda: table(cars))


ui.section("Fleet", page)
