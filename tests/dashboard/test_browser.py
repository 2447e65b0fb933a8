"""The dashboard in a real Chromium: every page loads, its charts render, a screenshot per page."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.dashboard.conftest import SeededSandbox

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "dashboard"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# url path -> what must be drawn there
PAGES: dict[str, list[str]] = {
    "overview": ['[data-testid="stMetric"]', '[data-testid="stMetric"] svg'],
    "fleet": [
        '[data-testid="stDeckGlJsonChart"]',
        '[data-testid="stVegaLiteChart"]',
        '[data-testid="stDataFrame"]',
    ],
    "health": ['[data-testid="stVegaLiteChart"]'],
    "incidents": ['[data-testid="stVegaLiteChart"]', '[data-testid="stCode"]'],
    "deployments": ['[data-testid="stVegaLiteChart"]', '[data-testid="stDataFrame"]'],
    "cost": ['[data-testid="stVegaLiteChart"]', '[data-testid="stDataFrame"]'],
    "sandbox": ['[data-testid="stButton"]', '[data-testid="stExpander"]'],
}

# True once the page's script run has finished: Streamlit shows its status widget only while running.
SCRIPT_DONE = "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium (.ci/run installs it)"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def dashboard_url(seeded_sandbox: SeededSandbox) -> Iterator[str]:
    """`streamlit run dashboard/app.py` as a subprocess pointed at the seeded emulator; stopped by PID."""
    port = free_port()
    env = os.environ | {
        "FLEETSCOPE_TARGET": "sandbox",
        "FLEETSCOPE_HOME": str(seeded_sandbox.home),
        "PYTHONPATH": str(ROOT),
    }
    log = (
        (ARTIFACTS.parent / "dashboard-server.log").open("w")
        if ARTIFACTS.parent.mkdir(exist_ok=True) or True
        else None
    )
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "streamlit", "run", str(ROOT / "dashboard" / "app.py"),
            "--server.headless", "true", "--server.address", "127.0.0.1", "--server.port", str(port),
            "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
        ],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"streamlit did not start (exit {proc.poll()}); see {log.name}")
            time.sleep(0.3)
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        log.close()


def test_every_page_renders_its_charts_in_chromium(dashboard_url: str) -> None:
    from playwright.sync_api import sync_playwright

    if ARTIFACTS.exists():
        shutil.rmtree(ARTIFACTS)
    ARTIFACTS.mkdir(parents=True)
    timings: dict[str, float] = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            for path, selectors in PAGES.items():
                started = time.perf_counter()
                page.goto(f"{dashboard_url}/{path}", wait_until="domcontentloaded")
                page.wait_for_selector('[data-testid="stApp"]', timeout=60_000)
                for selector in selectors:
                    page.wait_for_selector(selector, state="attached", timeout=120_000)
                # Wait until the script has finished (no "running" indicator) and charts have drawn.
                page.wait_for_function(SCRIPT_DONE, timeout=120_000)
                if any("VegaLite" in s for s in selectors):
                    page.wait_for_selector(
                        '[data-testid="stVegaLiteChart"] canvas, [data-testid="stVegaLiteChart"] svg',
                        timeout=60_000,
                    )
                page.wait_for_timeout(800)
                timings[path] = time.perf_counter() - started
                # its own stable URL (a page may add its selection to the query string)
                assert urlsplit(page.url).path.rstrip("/") == f"/{path}", (path, page.url)
                exceptions = page.locator('[data-testid="stException"]').count()
                assert exceptions == 0, f"page /{path} shows an exception"
                for selector in selectors:
                    assert page.locator(selector).count() > 0, (path, selector)
                page.screenshot(path=str(ARTIFACTS / f"{path}.png"), full_page=True)
        finally:
            browser.close()
    for name in timings:
        assert (ARTIFACTS / f"{name}.png").stat().st_size > 10_000, name
    print("browser render times (s):", {k: round(v, 1) for k, v in timings.items()})
