"""The local Lambda runtime: real handlers in execution-environment processes, and what AWS records.

Design decision: one worker *process* per execution environment (`sandbox.aws.lambda_worker`), not
threads in the sandbox process. Powertools reads POWERTOOLS_SERVICE_NAME when Logger/Metrics are
constructed, keeps the cold-start flag in a module global, and the X-Ray SDK reads
``_X_AMZN_TRACE_ID`` from the process environment on every call — all of which are per
environment on AWS and would collide if four functions and concurrent invocations shared one
process. A worker imports its handler once (init, measured as Init Duration), runs one invocation
at a time and stays warm, as on AWS; concurrent invocations use more environments up to
`max_environments` (a sandbox capacity cap: beyond it invocations wait, they are not throttled).

Around every invocation `LambdaRuntime` records what AWS would:
- AWS/Lambda metrics Invocations, Errors, Duration, Throttles (0 for an invocation that ran, as Lambda
  publishes it), ConcurrentExecutions (FunctionName), and IteratorAge for stream batches
  (`record_iterator_age`, called by the stream event source's invoker);
- the handler's output in the log group ``/aws/lambda/<name>`` (START/END/REPORT lines included);
- EMF lines as CloudWatch metrics, in their namespace with their dimensions;
- with tracing, the function's X-Ray segment (its SDK subsegments arrive through the daemon).
All of it is buffered in a `TelemetrySink` and flushed in batches.

Reserved concurrency (FunctionSpec.reserved_concurrency) is enforced: an invocation above it is
throttled (`LambdaThrottledError`). A `FaultHook` can add latency, raise an error, throttle or force
a cold start (the idle environments are shut down, so the next invocation initialises a new one).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import queue
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from contract.topology import FunctionSpec, Topology
from sandbox.aws.hooks import FaultHook, NoFaults
from sandbox.aws.telemetry import MetricSample, TelemetrySink, dims, parse_emf
from sandbox.aws.versions import AliasRouter, merge
from sandbox.aws.xray import XRayDaemon, new_segment_id, new_trace_id, parse_trace_header, trace_header
from sandbox.emulator.server import aws_environment
from sandbox.home.aliases import LIVE_ALIAS

log = logging.getLogger(__name__)

ACCOUNT_ID = "123456789012"
REGION = "us-east-1"
PROJECT_ROOT = Path(__file__).resolve().parents[2]  # the repository: sandbox/aws/runtime.py


class LambdaInvocationError(RuntimeError):
    """The function returned an error (the invocation ran)."""

    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(f"{error.get('errorType')}: {error.get('errorMessage')}")
        self.error = error


class LambdaThrottledError(RuntimeError):
    """The invocation was throttled (TooManyRequestsException) and did not run."""


@dataclass
class Invocation:
    """The outcome of one invoke."""

    request_id: str
    payload: Any = None
    error: dict[str, Any] | None = None
    throttled: bool = False
    duration_ms: float = 0.0
    init_ms: float | None = None  # set on a cold start
    logs: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None and not self.throttled


class _Environment:
    """One worker process (an execution environment)."""

    def __init__(self, runtime: LambdaRuntime) -> None:
        self.id = uuid.uuid4().hex
        self.log_stream = f"{datetime.now(UTC):%Y/%m/%d}/[$LATEST]{self.id}"
        self._replies: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.process = subprocess.Popen(
            [runtime.python, "-m", "sandbox.aws.lambda_worker", runtime.fn.handler],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=runtime.environment,
            cwd=str(PROJECT_ROOT),
            start_new_session=True,  # Ctrl-C reaches the sandbox, which stops environments in order
        )
        threading.Thread(target=self._read_replies, daemon=True).start()
        threading.Thread(target=self._drain_stderr, args=(runtime.fn.name,), daemon=True).start()
        self.init_ms: float | None = None
        self.init_reported = False

    def _read_replies(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            try:
                self._replies.put(json.loads(line))
            except ValueError:
                log.warning("worker %s wrote a non-protocol line: %r", self.id, line[:200])
        self._replies.put(None)

    def _drain_stderr(self, name: str) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            log.debug("[%s] %s", name, line.decode(errors="replace").rstrip())

    def wait_ready(self, timeout_s: float) -> dict[str, Any]:
        try:
            reply = self._replies.get(timeout=timeout_s)
        except queue.Empty:
            reply = None
        if reply is None or reply.get("type") != "ready":
            self.kill()
            error = (reply or {}).get("error") or {
                "errorType": "Runtime.InitError",
                "errorMessage": f"the execution environment did not initialise within {timeout_s:.0f}s",
            }
            raise LambdaInvocationError(error)
        self.init_ms = float(reply["init_ms"])
        return reply

    def call(self, request: dict[str, Any], timeout_s: float) -> dict[str, Any] | None:
        """The worker's reply, or None if it timed out or died (the environment is then killed)."""
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(json.dumps(request, default=str).encode() + b"\n")
            self.process.stdin.flush()
            reply = self._replies.get(timeout=timeout_s)
        except (OSError, queue.Empty):
            reply = None
        if reply is None:
            self.kill()
        return reply

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            log.warning("worker %s (pid %s) did not exit", self.id, self.process.pid)
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


