"""POST /cars/{car_id}/telemetry through the local gateway: the request model, SendMessage to the emulator's
queue with the CDK app's own mapping templates, 202 {messageId} only once SQS has it, no Lambda."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.core import NOT_SET

from contract.telemetry_api import TELEMETRY_PATH
from sandbox.aws.gateway import Gateway, GatewayConfig
from sandbox.aws.runtime import Invocation
from sandbox.aws.telemetry_route import TelemetryRoute, escape_javascript, render
from sandbox.emulator.server import Emulator
from service.api.handler import openapi_json
from service.ingest.models import TelemetryMessage

pytestmark = [pytest.mark.integration]

READING = {
    "ts": "2026-12-05T10:00:00.250+01:00",
    "position": {"lat": 38.72, "lon": -9.14},
    "battery_level": 81.5,
    "speed_kmh": 32,
}


class NoLambda:
    """The telemetry route must not invoke any function: every invocation is recorded (and fails)."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def invoke(self, event: dict[str, Any], *, trace_header_value: str | None = None) -> Invocation:
        self.events.append(event)
        return Invocation("r", payload={"statusCode": 404, "body": "{}"})


@pytest.fixture(scope="module")
def sqs(emulator: Emulator) -> Any:
    return boto3.client("sqs", endpoint_url=emulator.endpoint_url, region_name="us-east-1")


