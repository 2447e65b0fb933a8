"""MonitorService with real detectors and policy, an in-process GetMetricData and in-memory table/SNS."""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest

from contract.resources import FunctionName, ResourceNames
from monitor.budget import FETCH_S, RunBudget
from monitor.catalog import Catalog, build_catalog
from monitor.receipts import DeliveryReceipts, Receipt, ReceiptsError, parse_receipt
from monitor.service import MonitorService
from monitor.settings import MonitorSettings
from monitor.source import CloudWatchMetricSource, MetricSourceError
from monitor.state import decode_state
from monitor.store import OutboxItem
from ops.fakes import FakeCloudWatch, InMemoryIncidentStore, RecordingNotifier
from tests.monitor.test_monitor_handler import Ctx, _emf

P = 300
T_END = 1_767_225_600  # aligned on the period
NAMES = ResourceNames(
    stage="unit",
    namespace="Fleetscope",
    api_name="unit-api",
    api_stage="v1",
    functions=(FunctionName(key="cars-api", name="unit-fn", service="cars-api"),),
    event_bus="bus",
)
API = {"ApiName": "unit-api", "Stage": "v1"}


@dataclass
class World:
    catalog: Catalog
    fake: FakeCloudWatch
    store: InMemoryIncidentStore = field(default_factory=InMemoryIncidentStore)
    notifier: RecordingNotifier = field(default_factory=RecordingNotifier)
    count: dict[int, float] = field(default_factory=dict)
    errors: dict[int, float] = field(default_factory=dict)
    receipts: DeliveryReceipts | None = None

    def service(self, *, owner: str = "run", budget_s: float = 600.0, **settings: object) -> MonitorService:
        base = {
            "MONITOR_TABLE_NAME": "t",
            "ALERTS_TOPIC_NAME": "a",
            "MONITOR_PERIOD_S": P,
            "MONITOR_HISTORY_DAYS": 2,
            "MONITOR_SETTLE_S": 0,
            "MONITOR_COOLDOWN_S": 600,
        }
        return MonitorService(
            settings=MonitorSettings.model_validate(base | settings),
            catalog=self.catalog,
            source=CloudWatchMetricSource(self.fake),
            store=self.store,
            notifier=self.notifier,
            owner=owner,
            train_budget_s=budget_s,
            receipts=self.receipts,
        )

    def publish_series(self) -> None:
        ts = np.array(sorted(self.count), dtype=np.int64)
        self.fake.put_series("AWS/ApiGateway", "Count", API, ts, [self.count[t] for t in ts.tolist()])
        es = np.array(sorted(self.errors), dtype=np.int64)
        self.fake.put_series("AWS/ApiGateway", "5XXError", API, es, [self.errors[t] for t in es.tolist()])

    def traffic(self, start: int, end: int, *, seed: int = 0) -> None:
        rng = np.random.default_rng(seed + start)
        for t in range(start, end, P):
            self.count[t] = float(rng.poisson(200 + 50 * np.sin(2 * np.pi * (t % 86400) / 86400)))
        self.publish_series()

    def outage(self, start: int, end: int, rate: float = 0.4) -> None:
        for t in range(start, end, P):
            self.errors[t] = round(self.count[t] * rate)
        self.publish_series()


@pytest.fixture
def world() -> World:
    w = World(catalog=build_catalog(NAMES, period_s=P), fake=FakeCloudWatch())
    w.traffic(T_END - 2 * 86400, T_END)
    return w


def kinds(notifier: RecordingNotifier) -> list[str]:
    return [m["MessageAttributes"]["kind"]["StringValue"] for m in notifier.published]


def test_first_run_trains_and_a_normal_run_scores_only_new_periods(world: World) -> None:
    first = world.service().run(T_END)
    assert first.series_trained == len(world.catalog.series)
    assert first.points_scored == 0
    world.traffic(T_END, T_END + P)
    second = world.service().run(T_END + P)
    assert second.series_scored >= 5
    assert second.fetch.calls == 1  # one GetMetricData call for the new period (+ overlap)
    assert second.scored_until == T_END
    assert world.notifier.published == []


