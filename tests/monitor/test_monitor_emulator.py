"""The monitor against the AWS emulator over HTTP: CloudWatch read-back, the DynamoDB store, and a
full handler run that opens and resolves an incident, delivered once to an SQS subscriber."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
import numpy as np
import pytest

from contract.resources import FunctionName, ResourceNames
from monitor.catalog import MetricSpec, Severity
from monitor.source import CloudWatchMetricSource
from monitor.store import DynamoDbIncidentStore, OutboxItem, StateConflictError, StoreError
from sandbox.aws.scheduler import scheduled_event
from tests.monitor.conftest import Inbox

pytestmark = pytest.mark.integration

P = 60


def _put(namespace: str, name: str, dims: dict[str, str], t: np.ndarray, y: np.ndarray) -> None:
    cw = boto3.client("cloudwatch")
    data = [
        {
            "MetricName": name,
            "Dimensions": [{"Name": k, "Value": v} for k, v in dims.items()],
            "Timestamp": datetime.fromtimestamp(int(ti), tz=UTC),
            "Value": float(yi),
            "Unit": "Count",
        }
        for ti, yi in zip(t, y, strict=True)
    ]
    for i in range(0, len(data), 1000):
        cw.put_metric_data(Namespace=namespace, MetricData=data[i : i + 1000])


def test_put_metric_data_reads_back_through_the_source(provisioned: Any) -> None:
    # Given datapoints put with put_metric_data (two per minute for some minutes, none for one)
    dims = {"Probe": uuid.uuid4().hex}
    t0 = (int(time.time()) // P - 30) * P
    _put("FleetscopeTest", "Probe", dims, np.array([t0, t0 + 10, t0 + P, t0 + 3 * P]), np.array([1, 2, 5, 7]))
    spec = MetricSpec(
        id="probe",
        title="probe",
        resource="test",
        namespace="FleetscopeTest",
        metric_name="Probe",
        dimensions=dims,
        statistic="Sum",
        period_s=P,
        direction="up",
        severity=Severity.INFO,
        profile="count",
    )
    # When read through CloudWatchMetricSource
    result = CloudWatchMetricSource().fetch([spec], start=t0, end=t0 + 4 * P, period_s=P)
    # Then the per-period sums are on the grid and the empty minute is missing
    y = result.series["probe"].y
    assert y[[0, 1, 3]].tolist() == [3.0, 5.0, 7.0]
    assert np.isnan(y[2])
    assert result.stats.calls == 1


def test_lease_is_exclusive_until_released_or_expired(clean_monitor_table: str) -> None:
    store = DynamoDbIncidentStore(clean_monitor_table)
    assert store.acquire_lease("run-a", now=1000, lease_s=60)
    assert not store.acquire_lease("run-b", now=1010, lease_s=60)  # overlapping run
    assert store.acquire_lease("run-a", now=1020, lease_s=60)  # the same (retried) invocation
    assert store.acquire_lease("run-b", now=1100, lease_s=60)  # run-a's lease expired
    store.release_lease("run-a")  # not the holder: nothing happens
    assert not store.acquire_lease("run-c", now=1110, lease_s=60)
    store.release_lease("run-b")
    assert store.acquire_lease("run-c", now=1111, lease_s=60)


def test_state_is_split_into_chunks_and_guarded_by_its_generation(clean_monitor_table: str) -> None:
    store = DynamoDbIncidentStore(clean_monitor_table)
    blob = np.random.default_rng(0).bytes(800 * 1024)  # incompressible, > 2 chunks of 350 KB
    generation = store.save_state(blob, expected_generation=0, now=1000)
    loaded = store.load_state()
    assert loaded is not None
    assert loaded.blob == blob
    assert loaded.generation == generation == 1
    # A run that loaded generation 0 cannot overwrite the newer state
    with pytest.raises(StateConflictError):
        store.save_state(b"stale", expected_generation=0, now=1001)
    assert store.load_state().blob == blob  # type: ignore[union-attr]
    # A damaged chunk is detected, not silently used
    table = boto3.resource("dynamodb").Table(clean_monitor_table)
    prefix = f"blob#000000000001#{hashlib.sha256(blob).hexdigest()[:16]}"
    table.put_item(Item={"pk": "STATE", "sk": f"{prefix}#0001", "data": b"garbage"})
    with pytest.raises(StoreError, match="checksum"):
        store.load_state()


def test_detector_checkpoint_is_kept_by_reference_between_checkpoints(clean_monitor_table: str) -> None:
    store = DynamoDbIncidentStore(clean_monitor_table)
    models = np.random.default_rng(1).bytes(500 * 1024)
    # Given a run that saved a detector checkpoint with its online state
    store.save_state(b"online-1", expected_generation=0, now=1000, models=models)
    first = store.load_state()
    assert first is not None
    assert first.models == models
    # When the next run saves only its online state, referring to the same checkpoint
    store.save_state(b"online-2", expected_generation=1, now=1300, models_ref=first.models_ref)
    second = store.load_state()
    # Then both blobs load, and the checkpoint was not rewritten
    assert second is not None
    assert (second.blob, second.models, second.generation) == (b"online-2", models, 2)
    table = boto3.resource("dynamodb").Table(clean_monitor_table)
    chunks = table.query(
        KeyConditionExpression="pk = :pk AND begins_with(sk, :m)",
        ExpressionAttributeValues={":pk": "STATE", ":m": "models#"},
    )["Items"]
    assert len(chunks) == 2  # 500 KB in chunks of <= 350 KB, written once


def test_outbox_items_beyond_one_transaction_are_committed_with_the_state(clean_monitor_table: str) -> None:
    # (a client with botocore's default timeouts: this test is about sizes, not time)
    store = DynamoDbIncidentStore(
        clean_monitor_table, table=boto3.resource("dynamodb").Table(clean_monitor_table)
    )
    # Given a run with more transitions than one TransactWriteItems call holds (100 actions)
    items = [
        OutboxItem(
            dedup_key=f"inc-{uuid.uuid4().hex[:8]}#0001",
            incident_id=f"inc-{i}",
            seq=1,
            kind="OPEN",
            created_at=1000,
            message={"Subject": f"alert {i}", "Message": "x" * 500},
        )
        for i in range(130)
    ]
    # When it saves its state with them
    generation = store.save_state(b"online", expected_generation=0, now=1000, outbox=items)
    # Then the state and every item are there, each once, pending
    assert generation == 1
    unsent = {i.dedup_key: i for i in store.unsent()}
    assert {i.dedup_key for i in items} <= set(unsent)
    assert {unsent[i.dedup_key].status for i in items} == {"pending"}
    # and committing an item again (a retried run) does not reset one that was sent meanwhile
    store.mark_sent(items[0], now=1100, message_id="m-1")
    store.save_state(b"online-2", expected_generation=1, now=1200, outbox=items[:1])
    assert items[0].dedup_key not in {i.dedup_key for i in store.unsent()}


@dataclass
class FakeContext:
    function_name: str = "fleetscope-test-monitor"
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:fleetscope-test-monitor"
    aws_request_id: str = "req-1"

    def get_remaining_time_in_millis(self) -> int:
        return 120_000  # the monitor's Lambda timeout


def _event(t: int) -> dict[str, Any]:
    return scheduled_event(datetime.fromtimestamp(t, tz=UTC))


def _watch_one_api(monitor_env: Callable[..., None], name: str, *, cooldown_s: int) -> ResourceNames:
    """The monitor set to watch one API and its function (`<name>-api`, `<name>-fn`, service `<name>`)
    at 1-minute periods, trained on a day of history, scoring periods as soon as they end."""
    names = ResourceNames(
        stage="test",
        namespace="Fleetscope",
        api_name=f"{name}-api",
        api_stage="v1",
        functions=(FunctionName(key="cars-api", name=f"{name}-fn", service=name),),
        event_bus="unused",
    )
    monitor_env(
        MONITOR_RESOURCES=names.to_env(),
        MONITOR_PERIOD_S=str(P),
        MONITOR_HISTORY_DAYS="1",
        MONITOR_SETTLE_S="0",
        MONITOR_COOLDOWN_S=str(cooldown_s),
    )
    return names


def _alerts_for(inbox: Inbox, resource: str) -> list[dict[str, Any]]:
    return [
        m
        for m in inbox.receive_all()
        if m.get("MessageAttributes", {}).get("resource", {}).get("Value") == resource
    ]


@pytest.mark.slow
def test_handler_end_to_end_opens_once_and_resolves(
    clean_monitor_table: str, inbox: Inbox, monitor_env: Callable[..., None]
) -> None:
    from monitor import handler

    uid = uuid.uuid4().hex[:10]
    names = _watch_one_api(monitor_env, f"e2e-{uid}", cooldown_s=120)
    api_dims = {"ApiName": names.api_name, "Stage": "v1"}
    rng = np.random.default_rng(7)

    def traffic(t: np.ndarray) -> np.ndarray:
        return rng.poisson(100 + 20 * np.sin(2 * np.pi * (t % 86400) / 86400)).astype(float)

    # Given a day of normal API traffic without 5XX errors
    t1 = (int(time.time()) // P - 60) * P
    history = np.arange(t1 - 86400, t1, P)
    _put("AWS/ApiGateway", "Count", api_dims, history, traffic(history))
    # When the monitor runs for the first time, it trains and alerts on nothing
    first = handler.lambda_handler(_event(t1), FakeContext(aws_request_id="r1"))
    assert first["status"] == "ok"
    assert first["series_trained"] >= 10
    assert first["transitions"] == []
    # Given 5 minutes with 40 % of the requests failing with 5XX
    burst = np.arange(t1, t1 + 5 * P, P)
    _put("AWS/ApiGateway", "Count", api_dims, burst, np.full(5, 100.0))
    _put("AWS/ApiGateway", "5XXError", api_dims, burst, np.full(5, 40.0))
    # When the monitor runs, and the same scheduled invocation is retried
    second = handler.lambda_handler(_event(t1 + 5 * P), FakeContext(aws_request_id="r2"))
    retried = handler.lambda_handler(_event(t1 + 5 * P), FakeContext(aws_request_id="r2"))
    # Then the incident opened once and nothing was sent twice
    assert second["transitions"][0]["kind"] == "OPEN"
    assert second["get_metric_data_calls"] == 1  # a normal run fetches only the new periods
    assert retried["transitions"] == []
    assert retried["published"] == 0
    resource = f"service:e2e-{uid}"  # the API's incidents are its service's (API + function)
    opened = _alerts_for(inbox, resource)
    kinds = [m["MessageAttributes"]["kind"]["Value"] for m in opened]
    assert kinds.count("OPEN") == 1
    assert len(kinds) == len(second["transitions"])
    first_alert = opened[0]
    payload = json.loads(first_alert["Message"])  # the `sqs` part of the structured message
    assert payload["kind"] == "OPEN"
    assert payload["severity"] == "critical"
    assert first_alert["MessageAttributes"]["severity"]["Value"] == "critical"
    assert first_alert["MessageAttributes"]["service"]["Value"] == f"e2e-{uid}"
    assert first_alert["Subject"].startswith("[CRITICAL] OPEN ")
    assert len(first_alert["Subject"]) <= 100
    anomalous = {a["title"] for a in payload["anomalies"]}
    assert anomalous & {"API 5XX errors", "API 5XX rate"}
    lead = payload["anomalies"][0]
    assert lead["observed"] > lead["expected_upper"]
    assert payload["console_url"].startswith(
        "https://us-east-1.console.aws.amazon.com/cloudwatch/home?region="
    )
    # Given 15 normal minutes
    calm = np.arange(t1 + 5 * P, t1 + 20 * P, P)
    _put("AWS/ApiGateway", "Count", api_dims, calm, traffic(calm))
    # When the monitor runs again, the incident resolves (after 6 clear points and the cooldown)
    third = handler.lambda_handler(_event(t1 + 20 * P), FakeContext(aws_request_id="r3"))
    assert [t["kind"] for t in third["transitions"]] == ["RESOLVED"]
    resolved = _alerts_for(inbox, resource)
    assert [m["MessageAttributes"]["kind"]["Value"] for m in resolved] == ["RESOLVED"]
    assert json.loads(resolved[0]["Message"])["incident_id"] == payload["incident_id"]
    assert "RESOLVED" in resolved[0]["Subject"]


class Killed(Exception):
    """The Lambda process dying at this point (injected)."""


def _writes_state_head(params: dict[str, Any]) -> bool:
    """Whether a DynamoDB request (its JSON body) writes the model state head."""

    def walk(node: Any) -> bool:
        if isinstance(node, dict):
            if node.get("pk") == {"S": "STATE"} and node.get("sk") == {"S": "head"}:
                return True
            return any(walk(v) for v in node.values())
        if isinstance(node, list):
            return any(walk(v) for v in node)
        return False

    body = params.get("body") or b"{}"
    return walk(json.loads(body))


@contextmanager
def killed_at_the_state_head_write(table_name: str) -> Iterator[list[str]]:
    """The monitor's DynamoDB client dies when it writes the state head (whatever it wrote before stays)."""
    from monitor.store import _default_table_resource

    events = _default_table_resource(table_name).meta.client.meta.events
    kills: list[str] = []

    def die(params: dict[str, Any], model: Any, **_: Any) -> None:
        if model.name in ("PutItem", "UpdateItem", "TransactWriteItems") and _writes_state_head(params):
            kills.append(model.name)
            raise Killed(f"killed before {model.name} of the state head")

    events.register("before-call.dynamodb", die, unique_id="kill-at-state-head")
    try:
        yield kills
    finally:
        events.unregister("before-call.dynamodb", unique_id="kill-at-state-head")


