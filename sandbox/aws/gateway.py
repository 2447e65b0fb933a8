"""The local API Gateway: HTTP on 127.0.0.1 <-> REST API Lambda proxy events.

Each request becomes the proxy event API Gateway would send for a ``/{proxy+}`` resource (``path``,
``pathParameters.proxy``, single- and multi-value headers and query parameters, the body — base64
when it is not UTF-8 text — and a ``requestContext`` with requestId, stage, identity and
requestTimeEpoch), so the function's own router answers known and unknown routes alike. The URL
may carry the stage (``/v1/cars``) or not (``/cars``).

Like API Gateway it also:
- throttles the stage with a token bucket (rate, burst) → ``429 {"message": "Too Many Requests"}``;
- rejects payloads over 10 MB → ``413 {"message": "Request Too Long"}``;
- maps a function error or a malformed proxy response to ``502 {"message": "Internal server error"}``
  and a throttled function to ``500 {"message": "Internal server error"}`` (it never ran);
- records AWS/ApiGateway Count, 4XXError, 5XXError, Latency and IntegrationLatency per request
  (dimensions ApiName, and ApiName + Stage), batched through the `TelemetrySink`;
- with tracing, records the stage's X-Ray segment and passes the trace header to the function.

``POST /cars/{car_id}/telemetry`` is not a Lambda route: with a `TelemetryRoute` the gateway serves it
as API Gateway's direct SQS integration does (request model, SendMessage, ``202 {"messageId"}``;
`sandbox.aws.telemetry_route`), throttled by the method's own token bucket as the stage's method
settings do on AWS; another method on that path is API Gateway's ``403 Missing Authentication Token``.
"""

from __future__ import annotations

import base64
import errno
import json
import logging
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from sandbox.aws.runtime import Invocation
from sandbox.aws.telemetry import MetricSample, TelemetrySink, dims
from sandbox.aws.telemetry_route import TelemetryRoute, telemetry_car_id
from sandbox.aws.xray import XRayDaemon, new_segment_id, new_trace_id, trace_header

log = logging.getLogger(__name__)

MAX_PAYLOAD_BYTES = 10 * 1024 * 1024
API_ID = "local0api1"


class Invoker(Protocol):
    def invoke(self, event: dict[str, Any], *, trace_header_value: str | None = None) -> Invocation: ...


class TokenBucket:
    """API Gateway stage throttling: `rate` requests per second steady, `burst` at once."""

    def __init__(self, rate: float, burst: int) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"throttling needs rate > 0 and burst >= 1, got rate={rate} burst={burst}")
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._last = time.monotonic()
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return True
            return False


@dataclass(frozen=True)
class GatewayConfig:
    api_name: str
    stage: str
    rate: float = 10_000.0  # API Gateway's default account-level limits
    burst: int = 5_000
    max_payload_bytes: int = MAX_PAYLOAD_BYTES
    # POST /cars/{car_id}/telemetry has a throttle of its own (a method setting of the stage on AWS).
    telemetry_rate: float = 10_000.0
    telemetry_burst: int = 5_000


def _json_response(status: int, message: str, request_id: str) -> Response:
    return Response(
        json.dumps({"message": message}),
        status=status,
        content_type="application/json",
        headers={"x-amzn-RequestId": request_id, "x-amzn-ErrorType": _ERROR_TYPES.get(status, "")},
    )


_ERROR_TYPES = {
    400: "BadRequestException",
    403: "MissingAuthenticationTokenException",
    415: "UnsupportedMediaTypeException",
    413: "RequestTooLongException",
    429: "TooManyRequestsException",
    500: "InternalServerErrorException",
    502: "InternalServerErrorException",
    503: "ServiceUnavailableException",
}


def resource_path(request: Request, stage: str) -> str:
    """The request's path without the stage (``/v1/cars`` and ``/cars`` are both ``/cars``)."""
    path = request.path or "/"
    if path == f"/{stage}" or path.startswith(f"/{stage}/"):
        path = path[len(stage) + 1 :] or "/"
    return path