def test_a_failed_publish_stays_pending_and_is_sent_once_by_the_next_run(world: World) -> None:
    world.service().run(T_END)
    world.traffic(T_END, T_END + 4 * P)
    world.outage(T_END, T_END + 4 * P)
    # Given SNS fails during the run that detects the outage
    world.notifier.fail_next = 10
    broken = world.service().run(T_END + 4 * P)
    assert broken.transitions
    assert broken.publish_failures == 1  # the incident's later transitions wait behind its OPEN
    assert world.notifier.published == []
    assert all(i.status == "pending" for i in world.store.outbox.values())
    # When SNS is back, the next run publishes each transition exactly once
    world.notifier.fail_next = 0
    world.traffic(T_END + 4 * P, T_END + 5 * P)
    world.outage(T_END + 4 * P, T_END + 5 * P)
    world.service().run(T_END + 5 * P)
    again = world.service().run(T_END + 5 * P)  # a retried invocation of the same schedule
    sent_keys = [json.loads(m["Message"])["sqs"] for m in world.notifier.published]
    assert kinds(world.notifier).count("OPEN") == 1
    assert len(sent_keys) == len(set(sent_keys)) == len(world.store.outbox)
    assert again.published == 0


def test_an_overlapping_run_is_skipped_while_another_holds_the_lease(world: World) -> None:
    assert world.store.acquire_lease("other-run", now=T_END, lease_s=600)
    result = world.service(owner="me").run(T_END + 60)
    assert result.status == "skipped"
    assert result.fetch.calls == 0
    assert world.store.blob is None


def test_corrupt_state_is_reported_and_rebuilt_without_losing_pending_notifications(world: World) -> None:
    world.service().run(T_END)
    world.traffic(T_END, T_END + 4 * P)
    world.outage(T_END, T_END + 4 * P)
    world.notifier.fail_next = 10
    world.service().run(T_END + 4 * P)
    pending = set(world.store.outbox)
    assert pending
    # Given the stored state is damaged
    world.store.blob = b"not zlib"
    world.notifier.fail_next = 0
    # When the next run starts, it says so, retrains, and still delivers what was pending
    result = world.service().run(T_END + 5 * P)
    assert any("model state rejected" in e for e in result.errors)
    assert result.series_trained == len(world.catalog.series)
    assert {
        json.loads(json.loads(m["Message"])["sqs"])["dedup_key"] for m in world.notifier.published
    } == pending
    assert decode_state(world.store.blob).last_scored is not None  # type: ignore[arg-type]


def test_a_state_of_another_version_triggers_a_retrain(world: World) -> None:
    world.service().run(T_END)
    doc = json.loads(zlib.decompress(world.store.blob or b""))
    doc["version"] = 999
    world.store.blob = zlib.compress(json.dumps(doc).encode())
    result = world.service().run(T_END + P)
    assert result.series_trained == len(world.catalog.series)
    assert any("version" in e for e in result.errors)


def test_a_model_of_another_configuration_is_retrained_at_the_next_run(world: World) -> None:
    # Given trained models, one of which was built with another configuration (an upgrade changed its
    # profile's detector since it was trained)
    world.service().run(T_END)
    ref = world.store.models_ref or ""
    doc = json.loads(zlib.decompress(world.store.models[ref]))
    changed = next(sid for sid, d in doc["detectors"].items() if d["kind"] == "ensemble")
    doc["detectors"][changed]["config"]["novelty_p"] = 0.5
    world.store.models[ref] = zlib.compress(json.dumps(doc).encode())
    # When the next run starts, within the retrain cadence
    world.traffic(T_END, T_END + P)
    result = world.service(MONITOR_RETRAIN_S=3600).run(T_END + P)
    # Then that series alone is retrained, with the configuration of today
    assert result.series_trained == 1
    after = json.loads(zlib.decompress(world.store.models[world.store.models_ref or ""]))
    assert after["detectors"][changed]["config"]["novelty_p"] != 0.5


def test_training_is_spread_over_runs_when_the_budget_runs_out(world: World) -> None:
    # Given a budget that allows only the first batch per run
    service = world.service(budget_s=1e-9)
    service.train_batch = 5
    first = service.run(T_END)
    assert first.series_trained == 5
    assert first.series_untrained == len(world.catalog.series) - 5
    world.traffic(T_END, T_END + P)
    second = service.run(T_END + P)
    assert second.series_trained == 5
    assert second.series_scored == 10  # those trained in both runs (training comes before scoring)


