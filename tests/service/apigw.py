"""Realistic API Gateway REST (v1) Lambda-proxy events, and a fake Lambda context, for driving handlers."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class FakeLambdaContext:
    function_name: str = "fleetscope-test-cars-api"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:fleetscope-test-cars-api"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    log_group_name: str = "/aws/lambda/fleetscope-test-cars-api"
    log_stream_name: str = "2026/11/27/[$LATEST]0123456789abcdef"

    def get_remaining_time_in_millis(self) -> int:
        return 10_000


def rest_event(
    method: str,
    path: str,
    *,
    body: Any = None,
    raw_body: str | None = None,
    headers: dict[str, str] | None = None,
    resource: str | None = None,
    request_id: str | None = None,
) -> dict[str, Any]:
    """An API Gateway REST API proxy event as Lambda receives it (stage v1). `path` may carry a query."""
    parts = urlsplit(path)
    query = parse_qs(parts.query, keep_blank_values=True)
    all_headers = {"Host": "abc123.execute-api.us-east-1.amazonaws.com", "User-Agent": "pytest"}
    if body is not None or raw_body is not None:
        all_headers["Content-Type"] = "application/json"
    all_headers.update(headers or {})
    text = raw_body if raw_body is not None else (json.dumps(body) if body is not None else None)
    request_id = request_id or str(uuid.uuid4())
    return {
        "resource": resource or parts.path,
        "path": parts.path,
        "httpMethod": method,
        "headers": all_headers,
        "multiValueHeaders": {k: [v] for k, v in all_headers.items()},
        "queryStringParameters": {k: v[-1] for k, v in query.items()} or None,
        "multiValueQueryStringParameters": query or None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "resourcePath": resource or parts.path,
            "httpMethod": method,
            "path": f"/v1{parts.path}",
            "protocol": "HTTP/1.1",
            "requestId": request_id,
            "extendedRequestId": request_id,
            "requestTime": "27/Nov/2026:01:00:00 +0000",
            "requestTimeEpoch": 1795741200000,
            "stage": "v1",
            "identity": {"sourceIp": "203.0.113.7", "userAgent": "pytest"},
        },
        "body": text,
        "isBase64Encoded": False,
    }


@dataclass
class HttpResult:
    status: int
    headers: dict[str, str]
    body: Any

    @property
    def json(self) -> Any:
        return self.body


def call(handler: Any, method: str, path: str, **kwargs: Any) -> HttpResult:
    """Invoke a Lambda handler with a REST proxy event; decode its proxy response."""
    response = handler(rest_event(method, path, **kwargs), FakeLambdaContext())
    headers = {k.lower(): v for k, v in (response.get("headers") or {}).items()}
    for key, values in (response.get("multiValueHeaders") or {}).items():
        headers[key.lower()] = values[-1]
    text = response.get("body")
    body: Any = text
    if text and headers.get("content-type", "").endswith("json"):
        body = json.loads(text)
    return HttpResult(status=response["statusCode"], headers=headers, body=body)
