"""End to end: a clean run, then poison telemetry and a latency regression at once, on one sandbox.

One `fleetscope sandbox up --no-dashboard` subprocess serves the module, in real time (the monitor
runs every 30 s on 1-minute periods; nothing in the design compresses time):

1. a clean run (the warm-up and CLEAN_MINUTES after it) raises no alert;
2. then two faults start together on two services, which the monitor keeps apart (incidents are
   grouped per service, `service:<name>`):
   - poison telemetry (telemetry-ingest: a bad clock, an unknown car), posted through the API's telemetry
     route (API Gateway's SQS integration, played by the local gateway), is queued (202) and ends in the
     dead-letter queue; nothing sent is lost (sent = applied + stale + dead-lettered + still queued), and
     it is one telemetry-ingest incident that the DLQ depth opens or joins;
   - a latency regression on cars-api is detected within 5 minutes of its start as exactly one OPEN
     alert, the cars-api service's incident, which resolves after the injection ends;
3. /health answered all along (an injected 502 is an answer; a refused connection is not).

Every test waits for its own outcome (module fixtures inject; deadlines are absolute), so each is
correct alone and in any order. The error burst has a sandbox of its own (`test_e2e_error_burst.py`):
it is a cars-api fault too, and would otherwise have to wait for the latency incident to resolve.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from e2e_sandbox import (
    DETECT_WITHIN,
    Alert,
    Fault,
    SandboxProcess,
    assert_api_answered,
    describe,
    detected_once_and_resolved,
    ran_their_course,
    warm_up,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(1800)]

CLEAN_MINUTES = 3
CARS_API = "service:cars-api"
TELEMETRY_INGEST = "service:telemetry-ingest"


@pytest.fixture(scope="module")
def clean_run(sandbox: SandboxProcess) -> list[Alert]:
    """The alerts of the warm-up and of CLEAN_MINUTES after it, with nothing injected."""
    # Given the sandbox live with its history, after the first scored minutes of live traffic
    warm_up(sandbox)
    # When nothing is injected for CLEAN_MINUTES
    clean_to = datetime.now(UTC) + timedelta(minutes=CLEAN_MINUTES)
    sandbox.wait_scored(clean_to, timeout_s=CLEAN_MINUTES * 60 + 300)
    return sandbox.alerts()


@dataclass(frozen=True)
class Faults:
    latency: Fault
    poison: Fault
    poison_before: int  # the fleet's poison counter when the poison started


@pytest.fixture(scope="module")
def faults(sandbox: SandboxProcess, clean_run: list[Alert]) -> Faults:
    """After the clean run: +1.5 s on cars-api for 3 minutes and 30 % poison telemetry for 2, together."""
    poison_before = sandbox.fleet_stats()["telemetry_poison"]
    latency = Fault.inject(sandbox, "latency", CARS_API, minutes=3, intensity=1.5)
    poison = Fault.inject(sandbox, "poison-telemetry", TELEMETRY_INGEST, minutes=2, intensity=0.3)
    return Faults(latency=latency, poison=poison, poison_before=poison_before)


def test_a_clean_run_raises_no_alert(clean_run: list[Alert]) -> None:
    # Then no alert was raised, during the warm-up or the clean run
    assert clean_run == [], f"alerts without any incident:\n{describe(clean_run)}"


def fleet_updated_at(sandbox: SandboxProcess) -> datetime:
    return datetime.fromisoformat(sandbox.fleet_stats()["updated_at"])


def test_poison_telemetry_is_dead_lettered_and_nothing_is_lost(
    sandbox: SandboxProcess, faults: Faults
) -> None:
    poison = faults.poison
    stage = sandbox.state.get("stage", "local")
    queue, dlq = f"fleetscope-{stage}-car-telemetry", f"fleetscope-{stage}-car-telemetry-dlq"
    backfill_end = datetime.fromisoformat(json.loads((sandbox.home / "backfill.json").read_text())["end"])
    # When the injection has ended (and the fleet's counters, written every 2 s, count all of it)
    sandbox.wait_until(lambda: fleet_updated_at(sandbox) > poison.end, poison.end + timedelta(seconds=60))
    stats = sandbox.fleet_stats()
    poison_sent = stats["telemetry_poison"] - faults.poison_before  # queued by the route (202)
    sandbox.figures["poison_dead_lettered"] = poison_sent
    sandbox.figures["telemetry_refused"] = stats["telemetry_refused"]
    assert poison_sent > 20
    assert stats["telemetry_refused"] == 0, "the route's request model refused readings the fleet sent"
    # Then every poison message is received maxReceiveCount times (60 s visibility) and dead-lettered.
    sandbox.wait_until(lambda: sandbox.queue_count(dlq) >= poison_sent, poison.end + timedelta(seconds=420))
    assert sandbox.queue_count(dlq) == poison_sent

    # And the DLQ alert: the emulator publishes AWS/SQS depth each minute, the monitor watches it; the
    # DLQ belongs to its consumer's incident group (service:telemetry-ingest), opening or joining it.
    def dlq_alert() -> Alert | None:
        return next(
            (a for a in poison.alerts() if a.kind in ("OPEN", "UPDATED") and f"sqs:{dlq}:depth" in a.series),
            None,
        )

    sandbox.wait_for(lambda: dlq_alert() is not None, timeout_s=300, poll_s=10)
    alerted = dlq_alert()
    assert alerted is not None
    window = [a for a in poison.alerts() if a.at <= alerted.at]
    sandbox.figures["poison_alerts"] = [f"{a.kind} {a.resource} {a.series} {a.subject}" for a in window]
    # And it is one telemetry-ingest incident, opened within DETECT_WITHIN (the cars-api incident is
    # the latency regression's, injected alongside)
    opened = poison.first_open()
    assert opened is not None, describe(window)
    sandbox.figures["poison_telemetry_detection_s"] = round((opened.at - poison.start).total_seconds())
    assert opened.at - poison.start <= DETECT_WITHIN, describe(window)
    opens = [a.resource for a in window if a.kind == "OPEN" and a.resource != CARS_API]
    assert opens == [TELEMETRY_INGEST], f"expected exactly one OPEN alert:\n{describe(window)}"

    # And nothing sent is lost: valid + poison sent = applied + stale (acknowledged) + DLQ + still
    # queued. The ingest's metrics are flushed every 2 s and the fleet's counters are written every
    # 2 s, so the count is bracketed between the counters read before it and counters written after it.
    counts: dict[str, Any] = {}

    def balanced() -> bool:
        first = sandbox.fleet_stats()
        accounted = (
            sandbox.metric_sum("TelemetryApplied", backfill_end)
            + sandbox.metric_sum("TelemetryStale", backfill_end)
            + sandbox.queue_count(dlq)
            + sandbox.queue_count(queue)
        )
        counted_at = datetime.now(UTC)
        sandbox.wait_for(lambda: fleet_updated_at(sandbox) > counted_at, timeout_s=30, poll_s=0.5)
        second = sandbox.fleet_stats()
        counts["sent_first"] = first["telemetry_valid"] + first["telemetry_poison"]
        counts["sent_second"] = second["telemetry_valid"] + second["telemetry_poison"]
        counts["accounted"] = accounted
        return bool(counts["sent_first"] <= accounted <= counts["sent_second"])

    with contextlib.suppress(AssertionError):  # the assertion below says by how much
        sandbox.wait_for(balanced, timeout_s=120, poll_s=2)
    sandbox.figures["telemetry_sent"] = counts.get("sent_second")
    sandbox.figures["telemetry_accounted"] = counts.get("accounted")
    assert counts, "the telemetry was never counted"
    assert counts["sent_first"] <= counts["accounted"] <= counts["sent_second"], counts


def test_a_latency_regression_is_detected_within_5_minutes_and_resolves(faults: Faults) -> None:
    detected_once_and_resolved(faults.latency, besides=(TELEMETRY_INGEST,))


def test_the_api_kept_answering_throughout(sandbox: SandboxProcess, faults: Faults) -> None:
    # Given both faults have run their course, from the sandbox's start: the latency incident resolved
    # (the poison ended a minute earlier; its incident stays open while the DLQ keeps its messages)
    ran_their_course(faults.latency)
    assert datetime.now(UTC) > faults.poison.end
    # Then
    assert_api_answered(sandbox)