def test_models_are_retrained_on_the_cadence(world: World) -> None:
    world.service().run(T_END)
    world.traffic(T_END, T_END + 3 * P)
    not_due = world.service(MONITOR_RETRAIN_S=3600).run(T_END + P)
    assert not_due.series_trained == 0
    due = world.service(MONITOR_RETRAIN_S=600).run(T_END + 3 * P)
    assert due.series_trained == len(world.catalog.series)
    assert due.series_scored >= 5  # scoring continues right after the retrain


def test_a_gap_in_the_data_opens_no_incident(world: World) -> None:
    world.service().run(T_END)
    # Given two hours with no datapoints at all (the API metrics stopped arriving)
    gap = world.service().run(T_END + 24 * P)
    # Then nothing is alerted, and data coming back is scored normally
    assert gap.transitions == []
    world.traffic(T_END + 24 * P, T_END + 27 * P)
    back = world.service().run(T_END + 27 * P)
    assert back.transitions == []
    assert world.notifier.published == []


def test_when_cloudwatch_fails_the_run_fails_and_the_next_one_scores_the_same_periods(world: World) -> None:
    world.service().run(T_END)
    generation = world.store.generation
    world.traffic(T_END, T_END + 4 * P)
    world.outage(T_END, T_END + 4 * P)
    # Given GetMetricData keeps throttling past every retry
    world.fake.throttle_next = 100
    with pytest.raises(MetricSourceError):
        world.service().run(T_END + 4 * P)
    # Then nothing was saved or sent, and the lease was released
    assert world.store.generation == generation
    assert world.notifier.published == []
    assert world.store.lease is None
    # When CloudWatch recovers, the next run scores those periods and alerts
    world.fake.throttle_next = 0
    result = world.service().run(T_END + 4 * P)
    assert result.points_scored >= 4 * 5
    assert kinds(world.notifier)[0] == "OPEN"


def test_trailing_periods_without_any_datapoint_are_held_back_until_the_data_arrives(world: World) -> None:
    world.service().run(T_END)
    # Given CloudWatch has delivered only the first 2 of 4 new periods so far
    world.traffic(T_END, T_END + 2 * P)
    early = world.service().run(T_END + 4 * P)
    # Then only those are scored; the last two are not taken for zeros
    assert early.scored_until == T_END + P
    # When the late datapoints (with an error burst) arrive, the next run scores them and alerts
    world.traffic(T_END + 2 * P, T_END + 4 * P)
    world.outage(T_END + 2 * P, T_END + 4 * P)
    late = world.service().run(T_END + 4 * P)
    assert late.scored_until == T_END + 3 * P
    assert kinds(world.notifier)[:1] == ["OPEN"]


def _twin() -> World:
    w = World(catalog=build_catalog(NAMES, period_s=P), fake=FakeCloudWatch())
    w.traffic(T_END - 2 * 86400, T_END)
    return w


def test_replaying_points_onto_a_checkpoint_gives_the_same_alerts_as_saving_every_run() -> None:
    # Given two identical worlds, one checkpointing detector states every run, one every 4 periods
    every, sparse = _twin(), _twin()
    for w in (every, sparse):
        w.service().run(T_END)
    for k in range(1, 11):
        for w in (every, sparse):
            w.traffic(T_END + (k - 1) * P, T_END + k * P)
            if 3 <= k <= 6:
                w.outage(T_END + (k - 1) * P, T_END + k * P)
        every.service(MONITOR_CHECKPOINT_PERIODS=1).run(T_END + k * P)
        sparse.service(MONITOR_CHECKPOINT_PERIODS=4).run(T_END + k * P)
    # Then the alerts are identical, and the big detector blob was written far less often
    assert kinds(every.notifier)[:1] == ["OPEN"]
    assert [json.loads(m["Message"])["sqs"] for m in sparse.notifier.published] == [
        json.loads(m["Message"])["sqs"] for m in every.notifier.published
    ]
    assert len(every.store.models_writes) == 11
    assert len(sparse.store.models_writes) == 1 + 10 // 4
    assert max(sparse.store.state_writes) < min(every.store.models_writes)


def test_transitions_of_an_incident_are_delivered_in_order_even_after_a_failure(world: World) -> None:
    world.service().run(T_END)
    world.traffic(T_END, T_END + 4 * P)
    world.outage(T_END, T_END + 4 * P)
    # Given SNS fails once, on the OPEN of an incident that also got an UPDATED in the same run
    world.notifier.fail_next = 1
    first = world.service().run(T_END + 4 * P)
    assert [t["kind"] for t in first.transitions][:2] == ["OPEN", "UPDATED"]
    # Then the UPDATED waits for the OPEN, and the next run sends them in order
    assert world.notifier.published == []
    world.service().run(T_END + 4 * P)
    assert kinds(world.notifier)[:2] == ["OPEN", "UPDATED"]