def build_proxy_event(request: Request, body: bytes, *, stage: str, request_id: str) -> dict[str, Any]:
    """The REST API proxy event for a request on a ``/{proxy+}`` resource."""
    path = resource_path(request, stage)
    multi_headers: dict[str, list[str]] = {}
    for name, value in request.headers.items():
        multi_headers.setdefault(name, []).append(value)
    headers = {name: values[-1] for name, values in multi_headers.items()}
    multi_query = {key: request.args.getlist(key) for key in request.args}
    query = {key: values[-1] for key, values in multi_query.items()}
    now = datetime.now(UTC)
    is_base64 = False
    text: str | None = None
    if body:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            text, is_base64 = base64.b64encode(body).decode(), True
    proxy = path.lstrip("/")
    resource = "/{proxy+}" if proxy else "/"
    return {
        "resource": resource,
        "path": path,
        "httpMethod": request.method,
        "headers": headers or None,
        "multiValueHeaders": multi_headers or None,
        "queryStringParameters": query or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": {"proxy": proxy} if proxy else None,
        "stageVariables": None,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": API_ID,
            "domainName": request.host,
            "domainPrefix": request.host.split(".")[0],
            "extendedRequestId": request_id,
            "httpMethod": request.method,
            "identity": {
                "sourceIp": request.remote_addr or "127.0.0.1",
                "userAgent": request.headers.get("User-Agent"),
                "accountId": None,
                "caller": None,
                "user": None,
                "userArn": None,
            },
            "path": f"/{stage}{path}",
            "protocol": request.environ.get("SERVER_PROTOCOL", "HTTP/1.1"),
            "requestId": request_id,
            "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "requestTimeEpoch": int(now.timestamp() * 1000),
            "resourceId": "proxy0",
            "resourcePath": resource,
            "stage": stage,
        },
        "body": text,
        "isBase64Encoded": is_base64,
    }


