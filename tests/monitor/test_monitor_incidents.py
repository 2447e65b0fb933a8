"""Incident layer: OPEN -> UPDATED -> RESOLVED, grouping by resource, severity, cooldown, gaps."""

from __future__ import annotations

import math

from monitor.catalog import Severity
from monitor.incidents import IncidentTracker, PointSignal, TrackerState

P = 300
T0 = 1_700_000_000 - 1_700_000_000 % P


def sig(
    series: str,
    i: int,
    *,
    resource: str = "api:x",
    group: str = "",
    firing: bool = False,
    opened: bool = False,
    resolved: bool = False,
    value: float = 1.0,
    severity: Severity = Severity.WARNING,
) -> PointSignal:
    return PointSignal(
        series_id=series,
        resource=resource,
        group=group,
        severity=severity,
        t=T0 + i * P,
        value=value,
        lower=0.0,
        upper=2.0,
        score=0.9 if firing else 0.1,
        firing=firing,
        opened=opened,
        resolved=resolved,
    )


def test_open_update_resolve_with_grouping_and_severity_max() -> None:
    tracker = IncidentTracker(cooldown_s=2 * P)
    # Given latency opens, then the 5xx rate of the same API opens while it is still firing
    run1 = tracker.process(
        [
            sig("lat", 0, firing=True, opened=True, value=9.0),
            sig("5xx", 0),
            sig("lat", 1, firing=True, value=8.0),
            sig("5xx", 1, firing=True, opened=True, severity=Severity.CRITICAL, value=0.3),
        ],
        until=T0 + P,
    )
    # Then one incident: OPEN then UPDATED (joined, severity raised to critical)
    assert [(t.kind, t.seq) for t in run1] == [("OPEN", 1), ("UPDATED", 2)]
    assert run1[0].incident_id == run1[1].incident_id
    assert run1[1].incident.severity == Severity.CRITICAL
    assert set(run1[1].incident.members) == {"lat", "5xx"}
    assert run1[0].incident.members["lat"].value == 9.0
    # When both resolve, the incident waits out the cooldown, then RESOLVED once
    state = tracker.state
    tracker = IncidentTracker(state, cooldown_s=2 * P)
    run2 = tracker.process(
        [sig("lat", 2, resolved=True), sig("5xx", 2, resolved=True), sig("lat", 3), sig("5xx", 3)],
        until=T0 + 3 * P,
    )
    assert run2 == []
    run3 = tracker.process([sig("lat", 4), sig("5xx", 4)], until=T0 + 4 * P)
    assert [(t.kind, t.seq, t.incident_id) for t in run3] == [("RESOLVED", 3, run1[0].incident_id)]
    assert run3[0].incident.status == "resolved"
    assert tracker.state.open == {}


def test_different_resources_open_different_incidents() -> None:
    tracker = IncidentTracker(cooldown_s=P)
    out = tracker.process(
        [
            sig("a", 0, firing=True, opened=True, resource="lambda:f"),
            sig("b", 0, firing=True, opened=True, resource="sqs:q"),
        ],
        until=T0,
    )
    assert [t.kind for t in out] == ["OPEN", "OPEN"]
    assert out[0].incident_id != out[1].incident_id


def test_resources_of_one_service_group_are_one_incident() -> None:
    # Given an error burst that shows on the API (5XX) and, a period later, on its function (Errors)
    tracker = IncidentTracker(cooldown_s=P)
    out = tracker.process(
        [
            sig("api:5xx", 0, firing=True, opened=True, resource="api:x", group="service:cars"),
            sig("fn:errors", 1, firing=True, opened=True, resource="lambda:f", group="service:cars"),
            sig("table:throttles", 1, firing=True, opened=True, resource="dynamodb:t"),
        ],
        until=T0 + P,
    )
    # Then the service has one incident (OPEN, then UPDATED when the function joins), keyed by the
    # group and naming both resources; the shared table (its own group) is a separate incident
    assert [(t.kind, t.incident.resource) for t in out] == [
        ("OPEN", "service:cars"),
        ("UPDATED", "service:cars"),
        ("OPEN", "dynamodb:t"),
    ]
    assert out[1].incident_id == out[0].incident_id
    assert out[1].incident.resources == ["api:x", "lambda:f"]
    assert set(tracker.state.open) == {"service:cars", "dynamodb:t"}
    # When both resolve, the one incident resolves once
    out = tracker.process(
        [
            sig("api:5xx", 2, resolved=True, resource="api:x", group="service:cars"),
            sig("fn:errors", 2, resolved=True, resource="lambda:f", group="service:cars"),
            sig("api:5xx", 3, resource="api:x", group="service:cars"),
        ],
        until=T0 + 3 * P,
    )
    assert [(t.kind, t.incident.resource) for t in out] == [("RESOLVED", "service:cars")]


def test_flapping_within_the_cooldown_keeps_one_incident() -> None:
    tracker = IncidentTracker(cooldown_s=3 * P)
    out = tracker.process(
        [
            sig("a", 0, firing=True, opened=True),
            sig("a", 1, resolved=True),
            sig("a", 2, firing=True, opened=True),  # again before the hold-down ended
            sig("a", 3, firing=True),
        ],
        until=T0 + 3 * P,
    )
    assert [t.kind for t in out] == ["OPEN"]
    assert tracker.state.open["api:x"].quiet_since is None


def test_a_missing_data_gap_opens_no_incident() -> None:
    # Given a series whose points are missing (NaN, no decision from the policy)
    tracker = IncidentTracker(cooldown_s=P)
    gap = [sig("a", i, value=math.nan) for i in range(12)]
    # Then nothing happens
    assert tracker.process(gap, until=T0 + 11 * P) == []
    assert tracker.state.open == {}


def test_an_incident_whose_metrics_stop_reporting_resolves_as_no_data() -> None:
    tracker = IncidentTracker(cooldown_s=P, stale_s=4 * P)
    opened = tracker.process([sig("a", 0, firing=True, opened=True)], until=T0)
    assert [t.kind for t in opened] == ["OPEN"]
    # the metric then goes silent (missing points) for longer than stale_s
    out = tracker.process([sig("a", i, firing=True, value=math.nan) for i in range(1, 6)], until=T0 + 5 * P)
    assert [t.kind for t in out] == ["RESOLVED"]
    assert "no data" in out[0].reason


def test_transitions_are_deterministic_so_a_retried_run_has_the_same_dedup_keys() -> None:
    state = TrackerState()
    points = [sig("a", 0, firing=True, opened=True), sig("b", 1, firing=True, opened=True)]
    first = IncidentTracker(state, cooldown_s=P).process(points, until=T0 + P)
    again = IncidentTracker(state, cooldown_s=P).process(list(reversed(points)), until=T0 + P)
    assert [t.dedup_key for t in first] == [t.dedup_key for t in again]
    assert len({t.dedup_key for t in first}) == 2


def test_tracker_state_round_trips_through_json() -> None:
    tracker = IncidentTracker(cooldown_s=P)
    tracker.process([sig("a", 0, firing=True, opened=True)], until=T0)
    restored = TrackerState.model_validate_json(tracker.state.model_dump_json())
    assert restored == tracker.state
