"""The local API Gateway: HTTP <-> REST proxy events, limits, error mapping, metrics."""

from __future__ import annotations

import base64
import json
import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests

from contract.topology import Topology
from sandbox.aws.gateway import MAX_PAYLOAD_BYTES, Gateway, GatewayConfig, TokenBucket
from sandbox.aws.provision import Provisioned
from sandbox.aws.runtime import Invocation, LambdaRuntime
from sandbox.aws.telemetry import MetricSample, TelemetrySink
from sandbox.emulator.server import Emulator

HERE = Path(__file__).resolve().parent


class RecordingInvoker:
    """Answers every event with a canned outcome and keeps the events."""

    def __init__(self, outcome: Invocation | None = None) -> None:
        self.events: list[dict[str, Any]] = []
        self.outcome = outcome or Invocation("r", payload={"statusCode": 200, "body": "{}"})

    def invoke(self, event: dict[str, Any], *, trace_header_value: str | None = None) -> Invocation:
        self.events.append(event)
        return self.outcome


class ListSink:
    def __init__(self) -> None:
        self.samples: list[MetricSample] = []

    def add_metric(self, sample: MetricSample) -> None:
        self.samples.append(sample)


def _gateway(invoker: Any, **config: Any) -> Gateway:
    settings = {"api_name": "fleetscope-test-cars-api", "stage": "v1"} | config
    return Gateway(invoker, GatewayConfig(**settings), port=0).start()


@pytest.fixture
def recorder() -> Iterator[tuple[RecordingInvoker, Gateway]]:
    invoker = RecordingInvoker()
    gateway = _gateway(invoker)
    yield invoker, gateway
    gateway.stop()


def test_request_becomes_a_rest_proxy_event(recorder: tuple[RecordingInvoker, Gateway]) -> None:
    invoker, gateway = recorder
    # When a request with a stage prefix, repeated query keys and headers arrives
    response = requests.get(
        f"{gateway.url}/v1/cars/abc-123?status=available&tag=a&tag=b",
        headers={"X-Custom": "yes", "Accept": "application/json"},
        timeout=10,
    )
    # Then the function got the event API Gateway would send for /{proxy+}
    (event,) = invoker.events
    assert response.status_code == 200
    assert event["resource"] == "/{proxy+}"
    assert event["path"] == "/cars/abc-123"
    assert event["httpMethod"] == "GET"
    assert event["pathParameters"] == {"proxy": "cars/abc-123"}
    assert event["queryStringParameters"] == {"status": "available", "tag": "b"}
    assert event["multiValueQueryStringParameters"] == {"status": ["available"], "tag": ["a", "b"]}
    assert event["headers"]["X-Custom"] == "yes"
    assert event["multiValueHeaders"]["Accept"] == ["application/json"]
    assert event["body"] is None
    assert event["isBase64Encoded"] is False
    context = event["requestContext"]
    assert context["stage"] == "v1"
    assert context["path"] == "/v1/cars/abc-123"
    assert context["requestId"] == response.headers["x-amzn-RequestId"]
    assert context["identity"]["sourceIp"] == "127.0.0.1"
    assert abs(context["requestTimeEpoch"] / 1000 - datetime.now(UTC).timestamp()) < 30


def test_text_and_binary_bodies(recorder: tuple[RecordingInvoker, Gateway]) -> None:
    invoker, gateway = recorder
    requests.post(f"{gateway.url}/cars", json={"vin": "x"}, timeout=10)
    requests.post(f"{gateway.url}/cars", data=b"\xff\x00\xfe", timeout=10)
    text, binary = invoker.events
    assert json.loads(text["body"]) == {"vin": "x"}
    assert text["isBase64Encoded"] is False
    assert binary["isBase64Encoded"] is True
    assert base64.b64decode(binary["body"]) == b"\xff\x00\xfe"


def test_proxy_response_headers_and_base64_body_are_mapped() -> None:
    payload = {
        "statusCode": 201,
        "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"]},
        "headers": {"Content-Type": "application/octet-stream"},
        "body": base64.b64encode(b"\x01\x02").decode(),
        "isBase64Encoded": True,
    }
    gateway = _gateway(RecordingInvoker(Invocation("r", payload=payload)))
    try:
        response = requests.get(f"{gateway.url}/x", timeout=10)
    finally:
        gateway.stop()
    assert response.status_code == 201
    assert response.content == b"\x01\x02"
    assert response.raw.headers.getlist("Set-Cookie") == ["a=1", "b=2"]
    assert response.headers["Content-Type"] == "application/octet-stream"


@pytest.mark.parametrize(
    ("outcome", "status", "message"),
    [
        (
            Invocation("r", error={"errorType": "ValueError", "errorMessage": "x"}),
            502,
            "Internal server error",
        ),
        (Invocation("r", payload="not a proxy response"), 502, "Internal server error"),
        (Invocation("r", payload={"statusCode": 999}), 502, "Internal server error"),
        (Invocation("r", throttled=True), 500, "Internal server error"),  # Lambda throttled, not the stage
    ],
)
def test_function_failures_map_like_api_gateway(outcome: Invocation, status: int, message: str) -> None:
    gateway = _gateway(RecordingInvoker(outcome))
    try:
        response = requests.get(f"{gateway.url}/cars", timeout=10)
    finally:
        gateway.stop()
    assert response.status_code == status
    assert response.json() == {"message": message}


class BrokenInvoker:
    def invoke(self, event: dict[str, Any], *, trace_header_value: str | None = None) -> Invocation:
        raise RuntimeError("runtime is stopped")


