"""The API handler end to end in-process, with the in-memory repository (API Gateway REST proxy events)."""

from __future__ import annotations

import base64
import io
import json
import logging
import sys
from collections.abc import Iterator

import pytest

from service.adapters.memory import InMemoryCarRepository
from service.api import dependencies
from service.api.handler import app, lambda_handler
from service.domain.cars import CarService
from service.domain.events import CarRegistered, CarStatusChanged, CarUpdated
from service.observability import logger
from tests.service.apigw import FakeLambdaContext, rest_event
from tests.service.conftest import Api, car_body

pytestmark = pytest.mark.usefixtures("memory_service")
PROBLEM = "application/problem+json"
PROBLEM_BAD_REQUEST = "urn:fleetscope:problem:bad-request"


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    handler = logger.registered_handler
    assert isinstance(handler, logging.StreamHandler)
    buffer = io.StringIO()
    previous = handler.setStream(buffer)
    yield buffer
    handler.setStream(previous or sys.stdout)


def register(api: Api, **overrides: object) -> dict[str, object]:
    created = api("POST", "/cars", body=car_body(**overrides))
    assert created.status == 201, created.body
    return dict(created.body)


def test_health(api: Api) -> None:
    assert api("GET", "/health").body == {"status": "ok", "stage": "test"}


def test_post_creates_with_location_and_etag(api: Api, memory_repo: InMemoryCarRepository) -> None:
    body = car_body(vin=" 1m8gdm9axkp042788 ")
    created = api("POST", "/cars", body=body)
    assert created.status == 201
    car = created.body
    # As the client called it: https://API.execute-api.REGION.amazonaws.com/v1/cars -> /v1/cars/{id}
    # (a bare /cars/{id} would resolve outside the stage).
    assert created.headers["location"] == f"/v1/cars/{car['car_id']}"
    assert created.headers["etag"] == '"1"'
    assert car["vin"] == "1M8GDM9AXKP042788"
    assert car["status"] == "available"
    assert car["version"] == 1
    assert car["position"] == {"lat": 52.52, "lon": 13.405}
    assert car["battery_level"] == 80.0
    assert [type(e) for e in memory_repo.outbox] == [CarRegistered]
    fetched = api("GET", f"/cars/{car['car_id']}")
    assert (fetched.status, fetched.body) == (200, car)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"vin": "1M8GDM9A1KP042788"}, "vin"),  # bad check digit
        ({"year": 1800}, "year"),
        ({"seats": 0}, "seats"),
        ({"battery_level": 101}, "battery_level"),
        ({"position": {"lat": 91, "lon": 0}}, "lat"),
        ({"position": {"lat": 0, "lon": -181}}, "lon"),
        ({"model": "   "}, "model"),
        ({"status": "in_trip"}, "status"),  # unknown field: status is not settable at registration
        ({"model": "bad\ud800"}, "model"),  # lone surrogate: cannot be stored
    ],
)
def test_invalid_registration_is_422_naming_the_field_and_stores_nothing(
    api: Api, memory_repo: InMemoryCarRepository, overrides: dict[str, object], field: str
) -> None:
    response = api("POST", "/cars", raw_body=json.dumps(car_body(**overrides)))
    assert response.status == 422
    assert response.headers["content-type"] == PROBLEM
    assert field in json.dumps([e["loc"] for e in response.body["errors"]])
    assert memory_repo.outbox == []
    assert api("GET", "/cars").body["items"] == []


@pytest.mark.parametrize("raw", ["{not json", "[1, 2]", '"text"', ""])
def test_malformed_bodies_are_4xx_never_500(api: Api, raw: str) -> None:
    response = api("POST", "/cars", raw_body=raw)
    assert response.status in (400, 422), response.body
    assert response.headers["content-type"] == PROBLEM


