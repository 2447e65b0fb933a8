"""Fleetscope dashboard: `streamlit run dashboard/app.py`.

Routes with `st.navigation`; each page under `dashboard/pages/` only draws. With no target configured
and no sandbox running, an embedded sandbox is started (see `dashboard.settings`).
"""

from __future__ import annotations

import streamlit as st

from dashboard import data
from dashboard.target import TargetError

st.set_page_config(page_title="Fleetscope", page_icon=":material/local_taxi:", layout="wide")

try:
    target = data.get_target()
except TargetError as err:
    st.title("Fleetscope")
    st.error(str(err), icon=":material/cloud_off:")
    st.stop()
except Exception as err:  # credentials or network trouble while resolving the target
    st.title("Fleetscope")
    st.error(f"Cannot resolve what to show: {type(err).__name__}: {err}", icon=":material/cloud_off:")
    st.stop()

pages = [
    st.Page("pages/overview.py", title="Overview", icon=":material/dashboard:", default=True),
    st.Page("pages/fleet.py", title="Fleet", icon=":material/local_taxi:"),
    st.Page("pages/health.py", title="Service health", icon=":material/monitor_heart:"),
    st.Page("pages/incidents.py", title="Incidents", icon=":material/notifications_active:"),
    st.Page("pages/cost.py", title="Cost", icon=":material/payments:"),
]
if target.is_sandbox:
    pages.append(st.Page("pages/sandbox.py", title="Sandbox", icon=":material/science:"))

nav = st.navigation(pages)
with st.sidebar:
    st.caption(f"Showing: {target.describe()}")
    for note in target.notes:
        st.caption(f":material/info: {note}")
    if st.button("Refresh data", icon=":material/refresh:"):
        st.cache_data.clear()
nav.run()
