"""Fleetscope dashboard: `streamlit run dashboard/app.py`.

Routes with `st.navigation`; each page under `dashboard/views/` only draws and has a stable URL
(`/overview`, `/fleet`, `/health`, `/incidents`, `/deployments`, `/cost`, `/cloudwatch`, `/sandbox`;
the root opens Overview). With no target configured and no sandbox running, an embedded sandbox is
started (see `dashboard.settings`): until its API answers every page says so and waits; while it
calibrates and writes its history a banner shows the phase and its progress, and the page redraws
itself when the sandbox is live. If the target cannot be resolved, the page shows why and the
navigation stays.
"""

from __future__ import annotations

import time

import streamlit as st

from dashboard import data
from dashboard.target import Target, TargetError
from sandbox.home import SandboxState

st.set_page_config(page_title="Fleetscope", page_icon=":material/local_taxi:", layout="wide")

# Every page and its URL path (`st.Page(url_path=...)`): links and bookmarks rely on these.
PAGES = (
    ("views/overview.py", "Overview", ":material/dashboard:", "overview"),
    ("views/fleet.py", "Fleet", ":material/local_taxi:", "fleet"),
    ("views/health.py", "Service health", ":material/monitor_heart:", "health"),
    ("views/incidents.py", "Incidents", ":material/notifications_active:", "incidents"),
    ("views/deployments.py", "Deployments", ":material/rocket_launch:", "deployments"),
    ("views/cost.py", "Cost", ":material/payments:", "cost"),
    ("views/cloudwatch.py", "CloudWatch dashboards", ":material/space_dashboard:", "cloudwatch"),
)
SANDBOX_PAGE = ("views/sandbox.py", "Sandbox", ":material/science:", "sandbox")
EXPECTED_START_S = 10.0  # how long the emulator and the API usually take to answer (for the bar)


def _pages(with_sandbox: bool) -> list[st.Page]:
    pages = [st.Page(path, title=title, icon=icon, url_path=url) for path, title, icon, url in PAGES]
    if with_sandbox:
        path, title, icon, url = SANDBOX_PAGE
        pages.append(st.Page(path, title=title, icon=icon, url_path=url))
    # The root URL opens Overview at its own URL, so `/overview` works as well as `/`.
    root = st.Page(
        lambda: st.switch_page(pages[0]),
        title="Fleetscope",
        url_path="home",
        default=True,
        visibility="hidden",
    )
    return [root, *pages]


def _phase_text(state: SandboxState) -> str:
    if state.phase == "calibrating":
        what = "Calibrating: measuring the sandbox's own latencies before writing its history"
    else:
        what = "Backfilling: writing 14 days of metric history"
    detail = f" — {state.detail}" if state.detail else ""
    return f"{what}{detail}. The charts fill in by themselves when the sandbox is live."


def _phase_banner(state: SandboxState) -> None:
    """While the sandbox calibrates or backfills: its phase and progress, redrawn every 2 s; when it
    turns live, cached (empty) results are dropped and the whole page redraws."""

    @st.fragment(run_every=2)
    def banner() -> None:
        current = data.sandbox_phase()
        if current is None or current.phase == "live":
            st.cache_data.clear()
            st.rerun()
        st.info(_phase_text(current), icon=":material/hourglass_top:")
        st.progress(current.progress, text=current.detail or current.phase)

    if state.phase != "live":
        banner()


target: Target | None = None
starting: data.SandboxStartingError | None = None
problem: str | None = None
try:
    target = data.get_target()
except data.SandboxStartingError as err:
    starting = err
except TargetError as err:
    problem = str(err)
except Exception as err:  # credentials or network trouble while resolving the target
    problem = f"Cannot resolve what to show: {type(err).__name__}: {err}"

nav = st.navigation(_pages(with_sandbox=target is None or target.is_sandbox))
with st.sidebar:
    if target is not None:
        st.caption(f"Showing: {target.describe()}")
        for note in target.notes:
            st.caption(f":material/info: {note}")
    elif starting is not None:
        st.caption("Showing: an embedded sandbox, starting")
    if st.button("Refresh data", icon=":material/refresh:"):
        st.cache_data.clear()

if starting is not None:
    st.title("Fleetscope")
    st.info(
        "No sandbox was running, so the dashboard is starting one "
        f"(`fleetscope sandbox up --no-dashboard`, log: `{starting.log_path}`).",
        icon=":material/rocket_launch:",
    )
    st.progress(min(starting.elapsed_s / EXPECTED_START_S, 0.95), text=str(starting))
    time.sleep(1)
    st.rerun()
elif problem is not None:
    st.title("Fleetscope")
    st.error(problem, icon=":material/cloud_off:")
else:
    phase = data.sandbox_phase()
    if phase is not None:
        _phase_banner(phase)
    nav.run()
