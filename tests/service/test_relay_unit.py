"""The outbox relay and the local stream event source, without the emulator."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sandbox.aws.stream_source import StreamSource
from service.adapters.eventbridge import EventPublishError
from service.adapters.items import OutboxItem
from service.domain.car import Car, Position
from service.domain.events import CarRegistered
from service.domain.status import CarStatus
from service.relay import handler as relay
from service.relay.outbox import InMemoryOutbox
from tests.service.apigw import FakeLambdaContext

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
NOW = datetime(2026, 11, 27, 1, 0, tzinfo=UTC)


def outbox_item(n: int) -> OutboxItem:
    car = Car(
        car_id=f"car-{n}",
        vin="1M8GDM9AXKP042788",
        model="R1",
        year=2025,
        seats=4,
        bike_rack=False,
        status=CarStatus.AVAILABLE,
        battery_level=50,
        position=Position(lat=1, lon=2),
        created_at=NOW,
        updated_at=NOW,
        version=1,
    )
    event = CarRegistered(event_id=f"evt-{n}", occurred_at=NOW, car_id=car.car_id, version=1, car=car)
    return OutboxItem.from_event(event)


def stream_record(n: int, name: str = "INSERT") -> dict[str, Any]:
    image = outbox_item(n).to_item()
    record: dict[str, Any] = {
        "eventID": f"id-{n}",
        "eventName": name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": {
            "ApproximateCreationDateTime": 1795741200,
            "Keys": {"event_id": image["event_id"]},
            "SequenceNumber": str(1000 + n),
            "SizeBytes": 100,
            "StreamViewType": "NEW_IMAGE",
        },
        "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/outbox/stream/label",
    }
    if name != "REMOVE":
        record["dynamodb"]["NewImage"] = image
    return record


class FakePublisher:
    def __init__(self, failing: set[str]) -> None:
        self.failing = failing
        self.published: list[OutboxItem] = []

    def publish(self, item: OutboxItem) -> None:
        if item.event_id in self.failing:
            raise EventPublishError(f"PutEvents rejected event {item.event_id}")
        self.published.append(item)


def test_relay_publishes_inserts_reports_failures_and_ignores_ttl_removals(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    publisher = FakePublisher(failing={"evt-2"})
    outbox = InMemoryOutbox([outbox_item(n) for n in (1, 2, 3)])
    monkeypatch.setattr(relay, "get_publisher", lambda: publisher)
    monkeypatch.setattr(relay, "get_outbox", lambda: outbox)
    event = {"Records": [stream_record(1), stream_record(2), stream_record(3), stream_record(4, "REMOVE")]}
    response = relay.lambda_handler(event, FakeLambdaContext())
    assert response == {"batchItemFailures": [{"itemIdentifier": "1002"}]}
    assert [p.event_id for p in publisher.published] == ["evt-1", "evt-3"]
    assert publisher.published[0].detail == outbox_item(1).detail  # published exactly as recorded
    # the published ones are marked; the failed one is still pending and not claimed (a retry may claim it)
    assert [i for i, item in outbox.items.items() if item.pending] == ["evt-2"]
    assert outbox.claims == {}
    # and a redelivered record of a published item is not published twice
    assert relay.lambda_handler({"Records": [stream_record(1)]}, FakeLambdaContext()) == {
        "batchItemFailures": []
    }
    assert [p.event_id for p in publisher.published] == ["evt-1", "evt-3"]


class FakeStreams:
    """The dynamodbstreams calls StreamSource makes, over a fixed list of records (one shard)."""

    def __init__(self, records: list[dict[str, Any]]) -> None:
        self.records = records

    def describe_stream(self, **kwargs: Any) -> dict[str, Any]:
        return {"StreamDescription": {"Shards": [{"ShardId": "shard-1"}]}}

    def get_shard_iterator(self, **kwargs: Any) -> dict[str, Any]:
        after = int(kwargs.get("SequenceNumber", 0))
        return {"ShardIterator": str(after)}

    def get_records(self, **kwargs: Any) -> dict[str, Any]:
        after = int(kwargs["ShardIterator"])
        rest = [r for r in self.records if int(r["dynamodb"]["SequenceNumber"]) > after]
        if not rest:
            return {"Records": []}
        return {"Records": rest, "NextShardIterator": rest[-1]["dynamodb"]["SequenceNumber"]}


def test_stream_source_bisects_a_poison_record_into_the_failure_destination() -> None:
    records = [stream_record(n) for n in range(1, 6)]
    delivered: list[str] = []

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        ids = [r["eventID"] for r in event["Records"]]
        if "id-3" in ids:
            raise RuntimeError("poison")  # a function error: the whole batch fails
        delivered.extend(ids)
        return {"batchItemFailures": []}

    source = StreamSource(
        stream_arn="arn", handler=handler, client=FakeStreams(records), max_retries=2, retry_delay_s=0
    )
    stats = source.drain_once()
    assert sorted(delivered) == ["id-1", "id-2", "id-4", "id-5"]
    assert [r["eventID"] for r in source.failed] == ["id-3"]
    assert stats.sent_to_failure_destination == 1
    assert source.drain_once().invocations == 0  # checkpointed: nothing is redelivered


def test_stream_source_retries_from_the_first_failed_record() -> None:
    records = [stream_record(n) for n in range(1, 5)]
    attempts: list[list[str]] = []
    failures_left = {"1003": 2}

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        seqs = [r["dynamodb"]["SequenceNumber"] for r in event["Records"]]
        attempts.append(seqs)
        failed = [s for s in seqs if failures_left.get(s, 0) > 0]
        for s in failed:
            failures_left[s] -= 1
        return {"batchItemFailures": [{"itemIdentifier": s} for s in failed]}

    source = StreamSource(stream_arn="arn", handler=handler, client=FakeStreams(records), retry_delay_s=0)
    stats = source.drain_once()
    assert attempts == [["1001", "1002", "1003", "1004"], ["1003", "1004"], ["1003", "1004"]]
    assert stats.retries == 2
    assert source.failed == []


def test_the_relay_may_publish_exactly_the_events_the_service_defines() -> None:
    # The relay's IAM policy allows the topology's source and detail types: they must be the service's.
    from contract.topology import topology
    from service.domain.events import EVENT_SOURCE, CarRegistered, CarRetired, CarStatusChanged, CarUpdated

    topo = topology()
    assert topo.event_source == EVENT_SOURCE
    defined = {
        cls.model_fields["event_type"].default
        for cls in (CarRegistered, CarUpdated, CarStatusChanged, CarRetired)
    }
    assert set(topo.event_detail_types) == defined


def _at(n: int, minutes: int) -> OutboxItem:
    return outbox_item(n).model_copy(update={"occurred_at": NOW + timedelta(minutes=minutes)})


def test_redrive_republishes_a_time_range_all_or_only_the_unpublished() -> None:
    from ops.relay_redrive import redrive

    # Given events at minutes 0, 10, 20 and 30, the one at 10 already published
    outbox = InMemoryOutbox([_at(1, 0), _at(2, 10), _at(3, 20), _at(4, 30)])
    outbox.mark_published("evt-2", now=NOW)
    publisher = FakePublisher(failing=set())
    window = {"since": NOW + timedelta(minutes=5), "until": NOW + timedelta(minutes=30)}
    # When only the unpublished ones of [5, 30) are redriven, then only evt-3 is sent, and it is marked
    summary = redrive(outbox, publisher, unpublished_only=True, now=NOW, **window)
    assert (summary.matched, summary.published) == (1, 1)
    assert [p.event_id for p in publisher.published] == ["evt-3"]
    assert outbox.items["evt-3"].published_at is not None
    # When the whole range is redriven, then both events in it are sent again (consumers deduplicate)
    summary = redrive(outbox, publisher, unpublished_only=False, now=NOW, **window)
    assert [p.event_id for p in publisher.published] == ["evt-3", "evt-2", "evt-3"]
    assert outbox.items["evt-1"].pending  # outside the range: untouched
    assert outbox.items["evt-4"].pending
    # And a dry run sends nothing
    assert redrive(outbox, publisher, unpublished_only=False, dry_run=True, **window).matched == 2
    assert len(publisher.published) == 3


def test_redrive_cli_refuses_bad_ranges(capsys: pytest.CaptureFixture[str]) -> None:
    from ops.relay_redrive import main

    for argv in (
        ["--since", "yesterday", "--until", "2026-12-01T00:00Z"],
        ["--since", "2026-12-02T00:00Z", "--until", "2026-12-01T00:00Z"],
    ):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2
    assert "--until must be after --since" in capsys.readouterr().err


def test_the_stream_mapping_filters_the_outbox_modify_records_out() -> None:
    # Given an INSERT followed by the claim and the published mark (MODIFY) of the same item
    records = [stream_record(1), stream_record(2, "MODIFY"), stream_record(3, "MODIFY"), stream_record(4)]
    invoked: list[str] = []

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        invoked.extend(r["eventName"] for r in event["Records"])
        return {"batchItemFailures": []}

    from contract.topology import topology

    source = StreamSource.from_spec(
        topology().outbox_source,
        stream_arn="arn",
        handler=handler,
        function_name="relay",
        client=FakeStreams(records),
    )
    # When the stream is drained, then only the INSERTs invoke the relay, and nothing is read twice
    source.drain_once()
    assert invoked == ["INSERT", "INSERT"]
    assert source.drain_once().invocations == 0