@pytest.mark.parametrize(
    ("method", "path"), [("POST", "/cars"), ("PUT", "/cars/c1"), ("PATCH", "/cars/c1/status")]
)
@pytest.mark.parametrize("raw", [b"\xff\xfe\x00garbage", bytes(range(256))])
def test_a_body_that_is_not_utf8_is_400_not_500(
    method: str, path: str, raw: bytes, memory_repo: InMemoryCarRepository
) -> None:
    # API Gateway (and the sandbox gateway) hand a non-text body to the Lambda base64-encoded.
    event = rest_event(method, path, raw_body="", headers={"If-Match": '"1"'})
    event["body"] = base64.b64encode(raw).decode()
    event["isBase64Encoded"] = True
    response = lambda_handler(event, FakeLambdaContext())
    assert response["statusCode"] == 400, response["body"]
    body = json.loads(response["body"])
    assert body["type"].endswith("malformed-body")
    assert memory_repo.outbox == []


def test_oversized_body_is_413_even_when_valid_json(api: Api, memory_repo: InMemoryCarRepository) -> None:
    huge = car_body(model="R" * 10, padding="x" * 70_000)
    assert api("POST", "/cars", raw_body=json.dumps(huge)).status == 413
    assert api("POST", "/cars", raw_body="{" + "x" * 70_000).status == 413
    assert memory_repo.outbox == []


@pytest.mark.parametrize(
    "raw",
    [
        '{"vin": "1M8GDM9AXKP042788", "year": ' + "9" * 5_000 + "}",  # int over Python's 4,300-digit limit
        "[" * 20_000 + "]" * 20_000,  # 40 KB, nested 20,000 deep: RecursionError in json.loads
        '{"a": ' * 5_000 + "1" + "}" * 5_000,
    ],
)
def test_hostile_json_under_the_size_limit_is_400_and_stores_nothing(
    api: Api, memory_repo: InMemoryCarRepository, raw: str
) -> None:
    # Given a body under the 64 KB limit that the JSON parser cannot take
    # When it is posted, Then it is a 400 problem (not a 500) and nothing is stored.
    response = api("POST", "/cars", raw_body=raw)
    assert response.status == 400, response.body
    assert response.headers["content-type"] == PROBLEM
    assert response.body["type"].endswith("malformed-body")
    assert memory_repo.outbox == []


def test_an_oversized_body_is_refused_before_it_is_parsed(
    api: Api, memory_repo: InMemoryCarRepository
) -> None:
    # 70 KB of nesting: parsing it would raise RecursionError; the size check answers first.
    response = api("POST", "/cars", raw_body="[" * 70_000)
    assert response.status == 413, response.body
    assert response.body["type"].endswith("body-too-large")
    assert memory_repo.outbox == []


def test_problem_carries_the_request_id(api: Api) -> None:
    response = api("GET", "/cars/5b0c4f6e-0000-4000-8000-000000000000", request_id="req-123")
    assert response.status == 404
    assert response.body["request_id"] == "req-123"
    assert response.body["type"] == "urn:fleetscope:problem:car-not-found"
    assert api("GET", "/cars/not-a-uuid").status == 404
    assert api("GET", "/nowhere").status == 404


def test_put_replaces_mutable_fields_ignores_read_only_and_keeps_telemetry(
    api: Api, memory_repo: InMemoryCarRepository
) -> None:
    car = register(api)
    memory_repo.set_telemetry(str(car["car_id"]), battery_level=10.0, speed_kmh=42.0)
    edited = car | {"seats": 6, "bike_rack": True, "status": "retired", "battery_level": 99, "vin": "X"}
    response = api("PUT", f"/cars/{car['car_id']}", body=edited, headers={"If-Match": '"1"'})
    assert response.status == 200, response.body
    assert response.body["seats"] == 6
    assert response.body["bike_rack"] is True
    assert response.body["status"] == "available"
    assert response.body["vin"] == car["vin"]
    assert response.body["battery_level"] == 10.0
    assert response.body["speed_kmh"] == 42.0
    assert response.body["version"] == 2
    assert response.headers["etag"] == '"2"'
    assert isinstance(memory_repo.outbox[-1], CarUpdated)