class LambdaRuntime:
    """Runs one function of the topology locally. Thread-safe; call `stop()` when done."""

    def __init__(
        self,
        topology: Topology,
        fn: FunctionSpec,
        *,
        endpoint_url: str,
        sink: TelemetrySink | None = None,
        hooks: FaultHook | None = None,
        xray: XRayDaemon | None = None,
        max_environments: int = 4,
        extra_env: dict[str, str] | None = None,
        init_timeout_s: float = 60.0,
        python: str = sys.executable,
        router: AliasRouter | None = None,
    ) -> None:
        if max_environments < 1:
            raise ValueError(f"max_environments must be >= 1, got {max_environments}")
        self.topology = topology
        self.fn = fn
        self.sink = sink
        self.hooks: FaultHook = hooks or NoFaults()
        self.router = router
        self.xray = xray
        self.max_environments = max_environments
        if fn.reserved_concurrency is not None:
            self.max_environments = min(max_environments, max(fn.reserved_concurrency, 1))
        self.init_timeout_s = init_timeout_s
        self.python = python
        self.arn = f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{fn.name}"
        env = dict(os.environ) | aws_environment(endpoint_url) | topology.function_environment(fn)
        env |= {
            "AWS_LAMBDA_FUNCTION_NAME": fn.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(fn.memory_mb),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_GROUP_NAME": fn.log_group,
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.11",
            "LAMBDA_TASK_ROOT": str(PROJECT_ROOT),
            "PYTHONUNBUFFERED": "1",
        }
        env.pop("_X_AMZN_TRACE_ID", None)
        if xray is not None:
            env |= xray.environment()
            env.pop("POWERTOOLS_TRACE_DISABLED", None)
        else:
            env["POWERTOOLS_TRACE_DISABLED"] = "true"
        env |= extra_env or {}
        self.environment = env
        self._idle: list[_Environment] = []
        self._all: set[_Environment] = set()
        self._busy = 0
        self._starting = 0
        self._cond = threading.Condition()
        self._stopped = False

    # ---- lifecycle ----------------------------------------------------------------------------
    def warm(self) -> float:
        """Start one environment now (so the first request does not pay the init); its Init Duration."""
        environment = self._spawn()
        with self._cond:
            self._idle.append(environment)
            self._cond.notify()
        return environment.init_ms or 0.0

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            environments = list(self._all)
            self._idle.clear()
            self._cond.notify_all()
        for environment in environments:
            environment.kill()

    def reset_environments(self) -> int:
        """Shut the idle environments down (the next invocations cold-start). How many were shut."""
        with self._cond:
            idle, self._idle = self._idle, []
            for environment in idle:
                self._all.discard(environment)
        for environment in idle:
            environment.kill()
        return len(idle)

    @property
    def concurrent_executions(self) -> int:
        with self._cond:
            return self._busy

    # ---- invocation ---------------------------------------------------------------------------
    def __call__(self, event: dict[str, Any]) -> Any:
        """Invoke and return the function's response; raise if it errored or was throttled."""
        result = self.invoke(event)
        if result.throttled:
            raise LambdaThrottledError(f"Rate Exceeded: {self.fn.name}")
        if result.error is not None:
            raise LambdaInvocationError(result.error)
        return result.payload

    def invoke(self, event: dict[str, Any], *, trace_header_value: str | None = None) -> Invocation:
        request_id = str(uuid.uuid4())
        action = self.hooks.before_invoke(self.fn.key, event)
        routed = self.router.route(self.fn.key) if self.router is not None else None
        version = None
        if routed is not None:
            action, version = merge(action, routed.fault), routed.version
        if action.throttle:
            self._metric("Throttles", 1, "Count", version=version)
            return Invocation(request_id, throttled=True)
        if action.cold_start:
            self.reset_environments()
        try:
            environment, concurrency = self._acquire()
        except LambdaInvocationError as err:  # the environment failed to initialise
            self._metric("Invocations", 1, "Count", version=version)
            self._metric("Errors", 1, "Count", version=version)
            self._metric("Throttles", 0, "Count", version=version)
            return Invocation(request_id, error=err.error)
        if environment is None:
            self._metric("Throttles", 1, "Count", version=version)
            return Invocation(request_id, throttled=True)
        try:
            return self._run(environment, concurrency, event, request_id, action, trace_header_value, version)
        finally:
            self._release(environment)

    def _acquire(self) -> tuple[_Environment | None, int]:
        """An idle or new environment; (None, n) if reserved concurrency is exhausted."""
        reserved = self.fn.reserved_concurrency
        with self._cond:
            while True:
                if self._stopped:
                    raise RuntimeError(f"runtime of {self.fn.name} is stopped")
                if reserved is not None and self._busy >= reserved:
                    return None, self._busy
                if self._idle:
                    environment = self._idle.pop()
                    if environment.alive:
                        self._busy += 1
                        return environment, self._busy
                    self._all.discard(environment)
                    continue
                if len(self._all) + self._starting < self.max_environments:
                    self._starting += 1
                    self._busy += 1
                    break
                self._cond.wait(timeout=1.0)
        try:
            environment = self._spawn()
        except BaseException:
            with self._cond:
                self._busy -= 1
                self._cond.notify()
            raise
        finally:
            with self._cond:
                self._starting -= 1
        with self._cond:
            return environment, self._busy

    def _spawn(self) -> _Environment:
        environment = _Environment(self)
        with self._cond:
            self._all.add(environment)
        try:
            reply = environment.wait_ready(self.init_timeout_s)
        except LambdaInvocationError:
            with self._cond:
                self._all.discard(environment)
            raise
        self._record_logs(environment, [(int(ts), line) for ts, line in reply.get("logs", [])])
        return environment

    def _release(self, environment: _Environment) -> None:
        with self._cond:
            self._busy -= 1
            if environment.alive and not self._stopped and environment in self._all:
                self._idle.append(environment)
            else:
                self._all.discard(environment)
            self._cond.notify()

    def _run(
        self,
        environment: _Environment,
        concurrency: int,
        event: dict[str, Any],
        request_id: str,
        action: Any,
        trace_header_value: str | None,
        version: str | None = None,
    ) -> Invocation:
        started_wall = time.time()
        header = None
        segment_id = None
        upstream: dict[str, str] = {}
        if self.xray is not None:
            upstream = parse_trace_header(trace_header_value) if trace_header_value else {}
            root = upstream.get("Root") or new_trace_id(started_wall)
            segment_id = new_segment_id()
            header = trace_header(root, segment_id)
        request = {
            "id": request_id,
            "event": event,
            "request_id": request_id,
            "deadline_ms": started_wall * 1000 + self.fn.timeout_s * 1000,
            "trace_header": header,
            "delay_s": action.delay_s,
            "raise_error": action.raise_error,
            "function_name": self.fn.name,
            "function_arn": self.arn,
            "memory_mb": self.fn.memory_mb,
            "log_stream": environment.log_stream,
        }
        cold = not environment.init_reported
        environment.init_reported = True
        reply = environment.call(request, timeout_s=self.fn.timeout_s + 1.0)
        elapsed_ms = (time.time() - started_wall) * 1000
        if reply is None:
            message = f"Task timed out after {self.fn.timeout_s:.2f} seconds"
            if elapsed_ms < self.fn.timeout_s * 1000:
                message = "Runtime exited without providing a reason"
            result = Invocation(
                request_id,
                error={"errorType": "Sandbox.Timeout", "errorMessage": message},
                duration_ms=elapsed_ms,
            )
            lines = [(int(time.time() * 1000), f"{datetime.now(UTC).isoformat()} {request_id} {message}")]
            memory = 0
        else:
            result = Invocation(
                request_id,
                payload=reply.get("payload"),
                error=None if reply.get("ok") else reply.get("error"),
                duration_ms=float(reply.get("duration_ms", elapsed_ms)),
            )
            lines = [(int(ts), str(line)) for ts, line in reply.get("logs", [])]
            memory = int(reply.get("max_memory_mb", 0))
        if cold:
            result.init_ms = environment.init_ms
        result.logs = [line for _, line in lines]
        self._record(environment, result, lines, concurrency, memory, started_wall, header, version)
        if self.xray is not None and header is not None and segment_id is not None:
            self._trace_segment(header, segment_id, upstream.get("Parent"), started_wall, result)
        return result

    # ---- recording ----------------------------------------------------------------------------
    def _metric(
        self, name: str, value: float, unit: str, timestamp: float = 0.0, *, version: str | None = None
    ) -> None:
        """Per function; invoked through the alias also per alias and per ``ExecutedVersion``, as on AWS."""
        if self.sink is None:
            return
        dimension_sets = [dims(FunctionName=self.fn.name)]
        if version is not None:
            resource = f"{self.fn.name}:{LIVE_ALIAS}"
            dimension_sets.append(dims(FunctionName=self.fn.name, Resource=resource))
            dimension_sets.append(dims(FunctionName=self.fn.name, Resource=resource, ExecutedVersion=version))
        for dimensions in dimension_sets:
            self.sink.add_metric(MetricSample("AWS/Lambda", name, dimensions, value, unit, timestamp))

    def record_iterator_age(self, age_ms: float) -> None:
        """AWS/Lambda IteratorAge of a stream-invoked batch (the age of its last record, ms), as the event
        source mapping reports it."""
        self._metric("IteratorAge", max(0.0, round(age_ms, 3)), "Milliseconds")

    def _record_logs(self, environment: _Environment, lines: list[tuple[int, str]]) -> None:
        if self.sink is None:
            return
        for ts, line in lines:
            self.sink.add_log(self.fn.log_group, environment.log_stream, line, ts)
            self.sink.add_metrics(parse_emf(line))

    def _record(
        self,
        environment: _Environment,
        result: Invocation,
        lines: list[tuple[int, str]],
        concurrency: int,
        memory_mb: int,
        started_wall: float,
        header: str | None,
        version: str | None = None,
    ) -> None:
        if self.sink is None:
            return
        start_ms = int(started_wall * 1000)
        end_ms = start_ms + int(result.duration_ms)
        report = (
            f"REPORT RequestId: {result.request_id}\tDuration: {result.duration_ms:.2f} ms\t"
            f"Billed Duration: {max(1, math.ceil(result.duration_ms))} ms\t"
            f"Memory Size: {self.fn.memory_mb} MB\t"
            f"Max Memory Used: {memory_mb} MB"
        )
        if result.init_ms is not None:
            report += f"\tInit Duration: {result.init_ms:.2f} ms"
        if header:
            fields = parse_trace_header(header)
            report += f"\t\nXRAY TraceId: {fields['Root']}\tSegmentId: {fields['Parent']}\tSampled: true"
        framed = [
            (start_ms, f"START RequestId: {result.request_id} Version: {version or '$LATEST'}"),
            *lines,
            (end_ms, f"END RequestId: {result.request_id}"),
            (end_ms, report),
        ]
        self._record_logs(environment, framed)
        self._metric("Invocations", 1, "Count", started_wall, version=version)
        self._metric("Errors", 0 if result.error is None else 1, "Count", started_wall, version=version)
        # Lambda publishes Throttles beside Invocations and Errors: 0 for every invocation that ran.
        self._metric("Throttles", 0, "Count", started_wall, version=version)
        self._metric("Duration", round(result.duration_ms, 3), "Milliseconds", started_wall, version=version)
        self._metric("ConcurrentExecutions", concurrency, "Count", started_wall)

    def _trace_segment(
        self, header: str, segment_id: str, parent_id: str | None, started_wall: float, result: Invocation
    ) -> None:
        assert self.xray is not None
        fields = parse_trace_header(header)
        document: dict[str, Any] = {
            "name": self.fn.name,
            "id": segment_id,
            "trace_id": fields["Root"],
            "start_time": started_wall,
            "end_time": started_wall + result.duration_ms / 1000,
            "origin": "AWS::Lambda::Function",
            "resource_arn": self.arn,
            "aws": {"function_arn": self.arn, "request_id": result.request_id},
        }
        if parent_id:
            document["parent_id"] = parent_id
        if result.error is not None:
            document["fault"] = True
            document["cause"] = {
                "exceptions": [
                    {
                        "id": new_segment_id(),
                        "type": result.error.get("errorType"),
                        "message": result.error.get("errorMessage"),
                    }
                ]
            }
        self.xray.add_document(document)