@pytest.mark.slow
def test_a_run_killed_between_its_writes_and_rerun_with_a_late_datapoint_opens_once_and_resolves(
    clean_monitor_table: str, inbox: Inbox, monitor_env: Callable[..., None]
) -> None:
    from monitor import handler

    uid = uuid.uuid4().hex[:10]
    names = _watch_one_api(monitor_env, f"kill-{uid}", cooldown_s=120)
    api_dims = {"ApiName": names.api_name, "Stage": "v1"}
    rng = np.random.default_rng(11)

    def traffic(t: np.ndarray) -> np.ndarray:
        return rng.poisson(100 + 20 * np.sin(2 * np.pi * (t % 86400) / 86400)).astype(float)

    # Given a trained monitor and 5 minutes of 40 % 5XX errors whose first datapoint is not in yet
    t1 = (int(time.time()) // P - 60) * P
    history = np.arange(t1 - 86400, t1, P)
    _put("AWS/ApiGateway", "Count", api_dims, history, traffic(history))
    assert handler.lambda_handler(_event(t1), FakeContext(aws_request_id="k1"))["transitions"] == []
    burst = np.arange(t1, t1 + 5 * P, P)
    _put("AWS/ApiGateway", "Count", api_dims, burst, np.full(5, 100.0))
    _put("AWS/ApiGateway", "5XXError", api_dims, burst[1:], np.full(4, 40.0))
    # When the run that detects it dies between its writes (before the state head is saved)
    with killed_at_the_state_head_write(clean_monitor_table) as kills, pytest.raises(Killed):
        handler.lambda_handler(_event(t1 + 5 * P), FakeContext(aws_request_id="k2"))
    assert kills
    # and the retried invocation runs after the late datapoint arrived (the incident now opens earlier)
    _put("AWS/ApiGateway", "5XXError", api_dims, burst[:1], np.full(1, 40.0))
    retried = handler.lambda_handler(_event(t1 + 5 * P), FakeContext(aws_request_id="k2-retry"))
    assert "OPEN" in [t["kind"] for t in retried["transitions"]]
    # and the errors stop
    calm = np.arange(t1 + 5 * P, t1 + 20 * P, P)
    _put("AWS/ApiGateway", "Count", api_dims, calm, traffic(calm))
    later = handler.lambda_handler(_event(t1 + 20 * P), FakeContext(aws_request_id="k3"))
    assert "RESOLVED" in [t["kind"] for t in later["transitions"]]
    # Then subscribers got exactly one OPEN, and the incident it opened was resolved
    alerts = [json.loads(m["Message"]) for m in _alerts_for(inbox, f"service:kill-{uid}")]
    opened = [a["incident_id"] for a in alerts if a["kind"] == "OPEN"]
    resolved = [a["incident_id"] for a in alerts if a["kind"] == "RESOLVED"]
    assert len(opened) == 1
    assert resolved == opened


def test_two_stages_monitors_saving_the_same_generation_do_not_share_a_client_token(
    clean_monitor_table: str,
) -> None:
    from contract.topology import topology
    from sandbox.aws.provision import provision

    # Given another stage's monitor table in the same account and region (DynamoDB scopes
    # ClientRequestTokens to the account and region, not to a table)
    other = topology(f"tok{uuid.uuid4().hex[:6]}")
    provision(other, session=boto3.Session())
    stores = [
        DynamoDbIncidentStore(name, table=boto3.resource("dynamodb").Table(name))
        for name in (clean_monitor_table, other.monitor_table.name)
    ]

    def item(key: str) -> OutboxItem:
        return OutboxItem(
            dedup_key=key, incident_id=key, seq=1, kind="OPEN", created_at=1000, message={"m": key}
        )

    # When both save their first generation of the same (empty) state, each with its own alert
    for n, store in enumerate(stores):
        assert (
            store.save_state(b"empty", expected_generation=0, now=1000, outbox=[item(f"inc-{n}#0001")]) == 1
        )
    # Then each table holds its own alert: neither save was taken for a repeat of the other
    assert [[i.dedup_key for i in store.unsent()] for store in stores] == [["inc-0#0001"], ["inc-1#0001"]]


class Died(BaseException):
    """The Lambda process dying (not an Exception: no handler of the code may catch it)."""


@contextmanager
def dying_after_sns_accepts(*, lost_answer: bool) -> Iterator[list[str]]:
    """The monitor's SNS client: the first Publish reaches SNS, then the process dies before it hears the
    answer (`lost_answer`: the answer is lost instead, a read timeout; the run carries on)."""
    from monitor.notifier import _default_sns_client

    events = _default_sns_client().meta.events
    accepted: list[str] = []

    def die(parsed: dict[str, Any], **_: Any) -> None:
        if not accepted:
            accepted.append(str(parsed["MessageId"]))
            raise (RuntimeError("Read timeout on endpoint URL") if lost_answer else Died("after SNS Publish"))

    events.register("after-call.sns.Publish", die, unique_id="die-after-publish")
    try:
        yield accepted
    finally:
        events.unregister("after-call.sns.Publish", unique_id="die-after-publish")


@pytest.mark.slow
@pytest.mark.parametrize("lost_answer", [False, True], ids=["killed-after-publish", "answer-lost"])
@pytest.mark.parametrize("receipts", [True, False], ids=["receipts", "no-receipts-queue"])
def test_an_alert_sns_accepted_before_the_run_died_is_not_sent_again(
    clean_monitor_table: str,
    inbox: Inbox,
    monitor_env: Callable[..., None],
    receipts: bool,
    lost_answer: bool,
) -> None:
    from monitor import handler

    uid = uuid.uuid4().hex[:10]
    names = _watch_one_api(monitor_env, f"rcpt-{uid}", cooldown_s=600)
    if not receipts:
        monitor_env(ALERTS_RECEIPTS_QUEUE_NAME="")  # the monitor as it was: no receipts queue
    api_dims = {"ApiName": names.api_name, "Stage": "v1"}
    rng = np.random.default_rng(5)
    t1 = (int(time.time()) // P - 60) * P
    history = np.arange(t1 - 86400, t1, P)
    _put("AWS/ApiGateway", "Count", api_dims, history, rng.poisson(100, len(history)).astype(float))
    assert handler.lambda_handler(_event(t1), FakeContext(aws_request_id="r1"))["transitions"] == []
    # Given a 5XX outage the monitor opens an incident for
    burst = np.arange(t1, t1 + 10 * P, P)
    _put("AWS/ApiGateway", "Count", api_dims, burst, np.full(len(burst), 100.0))
    _put("AWS/ApiGateway", "5XXError", api_dims, burst, np.full(len(burst), 40.0))
    # When SNS accepts the OPEN and the run dies (or loses SNS's answer) before marking it sent
    with dying_after_sns_accepts(lost_answer=lost_answer) as accepted:
        if lost_answer:
            failed = handler.lambda_handler(_event(t1 + 5 * P), FakeContext(aws_request_id="r2"))
            assert failed["publish_failures"] == 1
        else:
            with pytest.raises(Died):
                handler.lambda_handler(_event(t1 + 5 * P), FakeContext(aws_request_id="r2"))
    assert len(accepted) == 1
    # and the next scheduled run comes after the dead run's lease and claim went stale
    later = handler.lambda_handler(_event(t1 + 10 * P), FakeContext(aws_request_id="r3"))
    # Then with receipts the OPEN reached subscribers once and is marked sent with SNS's MessageId
    opens = [
        m
        for m in _alerts_for(inbox, f"service:rcpt-{uid}")
        if m["MessageAttributes"]["kind"]["Value"] == "OPEN"
    ]
    outbox = boto3.resource("dynamodb").Table(clean_monitor_table)
    key = json.loads(opens[0]["Message"])["dedup_key"]
    item = outbox.get_item(Key={"pk": "OUTBOX", "sk": key})["Item"]
    assert item["status"] == "sent"
    if receipts:
        assert len(opens) == 1
        assert later["receipts_matched"] == 1
        assert item["message_id"] == accepted[0] == opens[0]["MessageId"]
    else:  # without them the next run cannot know SNS had it: sent twice
        assert len(opens) == 2
        assert later["receipts_matched"] == 0
