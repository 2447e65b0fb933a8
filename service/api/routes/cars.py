"""/cars routes: thin — parse, call one use case, map the result."""

# No `from __future__ import annotations` here: Powertools rebuilds the Depends() tree on every request
# with typing.get_type_hints, and string annotations would be eval()ed each time (~3 ms per request).
import re
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.depends import Depends
from aws_lambda_powertools.event_handler.exceptions import BadRequestError
from aws_lambda_powertools.event_handler.openapi.params import Body, Header, Path, Query
from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.idempotency import idempotent_function
from aws_lambda_powertools.utilities.idempotency.persistence.base import BasePersistenceLayer

from contract import metrics as metric_names
from service.api.dependencies import get_car_service, get_idempotency_config, get_idempotency_store
from service.api.models import CarListOut, CarOut, CarRegistrationIn, CarReplacementIn, StatusChangeIn
from service.api.problems import PROBLEM_RESPONSES
from service.domain.car import Car, ModelName, NewCar
from service.domain.cars import CarService
from service.domain.errors import PreconditionRequiredError
from service.domain.ports import ListQuery
from service.domain.status import CarStatus
from service.observability import logger, metrics, tracer

router = APIGatewayRouter()

Service = Annotated[CarService, Depends(get_car_service)]
IdempotencyStore = Annotated[BasePersistenceLayer, Depends(get_idempotency_store)]
CarId = Annotated[str, Path(min_length=1, max_length=64, description="the car's id (a UUID)")]
IfMatch = Annotated[
    str | None,
    Header(
        alias="If-Match",
        max_length=64,
        description=(
            "the version the change is based on, as the ETag GET returned: one strong entity tag, a quoted "
            'decimal version, e.g. "3". Weak tags (W/"3"), unquoted or unbalanced values ("3), lists and * '
            "are malformed (400)."
        ),
    ),
]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        pattern=r"^[\x21-\x7e]{1,128}$",
        description="retrying with the same key returns the first response and creates nothing new",
    ),
]
_ETAG = re.compile(r'^[ \t]*"(\d{1,12})"[ \t]*$')  # one strong entity tag (RFC 9110 8.8.3), nothing else


def _observe(route: str, car_id: str | None = None) -> None:
    tracer.put_annotation("route", route)
    if car_id is not None:
        tracer.put_annotation("car_id", car_id)
        logger.append_keys(car_id=car_id)