def test_an_incident_open_when_the_state_is_lost_still_resolves(world: World) -> None:
    world.service().run(T_END)
    world.traffic(T_END, T_END + 4 * P)
    world.outage(T_END, T_END + 4 * P)
    world.service().run(T_END + 4 * P)
    assert kinds(world.notifier)[:1] == ["OPEN"]
    opened = json.loads(json.loads(world.notifier.published[0]["Message"])["sqs"])["incident_id"]
    # Given the stored state is damaged while the incident is open
    world.store.blob = b"not zlib"
    world.traffic(T_END + 4 * P, T_END + 5 * P)
    rebuilt = world.service().run(T_END + 5 * P)
    assert any("model state rejected" in e for e in rebuilt.errors)
    assert rebuilt.open_incidents == 1  # rebuilt from the incidents saved open
    # When the errors stop
    world.traffic(T_END + 5 * P, T_END + 12 * P)
    for k in range(6, 13):
        world.service().run(T_END + k * P)
    # Then the incident that was open resolves, and nothing opened twice
    sent = [json.loads(json.loads(m["Message"])["sqs"]) for m in world.notifier.published]
    assert [(a["kind"], a["incident_id"]) for a in sent if a["kind"] != "UPDATED"] == [
        ("OPEN", opened),
        ("RESOLVED", opened),
    ]


def test_a_rebuilt_state_resolves_every_incident_saved_open_in_a_group_not_only_the_newest(
    world: World,
) -> None:
    world.service().run(T_END)
    world.traffic(T_END, T_END + 4 * P)
    world.outage(T_END, T_END + 4 * P)
    world.service().run(T_END + 4 * P)
    (newer,) = world.store.open_incidents()
    # Given an older incident of the same group also saved open (its OPEN went out, its RESOLVED was lost,
    # e.g. by an earlier rebuild), and then the stored state is damaged
    older = json.loads(json.dumps(newer)) | {
        "id": "inc-older",
        "opened_at": newer["opened_at"] - 6 * P,
        "seq": 3,
    }
    world.store.put_incident(older, now=T_END)
    world.store.blob = b"not zlib"
    # When the state is rebuilt and the errors stop
    world.traffic(T_END + 4 * P, T_END + 12 * P)
    rebuilt = world.service().run(T_END + 5 * P)
    assert any("model state rejected" in e for e in rebuilt.errors)
    for k in range(6, 13):
        world.service().run(T_END + k * P)
    # Then both incidents resolve, each exactly once, and none opens again
    sent = [json.loads(json.loads(m["Message"])["sqs"]) for m in world.notifier.published]
    closing = [(a["kind"], a["incident_id"]) for a in sent if a["kind"] != "UPDATED"]
    assert sorted(closing) == sorted(
        [("OPEN", newer["id"]), ("RESOLVED", "inc-older"), ("RESOLVED", newer["id"])]
    ), closing
    superseded = next(a for a in sent if a["incident_id"] == "inc-older")
    assert newer["id"] in superseded["reason"]
    assert world.store.open_incidents() == []


def test_outbox_items_of_a_run_that_died_before_its_commit_are_never_sent(world: World) -> None:
    world.service().run(T_END)
    world.traffic(T_END, T_END + 4 * P)
    world.outage(T_END, T_END + 4 * P)
    # Given an outbox item that a run wrote before it died without saving its state
    stray = OutboxItem(
        dedup_key="inc-1-abc#0001",
        incident_id="inc-1-abc",
        seq=1,
        kind="OPEN",
        created_at=T_END,
        message={"Message": "{}", "Subject": "stray"},
    )
    world.store.add_to_outbox(stray)
    # When the next runs publish
    world.service().run(T_END + 4 * P)
    world.service().run(T_END + 5 * P)
    # Then only the transitions a saved state refers to were sent
    assert "stray" not in [m.get("Subject") for m in world.notifier.published]
    assert kinds(world.notifier)[:1] == ["OPEN"]


