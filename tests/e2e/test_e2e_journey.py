"""The README's user journey, its commands verbatim, in a clean environment.

A new user's terminal: a temporary HOME, PATH with the project's `.venv/bin` first (as after `make
install` and activating it), the ports the README documents set to 0 or a free port (others run
sandboxes on this machine), `FLEETSCOPE_HOME` in a temporary directory (so a developer's own
`.fleetscope` in the checkout is never touched), and nothing else. Then, as the README says:

    fleetscope sandbox up --no-dashboard        # headless start, in its own process
    curl http://127.0.0.1:<api port>/health
    fleetscope incident latency --minutes 3     # the default, +3 s: clear of any band on a loaded machine
    fleetscope alerts                           # until the OPEN alert for service:cars-api
    streamlit run dashboard/app.py              # a second process beside the running sandbox

and Chromium (Playwright) opens every page at its own URL: the dashboard shows the running sandbox
(not an embedded one), its fleet on the Fleet page, the incident on the Incidents page, and no page
shows a traceback or "Page not found". Finally both processes are stopped (SIGTERM/SIGINT, as a
terminal's Ctrl-C) and nothing is left listening on their ports. Every wait polls a condition
against a deadline.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import pytest

from sandbox.aws.inbox import attribute

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
CHROMIUM = "/usr/bin/chromium"
PAGES = ("overview", "fleet", "health", "incidents", "cost", "sandbox")
SCRIPT_DONE = "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"
T = TypeVar("T")

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium (.ci/run installs it)"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def poll(condition: Callable[[], T], timeout_s: float, what: str, interval_s: float = 1.0) -> T:
    deadline = time.monotonic() + timeout_s
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s:.0f} s: {what}")
        time.sleep(interval_s)


class Terminal:
    """A clean shell environment; runs the README's commands in the checkout."""

    def __init__(self, tmp: Path) -> None:
        (tmp / "home").mkdir()
        self.fleetscope_home = tmp / "fleetscope"
        self.dashboard_port = free_port()
        self.env = {
            "HOME": str(tmp / "home"),
            "PATH": f"{BIN}:/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "FLEETSCOPE_HOME": str(self.fleetscope_home),
            "FLEETSCOPE_API_PORT": "0",
            "FLEETSCOPE_EMULATOR_PORT": "0",
            # Streamlit's own settings for `streamlit run` (the command stays verbatim)
            "STREAMLIT_SERVER_PORT": str(self.dashboard_port),
            "STREAMLIT_SERVER_ADDRESS": "127.0.0.1",
            "STREAMLIT_SERVER_HEADLESS": "true",
            "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
        }
        self.processes: list[subprocess.Popen[bytes]] = []

    def run(self, command: str, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            command, shell=True, cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=timeout_s
        )

    def start(self, command: str, log: Path) -> subprocess.Popen[bytes]:
        with log.open("wb") as out:
            proc = subprocess.Popen(
                command.split(),
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.processes.append(proc)
        return proc

    def stop_all(self) -> None:
        """Ctrl-C for each, newest first; SIGKILL to the group only if one does not stop in 60 s."""
        for proc in reversed(self.processes):
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=10)


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Terminal]:
    term = Terminal(tmp_path)
    try:
        yield term
    finally:
        term.stop_all()


def _alerts(term: Terminal) -> list[dict[str, Any]]:
    out = term.run("fleetscope alerts").stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def _cars_api_open(term: Terminal) -> dict[str, Any] | None:
    for envelope in _alerts(term):
        if attribute(envelope, "kind") == "OPEN" and attribute(envelope, "resource") == "service:cars-api":
            return envelope
    return None


