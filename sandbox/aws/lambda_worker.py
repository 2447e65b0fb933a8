"""One Lambda execution environment: a process that imports one handler and runs its invocations.

`sandbox.aws.runtime.LambdaRuntime` starts ``python -m sandbox.aws.lambda_worker HANDLER`` with the
function's environment and talks to it over stdin/stdout with one JSON object per line:

- worker → runtime, once: ``{"type": "ready", "init_ms": ...}`` or ``{"type": "init_error", ...}``;
- runtime → worker, per invocation: ``{"id", "event", "request_id", "deadline_ms", "trace_header",
  "delay_s", "raise_error", "function_name", "function_arn", "memory_mb", "log_stream"}``;
- worker → runtime: ``{"type": "result", "id", "ok", "payload" | "error", "logs", "duration_ms",
  "max_memory_mb"}`` where ``logs`` are ``[epoch_ms, line]`` of everything the handler printed.

Like a real execution environment it runs one invocation at a time, keeps module state between
invocations (so cold starts, Powertools' ColdStart metric and lazily created clients behave as on
AWS) and sets ``_X_AMZN_TRACE_ID`` per invocation. The handler's stdout and stderr are captured per
invocation; the protocol uses a private duplicate of the original stdout.
"""

from __future__ import annotations

import importlib
import json
import os
import resource
import sys
import threading
import time
import traceback
from typing import IO, Any


class InjectedFaultError(RuntimeError):
    """Raised inside an invocation by fault injection (sandbox.aws.hooks.FaultAction.raise_error)."""


class _Capture:
    """A text stream that collects complete lines with their time (thread-safe)."""

    encoding = "utf-8"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._partial = ""
        self.lines: list[tuple[int, str]] = []

    def write(self, text: str) -> int:
        with self._lock:
            data = self._partial + text
            *complete, self._partial = data.split("\n")
            now = int(time.time() * 1000)
            self.lines.extend((now, line) for line in complete if line)
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False

    def writable(self) -> bool:
        return True

    def take(self) -> list[tuple[int, str]]:
        with self._lock:
            if self._partial:
                self.lines.append((int(time.time() * 1000), self._partial))
                self._partial = ""
            lines, self.lines = self.lines, []
        return lines


class LambdaContext:
    """The context object Lambda passes to handlers (what handlers and Powertools read)."""

    def __init__(self, request: dict[str, Any]) -> None:
        self.function_name: str = request["function_name"]
        self.function_version = "$LATEST"
        self.invoked_function_arn: str = request["function_arn"]
        self.memory_limit_in_mb: int = int(request["memory_mb"])
        self.aws_request_id: str = request["request_id"]
        self.log_group_name = f"/aws/lambda/{self.function_name}"
        self.log_stream_name: str = request["log_stream"]
        self.identity = None
        self.client_context = None
        self._deadline_ms = float(request["deadline_ms"])

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int(self._deadline_ms - time.time() * 1000))


def _send(out: IO[bytes], message: dict[str, Any]) -> None:
    out.write(json.dumps(message, default=str).encode() + b"\n")
    out.flush()


def _error(exc: BaseException, error_type: str | None = None) -> dict[str, Any]:
    return {
        "errorMessage": str(exc),
        "errorType": error_type or type(exc).__name__,
        "stackTrace": traceback.format_exception(exc)[-10:],
    }


def _invoke(handler: Any, request: dict[str, Any], capture: _Capture) -> dict[str, Any]:
    if request.get("trace_header"):
        os.environ["_X_AMZN_TRACE_ID"] = request["trace_header"]
    else:
        os.environ.pop("_X_AMZN_TRACE_ID", None)
    started = time.perf_counter()
    response: dict[str, Any] = {"type": "result", "id": request["id"]}
    try:
        if request.get("delay_s"):
            time.sleep(float(request["delay_s"]))
        if request.get("raise_error"):
            raise InjectedFaultError(str(request["raise_error"]))
        payload = handler(request["event"], LambdaContext(request))
        try:
            json.dumps(payload)
        except (TypeError, ValueError) as err:
            raise TypeError(f"Unable to marshal response: {err}") from err
        response |= {"ok": True, "payload": payload}
    except Exception as exc:
        error = _error(exc)
        # The Python runtime logs uncaught errors like this before reporting them.
        print(f"[ERROR] {error['errorType']}: {error['errorMessage']}", file=sys.stdout)
        response |= {"ok": False, "error": error}
    response["duration_ms"] = (time.perf_counter() - started) * 1000
    response["logs"] = capture.take()
    response["max_memory_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    return response


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or "." not in args[0]:
        print("usage: python -m sandbox.aws.lambda_worker module.path.handler_function", file=sys.stderr)
        return 2
    module_name, _, attribute = args[0].rpartition(".")
    protocol_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # stray writes to fd 1 go to stderr, never into the protocol
    capture = _Capture()
    sys.stdout = capture
    sys.stderr = capture
    started = time.perf_counter()
    try:
        handler = getattr(importlib.import_module(module_name), attribute)
        if not callable(handler):
            raise TypeError(f"{args[0]} is not callable")
    except Exception as exc:
        _send(
            protocol_out,
            {"type": "init_error", "error": _error(exc, "Runtime.ImportModuleError"), "logs": capture.take()},
        )
        return 1
    init_ms = (time.perf_counter() - started) * 1000
    _send(protocol_out, {"type": "ready", "init_ms": init_ms, "logs": capture.take()})
    for line in sys.stdin.buffer:
        if not line.strip():
            continue
        request = json.loads(line)
        _send(protocol_out, _invoke(handler, request, capture))
    return 0


if __name__ == "__main__":
    sys.exit(main())
