"""Incident injection: the incidents file (validation, expiry, concurrency, corruption), the CLI, and
what `FileFaultInjector` tells the runtime and the fleet for each kind."""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sandbox.aws.hooks import NO_ACTION, FaultHook
from sandbox.home.incidents import KINDS, IncidentFile, IncidentFileError, InjectionError, new_injection
from sandbox.traffic.faults import FileFaultInjector, add_incident_arguments, cli_incident

T0 = datetime(2026, 11, 25, 18, 0, tzinfo=UTC)


def run_cli(home: Path, *argv: str, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setenv("FLEETSCOPE_HOME", str(home))
    parser = argparse.ArgumentParser(prog="fleetscope incident")
    add_incident_arguments(parser)
    return cli_incident(parser.parse_args(list(argv)))


class FixedClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def injector(home: Path, clock: FixedClock, seed: int = 1) -> FileFaultInjector:
    return FileFaultInjector(home, rng=random.Random(seed), clock=clock, recheck_s=0.0)


# --- the file ------------------------------------------------------------------------------------------


def test_an_injection_is_recorded_with_kind_window_and_parameters(tmp_path: Path) -> None:
    incidents = IncidentFile(tmp_path)
    added = incidents.add("latency", minutes=3, intensity=1.5, start=T0)
    [stored] = incidents.read()
    assert stored == added
    assert (stored.kind, stored.start, stored.end) == ("latency", T0, T0 + timedelta(minutes=3))
    assert (stored.intensity, stored.target) == (1.5, "cars-api")
    raw = json.loads((tmp_path / "incidents.json").read_text())
    assert raw["version"] == 1
    assert raw["injections"][0]["kind"] == "latency"


def test_an_injection_is_active_only_inside_its_window(tmp_path: Path) -> None:
    incidents = IncidentFile(tmp_path)
    inj = incidents.add("error-burst", minutes=2, start=T0)
    assert not inj.active(T0 - timedelta(seconds=1))
    assert inj.active(T0)
    assert inj.active(T0 + timedelta(seconds=119))
    assert not inj.active(T0 + timedelta(minutes=2))


@pytest.mark.parametrize(
    ("kind", "minutes", "intensity", "target", "message"),
    [
        ("meteor-strike", 1, None, None, "unknown incident kind"),
        ("latency", 0, None, None, "--minutes"),
        ("latency", -5, None, None, "--minutes"),
        ("latency", float("nan"), None, None, "--minutes"),
        ("latency", 24 * 60 + 1, None, None, "--minutes"),
        ("error-burst", 1, 1.5, None, "--intensity"),
        ("error-burst", 1, 0.0, None, "--intensity"),
        ("traffic-spike", 1, 0.5, None, "--intensity"),
        ("traffic-drop", 1, None, "cars-api", "does not take --target"),
        ("latency", 1, None, "billing", "unknown --target"),
    ],
)
def test_invalid_injections_are_rejected(
    kind: str, minutes: float, intensity: float | None, target: str | None, message: str
) -> None:
    with pytest.raises(InjectionError, match=message):
        new_injection(kind, minutes=minutes, intensity=intensity, target=target)


def test_clear_ends_active_injections_and_keeps_the_record(tmp_path: Path) -> None:
    incidents = IncidentFile(tmp_path)
    running = incidents.add("latency", minutes=10, start=T0)
    finished = incidents.add("error-burst", minutes=1, start=T0 - timedelta(hours=1))
    changed = incidents.clear(now=T0 + timedelta(minutes=2))
    assert [c.id for c in changed] == [running.id]
    by_id = {i.id: i for i in incidents.read()}
    assert by_id[running.id].end == T0 + timedelta(minutes=2)
    assert by_id[running.id].cleared_at == T0 + timedelta(minutes=2)
    assert by_id[finished.id] == finished


def test_clearing_an_unknown_id_is_an_error(tmp_path: Path) -> None:
    IncidentFile(tmp_path).add("latency", minutes=1)
    with pytest.raises(InjectionError, match="no injection"):
        IncidentFile(tmp_path).clear(injection_id="nope")


def _add_many(home: str, n: int) -> None:
    incidents = IncidentFile(home)
    for _ in range(n):
        incidents.add("traffic-spike", minutes=1)


def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    # Given four processes and four threads adding injections at the same time
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_add_many, args=(str(tmp_path), 10)) for _ in range(4)]
    threads = [threading.Thread(target=_add_many, args=(str(tmp_path), 10)) for _ in range(4)]
    for worker in (*procs, *threads):
        worker.start()
    for worker in (*procs, *threads):
        worker.join(60)
    assert all(p.exitcode == 0 for p in procs)
    # Then every one of the 80 is in the file, once
    ids = [i.id for i in IncidentFile(tmp_path).read()]
    assert len(ids) == 80
    assert len(set(ids)) == 80
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_a_corrupt_file_is_reported_and_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "incidents.json"
    path.write_text('{"version": 1, "injections": [{"kind": "latency"')
    incidents = IncidentFile(tmp_path)
    with pytest.raises(IncidentFileError, match="corrupt"):
        incidents.read()
    with pytest.raises(IncidentFileError, match=str(path)):
        incidents.add("latency", minutes=1)
    assert path.read_text() == '{"version": 1, "injections": [{"kind": "latency"'


