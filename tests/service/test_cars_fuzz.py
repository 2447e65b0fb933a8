"""Property/fuzz: schemathesis generates requests from our /openapi.json and we replay them, as API Gateway
REST proxy events, through the real Lambda handler (in-memory adapters). No generated request may get a 5xx,
and every error must be an RFC 9457 problem."""

from __future__ import annotations

import json
from collections.abc import Iterator
from urllib.parse import urlencode

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.core import NOT_SET

from contract.telemetry_api import TELEMETRY_PATH
from service.adapters.idempotency import InMemoryIdempotencyStore
from service.adapters.memory import InMemoryCarRepository
from service.api import dependencies
from service.api.handler import app, lambda_handler, openapi_json
from service.domain.car import NewCar
from service.domain.cars import CarService
from tests.service.apigw import call
from tests.service.conftest import StepClock, car_body
from tests.service.hostile import hostile_requests

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::UserWarning")]
EXAMPLES_PER_OPERATION = 100  # 6 parameterised operations -> >= 500 generated requests


# The function's operations (the telemetry route is API Gateway's own, tested with the local gateway).
schema = schemathesis.openapi.from_dict(json.loads(openapi_json())).exclude(path=TELEMETRY_PATH)


@pytest.fixture
def known_car_ids() -> Iterator[list[str]]:
    """A few existing cars, so generated requests also hit real cars (not only 404s)."""
    repo = InMemoryCarRepository()
    service = CarService(repo, clock=StepClock())
    store = InMemoryIdempotencyStore()
    app.dependency_overrides[dependencies.get_car_service] = lambda: service
    app.dependency_overrides[dependencies.get_idempotency_store] = lambda: store
    ids = [service.register(NewCar.model_validate(car_body())).car_id for _ in range(3)]
    yield ids
    app.dependency_overrides.clear()


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_no_generated_request_gets_a_server_error(case: schemathesis.Case, known_car_ids: list[str]) -> None:
    path_parameters = dict(case.path_parameters or {})
    if "car_id" in path_parameters and len(str(path_parameters["car_id"])) % 2 == 0:
        path_parameters["car_id"] = known_car_ids[len(str(path_parameters["car_id"])) % 3]
    path = case.operation.path
    for name, value in path_parameters.items():
        path = path.replace("{" + name + "}", str(value))
    query = {k: v for k, v in (case.query or {}).items() if v is not None}
    if query:
        path += "?" + urlencode(query, doseq=True)
    headers = {k: str(v) for k, v in (case.headers or {}).items()}
    raw_body: str | None = None
    if isinstance(case.body, bytes):
        raw_body = case.body.decode("utf-8", "replace")
    elif case.body is not NOT_SET:
        raw_body = json.dumps(case.body)
    if raw_body is not None and case.media_type:
        headers.setdefault("Content-Type", case.media_type)
    response = call(lambda_handler, case.method.upper(), path, raw_body=raw_body, headers=headers)
    assert response.status < 500, (case.method, path, raw_body, response.body)
    if response.status >= 400:
        assert response.headers["content-type"] == "application/problem+json"
        assert response.body["status"] == response.status


def test_hostile_requests_get_a_problem_never_a_server_error(known_car_ids: list[str]) -> None:
    # Given every hostile case for every operation that takes it (tests/service/hostile.py)
    cases = hostile_requests(openapi_json(), known_car_ids[0])
    assert len(cases) >= 40
    for case in cases:
        # When it is sent, Then it is a 4xx problem, not a 5xx
        response = call(lambda_handler, case.method, case.path, raw_body=case.raw_body, headers=case.headers)
        assert 400 <= response.status < 500, (case.name, response.status, response.body)
        assert response.headers["content-type"] == "application/problem+json", case.name