def _car_response(
    car: Car, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response[CarOut]:
    return Response(
        status_code=status_code,
        content_type="application/json",
        body=CarOut.from_car(car),
        headers={"ETag": f'"{car.version}"', **(headers or {})},
    )


def _location(car_id: str) -> str:
    """The new car's URL path as the client called the API: the request context's path carries the
    stage (`/v1/cars`) or a custom domain's base path, which the resource path (`/cars`) lacks."""
    event = router.current_event
    called = event.request_context.path or event.path
    return f"{called.rstrip('/')}/{car_id}"


def _version_from(if_match: str | None, body_version: int | None) -> int | None:
    header_version: int | None = None
    if if_match is not None:
        match = _ETAG.match(if_match)
        if match is None:
            raise BadRequestError('If-Match must be one strong ETag naming a version, e.g. "3"')
        header_version = int(match.group(1))
    if header_version is not None and body_version is not None and header_version != body_version:
        raise BadRequestError("If-Match and the body's version disagree")
    return header_version if header_version is not None else body_version


def _count_transition(to_status: CarStatus) -> None:
    """The per-service total (what the monitor watches) and the breakdown by target status."""
    metrics.add_metric(name=metric_names.STATUS_TRANSITIONS, unit=MetricUnit.Count, value=1)
    with single_metric(
        name=metric_names.STATUS_TRANSITIONS,
        unit=MetricUnit.Count,
        value=1,
        namespace=metrics.namespace,
        default_dimensions=metrics.default_dimensions,
    ) as metric:
        metric.add_dimension(name="to_status", value=to_status.value)


@router.post(
    "/cars",
    summary="Register a car",
    tags=["cars"],
    responses={201: {"description": "Created"}, **PROBLEM_RESPONSES},
)
def register_car(
    body: Annotated[CarRegistrationIn, Body()],
    service: Service,
    store: IdempotencyStore,
    idempotency_key: IdempotencyKey = None,
) -> Response[CarOut]:
    _observe("POST /cars")

    def register(request: dict[str, Any]) -> dict[str, Any]:
        car = service.register(NewCar.model_validate(request["body"]))
        metrics.add_metric(name=metric_names.CARS_REGISTERED, unit=MetricUnit.Count, value=1)
        return car.model_dump(mode="json")

    request = {"idempotency_key": idempotency_key, "body": body.model_dump(mode="json")}
    if idempotency_key is None:
        created = register(request)
    else:
        config = get_idempotency_config()
        if router.lambda_context is not None:
            config.register_lambda_context(router.lambda_context)
        once = idempotent_function(
            data_keyword_argument="request",
            persistence_store=store,
            config=config,
            key_prefix="cars-api#register-car",
        )(register)
        created = once(request=request)
    car = Car.model_validate(created)
    _observe("POST /cars", car.car_id)
    logger.info("car registered")
    return _car_response(car, 201, {"Location": _location(car.car_id)})


@router.get("/cars", summary="List cars (cursor pagination)", tags=["cars"], responses=PROBLEM_RESPONSES)
def list_cars(
    service: Service,
    status: Annotated[CarStatus | None, Query(description="only cars in this status")] = None,
    model: Annotated[ModelName | None, Query(description="only cars of this model")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    next_token: Annotated[str | None, Query(max_length=2048)] = None,
) -> CarListOut:
    _observe("GET /cars")
    page = service.list(ListQuery(status=status, model=model, limit=limit, next_token=next_token))
    return CarListOut(items=[CarOut.from_car(car) for car in page.items], next_token=page.next_token)


@router.get("/cars/<car_id>", summary="Get a car", tags=["cars"], responses=PROBLEM_RESPONSES)
def get_car(car_id: CarId, service: Service) -> Response[CarOut]:
    _observe("GET /cars/{car_id}", car_id)
    return _car_response(service.get(car_id))


@router.put(
    "/cars/<car_id>",
    summary="Replace the mutable fields (model, year, seats, bike_rack)",
    tags=["cars"],
    responses=PROBLEM_RESPONSES,
)
def replace_car(
    car_id: CarId, body: Annotated[CarReplacementIn, Body()], service: Service, if_match: IfMatch = None
) -> Response[CarOut]:
    _observe("PUT /cars/{car_id}", car_id)
    version = _version_from(if_match, body.version)
    if version is None:
        raise PreconditionRequiredError("send the version you read, in If-Match or the body's version")
    car = service.replace_details(car_id, body.details(), expected_version=version)
    return _car_response(car)


@router.patch(
    "/cars/<car_id>/status",
    summary="Move the car through its status machine",
    tags=["cars"],
    responses=PROBLEM_RESPONSES,
)
def change_status(
    car_id: CarId, body: Annotated[StatusChangeIn, Body()], service: Service, if_match: IfMatch = None
) -> Response[CarOut]:
    _observe("PATCH /cars/{car_id}/status", car_id)
    result = service.change_status(car_id, body.status, expected_version=_version_from(if_match, None))
    _count_transition(body.status)
    logger.info("car status changed", extra={"from_status": result.from_status, "to_status": body.status})
    return _car_response(result.car)


@router.delete(
    "/cars/<car_id>",
    summary="Retire the car (kept for history, hidden from default listings)",
    tags=["cars"],
    responses={204: {"description": "Retired"}, **PROBLEM_RESPONSES},
)
def retire_car(car_id: CarId, service: Service, if_match: IfMatch = None) -> Response[None]:
    _observe("DELETE /cars/{car_id}", car_id)
    result = service.retire(car_id, expected_version=_version_from(if_match, None))
    if result.changed:
        _count_transition(CarStatus.RETIRED)
    return Response(status_code=204, body=None, headers={"ETag": f'"{result.car.version}"'})