def test_the_readme_journey_from_a_headless_sandbox_to_the_dashboard(
    terminal: Terminal, tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    figures: dict[str, float] = {}
    started = time.monotonic()
    # Given a headless sandbox started as the README says
    sandbox = terminal.start("fleetscope sandbox up --no-dashboard", tmp_path / "sandbox.log")
    status = poll(
        lambda: (r := terminal.run("fleetscope sandbox status --json")).returncode == 0 and r.stdout,
        240,
        "`fleetscope sandbox status` finds the sandbox",
    )
    state = json.loads(status)
    assert state["pid"] == sandbox.pid
    api_port = int(state["api_url"].rsplit(":", 1)[1].split("/")[0])
    emulator_port = int(state["emulator_url"].rsplit(":", 1)[1].split("/")[0])
    # When the user checks the API
    health = terminal.run(f"curl -sf {state['api_url']}/health")
    assert health.returncode == 0, health.stderr
    assert json.loads(health.stdout)
    # And waits until the history is written (the state file says live), then injects an incident
    poll(
        lambda: (
            json.loads(terminal.run("fleetscope sandbox status --json").stdout or "{}").get("phase") == "live"
        ),
        240,
        "the sandbox is live with its history",
    )
    figures["live_with_history_s"] = time.monotonic() - started
    injected = terminal.run("fleetscope incident latency --minutes 3")
    assert injected.returncode == 0, injected.stderr
    injected_at = time.monotonic()
    # Then the alert arrives in `fleetscope alerts` within 6 minutes
    alert = poll(lambda: _cars_api_open(terminal), 360, "an OPEN alert for service:cars-api", interval_s=5)
    figures["alert_after_s"] = time.monotonic() - injected_at
    incident_id = json.loads(alert["Message"])["incident_id"]

    # When the dashboard is started beside it, as the README says
    dashboard = terminal.start("streamlit run dashboard/app.py", tmp_path / "dashboard.log")
    url = f"http://127.0.0.1:{terminal.dashboard_port}"
    poll(lambda: listening(terminal.dashboard_port) or dashboard.poll() is not None, 60, "streamlit listens")
    assert dashboard.poll() is None, (tmp_path / "dashboard.log").read_text()

    # Then Chromium sees every page at its own URL, the running sandbox, its fleet and the incident
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            for path in PAGES:
                page.goto(f"{url}/{path}", wait_until="domcontentloaded")
                page.wait_for_selector('[data-testid="stMain"]', timeout=60_000)
                page.wait_for_function(SCRIPT_DONE, timeout=120_000)
                if path == "fleet":
                    page.wait_for_selector('[data-testid="stDeckGlJsonChart"]', timeout=60_000)
                    page.wait_for_selector('[data-testid="stDataFrame"]', timeout=60_000)
                if path == "incidents":
                    page.get_by_text(f"Incident {incident_id}").first.wait_for(timeout=60_000)
                page.wait_for_function(SCRIPT_DONE, timeout=120_000)
                # its own URL (Service health adds its selection to the query string)
                assert urlsplit(page.url).path.rstrip("/") == f"/{path}", page.url
                assert page.locator('[data-testid="stException"]').count() == 0, f"/{path} shows a traceback"
                assert page.get_by_text("Page not found").count() == 0, path
                # the sidebar says which sandbox it shows: the running one, not one of its own
                page.locator('[data-testid="stSidebar"]').get_by_text(
                    f"running sandbox (pid {sandbox.pid})"
                ).first.wait_for(timeout=60_000)
                page.screenshot(path=str(tmp_path / f"{path}.png"), full_page=True)
        finally:
            browser.close()
    figures["journey_s"] = time.monotonic() - started

    # When everything is stopped, as with Ctrl-C in each terminal
    terminal.stop_all()
    # Then nothing is left listening and the sandbox's state file is gone
    assert sandbox.returncode == 0, (tmp_path / "sandbox.log").read_text()[-3000:]
    for port in (api_port, emulator_port, terminal.dashboard_port):
        assert not listening(port), port
    assert terminal.run("fleetscope sandbox status").returncode == 1
    print("JOURNEY FIGURES", json.dumps({k: round(v, 1) for k, v in figures.items()}))
