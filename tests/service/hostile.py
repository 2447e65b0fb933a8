"""Hostile requests for every operation of the cars API: bodies the JSON parser chokes on, malformed
If-Match headers, forged next_tokens. Each must get a 4xx problem, never a 5xx (the fuzz test and
bench_reliability replay them). Built from the OpenAPI document, so a new operation gets them too."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from contract.telemetry_api import served_by_api_gateway

HOSTILE_BODIES: dict[str, str] = {
    "int-5000-digits": '{"vin": "1M8GDM9AXKP042788", "year": ' + "9" * 5_000 + "}",
    "array-nested-20000": "[" * 20_000 + "]" * 20_000,
    "object-nested-20000": '{"a": ' * 20_000 + "1" + "}" * 20_000,
    "nested-over-the-limit": "[" * 70_000,
    "float-overflow": '{"battery_level": 1e999}',
    "nan": '{"battery_level": NaN}',
    "lone-surrogate": '{"model": "\\ud800"}',
    "nul-bytes": '{"model": "\\u0000\\u0000"}',
    "duplicate-keys": '{"status": "available", "status": "in_trip"}',
    "truncated": '{"vin": "1M8G',
}
HOSTILE_IF_MATCH: tuple[str, ...] = (
    'W/"1"',
    '"2',
    '2"',
    "1",
    '""',
    '"1", "2"',
    "*",
    '"99999999999999"',
    '"-1"',
)
HOSTILE_NEXT_TOKENS: tuple[str, ...] = (
    "x",
    "a.b",
    "." * 40,
    "eyJ2IjoxLCJrIjp7fSwiZiI6e319.AAAAAAAAAAAAAAAAAAAAAA",  # {"v":1,"k":{},"f":{}} with a made-up MAC
    "A" * 2048,
)


@dataclass(frozen=True)
class HostileRequest:
    name: str
    method: str
    path: str
    raw_body: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


def hostile_requests(openapi: str, car_id: str) -> list[HostileRequest]:
    """Every hostile case for every operation of `openapi` that can take it (`car_id` fills paths)."""
    requests: list[HostileRequest] = []
    for template, operations in json.loads(openapi)["paths"].items():
        path = template.replace("{car_id}", car_id)
        for method, operation in operations.items():
            if served_by_api_gateway(
                operation
            ):  # not the function's (tests/sandbox/test_sandbox_telemetry_route.py)
                continue
            method = method.upper()
            params: list[dict[str, Any]] = operation.get("parameters", [])
            headers = {"Content-Type": "application/json"}
            if "requestBody" in operation:
                for name, body in HOSTILE_BODIES.items():
                    requests.append(
                        HostileRequest(f"{method} {template} {name}", method, path, body, headers)
                    )
            if any(p["name"].lower() == "if-match" for p in params):
                body = '{"status": "maintenance"}' if path.endswith("/status") else None
                if method == "PUT":
                    body = '{"model": "R9", "year": 2024, "seats": 2, "bike_rack": false}'
                for value in HOSTILE_IF_MATCH:
                    requests.append(
                        HostileRequest(
                            f"{method} {template} If-Match {value}",
                            method,
                            path,
                            body,
                            headers | {"If-Match": value},
                        )
                    )
            if any(p["name"] == "next_token" for p in params):
                for token in HOSTILE_NEXT_TOKENS:
                    requests.append(
                        HostileRequest(
                            f"{method} {template} next_token", method, f"{path}?next_token={token}"
                        )
                    )
    return requests