@pytest.fixture
def queue(sqs: Any) -> Iterator[str]:
    url: str = sqs.create_queue(QueueName=f"telemetry-route-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    yield url
    sqs.delete_queue(QueueUrl=url)


def _start(queue_url: str, sqs: Any, **config: Any) -> tuple[Gateway, NoLambda]:
    invoker = NoLambda()
    route = TelemetryRoute(queue_url, send_message=lambda request: sqs.send_message(**request))
    settings = {"api_name": "fleetscope-test-cars-api", "stage": "v1"} | config
    return Gateway(invoker, GatewayConfig(**settings), port=0, telemetry=route).start(), invoker


@pytest.fixture
def gateway(queue: str, sqs: Any) -> Iterator[tuple[Gateway, NoLambda]]:
    started = _start(queue, sqs)
    yield started
    started[0].stop()


def _queued(sqs: Any, url: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while True:
        batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"])
        messages = batch.get("Messages", [])
        if not messages:
            return out
        out += messages
        for message in messages:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def test_a_reading_is_queued_as_the_ingest_message_and_answered_202_with_the_message_id(
    gateway: tuple[Gateway, NoLambda], queue: str, sqs: Any
) -> None:
    gw, invoker = gateway
    # When a car posts a reading (with the stage in the path, as on AWS)
    response = requests.post(f"{gw.url}/v1/cars/car-7/telemetry", json=READING, timeout=30)
    # Then 202 with SQS's message id, and the queue holds exactly that message
    assert response.status_code == 202, response.text
    message_id = response.json()["messageId"]
    queued = _queued(sqs, queue)
    assert [m["MessageId"] for m in queued] == [message_id]
    # And its body is the ingest's message: the reading with the car from the path
    message = TelemetryMessage.model_validate_json(queued[0]["Body"])
    assert message.car_id == "car-7"
    assert json.loads(queued[0]["Body"]) == {"car_id": "car-7"} | READING
    assert (
        queued[0]["MessageAttributes"]["api_request_id"]["StringValue"]
        == response.headers["x-amzn-RequestId"]
    )
    # And no Lambda ran
    assert invoker.events == []


def test_a_car_id_with_quotes_and_unicode_survives_both_escapes(
    gateway: tuple[Gateway, NoLambda], queue: str, sqs: Any
) -> None:
    gw, _ = gateway
    car_id = "o'neil\"s-táxi\\🚕"
    url = f"{gw.url}/cars/{requests.utils.quote(car_id, safe='')}/telemetry"
    assert requests.post(url, json=READING, timeout=30).status_code == 202
    (queued,) = _queued(sqs, queue)
    assert json.loads(queued["Body"])["car_id"] == car_id


BAD_BODIES: list[tuple[str, bytes, str]] = [
    ("not JSON", b"{ts: 1", "not JSON"),
    ("NaN", json.dumps(READING | {"speed_kmh": "NaN"}).replace('"NaN"', "NaN").encode(), "not JSON"),
    ("5,000-digit integer", json.dumps(READING).replace("81.5", "9" * 5000).encode(), "not JSON"),
    ("nested 20,000 deep", b'{"ts": ' + b"[" * 20_000 + b"]" * 20_000 + b"}", "not JSON"),
    ("a JSON array", b"[]", "is not of type 'object'"),
    (
        "missing position",
        json.dumps({k: v for k, v in READING.items() if k != "position"}).encode(),
        "position",
    ),
    ("car_id in the body", json.dumps(READING | {"car_id": "other"}).encode(), "'car_id' was unexpected"),
    ("a string number", json.dumps(READING | {"battery_level": "87%"}).encode(), "$.battery_level"),
    ("a boolean number", json.dumps(READING | {"speed_kmh": True}).encode(), "$.speed_kmh"),
    ("epoch ts", json.dumps(READING | {"ts": 1764928800}).encode(), "$.ts"),
    ("naive ts", json.dumps(READING | {"ts": "2026-12-05T10:00:00"}).encode(), "$.ts"),
    (
        "latitude out of range",
        json.dumps(READING | {"position": {"lat": 91, "lon": 0}}).encode(),
        "$.position.lat",
    ),
    ("negative speed", json.dumps(READING | {"speed_kmh": -12.5}).encode(), "$.speed_kmh"),
    ("battery over 100", json.dumps(READING | {"battery_level": 150}).encode(), "$.battery_level"),
]


@pytest.mark.parametrize(("case", "body", "reason"), BAD_BODIES, ids=[c for c, _, _ in BAD_BODIES])
def test_a_bad_body_is_400_with_the_reason_and_nothing_is_queued(
    gateway: tuple[Gateway, NoLambda], queue: str, sqs: Any, case: str, body: bytes, reason: str
) -> None:
    gw, invoker = gateway
    response = requests.post(
        f"{gw.url}/cars/car-7/telemetry", data=body, headers={"Content-Type": "application/json"}, timeout=30
    )
    assert response.status_code == 400, (case, response.text)
    assert response.json()["message"] == "Invalid request body"
    assert reason in response.json()["reason"], response.json()
    assert _queued(sqs, queue) == []
    assert invoker.events == []


def test_a_body_that_is_not_json_media_is_415_and_nothing_is_queued(
    gateway: tuple[Gateway, NoLambda], queue: str, sqs: Any
) -> None:
    gw, _ = gateway
    response = requests.post(
        f"{gw.url}/cars/car-7/telemetry",
        data=json.dumps(READING),
        headers={"Content-Type": "text/plain"},
        timeout=30,
    )
    assert response.status_code == 415
    assert _queued(sqs, queue) == []


def test_other_methods_on_the_route_are_api_gateways_403_and_reach_no_lambda(
    gateway: tuple[Gateway, NoLambda],
) -> None:
    gw, invoker = gateway
    response = requests.get(f"{gw.url}/cars/car-7/telemetry", timeout=30)
    assert response.status_code == 403
    assert response.json() == {"message": "Missing Authentication Token"}
    assert invoker.events == []
    # while the cars routes beside it still go to the function
    requests.get(f"{gw.url}/cars/car-7", timeout=30)
    assert [e["path"] for e in invoker.events] == ["/cars/car-7"]


def test_when_sqs_refuses_the_answer_is_503_not_202(emulator: Emulator, sqs: Any) -> None:
    # Given a queue that does not exist (SQS answers 400 QueueDoesNotExist)
    missing = f"{emulator.endpoint_url}/123456789012/no-such-queue-{uuid.uuid4().hex[:6]}"
    gw, _ = _start(missing, sqs)
    try:
        response = requests.post(f"{gw.url}/cars/car-7/telemetry", json=READING, timeout=30)
    finally:
        gw.stop()
    # Then nothing claims it was queued
    assert response.status_code == 503
    assert "messageId" not in response.json()


def test_the_route_has_its_own_throttle(queue: str, sqs: Any) -> None:
    # Given the route limited to a burst of 2 (and a rate too low to refill during the test)
    gw, invoker = _start(queue, sqs, telemetry_rate=0.001, telemetry_burst=2)
    try:
        statuses = [
            requests.post(f"{gw.url}/cars/car-7/telemetry", json=READING, timeout=30).status_code
            for _ in range(3)
        ]
        other = requests.get(f"{gw.url}/cars/car-7", timeout=30).status_code
    finally:
        gw.stop()
    # Then the third reading is throttled, only two were queued, and the stage's other routes are not
    assert statuses == [202, 202, 429]
    assert len(_queued(sqs, queue)) == 2
    assert other == 404
    assert len(invoker.events) == 1


def test_escape_javascript_is_commons_lang_and_the_template_undoes_its_quote_escape() -> None:
    assert escape_javascript("a'b\"c\\d/e\nf\x01é😀") == "a\\'b\\\"c\\\\d\\/e\\nf\\u0001\\u00E9\\uD83D\\uDE00"
    rendered = render(
        """$util.escapeJavaScript($input.params('x')).replaceAll("\\\\'", "'")""",
        body={},
        params={"x": "it's"},
        request_id="r",
    )
    assert rendered == "it's"


# --- generated from the OpenAPI document's telemetry operation ------------------------------------------

_openapi = schemathesis.openapi.from_dict(json.loads(openapi_json())).include(path=TELEMETRY_PATH)


@_openapi.parametrize()
@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_generated_requests_are_queued_as_valid_ingest_messages_or_refused_without_queueing(
    case: schemathesis.Case,
) -> None:
    sent: list[dict[str, Any]] = []
    route = TelemetryRoute(
        "http://sqs.local/1/q", send_message=lambda r: sent.append(r) or {"MessageId": "m"}
    )
    body = case.body if case.body is not NOT_SET else None
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    car_id = str((case.path_parameters or {}).get("car_id", "car-1"))
    answer = route.handle(car_id=car_id, body=raw, content_type=case.media_type, request_id="r")
    # Then never a 5xx; a 202 queued exactly one message whose reading the ingest's model accepts (API
    # Gateway cannot check the path's car_id: one that is no registered car is the ingest's to dead-letter);
    # a refusal queued nothing
    assert answer.status in (202, 400, 415), answer
    if answer.status == 202:
        (request,) = sent
        message = json.loads(request["MessageBody"])
        assert message.pop("car_id") == car_id
        TelemetryMessage.model_validate_json(json.dumps({"car_id": "car-1"} | message))
    else:
        assert sent == []
