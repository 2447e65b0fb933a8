"""The telemetry-ingest handler over an in-memory repository: outcomes, partial failures, metrics, logs.

What happens to each kind of record:
- valid, car known, newer than what the car holds  → applied, acknowledged (deleted from SQS);
- valid but older than or as old as the car's reading → acknowledged as stale, nothing written;
- invalid body, unknown car, retired car, reading dated in the future, repository error
  → reported in ``batchItemFailures`` (SQS retries it, then dead-letters it), nothing written.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from aws_lambda_powertools.utilities.batch.exceptions import UnexpectedBatchTypeError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ingest_helpers import FUTURE, NOW, InMemoryTelemetryRepository, sqs_event, telemetry_body

from contract.topology import topology
from service.ingest import handler as ingest_handler
from service.ingest.logic import REJECTION_REASONS, apply_telemetry
from service.ingest.models import TelemetryMessage
from service.ingest.repository import ApplyOutcome

Invoke = Callable[[dict[str, Any]], Any]

VALID = json.loads(telemetry_body("car-1"))

# (case id, body, where the validation error points) — every one must be rejected, never applied.
BAD_BODIES: list[tuple[str, str, str]] = [
    ("not json", "car-1 at 52.5,13.4", "body"),
    ("empty body", "", "body"),
    ("json array", json.dumps([VALID]), "body"),
    (
        "missing battery_level",
        json.dumps({k: v for k, v in VALID.items() if k != "battery_level"}),
        "battery_level",
    ),
    ("missing position.lon", telemetry_body(position={"lat": 1.0}), "position.lon"),
    ("naive timestamp", telemetry_body(ts=NOW.replace(tzinfo=None)), "ts"),
    ("epoch-number timestamp", telemetry_body(ts=1_795_741_200), "ts"),
    ("date without time", telemetry_body(ts="2026-11-27"), "ts"),
    ("lat above 90", telemetry_body(position={"lat": 90.5, "lon": 0.0}), "position.lat"),
    ("lon below -180", telemetry_body(position={"lat": 0.0, "lon": -180.1}), "position.lon"),
    ("battery above 100", telemetry_body(battery_level=100.01), "battery_level"),
    ("negative battery", telemetry_body(battery_level=-1), "battery_level"),
    ("negative speed", telemetry_body(speed_kmh=-0.1), "speed_kmh"),
    ("insane speed", telemetry_body(speed_kmh=301), "speed_kmh"),
    ("number as string", telemetry_body(speed_kmh="42"), "speed_kmh"),
    ("boolean as number", telemetry_body(battery_level=True), "battery_level"),
    ("NaN", telemetry_body().replace('"speed_kmh": 42.0', '"speed_kmh": NaN'), "speed_kmh"),
    ("null field", telemetry_body(position=None), "position"),
    ("empty car_id", telemetry_body(""), "car_id"),
    ("car_id with whitespace", telemetry_body("car 1"), "car_id"),
    ("unknown extra field", telemetry_body(heading_deg=90), "heading_deg"),
    ("renamed field", telemetry_body(battery=50), "battery"),
    ("nested 20,000 deep", "[" * 20_000 + "]" * 20_000, "body"),  # json.loads: RecursionError
    ("object nested 20,000 deep", '{"car_id": ' * 20_000 + "1" + "}" * 20_000, "body"),
    ("5,000-digit integer", telemetry_body().replace("42.0", "9" * 5_000), "body"),
]


def failed_ids(response: dict[str, Any]) -> list[str]:
    return [item["itemIdentifier"] for item in response["batchItemFailures"]]


def emf_lines(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{") and '"_aws"' in line]


def metric_values(output: str, name: str, **dimensions: str) -> list[float]:
    """Values of metric `name` published with exactly the dimensions ``service`` + `dimensions`."""
    values: list[float] = []
    for blob in emf_lines(output):
        [directive] = blob["_aws"]["CloudWatchMetrics"]
        names = {m["Name"] for m in directive["Metrics"]}
        keys = {key for dimension_set in directive["Dimensions"] for key in dimension_set}
        if name not in names or keys != {"service", *dimensions}:
            continue
        assert blob["service"] == "telemetry-ingest"
        if all(blob.get(k) == v for k, v in dimensions.items()):
            value = blob[name]
            values.extend(value if isinstance(value, list) else [value])
    return values


@pytest.mark.parametrize(
    ("body", "location"), [(b, loc) for _, b, loc in BAD_BODIES], ids=[c for c, *_ in BAD_BODIES]
)
def test_invalid_body_is_reported_failed_and_never_applied(
    repo: InMemoryTelemetryRepository,
    invoke: Invoke,
    warm: None,
    capsys: pytest.CaptureFixture[str],
    handler_logs: io.StringIO,
    body: str,
    location: str,
) -> None:
    # Given a known car and one bad message next to a good one
    repo.add_car("car-1")
    event = sqs_event(body, telemetry_body("car-1"))
    bad_id = event["Records"][0]["messageId"]
    # When the batch is processed
    response = invoke(event)
    # Then only the bad record is reported failed (so SQS retries it, then dead-letters it) ...
    assert failed_ids(response) == [bad_id]
    # ... the good one was applied, and the bad one never reached the repository
    assert repo.calls == 1
    assert repo.cars["car-1"]["speed_kmh"] == 42.0
    out = capsys.readouterr().out
    assert metric_values(out, "TelemetryRejected", reason="invalid_schema", service="telemetry-ingest") == [
        1.0
    ]
    assert metric_values(out, "TelemetryApplied") == [1.0]
    # (and in the per-service total the monitor watches)
    assert metric_values(out, "TelemetryRejected") == [1.0]
    # and the log says what was wrong with it
    warning = next(
        json.loads(line) for line in handler_logs.getvalue().splitlines() if '"telemetry rejected"' in line
    )
    assert warning["reason"] == "invalid_schema"
    assert warning["message_id"] == bad_id
    assert location in warning["error"]


def test_valid_message_updates_the_car_and_is_acknowledged(
    repo: InMemoryTelemetryRepository,
    invoke: Invoke,
    handler_logs: io.StringIO,
) -> None:
    # Given a known car
    repo.add_car("car-1")
    # When one reading arrives, with a non-UTC offset
    ts = NOW.astimezone(timezone(timedelta(hours=-5)))
    response = invoke(sqs_event(telemetry_body("car-1", ts=ts, battery_level=12.5)))
    # Then it is acknowledged and stored with its epoch-ms timestamp
    assert failed_ids(response) == []
    car = repo.cars["car-1"]
    assert car["battery_level"] == 12.5
    assert car["position"] == {"lat": 52.52, "lon": 13.405}
    assert car["telemetry_ts"] == int(NOW.timestamp() * 1000)
    # and the log line for the batch carries the counts
    summary = next(
        json.loads(line)
        for line in handler_logs.getvalue().splitlines()
        if '"telemetry batch processed"' in line
    )
    assert summary["applied"] == 1
    assert summary["function_name"] == "telemetry-ingest-test"


@pytest.mark.parametrize(
    ("prepare", "reason"),
    [
        (lambda repo: None, "unknown_car"),
        (lambda repo: repo.add_car("car-1", status="retired"), "retired"),
    ],
    ids=["unknown car", "retired car"],
)
def test_records_for_cars_that_cannot_take_telemetry_fail(
    repo: InMemoryTelemetryRepository,
    invoke: Invoke,
    warm: None,
    capsys: pytest.CaptureFixture[str],
    handler_logs: io.StringIO,
    prepare: Callable[[InMemoryTelemetryRepository], None],
    reason: str,
) -> None:
    # Given no car-1, or a retired car-1
    prepare(repo)
    event = sqs_event(telemetry_body("car-1"))
    # When its telemetry arrives
    response = invoke(event)
    # Then the record fails (→ retried → DLQ), without raising and without writing
    assert failed_ids(response) == [event["Records"][0]["messageId"]]
    assert "telemetry_ts" not in repo.cars.get("car-1", {})
    out = capsys.readouterr().out
    assert metric_values(out, "TelemetryRejected", reason=reason) == [1.0]
    assert metric_values(out, "TelemetryApplied") == [0.0]
    warning = next(
        json.loads(line) for line in handler_logs.getvalue().splitlines() if '"telemetry rejected"' in line
    )
    assert warning["car_id"] == "car-1"


def test_reading_dated_in_the_future_is_rejected(repo: InMemoryTelemetryRepository, invoke: Invoke) -> None:
    # Given a known car and a reading dated two days ahead (it would block all real readings)
    repo.add_car("car-1")
    event = sqs_event(telemetry_body("car-1", ts=FUTURE))
    # When it is processed
    response = invoke(event)
    # Then it fails and is not stored
    assert failed_ids(response) == [event["Records"][0]["messageId"]]
    assert "telemetry_ts" not in repo.cars["car-1"]


def test_a_reading_more_than_an_hour_old_is_rejected_with_its_reason(
    repo: InMemoryTelemetryRepository, invoke: Invoke, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a known car and a reading taken 61 minutes ago (a car that was offline, a queue backlog)
    repo.add_car("car-1")
    event = sqs_event(telemetry_body("car-1", ts=NOW - timedelta(minutes=61)))
    # When it is processed
    response = invoke(event)
    # Then it fails (retried, then dead-lettered with the others), is never stored, and is counted as too_old
    assert failed_ids(response) == [event["Records"][0]["messageId"]]
    assert repo.calls == 0
    out = capsys.readouterr().out
    assert metric_values(out, "TelemetryRejected", reason="too_old", service="telemetry-ingest") == [1.0]


def test_a_reading_from_up_to_5_minutes_ahead_does_not_make_later_real_readings_stale() -> None:
    # Given a car whose clock ran 4 minutes fast for one reading, received at t0
    repo = InMemoryTelemetryRepository()
    repo.add_car("car-1")
    t0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    ahead = TelemetryMessage.model_validate_json(telemetry_body("car-1", ts=t0 + timedelta(minutes=4)))
    assert apply_telemetry(ahead, repo, now=t0) is ApplyOutcome.APPLIED
    # When the car's real readings of the next minutes arrive, each as it is taken
    outcomes = []
    for seconds in (10, 60, 200):
        real = TelemetryMessage.model_validate_json(
            telemetry_body("car-1", ts=t0 + timedelta(seconds=seconds), speed_kmh=float(seconds))
        )
        outcomes.append(apply_telemetry(real, repo, now=t0 + timedelta(seconds=seconds)))
    # Then every one is applied (the early reading counts as taken when it was received), the last one is held
    assert outcomes == [ApplyOutcome.APPLIED] * 3
    assert repo.cars["car-1"]["speed_kmh"] == 200.0
    # and a reading older than what the car holds is still stale
    late = TelemetryMessage.model_validate_json(telemetry_body("car-1", ts=t0 + timedelta(seconds=30)))
    assert apply_telemetry(late, repo, now=t0 + timedelta(seconds=210)) is ApplyOutcome.STALE


def test_out_of_order_and_duplicate_readings_never_overwrite_newer_state(
    repo: InMemoryTelemetryRepository, invoke: Invoke, warm: None, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a car and three readings delivered newest first, plus a duplicate of the newest
    repo.add_car("car-1")
    newest = telemetry_body("car-1", ts=NOW, battery_level=50.0)
    older = telemetry_body("car-1", ts=NOW - timedelta(seconds=10), battery_level=60.0)
    oldest = telemetry_body("car-1", ts=NOW - timedelta(seconds=20), battery_level=70.0)
    # When they are processed in two batches
    first = invoke(sqs_event(newest, oldest))
    second = invoke(sqs_event(older, newest))
    # Then all are acknowledged (stale is not an error) and the car keeps the newest reading
    assert failed_ids(first) == failed_ids(second) == []
    assert repo.cars["car-1"]["battery_level"] == 50.0
    assert repo.cars["car-1"]["telemetry_ts"] == int(NOW.timestamp() * 1000)
    out = capsys.readouterr().out
    assert sum(metric_values(out, "TelemetryStale")) == 3
    assert sum(metric_values(out, "TelemetryApplied")) == 1
    assert metric_values(out, "TelemetryRejected") == [0.0, 0.0]
    assert metric_values(out, "TelemetryRejected", reason="invalid_schema") == []


def test_a_batch_where_every_record_fails_reports_them_all_instead_of_raising(
    repo: InMemoryTelemetryRepository, invoke: Invoke, warm: None, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a batch of only bad records, of three kinds
    repo.add_car("car-1", status="retired")
    event = sqs_event("{", telemetry_body("ghost"), telemetry_body("car-1"), telemetry_body("ghost-2"))
    # When it is processed
    response = invoke(event)
    # Then every id is reported (the function does not crash: Lambda Errors stay for real crashes)
    assert sorted(failed_ids(response)) == sorted(r["messageId"] for r in event["Records"])
    out = capsys.readouterr().out
    assert metric_values(out, "TelemetryRejected", reason="invalid_schema") == [1.0]
    assert metric_values(out, "TelemetryRejected", reason="unknown_car") == [2.0]
    assert metric_values(out, "TelemetryRejected", reason="retired") == [1.0]
    assert metric_values(out, "TelemetryRejected") == [4.0]


def test_repository_errors_fail_only_their_record(
    repo: InMemoryTelemetryRepository,
    invoke: Invoke,
    warm: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a repository that fails for one car (a throttle, say)
    repo.add_car("car-1")
    repo.add_car("car-2")
    real_apply = repo.apply

    def flaky_apply(message: TelemetryMessage) -> Any:
        if message.car_id == "car-2":
            raise ConnectionError("throttled")
        return real_apply(message)

    monkeypatch.setattr(repo, "apply", flaky_apply)
    event = sqs_event(telemetry_body("car-1"), telemetry_body("car-2"))
    # When the batch is processed
    response = invoke(event)
    # Then the failing record is retried later, the other one is applied
    assert failed_ids(response) == [event["Records"][1]["messageId"]]
    assert "telemetry_ts" in repo.cars["car-1"]
    assert metric_values(capsys.readouterr().out, "TelemetryRejected", reason="error") == [1.0]


def test_first_invocation_records_a_cold_start(
    repo: InMemoryTelemetryRepository, invoke: Invoke, capsys: pytest.CaptureFixture[str]
) -> None:
    from aws_lambda_powertools.metrics.provider import cold_start

    # Given a fresh execution environment
    cold_start.is_cold_start = True
    repo.add_car("car-1")
    # When the handler runs twice
    invoke(sqs_event(telemetry_body("car-1")))
    invoke(sqs_event(telemetry_body("car-1", ts=NOW + timedelta(seconds=1))))
    # Then exactly one ColdStart is counted, under the function's name
    out = capsys.readouterr().out
    assert metric_values(out, "ColdStart", function_name="telemetry-ingest-test") == [1.0]


def test_event_without_records_is_a_crash_not_a_silent_success(
    repo: InMemoryTelemetryRepository, invoke: Invoke
) -> None:
    # An event that is not an SQS batch must not be acknowledged as if processed
    with pytest.raises(UnexpectedBatchTypeError):
        invoke({"detail": "not sqs"})


def test_service_name_matches_the_topology_and_reasons_are_a_small_fixed_set() -> None:
    assert topology().telemetry_ingest.service == ingest_handler.SERVICE_NAME
    assert set(REJECTION_REASONS) == {
        "invalid_schema",
        "unknown_car",
        "retired",
        "future_ts",
        "too_old",
        "error",
    }


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    offsets=st.lists(st.integers(min_value=0, max_value=10_000), min_size=1, max_size=25),
    batch_size=st.integers(min_value=1, max_value=10),
    order=st.randoms(use_true_random=False),
)
def test_any_delivery_order_ends_with_the_newest_reading(
    monkeypatch: pytest.MonkeyPatch, invoke: Invoke, offsets: list[int], batch_size: int, order: Any
) -> None:
    # Given readings of one car (duplicates possible) delivered in any order, in batches of any size
    repository = InMemoryTelemetryRepository()
    repository.add_car("car-1")
    monkeypatch.setattr(ingest_handler, "get_repository", lambda: repository)
    readings = [
        (offset, telemetry_body("car-1", ts=NOW - timedelta(milliseconds=offset), speed_kmh=offset / 100))
        for offset in offsets
    ]
    order.shuffle(readings)
    # When they are processed
    for start in range(0, len(readings), batch_size):
        response = invoke(sqs_event(*(body for _, body in readings[start : start + batch_size])))
        assert failed_ids(response) == []  # stale is acknowledged, never retried
    # Then the car holds the newest one
    newest = min(offsets)
    assert repository.cars["car-1"]["telemetry_ts"] == int(
        (NOW - timedelta(milliseconds=newest)).timestamp() * 1000
    )
    assert repository.cars["car-1"]["speed_kmh"] == newest / 100
