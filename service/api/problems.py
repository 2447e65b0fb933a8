"""RFC 9457 problem details: the one error body of the API (media type application/problem+json)."""

from __future__ import annotations

from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from pydantic import BaseModel, ConfigDict, Field

PROBLEM_CONTENT_TYPE = "application/problem+json"


class FieldError(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class Problem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: str = Field(description="URI identifying the problem type")
    title: str
    status: int
    detail: str | None = None
    instance: str | None = Field(default=None, description="the request path")
    request_id: str | None = Field(default=None, description="API Gateway request id (also in our logs)")
    errors: list[FieldError] | None = Field(default=None, description="failing fields (422)")
    allowed: list[str] | None = Field(default=None, description="allowed status moves (illegal transition)")
    current_version: int | None = None


def problem_type(slug: str) -> str:
    return f"urn:fleetscope:problem:{slug}"


PROBLEM_RESPONSES: dict[int, OpenAPIResponse] = {
    status: OpenAPIResponse(description=title, content={PROBLEM_CONTENT_TYPE: {"model": Problem}})
    for status, title in (
        (400, "Bad request (malformed JSON, bad next_token, malformed If-Match, ambiguous version)"),
        (404, "Not found"),
        (409, "Conflict (stale version, illegal status move, VIN taken, idempotency key in use)"),
        (413, "Body too large"),
        (422, "Validation failed"),
        (428, "Precondition required (no version given)"),
        (500, "Internal error"),
    )
}
