"""Every error the API can answer, mapped to an RFC 9457 problem in ONE place."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.exceptions import (
    BadRequestError,
    NotFoundError,
    RequestEntityTooLargeError,
    ServiceError,
)
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.utilities.data_classes.common import BaseProxyEvent
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyValidationError,
)

from service.api.problems import PROBLEM_CONTENT_TYPE, FieldError, Problem, problem_type
from service.domain.errors import (
    CarNotFoundError,
    CarRetiredError,
    IllegalTransitionError,
    InvalidCursorError,
    PreconditionRequiredError,
    VersionConflictError,
    VinAlreadyRegisteredError,
)
from service.observability import logger
from service.settings import get_settings

_MALFORMED_BODY_TYPES = {"json_invalid", "unsupported_content_type"}


def body_size(event: BaseProxyEvent) -> int:
    """The request body's size in bytes (decoded when API Gateway base64-encoded it)."""
    if not event.body:
        return 0
    if event.is_base64_encoded:  # the bytes themselves: they need not be UTF-8 text
        try:
            return len(base64.b64decode(event.body))
        except binascii.Error:
            return len(event.body)
    return len(event.body.encode("utf-8", "surrogatepass"))


def register_error_handlers(app: APIGatewayRestResolver) -> None:
    def problem(status: int, slug: str, title: str, detail: str | None = None, **extra: Any) -> Response[Any]:
        event = app.current_event
        body = Problem(
            type=problem_type(slug),
            title=title,
            status=status,
            detail=detail,
            instance=event.path,
            request_id=event.request_context.request_id,
            **extra,
        )
        return Response(
            status_code=status,
            content_type=PROBLEM_CONTENT_TYPE,
            body=body.model_dump_json(exclude_none=True),
        )

    @app.exception_handler(RequestValidationError)
    def _invalid(err: RequestValidationError) -> Response[Any]:
        limit = get_settings().max_body_bytes
        if body_size(app.current_event) > limit:
            return problem(413, "body-too-large", "Request body too large", f"the limit is {limit} bytes")
        errors = list(err.errors())
        if any(e.get("type") in _MALFORMED_BODY_TYPES for e in errors):
            return problem(400, "malformed-body", "Malformed request body", "the body must be a JSON object")
        fields = [
            FieldError(
                loc=[str(p) if not isinstance(p, int) else p for p in e.get("loc", ())],
                msg=str(e.get("msg", "")),
                type=str(e.get("type", "")),
            )
            for e in errors
        ]
        return problem(422, "validation-failed", "Validation failed", "see errors", errors=fields)

    @app.exception_handler(NotFoundError)
    def _no_route(err: NotFoundError) -> Response[Any]:
        return problem(404, "not-found", "Not found", "no such resource")

    @app.exception_handler(CarNotFoundError)
    def _no_car(err: CarNotFoundError) -> Response[Any]:
        return problem(404, "car-not-found", "Car not found", str(err))

    @app.exception_handler(VersionConflictError)
    def _stale(err: VersionConflictError) -> Response[Any]:
        return problem(409, "version-conflict", "Version conflict", str(err), current_version=err.current)

    @app.exception_handler(IllegalTransitionError)
    def _illegal(err: IllegalTransitionError) -> Response[Any]:
        return problem(409, "illegal-transition", "Illegal status transition", str(err), allowed=err.allowed)

    @app.exception_handler(CarRetiredError)
    def _retired(err: CarRetiredError) -> Response[Any]:
        return problem(409, "car-retired", "Car retired", str(err))

    @app.exception_handler(VinAlreadyRegisteredError)
    def _vin_taken(err: VinAlreadyRegisteredError) -> Response[Any]:
        return problem(409, "vin-registered", "VIN already registered", str(err))

    @app.exception_handler(InvalidCursorError)
    def _bad_cursor(err: InvalidCursorError) -> Response[Any]:
        return problem(400, "invalid-next-token", "Invalid next_token", str(err))

    @app.exception_handler(PreconditionRequiredError)
    def _no_version(err: PreconditionRequiredError) -> Response[Any]:
        return problem(428, "precondition-required", "Precondition required", str(err))

    @app.exception_handler(IdempotencyValidationError)
    def _key_reused(err: IdempotencyValidationError) -> Response[Any]:
        return problem(
            422,
            "idempotency-key-reused",
            "Idempotency-Key reused with a different body",
            "an Idempotency-Key may only be retried with the same body",
        )

    @app.exception_handler(IdempotencyAlreadyInProgressError)
    def _key_in_flight(err: IdempotencyAlreadyInProgressError) -> Response[Any]:
        return problem(
            409, "idempotency-in-progress", "Request in progress", "a request with this key is still running"
        )

    @app.exception_handler(RequestEntityTooLargeError)
    def _too_large(err: RequestEntityTooLargeError) -> Response[Any]:
        return problem(413, "body-too-large", "Request body too large", str(err.msg))

    @app.exception_handler(BadRequestError)
    def _bad_request(err: BadRequestError) -> Response[Any]:
        return problem(400, "bad-request", "Bad request", str(err.msg))

    @app.exception_handler(ServiceError)
    def _service_error(err: ServiceError) -> Response[Any]:
        return problem(err.status_code, "http-error", "Request failed", str(err.msg))

    @app.exception_handler(Exception)
    def _unexpected(err: Exception) -> Response[Any]:
        logger.exception("unhandled error")
        return problem(500, "internal-error", "Internal error", "the request failed; quote request_id")