def proxy_response(payload: Any) -> tuple[int, list[tuple[str, str]], bytes] | None:
    """(status, headers, body) of a Lambda proxy response, or None if it is malformed."""
    if not isinstance(payload, dict):
        return None
    try:
        status = int(payload.get("statusCode", 200))
    except (TypeError, ValueError):
        return None
    if not 100 <= status <= 599:
        return None
    headers: list[tuple[str, str]] = []
    single = payload.get("headers") or {}
    multi = payload.get("multiValueHeaders") or {}
    if not isinstance(single, dict) or not isinstance(multi, dict):
        return None
    for name, values in multi.items():
        headers.extend(
            (str(name), str(value)) for value in (values if isinstance(values, list) else [values])
        )
    multi_names = {name.lower() for name in multi}
    headers.extend((str(k), str(v)) for k, v in single.items() if k.lower() not in multi_names)
    raw_body = payload.get("body")
    if raw_body is None:
        body = b""
    elif payload.get("isBase64Encoded"):
        try:
            body = base64.b64decode(str(raw_body))
        except ValueError:
            return None
    else:
        body = str(raw_body).encode()
    return status, headers, body


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class Gateway:
    """The WSGI app plus its threaded server. `start()` binds 127.0.0.1:port (0 = any free port)."""

    def __init__(
        self,
        invoker: Invoker,
        config: GatewayConfig,
        *,
        sink: TelemetrySink | None = None,
        xray: XRayDaemon | None = None,
        port: int = 3000,
        telemetry: TelemetryRoute | None = None,
    ) -> None:
        self.invoker = invoker
        self.config = config
        self.sink = sink
        self.xray = xray
        self.telemetry = telemetry
        self.bucket = TokenBucket(config.rate, config.burst)
        self.telemetry_bucket = TokenBucket(config.telemetry_rate, config.telemetry_burst)
        self.requested_port = port
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._dimension_sets = (
            dims(ApiName=config.api_name),
            dims(ApiName=config.api_name, Stage=config.stage),
        )

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("gateway not started")
        return int(self._server.server_port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Gateway:
        try:
            self._server = make_server(
                "127.0.0.1", self.requested_port, self.wsgi, threaded=True, request_handler=_QuietHandler
            )
        except SystemExit as err:  # werkzeug exits the process when the port is taken
            raise OSError(errno.EADDRINUSE, f"port {self.requested_port} is in use") from err
        self._thread = threading.Thread(target=self._server.serve_forever, name="gateway", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    # ---- request handling ---------------------------------------------------------------------
    def wsgi(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        request = Request(environ)
        started = time.perf_counter()
        started_wall = time.time()
        request_id = str(uuid.uuid4())
        integration_ms: float | None = None
        trace: tuple[str, str] | None = None
        if self.xray is not None:
            trace = (new_trace_id(started_wall), new_segment_id())
        car_id = telemetry_car_id(resource_path(request, self.config.stage)) if self.telemetry else None
        bucket = self.telemetry_bucket if car_id is not None else self.bucket
        if not bucket.take():
            response = _json_response(429, "Too Many Requests", request_id)
        elif (request.content_length or 0) > self.config.max_payload_bytes:
            response = _json_response(413, "Request Too Long", request_id)
        else:
            body = request.get_data(cache=False)
            if len(body) > self.config.max_payload_bytes:
                response = _json_response(413, "Request Too Long", request_id)
            elif car_id is not None:
                integration_started = time.perf_counter()
                response = self._telemetry(request, car_id, body, request_id)
                integration_ms = (time.perf_counter() - integration_started) * 1000
            else:
                event = build_proxy_event(request, body, stage=self.config.stage, request_id=request_id)
                header = trace_header(*trace) if trace else None
                if header:
                    event["headers"] = (event["headers"] or {}) | {"X-Amzn-Trace-Id": header}
                    event["multiValueHeaders"] = (event["multiValueHeaders"] or {}) | {
                        "X-Amzn-Trace-Id": [header]
                    }
                integration_started = time.perf_counter()
                try:
                    result = self.invoker.invoke(event, trace_header_value=header)
                except Exception:  # the platform failed, not the function: still answer like API GW
                    log.exception("invoking the integration failed")
                    result = Invocation(request_id, error={"errorType": "Sandbox.InvokeError"})
                integration_ms = (time.perf_counter() - integration_started) * 1000
                response = self._map_result(result, request_id)
        response.headers["x-amzn-RequestId"] = request_id
        response.headers["x-amz-apigw-id"] = request_id[:16]
        if trace:
            response.headers["X-Amzn-Trace-Id"] = f"Root={trace[0]}"
        latency_ms = (time.perf_counter() - started) * 1000
        self._record(response.status_code, latency_ms, integration_ms, started_wall)
        if trace:
            self._trace(trace, request, response.status_code, started_wall, latency_ms)
        return response(environ, start_response)

    def _telemetry(self, request: Request, car_id: str, body: bytes, request_id: str) -> Response:
        assert self.telemetry is not None
        if request.method != "POST":  # the resource has no other method
            return _json_response(403, "Missing Authentication Token", request_id)
        answer = self.telemetry.handle(
            car_id=car_id, body=body, content_type=request.headers.get("Content-Type"), request_id=request_id
        )
        response = Response(json.dumps(answer.body), status=answer.status, content_type="application/json")
        if answer.status >= 400:
            response.headers["x-amzn-ErrorType"] = _ERROR_TYPES.get(answer.status, "")
        return response

    def _map_result(self, result: Invocation, request_id: str) -> Response:
        if result.throttled:
            # A throttled Lambda never ran, so there is no proxy response: API Gateway answers 500
            # (INTEGRATION_FAILURE), not 429 (429 is its own stage throttle, above).
            return _json_response(500, "Internal server error", request_id)
        if result.error is not None:
            return _json_response(502, "Internal server error", request_id)
        mapped = proxy_response(result.payload)
        if mapped is None:
            log.warning("malformed Lambda proxy response: %r", str(result.payload)[:200])
            return _json_response(502, "Internal server error", request_id)
        status, headers, body = mapped
        response = Response(body, status=status)
        response.headers.clear()
        for name, value in headers:
            response.headers.add(name, value)
        return response

    def _record(self, status: int, latency_ms: float, integration_ms: float | None, ts: float) -> None:
        if self.sink is None:
            return
        values = [
            ("Count", 1.0, "Count"),
            ("4XXError", 1.0 if 400 <= status < 500 else 0.0, "Count"),
            ("5XXError", 1.0 if status >= 500 else 0.0, "Count"),
            ("Latency", round(latency_ms, 3), "Milliseconds"),
        ]
        if integration_ms is not None:
            values.append(("IntegrationLatency", round(integration_ms, 3), "Milliseconds"))
        for dimension_set in self._dimension_sets:
            for name, value, unit in values:
                self.sink.add_metric(MetricSample("AWS/ApiGateway", name, dimension_set, value, unit, ts))

    def _trace(
        self, trace: tuple[str, str], request: Request, status: int, started_wall: float, latency_ms: float
    ) -> None:
        assert self.xray is not None
        document: dict[str, Any] = {
            "name": f"{self.config.api_name}/{self.config.stage}",
            "id": trace[1],
            "trace_id": trace[0],
            "start_time": started_wall,
            "end_time": started_wall + latency_ms / 1000,
            "origin": "AWS::ApiGateway::Stage",
            "http": {
                "request": {"method": request.method, "url": request.url, "client_ip": request.remote_addr},
                "response": {"status": status},
            },
        }
        if 400 <= status < 500:
            document["error"] = True
            if status == 429:
                document["throttle"] = True
        elif status >= 500:
            document["fault"] = True
        self.xray.add_document(document)
