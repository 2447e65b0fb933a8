"""``POST /cars/{car_id}/telemetry`` as API Gateway serves it: a request model and a direct SQS integration.

What API Gateway does for that method (``infra/constructs/cars_api.py``), played locally with the very
templates and schema the CDK app deploys (``contract.telemetry_api``):

1. a body that is not ``application/json`` → ``415 {"message": "Unsupported Media Type"}`` (the
   integration's passthrough behaviour is NEVER);
2. the request validator checks the body against the request model (JSON Schema draft 4): not JSON,
   or refused by the model → ``400 {"message": "Invalid request body", "reason": ...}`` (the
   BAD_REQUEST_BODY gateway response), and nothing is sent;
3. the integration request template (Velocity, rendered here by airspeed with ``$input``, ``$util``
   and ``$context`` as API Gateway defines them) becomes an SQS ``SendMessage`` (AWS JSON protocol),
   sent to the emulator's queue;
4. SQS answered 2xx → the integration response template gives ``202 {"messageId"}``; anything else is
   the default integration response, ``503`` (nothing queued).

No Lambda runs on this path, in the sandbox as on AWS.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import airspeed
import jsonschema

from contract.telemetry_api import (
    ACCEPTED_STATUS,
    ACCEPTED_TEMPLATE,
    NOT_QUEUED_STATUS,
    NOT_QUEUED_TEMPLATE,
    READING_SCHEMA,
    SQS_REQUEST_HEADERS,
    TELEMETRY_RESOURCE,
    send_message_template,
)

log = logging.getLogger(__name__)

_PATH = re.compile(rf"^/cars/(?P<car_id>[^/]+)/{TELEMETRY_RESOURCE}/?$")
_VALIDATOR = jsonschema.Draft4Validator(READING_SCHEMA)
MAX_REASONS = 5

SendMessage = Callable[[dict[str, Any]], dict[str, Any]]
"""SQS SendMessage: the request's parameters (QueueUrl, MessageBody, ...) → its response (MessageId, ...)."""


def telemetry_car_id(path: str) -> str | None:
    """The (still percent-encoded) car_id of a telemetry path, or None if `path` is another route."""
    match = _PATH.match(path)
    return match.group("car_id") if match else None


# --- Velocity as API Gateway speaks it -------------------------------------------------------------


class JavaString(str):
    """A VTL string: Java's String methods the templates call."""

    def replaceAll(self, regex: str, replacement: str) -> JavaString:  # noqa: N802 (Java's name)
        return JavaString(re.sub(regex, replacement.replace("\\", "\\\\"), self))


def escape_javascript(value: str) -> JavaString:
    """``$util.escapeJavaScript``: Apache Commons Lang's StringEscapeUtils.escapeJavaScript, which API
    Gateway uses (quotes, backslash and '/' escaped, control and non-ASCII characters as \\uXXXX)."""
    escapes = {"'": "\\'", '"': '\\"', "\\": "\\\\", "/": "\\/", "\b": "\\b", "\n": "\\n"}
    escapes |= {"\t": "\\t", "\f": "\\f", "\r": "\\r"}
    data = value.encode("utf-16-be", "surrogatepass")  # Java strings are UTF-16
    out: list[str] = []
    for i in range(0, len(data), 2):
        code = int.from_bytes(data[i : i + 2], "big")
        char = chr(code)
        if char in escapes:
            out.append(escapes[char])
        elif code < 0x20 or code > 0x7F:
            out.append(f"\\u{code:04X}")
        else:
            out.append(char)
    return JavaString("".join(out))


class _Util:
    @staticmethod
    def escapeJavaScript(value: Any) -> JavaString:  # noqa: N802 (VTL's name)
        return escape_javascript(str(value))


def _json_path(document: Any, path: str) -> Any:
    """The value at a simple JSONPath (``$``, ``$.a.b``) or None."""
    if not path.startswith("$"):
        raise ValueError(f"unsupported JSONPath {path!r}")
    value = document
    for part in filter(None, path[1:].split(".")):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


class _Input:
    """``$input``: the request body (parsed once) and the request's parameters."""

    def __init__(self, body: Any, params: dict[str, str]) -> None:
        self._body = body
        self._params = params

    def json(self, path: str) -> JavaString:
        return JavaString(json.dumps(_json_path(self._body, path), separators=(",", ":"), ensure_ascii=False))

    def path(self, path: str) -> Any:
        value = _json_path(self._body, path)
        return JavaString(value) if isinstance(value, str) else value

    def params(self, name: str) -> JavaString:
        return JavaString(self._params.get(name, ""))


def render(template: str, *, body: Any, params: dict[str, str], request_id: str) -> str:
    """A mapping template rendered with ``$input``, ``$util`` and ``$context.requestId``."""
    return str(
        airspeed.Template(template).merge(
            {"input": _Input(body, params), "util": _Util(), "context": {"requestId": request_id}}
        )
    )


# --- the method ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RouteResponse:
    status: int
    body: dict[str, Any]


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def validation_reason(body: Any) -> str | None:
    """What the request model finds wrong with `body` (None: it is a reading), as one line."""
    errors = sorted(_VALIDATOR.iter_errors(body), key=lambda e: (list(map(str, e.absolute_path)), e.message))
    if not errors:
        return None
    parts = [f"{'$' + ''.join(f'.{p}' for p in e.absolute_path)}: {e.message}" for e in errors[:MAX_REASONS]]
    more = f" (+{len(errors) - MAX_REASONS} more)" if len(errors) > MAX_REASONS else ""
    return "[" + "; ".join(parts) + more + "]"


class TelemetryRoute:
    """The telemetry method: validate, SendMessage through the integration template, answer 202."""

    def __init__(self, queue_url: str, send_message: SendMessage | None = None) -> None:
        self.queue_url = queue_url
        self.template = send_message_template(queue_url)
        self._send_message = send_message
        self._lock = threading.Lock()
        self._sqs: Any = None

    def _send(self, request: dict[str, Any]) -> dict[str, Any]:
        if self._send_message is not None:
            return self._send_message(request)
        with self._lock:
            if self._sqs is None:
                import boto3

                self._sqs = boto3.client("sqs")
        result: dict[str, Any] = self._sqs.send_message(**request)
        return result

    def handle(self, *, car_id: str, body: bytes, content_type: str | None, request_id: str) -> RouteResponse:
        media = (content_type or "application/json").split(";")[0].strip().lower()
        if media != "application/json":
            return RouteResponse(415, {"message": "Unsupported Media Type"})
        try:
            document = json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
        except (UnicodeDecodeError, ValueError, RecursionError) as err:
            unparsable = f"[the body is not JSON: {type(err).__name__}]"
            return RouteResponse(400, {"message": "Invalid request body", "reason": unparsable})
        refused = validation_reason(document)
        if refused is not None:
            return RouteResponse(400, {"message": "Invalid request body", "reason": refused})
        rendered = render(self.template, body=document, params={"car_id": car_id}, request_id=request_id)
        request = json.loads(rendered)  # the JSON protocol's body; its headers are SQS_REQUEST_HEADERS
        assert SQS_REQUEST_HEADERS["X-Amz-Target"].endswith(".SendMessage")
        try:
            response = self._send(request)
        except Exception as err:  # SQS refused or failed: the default integration response
            log.warning("telemetry: SendMessage failed: %s", err)
            return RouteResponse(NOT_QUEUED_STATUS, json.loads(NOT_QUEUED_TEMPLATE))
        accepted = render(ACCEPTED_TEMPLATE, body=response, params={}, request_id=request_id)
        return RouteResponse(ACCEPTED_STATUS, json.loads(accepted))