def test_a_file_with_an_unknown_kind_is_corrupt(tmp_path: Path) -> None:
    good = new_injection("latency", minutes=1, start=T0).model_dump(mode="json")
    (tmp_path / "incidents.json").write_text(json.dumps({"version": 1, "injections": [good | {"kind": "x"}]}))
    with pytest.raises(IncidentFileError, match="kind"):
        IncidentFile(tmp_path).read()


# --- the CLI -------------------------------------------------------------------------------------------


def test_cli_injects_lists_and_clears(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(tmp_path, "latency", "--minutes", "2", "--intensity", "0.5", monkeypatch=monkeypatch) == 0
    assert "injected" in capsys.readouterr().out
    assert run_cli(tmp_path, "list", "--json", monkeypatch=monkeypatch) == 0
    [line] = capsys.readouterr().out.splitlines()
    assert json.loads(line)["kind"] == "latency"
    assert run_cli(tmp_path, "clear", monkeypatch=monkeypatch) == 0
    assert "cleared" in capsys.readouterr().out
    assert run_cli(tmp_path, "list", monkeypatch=monkeypatch) == 0
    assert "ended" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [
        ("bogus", "--minutes", "1"),
        ("latency",),
        ("latency", "--minutes", "0"),
        ("error-burst", "--minutes", "1", "--intensity", "3"),
    ],
)
def test_cli_rejects_bad_input_with_exit_2_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...]
) -> None:
    assert run_cli(tmp_path, *argv, monkeypatch=monkeypatch) == 2
    assert "fleetscope incident:" in capsys.readouterr().err
    assert IncidentFile(tmp_path).read() == []


def test_cli_reports_a_corrupt_file_with_exit_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "incidents.json").write_text("not json")
    assert run_cli(tmp_path, "latency", "--minutes", "1", monkeypatch=monkeypatch) == 1
    assert "corrupt" in capsys.readouterr().err
    assert (tmp_path / "incidents.json").read_text() == "not json"


# --- the injector --------------------------------------------------------------------------------------


def test_the_injector_is_a_fault_hook_that_does_nothing_without_incidents(tmp_path: Path) -> None:
    hook = injector(tmp_path, FixedClock(T0))
    assert isinstance(hook, FaultHook)
    assert hook.before_invoke("cars-api", {}) is NO_ACTION
    assert hook.consumer_paused("telemetry-ingest") is False
    assert (hook.traffic_factor(), hook.poison_fraction()) == (1.0, 0.0)


def test_error_burst_raises_in_about_the_requested_share_of_target_invocations(tmp_path: Path) -> None:
    IncidentFile(tmp_path).add("error-burst", minutes=5, intensity=0.3, start=T0)
    hook = injector(tmp_path, FixedClock(T0 + timedelta(minutes=1)))
    actions = [hook.before_invoke("cars-api", {}) for _ in range(2000)]
    share = sum(a.raise_error is not None for a in actions) / len(actions)
    assert share == pytest.approx(0.3, abs=0.04)
    assert hook.before_invoke("telemetry-ingest", {}) is NO_ACTION


def test_latency_adds_the_requested_delay(tmp_path: Path) -> None:
    IncidentFile(tmp_path).add("latency", minutes=5, intensity=2.0, start=T0)
    hook = injector(tmp_path, FixedClock(T0))
    delays = [hook.before_invoke("cars-api", {}).delay_s for _ in range(200)]
    assert all(1.6 <= d <= 2.4 for d in delays)
    assert sum(delays) / len(delays) == pytest.approx(2.0, rel=0.05)


def test_throttling_throttles_a_share_without_running(tmp_path: Path) -> None:
    IncidentFile(tmp_path).add("throttling", minutes=5, intensity=1.0, start=T0)
    hook = injector(tmp_path, FixedClock(T0))
    assert all(hook.before_invoke("cars-api", {}).throttle for _ in range(50))


def test_cold_start_storm_can_target_another_function(tmp_path: Path) -> None:
    IncidentFile(tmp_path).add(
        "cold-start-storm", minutes=5, intensity=1.0, target="telemetry-ingest", start=T0
    )
    hook = injector(tmp_path, FixedClock(T0))
    assert hook.before_invoke("telemetry-ingest", {}).cold_start
    assert hook.before_invoke("cars-api", {}) is NO_ACTION


