"""The cars API Lambda: API Gateway REST proxy events -> Powertools resolver."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.exceptions import RequestEntityTooLargeError
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.event_handler.middlewares.openapi_validation import (
    OpenAPIRequestValidationMiddleware,
)
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.types import EventHandlerInstance
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from contract.telemetry_api import TELEMETRY_PATH, openapi_operation
from service.api.errors import body_size, register_error_handlers
from service.api.routes import cars, health
from service.observability import logger, metrics, tracer
from service.settings import get_settings

API_TITLE = "Fleetscope cars API"
API_VERSION = "1.0.0"


class JsonOnlyRequestValidation(OpenAPIRequestValidationMiddleware):
    """Powertools' request validation, JSON bodies only.

    Powertools also parses form and multipart bodies, and a multipart Content-Type without a boundary escapes
    as a bare ValueError (a 500). This API speaks JSON: any other body media type is a malformed request.
    """

    def _get_body(self, app: EventHandlerInstance) -> dict[str, Any]:
        limit = get_settings().max_body_bytes
        if body_size(app.current_event) > limit:  # before parsing: a huge body is refused without being read
            raise RequestEntityTooLargeError(f"the limit is {limit} bytes")
        content_type = app.current_event.headers.get("content-type", "").strip().lower()
        if content_type and not content_type.startswith("application/json"):
            raise RequestValidationError(
                [
                    {
                        "type": "unsupported_content_type",
                        "loc": ("body",),
                        "msg": "the body must be application/json",
                        "input": {},
                    }
                ]
            )
        try:
            return super()._get_body(app)
        except UnicodeDecodeError as err:  # a base64-encoded body that is not UTF-8 text
            raise _malformed("the body is not UTF-8 text") from err
        except (ValueError, RecursionError) as err:  # an int over 4,300 digits; nesting deeper than the stack
            raise _malformed("the body is not JSON this API can read") from err


def _malformed(msg: str) -> RequestValidationError:
    return RequestValidationError([{"type": "json_invalid", "loc": ("body",), "msg": msg, "input": {}}])


def reject_oversized_body(app: APIGatewayRestResolver, next_middleware: NextMiddleware) -> Response[Any]:
    """413 for bodies over settings.max_body_bytes on routes without a validated body (the others: above)."""
    limit = get_settings().max_body_bytes
    if body_size(app.current_event) > limit:
        raise RequestEntityTooLargeError(f"the limit is {limit} bytes")
    return next_middleware(app)


app = APIGatewayRestResolver(enable_validation=True)
# Powertools builds each route's stack with this middleware when present (3.x; see JsonOnlyRequestValidation).
app._request_validation_middleware = JsonOnlyRequestValidation()
app.include_router(health.router)
app.include_router(cars.router)
app.use(middlewares=[reject_oversized_body])
register_error_handlers(app)
app.enable_swagger(path="/swagger", title=API_TITLE, version=API_VERSION)


def openapi_json() -> str:
    """The OpenAPI document of this API (what /openapi.json serves): this function's routes, and
    ``POST /cars/{car_id}/telemetry``, which API Gateway serves itself (request model + SQS integration,
    marked ``x-amazon-apigateway-integration``; ``contract.telemetry_api``)."""
    document = json.loads(app.get_openapi_json_schema(title=API_TITLE, version=API_VERSION))
    document["paths"][TELEMETRY_PATH] = openapi_operation()
    return json.dumps(document, indent=2)


@app.get("/openapi.json", include_in_schema=False)
def openapi_document() -> Response[str]:
    return Response(status_code=200, content_type="application/json", body=openapi_json())


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