def test_put_version_rules(api: Api) -> None:
    car = register(api)
    path = f"/cars/{car['car_id']}"
    details = {"model": "R9", "year": 2024, "seats": 2, "bike_rack": False}
    assert api("PUT", path, body=details).status == 428  # no version at all
    assert api("PUT", path, body=details | {"version": 1}, headers={"If-Match": '"2"'}).status == 400
    assert api("PUT", path, body=details, headers={"If-Match": "*"}).status == 400
    assert api("PUT", path, body=details | {"unknown": 1}, headers={"If-Match": "1"}).status == 422
    assert api("PUT", path, body=details | {"version": 1}).status == 200  # body version works
    for malformed in ('W/"1"', '"1', '1"', "1", '"1", "2"', '""'):  # weak, unbalanced, bare, a list, empty
        refused = api("PUT", path, body=details | {"seats": 5}, headers={"If-Match": malformed})
        assert (refused.status, refused.body["type"]) == (400, PROBLEM_BAD_REQUEST), malformed
    stale = api("PUT", path, body=details | {"seats": 3}, headers={"If-Match": ' "1" '})
    assert stale.status == 409
    assert stale.body["current_version"] == 2
    assert api("GET", path).body["seats"] == 2  # the stale write changed nothing


def test_patch_status_moves_and_refuses_illegal_moves(api: Api, memory_repo: InMemoryCarRepository) -> None:
    car = register(api)
    path = f"/cars/{car['car_id']}/status"
    illegal = api("PATCH", path, body={"status": "in_trip"})
    assert illegal.status == 409
    assert illegal.body["allowed"] == ["charging", "maintenance", "reserved", "retired"]
    for to in ("reserved", "in_trip", "available", "charging"):
        moved = api("PATCH", path, body={"status": to})
        assert moved.status == 200
        assert moved.body["status"] == to
    assert [e.to_status for e in memory_repo.outbox if isinstance(e, CarStatusChanged)] == [
        "reserved",
        "in_trip",
        "available",
        "charging",
    ]
    assert api("PATCH", path, body={"status": "flying"}).status == 422
    assert api("PATCH", path, body={"status": "available"}, headers={"If-Match": '"1"'}).status == 409


def test_delete_retires_hides_and_is_idempotent(api: Api) -> None:
    car = register(api)
    path = f"/cars/{car['car_id']}"
    assert api("DELETE", path).status == 204
    assert api("DELETE", path).status == 204
    assert api("GET", path).body["status"] == "retired"
    assert api("GET", "/cars").body["items"] == []
    assert [c["car_id"] for c in api("GET", "/cars?status=retired").body["items"]] == [car["car_id"]]
    assert api("PATCH", f"{path}/status", body={"status": "available"}).status == 409
    missing = api("DELETE", "/cars/5b0c4f6e-0000-4000-8000-000000000000")
    assert missing.status == 404


def test_list_paginates_with_opaque_tokens_and_filters(api: Api) -> None:
    ids = [register(api, model="R1" if i < 5 else "R2")["car_id"] for i in range(8)]
    seen, token = [], None
    while True:
        path = "/cars?limit=3" + (f"&next_token={token}" if token else "")
        page = api("GET", path).body
        assert len(page["items"]) <= 3
        seen += [c["car_id"] for c in page["items"]]
        token = page["next_token"]
        if not token:
            break
    assert seen == ids
    r2 = api("GET", "/cars?model=R2").body
    assert [c["car_id"] for c in r2["items"]] == ids[5:]
    first = api("GET", "/cars?model=R1&limit=2").body
    assert api("GET", f"/cars?model=R2&next_token={first['next_token']}").status == 400
    assert api("GET", "/cars?next_token=forged.token").status == 400
    assert api("GET", "/cars?limit=0").status == 422
    assert api("GET", "/cars?limit=101").status == 422
    assert api("GET", "/cars?status=nope").status == 422


def test_unexpected_errors_are_500_without_internals(api: Api, captured_logs: io.StringIO) -> None:
    class Broken(InMemoryCarRepository):
        def list(self, query: object) -> object:  # type: ignore[override]
            raise RuntimeError("secret connection string")

    broken = CarService(Broken())
    app.dependency_overrides[dependencies.get_car_service] = lambda: broken
    response = api("GET", "/cars", request_id="req-500")
    assert response.status == 500
    assert response.headers["content-type"] == PROBLEM
    assert "secret" not in json.dumps(response.body)
    assert response.body["request_id"] == "req-500"
    # ... but the log has the details, correlated by the request id.
    line = next(json.loads(x) for x in captured_logs.getvalue().splitlines() if "unhandled" in x)
    assert line["correlation_id"] == "req-500"
    assert "secret connection string" in line["exception"]


