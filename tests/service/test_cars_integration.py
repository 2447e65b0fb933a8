"""The cars API against the AWS emulator over HTTP: DynamoDB adapter, idempotency table, outbox, relay."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import boto3
import pytest

from contract.topology import Topology
from sandbox.aws.provision import Provisioned
from sandbox.aws.stream_source import StreamSource, sqs_failure_destination
from service.adapters.aws import dynamodb_client, events_client
from service.adapters.eventbridge import EventBridgePublisher, EventPublishError
from service.api import dependencies
from service.domain.events import EVENT_SOURCE, parse_event
from service.domain.pagination import CursorCodec
from service.relay import handler as relay
from service.settings import get_settings
from tests.service.conftest import Api, car_body

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("live")]


def register(api: Api, **overrides: Any) -> dict[str, Any]:
    created = api("POST", "/cars", body=car_body(**overrides))
    assert created.status == 201, created.body
    return dict(created.body)


def test_every_route_against_dynamodb(api: Api) -> None:
    model = f"M-{uuid.uuid4().hex[:8]}"
    car = register(api, model=model)
    path = f"/cars/{car['car_id']}"
    assert api("GET", path).body == car
    replaced = api("PUT", path, body=car | {"seats": 7}, headers={"If-Match": '"1"'})
    assert replaced.status == 200
    assert replaced.body["seats"] == 7
    assert api("PUT", path, body=car | {"seats": 2}, headers={"If-Match": '"1"'}).status == 409
    moved = api("PATCH", f"{path}/status", body={"status": "charging"})
    assert (moved.status, moved.body["status"], moved.body["version"]) == (200, "charging", 3)
    assert api("PATCH", f"{path}/status", body={"status": "in_trip"}).body["allowed"] == [
        "available",
        "maintenance",
        "retired",
    ]
    assert [c["car_id"] for c in api("GET", f"/cars?model={model}").body["items"]] == [car["car_id"]]
    assert api("DELETE", path).status == 204
    assert api("GET", path).body["status"] == "retired"
    assert api("GET", f"/cars?model={model}").body["items"] == []  # retired: hidden from default listings
    retired = api("GET", f"/cars?model={model}&status=retired").body["items"]
    assert [c["car_id"] for c in retired] == [car["car_id"]]
    assert api("GET", f"/cars/{uuid.uuid4()}").status == 404
    assert api("GET", "/health").status == 200


def test_vin_is_unique(api: Api) -> None:
    first = car_body()
    assert api("POST", "/cars", body=first).status == 201
    duplicate = api("POST", "/cars", body=car_body(vin=first["vin"]))
    assert duplicate.status == 409
    assert duplicate.body["type"].endswith("vin-registered")


def test_listing_uses_indexes_and_pages_through_everything(api: Api) -> None:
    model = f"P-{uuid.uuid4().hex[:8]}"
    ids = [register(api, model=model)["car_id"] for _ in range(7)]
    api("PATCH", f"/cars/{ids[1]}/status", body={"status": "charging"})
    api("DELETE", f"/cars/{ids[2]}")

    def all_pages(query: str) -> list[str]:
        seen: list[str] = []
        token = None
        while True:
            page = api("GET", f"/cars?{query}&limit=2" + (f"&next_token={token}" if token else "")).body
            seen += [c["car_id"] for c in page["items"]]
            token = page["next_token"]
            if token is None:
                return seen

    assert all_pages(f"model={model}") == [i for i in ids if i != ids[2]]
    assert all_pages(f"model={model}&status=charging") == [ids[1]]
    assert ids[1] in all_pages("status=charging")
    everything = all_pages("x=1")
    assert set(ids) - {ids[2]} <= set(everything)
    assert ids[2] not in everything
    assert len(everything) == len(set(everything))  # no duplicates across pages


def test_garbage_and_foreign_tokens_are_400(api: Api) -> None:
    first = api("GET", "/cars?limit=1").body
    if first["next_token"]:
        assert api("GET", f"/cars?status=charging&next_token={first['next_token']}").status == 400
    assert api("GET", "/cars?next_token=eyJ2IjoxfQ.AAAA").status == 400


def test_a_token_forged_with_public_knowledge_or_from_another_filter_is_400(api: Api, topo: Topology) -> None:
    for _ in range(3):
        register(api, model="Forge R1")
    page = api("GET", "/cars?model=Forge%20R1&limit=1").body
    filters: dict[str, str | None] = {"status": None, "model": "Forge R1"}
    # Given a token an attacker signs with what is public: the table name (the key before the secret)
    position = {"list_sk": "0", "car_id": "x", "model": "Forge R1"}
    forged = CursorCodec(topo.cars_table.name.encode()).encode(position, filters)
    # Then it is refused, as is a genuine token replayed against another filter
    refused = api("GET", f"/cars?model=Forge%20R1&next_token={forged}")
    assert (refused.status, refused.body["type"]) == (400, "urn:fleetscope:problem:invalid-next-token")
    assert api("GET", f"/cars?model=Other&next_token={page['next_token']}").status == 400
    # while the genuine token pages on
    assert api("GET", f"/cars?model=Forge%20R1&limit=1&next_token={page['next_token']}").status == 200


def test_tokens_in_flight_survive_a_rotation_of_the_pagination_secret(api: Api, topo: Topology) -> None:
    for _ in range(3):
        register(api, model="Rotate R1")
    # Given a token issued under the current key
    first = api("GET", "/cars?model=Rotate%20R1&limit=1").body
    # When the secret is rotated and the API runs in a fresh environment (nothing cached)
    boto3.client("secretsmanager").put_secret_value(
        SecretId=topo.pagination_secret, SecretString=f"rotated-{uuid.uuid4()}"
    )
    dependencies.get_car_service.cache_clear()
    dependencies.get_signing_keys.cache_clear()
    # Then the token still pages (AWSPREVIOUS verifies) and the next one is signed with the new key
    second = api("GET", f"/cars?model=Rotate%20R1&limit=1&next_token={first['next_token']}")
    assert second.status == 200, second.body
    assert second.body["next_token"]
    assert api("GET", f"/cars?model=Rotate%20R1&limit=1&next_token={second.body['next_token']}").status == 200


def test_idempotent_registration_replays_and_creates_nothing_new(api: Api, topo: Topology) -> None:
    key = f"key-{uuid.uuid4()}"
    body = car_body()
    first = api("POST", "/cars", body=body, headers={"Idempotency-Key": key})
    again = api("POST", "/cars", body=body, headers={"Idempotency-Key": key})
    assert first.status == again.status == 201
    assert again.body == first.body
    assert again.headers["location"] == first.headers["location"]
    cars = dynamodb_client().scan(
        TableName=topo.cars_table.name,
        FilterExpression="vin = :v",
        ExpressionAttributeValues={":v": {"S": body["vin"]}},
    )["Items"]
    assert len(cars) == 1  # one car item (the VIN claim has no `vin` attribute)
    outbox = dynamodb_client().scan(
        TableName=topo.outbox_table.name,
        FilterExpression="car_id = :c",
        ExpressionAttributeValues={":c": {"S": first.body["car_id"]}},
    )["Items"]
    assert len(outbox) == 1  # one CarRegistered, not two
    other = api("POST", "/cars", body=body | {"seats": 2}, headers={"Idempotency-Key": key})
    assert other.status == 422
    assert other.body["type"].endswith("idempotency-key-reused")
    records = dynamodb_client().scan(TableName=topo.idempotency_table.name)["Items"]
    assert all("expiration" in r and "id" in r for r in records)


def test_telemetry_written_by_ingest_survives_put_and_shows_in_get(api: Api, topo: Topology) -> None:
    car = register(api)
    # What the telemetry ingest does: its own conditional UpdateItem, no version bump.
    boto3.resource("dynamodb").Table(topo.cars_table.name).update_item(
        Key={"car_id": car["car_id"]},
        UpdateExpression="SET battery_level = :b, #p = :p, speed_kmh = :s, telemetry_ts = :t",
        ExpressionAttributeNames={"#p": "position"},
        ExpressionAttributeValues={
            ":b": Decimal("33.5"),
            ":p": {"lat": Decimal("48.1"), "lon": Decimal("11.5")},
            ":s": Decimal("27"),
            ":t": 1795741200123,
        },
    )
    replaced = api("PUT", f"/cars/{car['car_id']}", body=car | {"model": "R2"}, headers={"If-Match": '"1"'})
    assert replaced.status == 200
    got = api("GET", f"/cars/{car['car_id']}").body
    assert got["battery_level"] == 33.5
    assert got["position"] == {"lat": 48.1, "lon": 11.5}
    assert got["speed_kmh"] == 27.0
    assert got["telemetry_at"].startswith("2026-11-27T01:00:00.123")
    assert (got["model"], got["version"]) == ("R2", 2)


# --- events: outbox -> stream -> relay -> EventBridge -> SQS ------------------------------------------------


@pytest.fixture
def bus_queue(live: Provisioned, topo: Topology) -> Iterator[str]:
    """An SQS queue subscribed to every fleetscope.cars event on the bus (a rule made for this test)."""
    sqs, events = boto3.client("sqs"), boto3.client("events")
    name = f"test-car-events-{uuid.uuid4().hex[:8]}"
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(
        Name=name, EventBusName=topo.event_bus, EventPattern=json.dumps({"source": [EVENT_SOURCE]})
    )
    events.put_targets(Rule=name, EventBusName=topo.event_bus, Targets=[{"Id": "q", "Arn": arn}])
    yield url
    events.remove_targets(Rule=name, EventBusName=topo.event_bus, Ids=["q"])
    events.delete_rule(Name=name, EventBusName=topo.event_bus)
    sqs.delete_queue(QueueUrl=url)


def received_events(queue_url: str) -> list[dict[str, Any]]:
    sqs = boto3.client("sqs")
    out: list[dict[str, Any]] = []
    while True:
        batch = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        messages = batch.get("Messages", [])
        if not messages:
            return out
        out += [json.loads(m["Body"]) for m in messages]
        sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
        )


def drive_changes(api: Api) -> tuple[set[str], list[str]]:
    """Make one car of each event type; return the car ids and the event types expected, in order."""
    a = register(api)
    b = register(api)
    api("PUT", f"/cars/{a['car_id']}", body=a | {"seats": 6}, headers={"If-Match": '"1"'})
    api("PATCH", f"/cars/{a['car_id']}/status", body={"status": "reserved"})
    api("PATCH", f"/cars/{b['car_id']}/status", body={"status": "in_trip"})  # illegal: no event
    api("PUT", f"/cars/{b['car_id']}", body=b, headers={"If-Match": '"1"'})  # no change: no event
    api("DELETE", f"/cars/{b['car_id']}")
    expected = ["CarRegistered", "CarRegistered", "CarUpdated", "CarStatusChanged", "CarRetired"]
    return {a["car_id"], b["car_id"]}, expected


def check_delivery(
    queue_url: str, car_ids: set[str], expected: list[str], topo: Topology
) -> list[dict[str, Any]]:
    mine = [e for e in received_events(queue_url) if e["detail"]["car_id"] in car_ids]
    unique = {e["detail"]["event_id"]: e for e in mine}  # at-least-once: dedupe on the stable event id
    outbox_ids = set()
    for car_id in car_ids:
        items = dynamodb_client().scan(
            TableName=topo.outbox_table.name,
            FilterExpression="car_id = :c",
            ExpressionAttributeValues={":c": {"S": car_id}},
        )["Items"]
        outbox_ids |= {i["event_id"]["S"] for i in items}
    assert set(unique) == outbox_ids  # none missing, none phantom
    assert sorted(e["detail-type"] for e in unique.values()) == sorted(expected)
    for envelope in unique.values():
        event = parse_event(json.dumps(envelope["detail"]))  # the published detail matches the schema
        assert envelope["detail-type"] == event.event_type
        assert envelope["source"] == EVENT_SOURCE
    return mine


def test_every_change_is_published_exactly_as_recorded(api: Api, bus_queue: str, topo: Topology) -> None:
    car_ids, expected = drive_changes(api)
    stats = make_source_for(topo).drain_once()
    assert stats.sent_to_failure_destination == 0
    mine = check_delivery(bus_queue, car_ids, expected, topo)
    assert len(mine) == len(expected)  # no failure, so no redelivery either
    details = {e["detail-type"]: e["detail"] for e in mine if e["detail-type"] != "CarRegistered"}
    assert details["CarUpdated"]["changed_fields"] == ["seats"]
    assert details["CarUpdated"]["car"]["seats"] == 6
    assert details["CarUpdated"]["version"] == 2
    assert (details["CarStatusChanged"]["from_status"], details["CarStatusChanged"]["to_status"]) == (
        "available",
        "reserved",
    )
    assert details["CarRetired"]["car"]["status"] == "retired"
    assert all(e["detail"]["schema_version"] == "1.0" for e in mine)


def test_the_event_log_holds_ids_and_status_not_vin_or_position(api: Api, topo: Topology) -> None:
    # Given a registered car whose event the relay published
    car = register(api)
    make_source_for(topo).drain_once()
    # When the fleet bus's log rule has copied it
    logs = boto3.client("logs")
    messages = [
        e["message"]
        for e in logs.filter_log_events(logGroupName=topo.event_log_group)["events"]
        if car["car_id"] in e["message"]
    ]
    # Then the log line names the event, the car, its version and status, and nothing personal
    assert len(messages) == 1, messages
    assert "CarRegistered" in messages[0]
    assert "status=available" in messages[0]
    assert car["vin"] not in messages[0]
    assert "52.52" not in messages[0]
    assert "lat" not in messages[0]


def make_source_for(topo: Topology) -> StreamSource:
    """The relay fed from the outbox stream like the CDK event source mapping (batch, retries, bisect)."""
    arn = dynamodb_client().describe_table(TableName=topo.outbox_table.name)["Table"]["LatestStreamArn"]
    return StreamSource.from_spec(
        topo.outbox_source,
        stream_arn=arn,
        handler=relay.lambda_handler,
        function_name=topo.outbox_relay.name,
        retry_delay_s=0.01,
    )


class FlakyEvents:
    """The real EventBridge client, except that the first `failures` PutEvents calls report a failed entry."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    def put_events(self, **kwargs: Any) -> dict[str, Any]:
        self.calls += 1
        if self.calls <= self.failures:
            return {
                "FailedEntryCount": 1,
                "Entries": [{"ErrorCode": "InternalFailure", "ErrorMessage": "injected"}],
            }
        return dict(events_client().put_events(**kwargs))


