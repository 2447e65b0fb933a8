"""``POST /cars/{car_id}/telemetry``: telemetry stored before anything else runs.

A car posts one reading; API Gateway checks the body against `READING_SCHEMA` (a request model, JSON
Schema draft 4, the dialect API Gateway validates), and a direct SQS service integration — no Lambda on
the write path — sends the telemetry ingest's message (``service.ingest.models.TelemetryMessage``:
the reading plus ``car_id`` from the path) to the telemetry queue. The answer is ``202 {"messageId"}``
only when SQS answered 2xx; any other SQS answer is ``503`` (nothing was queued, retry). A body the
model refuses is ``400 {"message", "reason"}`` and nothing is queued.

The car is named by the path, not the body (a ``car_id`` in the body is an unknown field, 400), so an
IAM policy can let one car's credentials post for that car only (``execute-api:Invoke`` on
``.../POST/cars/<car_id>/telemetry``).

The CDK app (``infra/constructs/cars_api.py``) and the sandbox's local gateway
(``sandbox/aws/telemetry_route.py``, which renders these same templates) both use what is here, so
they cannot drift; ``tests/contract/test_telemetry_api.py`` keeps the schema equal in effect to the
ingest's Pydantic model. This module is pure: no boto3, no aws-cdk-lib.
"""

from __future__ import annotations

from typing import Any

TELEMETRY_RESOURCE = "telemetry"
TELEMETRY_PATH = "/cars/{car_id}/telemetry"
READING_MODEL_NAME = "TelemetryReading"

# RFC 3339 date-time with an explicit offset, in 2000-2099, real calendar dates only (leap years included):
# exactly what the ingest's AwareDatetime takes within that range, with a 'T' and at most microseconds.
# Naive times and epoch numbers fail here, as they do in the ingest.
_DATE = (
    r"(20[0-9]{2}-((0[13578]|1[02])-(0[1-9]|[12][0-9]|3[01])|(0[469]|11)-(0[1-9]|[12][0-9]|30)"
    r"|02-(0[1-9]|1[0-9]|2[0-8]))|20([02468][048]|[13579][26])-02-29)"
)
TS_PATTERN = (
    rf"^{_DATE}T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{{1,6}})?"
    r"(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"
)

READING_SCHEMA: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-04/schema#",
    "title": READING_MODEL_NAME,
    "description": "One telemetry reading of the car named in the path",
    "type": "object",
    "additionalProperties": False,
    "required": ["ts", "position", "battery_level", "speed_kmh"],
    "properties": {
        "ts": {
            "type": "string",
            "maxLength": 40,
            "pattern": TS_PATTERN,
            "description": "When the car took the reading: ISO-8601 / RFC 3339 with an offset",
        },
        "position": {
            "type": "object",
            "additionalProperties": False,
            "required": ["lat", "lon"],
            "properties": {
                "lat": {"type": "number", "minimum": -90, "maximum": 90},
                "lon": {"type": "number", "minimum": -180, "maximum": 180},
            },
        },
        "battery_level": {"type": "number", "minimum": 0, "maximum": 100, "description": "percent"},
        "speed_kmh": {"type": "number", "minimum": 0, "maximum": 300},
    },
}
"""The request model. Equal in effect to ``TelemetryMessage`` without ``car_id`` (tested)."""

ACCEPTED_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["messageId"],
    "properties": {"messageId": {"type": "string", "description": "The SQS message id"}},
}
REFUSED_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["message"],
    "properties": {
        "message": {"type": "string"},
        "reason": {"type": "string", "description": "What the request model found wrong"},
    },
}