def test_the_heartbeat_stops_while_sns_rejects_every_publish_for_more_than_ten_minutes(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from monitor import handler
    from sandbox.aws.scheduler import scheduled_event

    monkeypatch.setattr(handler, "get_settings", lambda: None)
    monkeypatch.setattr(handler, "build_service", lambda settings, *, owner, **_: world.service(owner=owner))
    world.service().run(T_END)
    world.traffic(T_END, T_END + 9 * P)
    world.outage(T_END, T_END + 4 * P)
    # Given SNS (or its KMS key) rejects every publish from the run that opens an incident on
    world.notifier.fail_next = 10**6
    emitted: list[dict[str, float]] = []
    for k in range(4, 9):  # runs every 5 minutes, from the one that records the OPEN
        capsys.readouterr()
        handler.lambda_handler(scheduled_event(datetime.fromtimestamp(T_END + k * P, tz=UTC)), Ctx(f"r{k}"))
        emitted.append(_emf(capsys.readouterr().out))
    # Then every run counts its failures, and the heartbeat stops once the OPEN is 10 minutes unsent
    assert world.notifier.published == []
    assert [m["NotificationFailures"] >= 1 for m in emitted] == [True] * 5
    assert [m["OutboxOldestUnsentAge"] for m in emitted] == [0, 300, 600, 900, 1200]
    assert ["Heartbeat" in m for m in emitted] == [True, True, True, False, False]
    # When SNS is back, the backlog is sent and the heartbeat returns
    world.notifier.fail_next = 0
    capsys.readouterr()
    handler.lambda_handler(scheduled_event(datetime.fromtimestamp(T_END + 9 * P, tz=UTC)), Ctx("r9"))
    assert _emf(capsys.readouterr().out)["Heartbeat"] == 1
    assert kinds(world.notifier)[:1] == ["OPEN"]


def test_publishing_stops_before_the_lambda_times_out_and_the_next_run_sends_the_rest(world: World) -> None:
    world.service().run(T_END)
    world.traffic(T_END, T_END + 4 * P)
    world.outage(T_END, T_END + 4 * P)
    # Given an invocation with 120 s left and an SNS that takes 80 s per publish (its retries)
    spent = [0.0]

    original = world.notifier.publish

    def slow_publish(message: dict[str, Any]) -> str:
        spent[0] += 80.0
        return original(message)

    world.notifier.publish = slow_publish  # type: ignore[method-assign]
    service = world.service()
    service.budget = RunBudget(remaining_s=lambda: 120.0 - spent[0])
    # When the run records an OPEN and an UPDATED
    first = service.run(T_END + 4 * P)
    assert [t["kind"] for t in first.transitions][:2] == ["OPEN", "UPDATED"]
    # Then it sends what fits in its time and leaves the rest pending instead of being killed mid-way
    assert first.published == 1
    assert "publishing" in first.deferred
    assert kinds(world.notifier) == ["OPEN"]
    # and the next run sends the rest, each once and in order
    world.traffic(T_END + 4 * P, T_END + 5 * P)
    world.service().run(T_END + 5 * P)
    assert kinds(world.notifier)[:2] == ["OPEN", "UPDATED"]
    keys = [json.loads(json.loads(m["Message"])["sqs"])["dedup_key"] for m in world.notifier.published]
    assert len(keys) == len(set(keys)) == len(world.store.outbox)


def test_a_run_with_too_little_time_left_leaves_the_scoring_to_the_next_run(world: World) -> None:
    world.service().run(T_END)
    world.traffic(T_END, T_END + 4 * P)
    world.outage(T_END, T_END + 4 * P)
    # Given an invocation that starts (a retry, a slow cold start) with less time than a fetch may take
    late = world.service()
    late.budget = RunBudget(remaining_s=lambda: FETCH_S / 2)
    result = late.run(T_END + 4 * P)
    # Then it fetches nothing and scores nothing
    assert result.fetch.calls == 0
    assert result.points_scored == 0
    assert "scoring" in result.deferred
    # and the next run scores those periods and alerts
    assert world.service().run(T_END + 4 * P).points_scored >= 4
    assert kinds(world.notifier)[:1] == ["OPEN"]


@pytest.mark.parametrize("arrival", ["on time", "one run late"])
def test_an_error_outage_raises_an_open_whether_its_datapoints_arrive_on_time_or_one_run_late(
    world: World, arrival: str
) -> None:
    world.service().run(T_END)
    outage = range(T_END, T_END + 4 * P, P)
    for k in range(1, 9):  # a run every period, each scoring the period that just ended
        now = T_END + k * P
        world.traffic(now - P, now)  # requests: always on time
        # Given 40 % of the requests failing with 5XX, counted on time or only by the next run
        ready = now if arrival == "on time" else now - P
        for t in outage:
            if t < ready:
                world.errors[t] = round(world.count[t] * 0.4)
        world.publish_series()
        world.service().run(now)
    # Then the outage opens one incident either way
    assert kinds(world.notifier).count("OPEN") == 1


class BrokenReceipts:
    """A receipts queue that cannot be read (deleted, or the monitor lost its permission)."""

    def receive(self) -> list[Receipt]:
        raise ReceiptsError("AccessDenied on sqs:ReceiveMessage")

    def delete(self, receipts: Sequence[Receipt]) -> None:
        raise AssertionError("nothing was read")


def test_unreadable_receipts_still_publish_and_count_as_a_run_error(world: World) -> None:
    # Given a receipts queue the monitor cannot read
    world.receipts = BrokenReceipts()
    world.service().run(T_END)
    world.traffic(T_END, T_END + 4 * P)
    world.outage(T_END, T_END + 4 * P)
    # When a run opens an incident
    result = world.service().run(T_END + 4 * P)
    # Then its alert goes out (a possible duplicate beats a lost alert) and the run reports the error
    assert kinds(world.notifier)[0] == "OPEN"
    assert result.published == len(world.notifier.published)
    assert [e for e in result.errors if e.startswith("delivery receipts:")]


@pytest.mark.parametrize(
    ("body", "key", "message_id"),
    [
        # the SNS envelope of an alert (what the subscription delivers): SNS's MessageId
        (
            json.dumps({"Type": "Notification", "MessageId": "sns-1", "Message": '{"dedup_key": "i#1"}'}),
            "i#1",
            "sns-1",
        ),
        # a raw alert payload (a subscription with raw delivery): the SQS message id
        ('{"dedup_key": "i#2", "kind": "OPEN"}', "i#2", "sqs-1"),
        # not an alert: no key (dropped with a warning)
        ("not json", None, "sqs-1"),
        ('{"Type": "Notification", "MessageId": "sns-2", "Message": "plain text"}', None, "sns-2"),
        ('["a list"]', None, "sqs-1"),
        ('{"dedup_key": 7}', None, "sqs-1"),
    ],
)
def test_a_receipt_names_the_alert_it_confirms(body: str, key: str | None, message_id: str) -> None:
    receipt = parse_receipt(body, handle="h", sqs_message_id="sqs-1")
    assert (receipt.dedup_key, receipt.message_id, receipt.handle) == (key, message_id, "h")


class QueuedReceipts:
    """A receipts queue in memory: `receive` returns the first 10 not yet deleted (as SQS would)."""

    def __init__(self, receipts: list[Receipt]) -> None:
        self.queue = list(receipts)
        self.reads = 0

    def receive(self) -> list[Receipt]:
        self.reads += 1
        return self.queue[:10]

    def delete(self, receipts: Sequence[Receipt]) -> None:
        self.queue = [r for r in self.queue if r not in receipts]


def test_receipts_are_read_batch_by_batch_until_the_queue_is_empty(world: World) -> None:
    world.service().run(T_END)
    # Given an alert SNS accepted before its run died (still `publishing`), whose receipt is the 23rd
    # of 25 in the queue (the others: alerts already marked sent, and one message that is no alert)
    item = OutboxItem(
        dedup_key="inc-1#0001", incident_id="inc-1", seq=1, kind="OPEN", created_at=T_END, message={}
    )
    world.store.add_to_outbox(item)
    assert world.store.claim(item, now=T_END, stale_s=240)
    others = [Receipt(dedup_key=f"old#{k}", message_id=f"m{k}", handle=f"h{k}") for k in range(22)]
    mine = Receipt(dedup_key=item.dedup_key, message_id="sns-23", handle="h23")
    junk = [Receipt(dedup_key=None, message_id=f"x{k}", handle=f"x{k}") for k in range(2)]
    world.receipts = queue = QueuedReceipts([*others, mine, *junk])
    # When the next run comes
    result = world.service().run(T_END + P)
    # Then it read the three batches, marked the item sent with SNS's MessageId, published nothing
    # again and emptied the queue
    assert queue.reads == 3
    assert queue.queue == []
    assert result.receipts_matched == 1
    assert world.store.outbox[item.dedup_key].status == "sent"
    assert world.store.outbox[item.dedup_key].message_id == "sns-23"
    assert world.notifier.published == []
