"""End to end: an error burst on cars-api, on a sandbox of its own.

One `fleetscope sandbox up --no-dashboard` subprocess serves the module, in real time (the monitor
runs every 30 s on 1-minute periods). After the warm-up (no alert), half of the cars-api invocations
fail for 3 minutes: detected within 5 minutes of its start as exactly one OPEN alert, the cars-api
service's incident (its API 5XX, its function's errors and both error rates are one group), which
resolves after the injection ends; /health answered all along (an injected 502 is an answer).

It runs beside `test_e2e_incidents.py` (`make test-e2e`: `pytest -n 2 --dist loadfile`): the latency
regression there is a cars-api fault too, and one after the other on one sandbox would add the
latency incident's resolution (~7 minutes) to the suite.
"""

from __future__ import annotations

import pytest
from e2e_sandbox import (
    Fault,
    SandboxProcess,
    assert_api_answered,
    describe,
    detected_once_and_resolved,
    ran_their_course,
    warm_up,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(1800)]

CARS_API = "service:cars-api"


@pytest.fixture(scope="module")
def error_burst(sandbox: SandboxProcess) -> Fault:
    """After a warm-up without any alert: 50 % of cars-api invocations fail for 3 minutes."""
    warmup = warm_up(sandbox)
    assert warmup == [], f"alerts without any incident:\n{describe(warmup)}"
    return Fault.inject(sandbox, "error-burst", CARS_API, minutes=3, intensity=0.5)


def test_an_error_burst_is_detected_within_5_minutes_and_resolves(error_burst: Fault) -> None:
    detected_once_and_resolved(error_burst)


def test_the_api_kept_answering_throughout(sandbox: SandboxProcess, error_burst: Fault) -> None:
    # Given the error burst has run its course (from the sandbox's start)
    ran_their_course(error_burst)
    # Then
    assert_api_answered(sandbox)