def test_logs_carry_correlation_id_and_car_id_but_no_vin(api: Api, captured_logs: io.StringIO) -> None:
    car = register(api)
    lines = [json.loads(x) for x in captured_logs.getvalue().splitlines() if x.startswith("{")]
    registered = next(x for x in lines if x.get("message") == "car registered")
    assert registered["car_id"] == car["car_id"]
    assert registered["correlation_id"]
    assert str(car["vin"]) not in captured_logs.getvalue()


def test_openapi_document_and_swagger(api: Api) -> None:
    spec = api("GET", "/openapi.json")
    assert spec.status == 200
    paths = spec.body["paths"]
    assert {"/cars", "/cars/{car_id}", "/cars/{car_id}/status", "/health"} <= set(paths)
    assert {"get", "post"} <= set(paths["/cars"])
    assert {"get", "put", "delete"} <= set(paths["/cars/{car_id}"])
    swagger = api("GET", "/swagger")
    assert swagger.status == 200
    assert "swagger" in str(swagger.body).lower()


def test_idempotency_key_replays_the_first_response(api: Api, memory_repo: InMemoryCarRepository) -> None:
    body = car_body()
    first = api("POST", "/cars", body=body, headers={"Idempotency-Key": "abc-1"})
    again = api("POST", "/cars", body=body, headers={"Idempotency-Key": "abc-1"})
    assert first.status == again.status == 201
    assert again.body == first.body
    assert len(memory_repo.outbox) == 1  # one car, one event
    reused = api("POST", "/cars", body=body | {"seats": 2}, headers={"Idempotency-Key": "abc-1"})
    assert reused.status == 422
    assert len(memory_repo.outbox) == 1
    assert api("POST", "/cars", body=body, headers={"Idempotency-Key": "bad key"}).status == 422


@pytest.mark.parametrize(
    "content_type",
    [
        "multipart/form-data",
        "multipart/form-data; boundary=x",
        "application/x-www-form-urlencoded",
        "text/plain",
    ],
)
def test_non_json_media_types_are_400(
    api: Api, content_type: str, memory_repo: InMemoryCarRepository
) -> None:
    response = api("POST", "/cars", raw_body="vin=1&model=2", headers={"Content-Type": content_type})
    assert response.status == 400
    assert response.body["type"].endswith("malformed-body")
    assert memory_repo.outbox == []


def emf_lines(text: str) -> list[dict[str, object]]:
    return [json.loads(x) for x in text.splitlines() if x.startswith('{"_aws"')]


def test_business_metrics_are_emitted_as_emf(api: Api, capsys: pytest.CaptureFixture[str]) -> None:
    car = register(api)
    api("PATCH", f"/cars/{car['car_id']}/status", body={"status": "charging"})
    api("PATCH", f"/cars/{car['car_id']}/status", body={"status": "in_trip"})  # illegal: not counted
    lines = emf_lines(capsys.readouterr().out)
    registered = [x for x in lines if "CarsRegistered" in x]
    assert [x["CarsRegistered"] for x in registered] == [[1.0]]
    transitions = [x for x in lines if "StatusTransitions" in x]
    by_status = [x for x in transitions if "to_status" in x]
    assert [x["to_status"] for x in by_status] == ["charging"]
    metric_defs = by_status[0]["_aws"]["CloudWatchMetrics"]  # type: ignore[index]
    assert metric_defs[0]["Namespace"] == "Fleetscope"
    assert metric_defs[0]["Dimensions"] == [["to_status", "service"]]  # a small, fixed dimension set
    # and the per-service total, the series the monitor's catalog watches
    totals = [x for x in transitions if "to_status" not in x]
    assert [x["StatusTransitions"] for x in totals] == [[1.0]]
    dimensions = [x["_aws"]["CloudWatchMetrics"][0]["Dimensions"] for x in (totals[0], registered[0])]  # type: ignore[index]
    assert dimensions[0] == dimensions[1]  # the same per-service dimension set as CarsRegistered
