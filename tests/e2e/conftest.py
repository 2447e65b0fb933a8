"""One real sandbox per e2e test module, its figures, and the `E2E FIGURES` line at the end of a run.

Each module's tests share that module's sandbox and are correct alone or in any order (each waits
for its own outcome against absolute deadlines). `make test-e2e` runs the modules side by side
(`pytest -n 2 --dist loadfile`): two sandboxes at once on the two cores, so the suite takes about
as long as its longest module.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_sandbox import SandboxProcess

FIGURES: dict[str, dict[str, Any]] = {}  # per test module, filled by its tests


@pytest.fixture(scope="module")
def sandbox(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SandboxProcess]:
    """`fleetscope sandbox up` for this module; /health is polled from the start to the end."""
    home = tmp_path_factory.mktemp("e2e-home")
    # A short schedule: the monitor scores each 1-minute period within ~30 s of its settle time
    # (detection then takes 2 anomalous minutes + up to 40 s, well inside the 5 minutes asked for).
    proc = SandboxProcess(Path(home), monitor_interval_s=30)
    FIGURES[request.module.__name__] = proc.figures
    started = time.monotonic()
    try:
        proc.start()
        proc.figures["sandbox_live_with_fleet_s"] = round(time.monotonic() - started, 1)
        yield proc
    finally:
        proc.stop()


@pytest.fixture(autouse=True)
def _report_figures(request: pytest.FixtureRequest) -> Iterator[None]:
    """Attach the module's figures to the test's report (xdist carries them to the main process)."""
    yield
    figures = FIGURES.get(request.module.__name__)
    if figures:
        payload = json.dumps({request.module.__name__: figures}, default=str)
        request.node.user_properties.append(("e2e_figures", payload))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    merged: dict[str, dict[str, Any]] = {}
    for reports in terminalreporter.stats.values():
        for report in reports:
            for name, value in getattr(report, "user_properties", ()):
                if name == "e2e_figures":
                    for module, figures in json.loads(value).items():
                        merged.setdefault(module, {}).update(figures)
    if merged:
        terminalreporter.write_line(f"E2E FIGURES {json.dumps(merged, sort_keys=True)}")