def test_consumer_stall_pauses_only_the_ingest_consumer(tmp_path: Path) -> None:
    IncidentFile(tmp_path).add("consumer-stall", minutes=5, start=T0)
    hook = injector(tmp_path, FixedClock(T0))
    assert hook.consumer_paused("telemetry-ingest")
    assert not hook.consumer_paused("outbox-relay")


def test_eventbridge_outage_fails_the_relay_and_every_put_events_for_its_minutes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given `fleetscope incident eventbridge-outage --minutes 70`
    assert run_cli(tmp_path, "eventbridge-outage", "--minutes", "70", monkeypatch=monkeypatch) == 0
    [outage] = IncidentFile(tmp_path).read()
    clock = FixedClock(outage.start + timedelta(minutes=69))
    hook = injector(tmp_path, clock)
    # Then during it every relay invocation and every PutEvents (the sandbox's sweeper) fails ...
    assert all(hook.before_invoke("outbox-relay", {}).raise_error for _ in range(20))
    assert all(hook.eventbridge_fails() for _ in range(20))
    assert hook.before_invoke("cars-api", {}).is_noop  # ... and nothing else
    # and after it nothing does
    clock.now = outage.end
    assert hook.before_invoke("outbox-relay", {}).is_noop
    assert not hook.eventbridge_fails()


def test_a_partial_eventbridge_outage_fails_about_its_share(tmp_path: Path) -> None:
    IncidentFile(tmp_path).add("eventbridge-outage", minutes=5, intensity=0.2, start=T0)
    hook = injector(tmp_path, FixedClock(T0))
    share = sum(hook.eventbridge_fails() for _ in range(2_000)) / 2_000
    assert 0.15 < share < 0.25


def test_traffic_and_poison_kinds_drive_the_fleet_controls(tmp_path: Path) -> None:
    incidents = IncidentFile(tmp_path)
    incidents.add("traffic-drop", minutes=5, intensity=0.75, start=T0)
    incidents.add("poison-telemetry", minutes=5, intensity=0.2, start=T0)
    incidents.add("traffic-spike", minutes=5, intensity=3.0, start=T0 + timedelta(minutes=10))
    clock = FixedClock(T0 + timedelta(minutes=1))
    hook = injector(tmp_path, clock)
    assert hook.traffic_factor() == pytest.approx(0.25)
    assert hook.poison_fraction() == pytest.approx(0.2)
    clock.now = T0 + timedelta(minutes=11)
    assert hook.traffic_factor() == pytest.approx(3.0)
    assert hook.poison_fraction() == 0.0


def test_every_kind_has_an_effect_while_active_and_none_after(tmp_path: Path) -> None:
    for kind in KINDS:
        home = tmp_path / kind
        IncidentFile(home).add(kind, minutes=1, intensity=KINDS[kind].high, start=T0)
        clock = FixedClock(T0)
        hook = injector(home, clock)

        def effect(hook: FileFaultInjector = hook) -> bool:
            return (
                not hook.before_invoke("cars-api", {}).is_noop
                or hook.eventbridge_fails()
                or hook.consumer_paused("telemetry-ingest")
                or hook.traffic_factor() != 1.0
                or hook.poison_fraction() > 0
            )

        assert effect(), kind
        clock.now = T0 + timedelta(minutes=1)
        assert not effect(), kind


def test_the_injector_picks_up_changes_written_by_another_process(tmp_path: Path) -> None:
    clock = FixedClock(datetime.now(UTC) + timedelta(seconds=5))  # inside the injection added below
    hook = injector(tmp_path, clock)
    assert hook.traffic_factor() == 1.0
    IncidentFile(tmp_path).add("traffic-drop", minutes=1, intensity=0.5)
    assert hook.traffic_factor() == pytest.approx(0.5)
    IncidentFile(tmp_path).clear()
    assert hook.traffic_factor() == 1.0


def test_the_injector_keeps_the_last_good_state_when_the_file_turns_corrupt(tmp_path: Path) -> None:
    errors: list[str] = []
    IncidentFile(tmp_path).add("traffic-drop", minutes=5, intensity=0.5, start=T0)
    hook = FileFaultInjector(tmp_path, clock=FixedClock(T0), recheck_s=0.0, on_error=errors.append)
    assert hook.traffic_factor() == pytest.approx(0.5)
    (tmp_path / "incidents.json").write_text("{ half a file")
    assert hook.traffic_factor() == pytest.approx(0.5)
    assert hook.traffic_factor() == pytest.approx(0.5)
    assert len(errors) == 1
    assert "corrupt" in errors[0]