# Integration request, SQS's AWS JSON protocol (the headers below). VTL leaves a backslash alone unless
# it precedes '$' or '#', so `\"` is text. The message is JSON inside the JSON string MessageBody: the
# reading's values come from `$input.json` (already JSON, escaped once for the outer string) and the
# path's car_id is escaped twice. `$util.escapeJavaScript` turns ' into \' (not JSON): replaceAll undoes it.
SQS_REQUEST_HEADERS = {
    "Content-Type": "application/x-amz-json-1.0",
    "X-Amz-Target": "AmazonSQS.SendMessage",
}
_CAR = (
    "$util.escapeJavaScript($util.escapeJavaScript($input.params('car_id'))"
    '.replaceAll("\\\\\'", "\'")).replaceAll("\\\\\'", "\'")'
)
_SEND_MESSAGE_TEMPLATE = (
    f"#set($car = {_CAR})\n"
    '{"QueueUrl": "@QUEUE_URL@", "MessageBody": "{'
    '\\"car_id\\":\\"$car\\",'
    "\\\"ts\\\":$util.escapeJavaScript($input.json('$.ts')),"
    "\\\"position\\\":$util.escapeJavaScript($input.json('$.position')),"
    "\\\"battery_level\\\":$input.json('$.battery_level'),"
    "\\\"speed_kmh\\\":$input.json('$.speed_kmh')"
    '}", "MessageAttributes": {"api_request_id": {"DataType": "String", '
    '"StringValue": "$context.requestId"}}}'
)


def send_message_template(queue_url: str) -> str:
    """The integration request template (application/json) that sends the reading to ``queue_url``."""
    return _SEND_MESSAGE_TEMPLATE.replace("@QUEUE_URL@", queue_url)


ACCEPTED_STATUS = 202
ACCEPTED_SELECTION_PATTERN = r"2\d{2}"
"""Only an SQS 2xx selects the 202 (API Gateway matches an AWS integration's HTTP status)."""
ACCEPTED_TEMPLATE = '{"messageId": "$input.path(\'$.MessageId\')"}'

NOT_QUEUED_STATUS = 503
"""The default integration response: SQS refused or failed; nothing was queued."""
NOT_QUEUED_TEMPLATE = '{"message": "the reading was not queued; retry"}'

BAD_REQUEST_BODY_TEMPLATE = (
    '{"message": "$context.error.message", "reason": "$context.error.validationErrorString"}'
)
"""Gateway response BAD_REQUEST_BODY: what the request model found wrong."""


def openapi_operation() -> dict[str, Any]:
    """The route as an OpenAPI 3 operation, for the API's OpenAPI document."""
    return {
        "post": {
            "operationId": "post_telemetry",
            "summary": "Queue one telemetry reading of a car",
            "description": (
                "Served by API Gateway itself: the body is checked against the request model, then sent to "
                "the telemetry queue (SQS) without any Lambda. 202 means SQS holds the message; the "
                "telemetry ingest applies it later (or dead-letters it: unknown or retired car, a reading "
                "more than 1 h old or more than 5 min in the future). IAM (SigV4) authorised."
            ),
            "tags": ["telemetry"],
            "parameters": [
                {
                    "name": "car_id",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "minLength": 1, "maxLength": 128, "pattern": r"^\S+$"},
                }
            ],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {k: v for k, v in READING_SCHEMA.items() if k != "$schema"}
                    }
                },
            },
            "responses": {
                str(ACCEPTED_STATUS): {
                    "description": "Queued: SQS has the message",
                    "content": {"application/json": {"schema": ACCEPTED_SCHEMA}},
                },
                "400": {
                    "description": "The body is not a reading (not JSON, or the request model refused it)",
                    "content": {"application/json": {"schema": REFUSED_SCHEMA}},
                },
                "415": {
                    "description": "The body is not application/json",
                    "content": {"application/json": {"schema": REFUSED_SCHEMA}},
                },
                "429": {"description": "Throttled (the route's own limit)"},
                str(NOT_QUEUED_STATUS): {
                    "description": "SQS did not take the message; nothing was queued, retry",
                    "content": {"application/json": {"schema": REFUSED_SCHEMA}},
                },
            },
            # Not the cars-api function's: API Gateway answers it (tests replaying requests into the
            # Lambda skip operations carrying this).
            "x-amazon-apigateway-integration": {
                "type": "aws",
                "httpMethod": "POST",
                "uri": "arn:aws:apigateway:{region}:sqs:path/{account}/{telemetry queue}",
                "passthroughBehavior": "never",
                "requestParameters": {
                    f"integration.request.header.{k}": f"'{v}'" for k, v in SQS_REQUEST_HEADERS.items()
                },
            },
        }
    }


def served_by_api_gateway(operation: dict[str, Any]) -> bool:
    """Whether an OpenAPI operation is answered by API Gateway itself (no Lambda behind it)."""
    return "x-amazon-apigateway-integration" in operation