def test_a_failed_put_events_is_retried_and_the_event_still_arrives(
    api: Api, bus_queue: str, topo: Topology, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = make_source_for(topo)
    source.drain_once()  # start from a clean checkpoint: older events are not part of this test
    received_events(bus_queue)
    car_ids, expected = drive_changes(api)
    flaky = FlakyEvents(failures=1)
    publisher = EventBridgePublisher(client=flaky, bus_name=topo.event_bus)  # type: ignore[arg-type]
    monkeypatch.setattr(relay, "get_publisher", lambda: publisher)
    stats = source.drain_once()
    assert stats.retries >= 1
    assert stats.sent_to_failure_destination == 0
    assert flaky.calls > len(expected)  # the failed one was published again
    check_delivery(bus_queue, car_ids, expected, topo)


def test_retries_exhausted_go_to_the_failure_destination_and_nothing_is_lost_silently(
    api: Api, bus_queue: str, topo: Topology, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = make_source_for(topo)
    source.drain_once()
    received_events(bus_queue)
    sqs = boto3.client("sqs")
    failures_url = sqs.create_queue(QueueName=f"test-relay-failures-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    source.on_failure = sqs_failure_destination(failures_url)
    car = register(api)
    publisher = EventBridgePublisher(client=FlakyEvents(failures=10_000), bus_name=topo.event_bus)  # type: ignore[arg-type]
    monkeypatch.setattr(relay, "get_publisher", lambda: publisher)
    stats = source.drain_once()
    assert stats.sent_to_failure_destination == 1
    [failed] = source.failed
    assert failed["dynamodb"]["NewImage"]["car_id"]["S"] == car["car_id"]
    assert [e for e in received_events(bus_queue) if e["detail"]["car_id"] == car["car_id"]] == []
    [message] = sqs.receive_message(QueueUrl=failures_url, MaxNumberOfMessages=10)["Messages"]
    info = json.loads(message["Body"])["DDBStreamBatchInfo"]
    assert info["startSequenceNumber"] == failed["dynamodb"]["SequenceNumber"]
    sqs.delete_queue(QueueUrl=failures_url)


class SimulatedClock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


class OutagePublisher:
    """EventBridge that fails every PutEvents until `until` on the simulated clock, then the real bus."""

    def __init__(self, clock: SimulatedClock, until: datetime, bus: str) -> None:
        self.clock, self.until = clock, until
        self.real = EventBridgePublisher(client=events_client(), bus_name=bus)
        self.failed = 0

    def publish(self, item: Any) -> None:
        if self.clock() < self.until:
            self.failed += 1
            raise EventPublishError("injected outage: EventBridge unavailable")
        self.real.publish(item)


def test_changes_made_during_a_70_minute_outage_are_delivered_exactly_once_afterwards(
    api: Api, bus_queue: str, topo: Topology, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the relay and sweeper publishing to an EventBridge that is down for 70 minutes (simulated clock;
    # the sweeper's window shortened to 5 minutes through its setting)
    monkeypatch.setenv("OUTBOX_SWEEP_AFTER_S", "300")
    get_settings.cache_clear()
    clock = SimulatedClock()
    outage = OutagePublisher(clock, clock.now + timedelta(minutes=70), topo.event_bus)
    monkeypatch.setattr(relay, "get_publisher", lambda: outage)
    source = make_source_for(topo)
    source.drain_once()
    received_events(bus_queue)
    # When changes are made every 10 minutes through the outage, the stream relay gives up on every one of
    # them (retries exhausted) and the sweeper, running every 10 minutes, fails too
    car_ids: set[str] = set()
    expected: list[str] = []
    for _ in range(7):
        ids, types = drive_changes(api)
        car_ids |= ids
        expected += types
        assert source.drain_once().sent_to_failure_destination >= len(types)
        clock.now += timedelta(minutes=9)
        assert relay.run_sweep(clock.now).published == 0
        clock.now += timedelta(minutes=1)
    assert received_events(bus_queue) == []
    # Then, once EventBridge is back, the next sweep delivers every change, and later sweeps nothing more
    clock.now += timedelta(minutes=1)
    assert relay.run_sweep(clock.now).published >= len(expected)
    assert relay.run_sweep(clock.now + timedelta(minutes=10)).published == 0
    source.drain_once()  # the relay's MODIFY records (claims, marks) publish nothing
    mine = check_delivery(bus_queue, car_ids, expected, topo)
    ids = [e["detail"]["event_id"] for e in mine]
    assert len(ids) == len(set(ids)) == len(expected)  # exactly once: none lost, none twice