def test_a_failing_platform_still_answers_502_json() -> None:
    gateway = _gateway(BrokenInvoker())
    try:
        response = requests.get(f"{gateway.url}/cars", timeout=10)
    finally:
        gateway.stop()
    assert response.status_code == 502
    assert response.json() == {"message": "Internal server error"}


def test_oversized_payload_is_413_without_invoking() -> None:
    assert MAX_PAYLOAD_BYTES == 10 * 1024 * 1024
    invoker = RecordingInvoker()
    gateway = _gateway(invoker, max_payload_bytes=1000)
    try:
        too_big = requests.post(f"{gateway.url}/cars", data=b"x" * 1001, timeout=10)
        fits = requests.post(f"{gateway.url}/cars", data=b"x" * 1000, timeout=10)
    finally:
        gateway.stop()
    assert too_big.status_code == 413
    assert too_big.json() == {"message": "Request Too Long"}
    assert fits.status_code == 200
    assert len(invoker.events) == 1


def test_stage_throttling_answers_429_beyond_the_burst() -> None:
    invoker = RecordingInvoker()
    gateway = _gateway(invoker, rate=0.01, burst=2)
    try:
        statuses = [requests.get(f"{gateway.url}/health", timeout=10).status_code for _ in range(4)]
    finally:
        gateway.stop()
    assert statuses == [200, 200, 429, 429]
    assert len(invoker.events) == 2


def test_a_busy_port_is_an_os_error_not_an_exit() -> None:
    first = _gateway(RecordingInvoker())
    try:
        with pytest.raises(OSError, match="in use"):
            Gateway(RecordingInvoker(), GatewayConfig(api_name="a", stage="v1"), port=first.port).start()
    finally:
        first.stop()


def test_token_bucket_validates_its_settings() -> None:
    with pytest.raises(ValueError, match="throttling"):
        TokenBucket(0, 1)


def test_every_request_records_api_gateway_metrics() -> None:
    sink = ListSink()
    outcome = Invocation("r", payload={"statusCode": 404, "body": "{}"})
    gateway = Gateway(RecordingInvoker(outcome), GatewayConfig(api_name="api", stage="v1"), port=0, sink=sink)  # type: ignore[arg-type]
    gateway.start()
    try:
        requests.get(f"{gateway.url}/nope", timeout=10)
    finally:
        gateway.stop()
    by_name = {(s.name, s.dimensions): s.value for s in sink.samples}
    staged = (("ApiName", "api"), ("Stage", "v1"))
    assert by_name[("Count", staged)] == 1
    assert by_name[("4XXError", staged)] == 1
    assert by_name[("5XXError", staged)] == 0
    assert by_name[("Latency", staged)] >= by_name[("IntegrationLatency", staged)] >= 0
    assert by_name[("Count", (("ApiName", "api"),))] == 1
    assert {s.namespace for s in sink.samples} == {"AWS/ApiGateway"}


# ---- against the real cars API handler --------------------------------------------------------
@pytest.fixture(scope="module")
def cars_gateway(
    emulator: Emulator, topo: Topology, provisioned: Provisioned
) -> Iterator[tuple[Gateway, Any]]:
    sink = TelemetrySink(flush_interval_s=3600)
    runtime = LambdaRuntime(
        topo, topo.cars_api, endpoint_url=emulator.endpoint_url, sink=sink, max_environments=2
    )
    gateway = Gateway(runtime, GatewayConfig(api_name=topo.api_name, stage=topo.api_stage), port=0, sink=sink)
    gateway.start()
    yield gateway, sink
    gateway.stop()
    runtime.stop()
    sink.stop()


@pytest.mark.integration
@pytest.mark.slow
def test_cars_api_round_trip_through_the_gateway(cars_gateway: tuple[Gateway, Any], topo: Topology) -> None:
    from sandbox.traffic.vins import random_vin

    gateway, sink = cars_gateway
    body = {
        "vin": random_vin(random.Random(uuid.uuid4().int), 2024),
        "model": "Zoox Robotaxi",
        "year": 2024,
        "seats": 4,
        "bike_rack": False,
        "battery_level": 80.0,
        "position": {"lat": 38.72, "lon": -9.14},
    }
    created = requests.post(f"{gateway.url}/cars", json=body, timeout=30)
    assert created.status_code == 201, created.text
    car_id = created.json()["car_id"]
    # Path parameters reach the function's router
    fetched = requests.get(f"{gateway.url}/v1/cars/{car_id}", timeout=30)
    assert fetched.status_code == 200
    assert fetched.json()["vin"] == body["vin"]
    # Query parameters too
    listed = requests.get(f"{gateway.url}/cars", params={"limit": "1"}, timeout=30)
    assert listed.status_code == 200
    assert len(listed.json()["items"]) <= 1
    # Unknown routes and methods are answered by the function, not the gateway
    assert requests.get(f"{gateway.url}/no-such-route", timeout=30).status_code == 404
    assert requests.get(f"{gateway.url}/cars/{uuid.uuid4()}", timeout=30).status_code == 404
    assert requests.delete(f"{gateway.url}/health", timeout=30).status_code in (404, 405)
    # and every request is counted in AWS/ApiGateway
    sink.flush()
    now = datetime.now(UTC)
    stats = boto3.client("cloudwatch").get_metric_statistics(
        Namespace="AWS/ApiGateway",
        MetricName="Count",
        Dimensions=[{"Name": "ApiName", "Value": topo.api_name}, {"Name": "Stage", "Value": topo.api_stage}],
        StartTime=now - timedelta(hours=1),
        EndTime=now + timedelta(minutes=5),
        Period=7200,
        Statistics=["Sum"],
    )
    assert sum(p["Sum"] for p in stats["Datapoints"]) >= 6
