"""Memory vs duration vs cost per function: the curve AWS Lambda Power Tuning draws, measured locally.

On Lambda the memory setting also sets the CPU: one vCPU's worth at 1,769 MB, proportionally less below
(0.072 vCPU at 128 MB), a second vCPU's share above (1.70 vCPU at 3,008 MB). Each function's real handler
runs in a Lambda worker process (`sandbox.aws.lambda_worker`, the sandbox's execution environment) against
the AWS emulator, on a representative event mix, with its CPU limited to that share at every memory size:

- **real limit** (preferred): the worker is put in a child cgroup of its own and the share is written as
  CFS bandwidth — cgroup v2 `cpu.max` ("quota period") when the v2 hierarchy has the cpu controller and is
  writable, else cgroup v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us` (the same kernel mechanism). The period
  is 20 ms (`--cfs-period-ms`), so a 5 ms request at 128 MB is throttled as Lambda throttles it rather
  than finishing inside one 100 ms period's budget. The init (imports) runs unthrottled, before the
  worker joins the cgroup (Lambda boosts the init phase too).
- **model** (when no cgroup is writable, or `--limit model`): every invocation runs unlimited; its CPU
  time c (the worker's threads' `schedstat`, ns) and wall time w are measured and the duration at share s
  is `(w - c) + c / min(s, 1)`: the time off the CPU (waiting for the emulator) is unchanged, the CPU
  time stretches by the share, and a single-threaded handler gains nothing above one vCPU. The output
  says which of the two produced the figures.

Mixes (what each function does on a normal day, from the sandbox's own traffic model):
- cars-api: API Gateway proxy events in the proportions of `sandbox.traffic.demand` at its peak —
  rider listings (`GET /cars?status=available&limit=10`), lookups, status changes following each car's
  state machine (reserve, in trip, available, charging), back-office reads (55 % one car, 25 % by
  status, 20 % a page of 50);
- telemetry-ingest: SQS events of 1-5 messages (the mapping's 1 s window at the fleet's 2.5 msg/s), 2 %
  malformed, 5 % stale duplicates, for the registered cars;
- outbox-relay: the outbox stream's own records (cars-api writes read back from the emulator's stream,
  one INSERT per change, mostly one per batch at the sandbox's write rate), plus 1 sweeper run in 50;
- monitor: normal 5-minute runs (`{"scheduled_time": ...}` stepping 5 minutes) over 14 days of the
  sandbox's simulated history after one training run (training happens once a day per series, spread
  over runs by its time budget; it is reported, not in the curve).

Sizes run in interleaved rounds (every size once per round, in a shuffled order) so the shared machine's
changing load falls on all of them alike. A size below the function's peak memory (the worker's maximum
RSS in the same run) is marked out of memory: Lambda would end those invocations; it is measured anyway
for the shape of the curve but never suggested.

Cost per million invocations = 1e6 x (mean billed ms / 1000 x GB x $/GB-s + $/request) at Lambda arm64
list prices (`dashboard.cost.PRICES`, dated there). Cheapest = lowest cost among the sizes that fit;
fastest = the smallest size within 5 % of the lowest mean duration. The baseline printed beside it is
the dashboard's previous right-sizing (peak memory x 1.3 in 64 MB steps, duration assumed unchanged):
what it predicted next to what was measured at that size in the same run.

The curve is saved as JSON (`--out`, default `benchmarks/out/power_tuning.json`); the dashboard's Cost
page reads it (`FLEETSCOPE_POWER_CURVE`).

Usage: python -m benchmarks bench_power_tuning [--invocations N] [--monitor-invocations N]
       [--sizes 128,256,...] [--functions cars-api,...] [--limit auto|cgroup|model] [--out PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from contract.topology import FunctionSpec, Topology, topology
from dashboard import cost
from dashboard.power_curve import (
    FunctionCurve,
    PowerCurve,
    SizePoint,
    billed_ms,
    cost_per_million,
    vcpu_share,
)

DEFAULT_SIZES = (128, 256, 512, 768, 1024, 1536, 1769, 2048, 3008)
FUNCTIONS = ("cars-api", "telemetry-ingest", "outbox-relay", "monitor")
DEFAULT_OUT = Path(__file__).resolve().parent / "out" / "power_tuning.json"
CGROUP_NAME = "fleetscope-power-tuning"
MONITOR_PERIOD_S = 300


# ------------------------------------------------------------------------------------------- CPU limit


class CpuLimit(Protocol):
    kind: str
    detail: str

    def place(self, pid: int) -> None: ...
    def set_share(self, vcpus: float | None) -> None: ...
    def close(self) -> None: ...


def _mounts() -> list[tuple[str, str, list[str]]]:
    out = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 4:
            out.append((parts[1], parts[2], parts[3].split(",")))
    return out


def _own_cgroup(controller: str | None) -> str:
    """This process's cgroup path in the v2 hierarchy (controller None) or the v1 one of `controller`."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controller is None and controllers == "":
            return path
        if controller is not None and controller in controllers.split(","):
            return path
    raise LookupError(controller or "v2")


@dataclass
class CgroupLimit:
    """A child cgroup of our own with CFS bandwidth control; removed by `close()`."""

    kind: str
    directory: Path
    parent_procs: Path
    period_us: int
    v2: bool
    detail: str = ""
    members: list[int] = field(default_factory=list)

    def place(self, pid: int) -> None:
        (self.directory / "cgroup.procs").write_text(str(pid))
        self.members.append(pid)

    def set_share(self, vcpus: float | None) -> None:
        quota = None if vcpus is None else max(1000, round(vcpus * self.period_us))
        if self.v2:
            (self.directory / "cpu.max").write_text(f"{'max' if quota is None else quota} {self.period_us}")
        else:
            (self.directory / "cpu.cfs_period_us").write_text(str(self.period_us))
            (self.directory / "cpu.cfs_quota_us").write_text("-1" if quota is None else str(quota))

    def close(self) -> None:
        for pid in self.members:  # still alive: back to where we came from, so the cgroup can go
            with contextlib.suppress(OSError):
                self.parent_procs.write_text(str(pid))
        with contextlib.suppress(OSError):
            self.directory.rmdir()


def _try_cgroup(v2: bool, period_us: int) -> tuple[CgroupLimit | None, str]:
    mounts = _mounts()
    if v2:
        roots = [m for m, fstype, _ in mounts if fstype == "cgroup2"]
        if not roots:
            return None, "no cgroup v2 mount"
        root = Path(roots[0])
        parent = root / _own_cgroup(None).lstrip("/")
        controllers = (parent / "cgroup.controllers").read_text().split() if parent.exists() else []
        if "cpu" not in controllers:
            return None, f"cgroup v2 at {parent} has no cpu controller ({' '.join(controllers) or 'none'})"
        with contextlib.suppress(OSError):
            (parent / "cgroup.subtree_control").write_text("+cpu")
    else:
        roots = [m for m, fstype, opts in mounts if fstype == "cgroup" and "cpu" in opts]
        if not roots:
            return None, "no cgroup v1 cpu mount"
        root = Path(roots[0])
        parent = root / _own_cgroup("cpu").lstrip("/")
    directory = parent / f"{CGROUP_NAME}-{os.getpid()}"
    limit = CgroupLimit(
        kind="cgroup-v2 cpu.max" if v2 else "cgroup-v1 cpu.cfs_quota_us",
        directory=directory,
        parent_procs=parent / "cgroup.procs",
        period_us=period_us,
        v2=v2,
    )
    try:
        directory.mkdir()
    except OSError as err:
        return None, f"cannot create {directory}: {err.strerror}"
    try:
        limit.set_share(0.5)
        limit.set_share(None)
    except OSError as err:
        limit.close()
        return None, f"cannot write the CPU quota in {directory}: {err.strerror}"
    limit.detail = f"{directory} (CFS period {period_us / 1000:g} ms)"
    return limit, ""


@dataclass
class ModelLimit:
    """No limit: durations are computed from CPU and wall time (see the module docstring)."""

    reason: str
    kind: str = "model"
    detail: str = ""

    def __post_init__(self) -> None:
        self.detail = (
            f"no writable cgroup ({self.reason}); duration at share s = off-CPU time + CPU time / min(s, 1), "
            "from each invocation's measured wall and CPU time, unlimited"
        )

    def place(self, pid: int) -> None:
        pass

    def set_share(self, vcpus: float | None) -> None:
        pass

    def close(self) -> None:
        pass


def choose_limit(mode: str, period_us: int) -> CpuLimit:
    reasons = []
    if mode in ("auto", "cgroup"):
        for v2 in (True, False):
            try:
                limit, reason = _try_cgroup(v2, period_us)
            except (OSError, LookupError) as err:
                limit, reason = None, f"cgroup {'v2' if v2 else 'v1'}: {err}"
            if limit is not None:
                return limit
            reasons.append(reason)
        if mode == "cgroup":
            raise SystemExit(f"--limit cgroup: no writable cgroup: {'; '.join(reasons)}")
    return ModelLimit(reason="; ".join(reasons) or "--limit model")


# ---------------------------------------------------------------------------------------------- worker


def _cpu_ns(pid: int) -> int:
    """CPU time of every thread of `pid` so far, in ns (schedstat: on-CPU time)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            total += int((task / "schedstat").read_text().split()[0])
    return total


@dataclass
class Sample:
    wall_ms: float
    cpu_ms: float
    ok: bool


class Worker:
    """One execution environment: `sandbox.aws.lambda_worker` with the function's environment."""

    def __init__(
        self, topo: Topology, fn: FunctionSpec, endpoint_url: str, extra_env: dict[str, str]
    ) -> None:
        from sandbox.aws.runtime import PROJECT_ROOT, LambdaRuntime

        self.fn = fn
        environment = LambdaRuntime(topo, fn, endpoint_url=endpoint_url, extra_env=extra_env).environment
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the worker
        self.process = subprocess.Popen(
            [sys.executable, "-m", "sandbox.aws.lambda_worker", fn.handler],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=environment,
            cwd=str(PROJECT_ROOT),
        )
        ready = self._reply()
        if ready.get("type") != "ready":
            raise RuntimeError(f"{fn.key} did not initialise: {ready.get('error') or self._stderr_tail()}")
        self.init_ms = float(ready["init_ms"])
        self.peak_memory_mb = 0.0
        self.errors: list[str] = []

    def _reply(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.fn.key} worker exited: {self._stderr_tail()}")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def _stderr_tail(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")[-2000:]

    def call(self, event: dict[str, Any], memory_mb: int) -> tuple[dict[str, Any], Sample]:
        """Invoke once (the worker protocol of `sandbox.aws.lambda_worker`): its reply and the sample."""
        assert self.process.stdin is not None
        request_id = str(uuid.uuid4())
        request = {
            "id": request_id,
            "event": event,
            "request_id": request_id,
            "deadline_ms": time.time() * 1000 + self.fn.timeout_s * 1000,
            "trace_header": None,
            "delay_s": 0,
            "raise_error": None,
            "function_name": self.fn.name,
            "function_arn": f"arn:aws:lambda:us-east-1:123456789012:function:{self.fn.name}",
            "memory_mb": memory_mb,
            "log_stream": "bench",
        }
        cpu_before = _cpu_ns(self.process.pid)
        self.process.stdin.write(json.dumps(request, default=str).encode() + b"\n")
        self.process.stdin.flush()
        reply = self._reply()
        cpu_ms = (_cpu_ns(self.process.pid) - cpu_before) / 1e6
        self.peak_memory_mb = max(self.peak_memory_mb, float(reply.get("max_memory_mb", 0)))
        ok = bool(reply.get("ok")) and not _failed_response(reply.get("payload"))
        if not ok and len(self.errors) < 5:
            self.errors.append(json.dumps(reply.get("error") or reply.get("payload"))[:300])
        return reply, Sample(wall_ms=float(reply["duration_ms"]), cpu_ms=cpu_ms, ok=ok)

    def invoke(self, event: dict[str, Any], memory_mb: int) -> Sample:
        return self.call(event, memory_mb)[1]

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        self._stderr.close()


def _failed_response(payload: Any) -> bool:
    """A 5XX from the API counts as an error (API Gateway would answer it as one)."""
    return (
        isinstance(payload, dict)
        and isinstance(payload.get("statusCode"), int)
        and payload["statusCode"] >= 500
    )


# ------------------------------------------------------------------------------------------------ mixes


def _vin(n: int) -> str:
    from service.domain.vin import with_check_digit

    return with_check_digit(f"1BN{n:014d}")


def _rest_event(
    method: str, path: str, body: Any = None, query: dict[str, str] | None = None
) -> dict[str, Any]:
    request_id = str(uuid.uuid4())
    headers = {"Host": "bench.execute-api.us-east-1.amazonaws.com", "User-Agent": "bench_power_tuning"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    return {
        "resource": "/{proxy+}",
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": query or None,
        "multiValueQueryStringParameters": {k: [v] for k, v in (query or {}).items()} or None,
        "pathParameters": {"proxy": path.lstrip("/")},
        "stageVariables": None,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "bench",
            "resourcePath": "/{proxy+}",
            "httpMethod": method,
            "path": f"/v1{path}",
            "protocol": "HTTP/1.1",
            "requestId": request_id,
            "extendedRequestId": request_id,
            "requestTimeEpoch": int(time.time() * 1000),
            "stage": "v1",
            "identity": {"sourceIp": "203.0.113.7", "userAgent": "bench_power_tuning"},
        },
        "body": None if body is None else json.dumps(body),
        "isBase64Encoded": False,
    }


class Mix(Protocol):
    def __call__(self) -> dict[str, Any]: ...
    def describe(self) -> str: ...


# a car's next status in the fleet's trip cycle (sandbox/traffic/fleet.py)
_NEXT = {"available": "reserved", "reserved": "in_trip", "in_trip": "available", "charging": "available"}


class CarsApiMix:
    """API requests in the sandbox fleet's proportions at its peak (sandbox.traffic.demand)."""

    def __init__(self, rng: random.Random, cars: dict[str, str]) -> None:
        from sandbox.traffic.demand import LOOKUPS_PER_TRIP, TRANSITIONS_PER_TRIP, DemandModel

        demand = DemandModel()
        served = demand.trips_per_car_hour * demand.trip_success_ratio
        self.weights = {
            "listing": demand.trips_per_car_hour,
            "lookup": served * LOOKUPS_PER_TRIP,
            "transition": served * TRANSITIONS_PER_TRIP,
            "back_office": demand.reads_per_car_hour,
        }
        self.rng = rng
        self.cars = cars  # car_id -> status, as the API holds it

    def describe(self) -> str:
        total = sum(self.weights.values())
        return ", ".join(f"{name} {w / total:.0%}" for name, w in self.weights.items())

    def __call__(self) -> dict[str, Any]:
        kind = self.rng.choices(list(self.weights), weights=list(self.weights.values()))[0]
        car_id = self.rng.choice(list(self.cars))
        if kind == "listing":
            return _rest_event("GET", "/cars", query={"status": "available", "limit": "10"})
        if kind == "lookup":
            return _rest_event("GET", f"/cars/{car_id}")
        if kind == "transition":
            status = self.cars[car_id]
            target = _NEXT.get(status, "available")
            if status == "available" and self.rng.random() < 0.1:
                target = "charging"
            self.cars[car_id] = target
            return _rest_event("PATCH", f"/cars/{car_id}/status", body={"status": target})
        roll = self.rng.random()
        if roll < 0.55:
            return _rest_event("GET", f"/cars/{car_id}")
        if roll < 0.8:
            status = self.rng.choice(("available", "charging", "in_trip", "maintenance"))
            return _rest_event("GET", "/cars", query={"status": status, "limit": "25"})
        return _rest_event("GET", "/cars", query={"limit": "50"})


class IngestMix:
    """SQS events of 1-5 telemetry messages for the registered cars; 2 % malformed, 5 % stale."""

    def __init__(self, rng: random.Random, cars: list[str], queue_arn: str) -> None:
        self.rng = rng
        self.cars = cars
        self.queue_arn = queue_arn
        self.clock = datetime.now(UTC) - timedelta(minutes=30)
        self.sent: list[str] = []

    def describe(self) -> str:
        return "SQS batches of 1-5 messages, 2 % malformed, 5 % stale duplicates"

    def _body(self) -> str:
        if self.sent and self.rng.random() < 0.05:
            return self.rng.choice(self.sent)  # a duplicate: acknowledged as stale
        if self.rng.random() < 0.02:
            return '{"car_id": "' + self.rng.choice(self.cars) + '", "ts": "not a time"}'
        self.clock += timedelta(milliseconds=50)
        body = json.dumps(
            {
                "car_id": self.rng.choice(self.cars),
                "ts": self.clock.isoformat(),
                "position": {"lat": 38.72 + self.rng.random() / 10, "lon": -9.14 + self.rng.random() / 10},
                "battery_level": round(self.rng.uniform(20, 100), 1),
                "speed_kmh": round(self.rng.uniform(0, 60), 1),
            }
        )
        self.sent.append(body)
        return body

    def __call__(self) -> dict[str, Any]:
        from sandbox.aws.event_source import build_sqs_event

        messages: list[Any] = []
        for _ in range(self.rng.randint(1, 5)):
            body = self._body()
            messages.append(
                {
                    "MessageId": str(uuid.uuid4()),
                    "ReceiptHandle": uuid.uuid4().hex,
                    "Body": body,
                    "MD5OfBody": hashlib.md5(body.encode()).hexdigest(),  # SQS's own checksum
                    "Attributes": {
                        "ApproximateReceiveCount": "1",
                        "SentTimestamp": str(int(time.time() * 1000)),
                        "SenderId": "AIDAEXAMPLE",
                        "ApproximateFirstReceiveTimestamp": str(int(time.time() * 1000)),
                    },
                }
            )
        return build_sqs_event(messages, queue_arn=self.queue_arn)


class RelayMix:
    """The outbox stream's own records, one or two per batch; a sweeper run (scheduled event) in 50."""

    def __init__(self, rng: random.Random, records: list[dict[str, Any]]) -> None:
        self.rng = rng
        self.records = records

    def describe(self) -> str:
        return "outbox stream INSERT batches of 1-2 records (cars-api changes), 1 sweeper run in 50"

    def __call__(self) -> dict[str, Any]:
        if self.rng.random() < 0.02 or not self.records:
            return {"source": "aws.scheduler", "detail-type": "Scheduled Event", "detail": {}}
        size = 2 if self.rng.random() < 0.25 else 1
        batch, self.records[:size] = self.records[:size], []
        return {"Records": batch}


class MonitorMix:
    """Normal runs of the monitor, 5 minutes apart, through the history written before `start`."""

    def __init__(self, start: datetime) -> None:
        self.at = start

    def describe(self) -> str:
        return "normal 5-minute runs over 14 days of simulated history (after one training run)"

    def __call__(self) -> dict[str, Any]:
        from sandbox.aws.scheduler import scheduled_event

        self.at += timedelta(seconds=MONITOR_PERIOD_S)
        return scheduled_event(self.at)


# ------------------------------------------------------------------------------------------- measuring


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def modelled_ms(sample: Sample, vcpus: float) -> float:
    """Duration at `vcpus` from an unlimited invocation: off-CPU time + CPU time stretched by the share."""
    off_cpu = max(0.0, sample.wall_ms - sample.cpu_ms)
    return off_cpu + sample.cpu_ms / min(vcpus, 1.0)


def summarise(
    memory_mb: int, durations: list[float], cpu: list[float], errors: int, *, fits: bool
) -> SizePoint:
    prices = cost.PRICES
    mean_billed = statistics.fmean(billed_ms(d) for d in durations)
    return SizePoint(
        memory_mb=memory_mb,
        vcpu=round(vcpu_share(memory_mb), 4),
        invocations=len(durations),
        errors=errors,
        p50_ms=_percentile(durations, 0.5),
        p99_ms=_percentile(durations, 0.99),
        mean_ms=statistics.fmean(durations),
        mean_billed_ms=mean_billed,
        cpu_ms_mean=statistics.fmean(cpu) if cpu else None,
        cost_per_million_usd=cost_per_million(
            memory_mb, mean_billed, gb_s_usd=prices.lambda_gb_s_arm64, request_usd=prices.lambda_request
        ),
        feasible=fits,
    )


def measure(
    worker: Worker,
    mix: Callable[[], dict[str, Any]],
    sizes: list[int],
    *,
    per_size: int,
    limit: CpuLimit,
    rng: random.Random,
    batch: int,
) -> tuple[dict[int, list[Sample]], list[Sample]]:
    """Samples per size (real limit), or the unlimited samples (model). Interleaved rounds of `batch`."""
    per: dict[int, list[Sample]] = {m: [] for m in sizes}
    if isinstance(limit, ModelLimit):
        return per, [worker.invoke(mix(), 1769) for _ in range(per_size * len(sizes))]
    unlimited: list[Sample] = []
    limit.place(worker.process.pid)
    rounds = -(-per_size // batch)
    for _ in range(rounds):
        order: list[int | None] = [*sizes, None]
        rng.shuffle(order)
        for memory in order:
            limit.set_share(None if memory is None else vcpu_share(memory))
            target = unlimited if memory is None else per[memory]
            for _ in range(batch):
                if memory is not None and len(target) >= per_size:
                    break
                target.append(worker.invoke(mix(), memory or 1769))
    limit.set_share(None)
    return per, unlimited


def curve_for(
    key: str,
    worker: Worker,
    configured_mb: int,
    mix_text: str,
    sizes: list[int],
    per: dict[int, list[Sample]],
    unlimited: list[Sample],
    model: bool,
) -> FunctionCurve:
    points = []
    for memory in sizes:
        samples = unlimited if model else per[memory]
        if not samples:
            continue
        share = vcpu_share(memory)
        durations = [modelled_ms(s, share) if model else s.wall_ms for s in samples]
        errors = sum(not s.ok for s in samples)
        points.append(
            summarise(
                memory, durations, [s.cpu_ms for s in samples], errors, fits=worker.peak_memory_mb <= memory
            )
        )
    return FunctionCurve(
        function=key,
        configured_mb=configured_mb,
        peak_memory_mb=worker.peak_memory_mb,
        mix=mix_text,
        points=tuple(points),
    )


# ---------------------------------------------------------------------------------------------- setup


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _register_cars(worker: Worker, count: int, seed: int) -> dict[str, str]:
    cars: dict[str, str] = {}
    for n in range(count):
        body = {
            "vin": _vin(seed * 10_000 + n),
            "model": "Robotaxi",
            "year": 2026,
            "seats": 4,
            "position": {"lat": 38.72, "lon": -9.14},
        }
        reply, _ = worker.call(_rest_event("POST", "/cars", body=body), worker.fn.memory_mb)
        payload = reply.get("payload") or {}
        if payload.get("statusCode") != 201:
            raise RuntimeError(f"registering a car failed: {reply.get('error') or payload}")
        cars[json.loads(payload["body"])["car_id"]] = "available"
    return cars


class OutboxStream:
    """The outbox table's stream as the relay's event source mapping reads it: each `read()` returns the
    Lambda-shaped INSERT records written since the previous one (`sandbox.aws.stream_source`)."""

    def __init__(self, stream_arn: str, function_name: str) -> None:
        from sandbox.aws.stream_source import StreamSource

        self._captured: list[dict[str, Any]] = []
        self._source = StreamSource(
            stream_arn=stream_arn,
            handler=self._capture,
            function_name=function_name,
            batch_size=100,
            event_names=("INSERT",),
        )

    def _capture(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        self._captured.extend(event["Records"])
        return {"batchItemFailures": []}

    def read(self) -> list[dict[str, Any]]:
        self._source.drain_once()
        records, self._captured = self._captured, []
        return records


def stage_memory(key: str) -> dict[str, int]:
    """Per-stage memory overrides of `key` in cdk.json (`stages.<stage>.memoryMb`), e.g. prod's cars-api."""
    path = Path(__file__).resolve().parents[1] / "cdk.json"
    try:
        stages = json.loads(path.read_text())["context"]["stages"]
    except (OSError, KeyError, ValueError):
        return {}
    return {
        stage: int(preset["memoryMb"][key])
        for stage, preset in stages.items()
        if key in preset.get("memoryMb", {})
    }


def _fmt_table(
    curve: FunctionCurve, unlimited: list[Sample], model: bool, stages: dict[str, int] | None = None
) -> list[str]:
    rows = [
        f"  {'memory':>7} {'vCPU':>5} {'n':>4} {'p50 ms':>9} {'p99 ms':>9} {'mean ms':>9} {'CPU ms':>7} "
        f"{'$/1M inv':>9}  note"
    ]
    cheapest, fastest = curve.cheapest(), curve.fastest()
    for p in curve.points:
        notes = []
        if p.memory_mb == curve.configured_mb:
            notes.append("configured")
        notes += [f"configured in {stage}" for stage, mb in (stages or {}).items() if mb == p.memory_mb]
        if cheapest is not None and p.memory_mb == cheapest.memory_mb:
            notes.append("CHEAPEST")
        if fastest is not None and p.memory_mb == fastest.memory_mb:
            notes.append("FASTEST")
        if not p.feasible:
            notes.append(f"out of memory (peak {curve.peak_memory_mb:.0f} MB)")
        if p.errors:
            notes.append(f"{p.errors} errors")
        cpu = "-" if p.cpu_ms_mean is None else f"{p.cpu_ms_mean:7.1f}"
        rows.append(
            f"  {p.memory_mb:>7} {p.vcpu:5.2f} {p.invocations:>4} {p.p50_ms:9.1f} {p.p99_ms:9.1f} "
            f"{p.mean_ms:9.1f} {cpu:>7} {p.cost_per_million_usd:9.3f}  {', '.join(notes)}"
        )
    if unlimited and not model:
        walls = [s.wall_ms for s in unlimited]
        rows.append(
            f"  {'no limit':>7} {'-':>5} {len(walls):>4} {_percentile(walls, 0.5):9.1f} "
            f"{_percentile(walls, 0.99):9.1f} {statistics.fmean(walls):9.1f} "
            f"{statistics.fmean(s.cpu_ms for s in unlimited):7.1f} {'-':>9}  reference: no quota"
        )
    return rows


def _baseline(curve: FunctionCurve, invocations_ref: float = 1e6) -> str:
    """The previous right-sizing (peak memory only, duration unchanged) next to the measured point."""
    configured = next((p for p in curve.points if p.memory_mb == curve.configured_mb), None)
    if configured is None:
        return "  baseline: the configured size was not measured"
    old = cost.right_size(
        function=curve.function,
        memory_mb=curve.configured_mb,
        max_used_mb=curve.peak_memory_mb,
        avg_duration_ms=configured.mean_billed_ms,
        invocations_per_day=invocations_ref,
    )
    measured = next((p for p in curve.points if p.memory_mb == old.suggested_mb), None)
    predicted = cost_per_million(
        old.suggested_mb,
        configured.mean_billed_ms,
        gb_s_usd=cost.PRICES.lambda_gb_s_arm64,
        request_usd=cost.PRICES.lambda_request,
    )
    if measured is None:
        return f"  baseline (peak memory x 1.3): {old.suggested_mb} MB, not measured"
    return (
        f"  baseline, peak memory x 1.3 with the duration unchanged: {old.suggested_mb} MB predicted "
        f"${predicted:.3f}/1M at {configured.mean_ms:.1f} ms; measured "
        f"${measured.cost_per_million_usd:.3f}/1M at {measured.mean_ms:.1f} ms mean "
        f"({measured.mean_ms / configured.mean_ms:.1f}x the configured duration)"
    )


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="bench_power_tuning")
    parser.add_argument("--invocations", type=int, default=30, help="per size, cars-api / ingest / relay")
    parser.add_argument("--monitor-invocations", type=int, default=4, help="normal monitor runs per size")
    parser.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)), help="memory sizes, MB")
    parser.add_argument("--functions", default=",".join(FUNCTIONS))
    parser.add_argument("--limit", choices=("auto", "cgroup", "model"), default="auto")
    parser.add_argument("--cfs-period-ms", type=float, default=20.0)
    parser.add_argument("--batch", type=int, default=5, help="invocations per size per round")
    parser.add_argument("--history-days", type=float, default=14.0, help="monitor history (training)")
    parser.add_argument("--seed", type=int, default=20261205)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    wanted = [f.strip() for f in args.functions.split(",") if f.strip()]
    unknown = sorted(set(wanted) - set(FUNCTIONS))
    if unknown:
        raise SystemExit(f"unknown function(s) {unknown}; known: {', '.join(FUNCTIONS)}")
    try:
        base_sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})
    except ValueError as err:
        raise SystemExit(f"--sizes: {err}") from err
    if not base_sizes or base_sizes[0] < 128 or base_sizes[-1] > 10240:
        raise SystemExit("--sizes: memory sizes must be within 128..10240 MB")

    from sandbox.aws.provision import provision
    from sandbox.emulator.server import Emulator, aws_environment
    from sandbox.history.backfill import run_backfill

    topo = topology("bench")
    rng = random.Random(args.seed)
    limit = choose_limit(args.limit, int(args.cfs_period_ms * 1000))
    model = isinstance(limit, ModelLimit)
    load = os.getloadavg()
    print(
        f"CPU limit: {'REAL, ' + limit.kind if not model else 'MODELLED (no real limit)'} — {limit.detail}\n"
        f"vCPU share = memory / 1,769 MB; prices: Lambda arm64 ${cost.PRICES.lambda_gb_s_arm64} per GB-s + "
        f"${cost.PRICES.lambda_request * 1e6:.2f} per 1M requests ({cost.REGION}, list prices of "
        f"{cost.PRICES_AS_OF:%Y-%m-%d}); load average at start {load[0]:.1f} on {os.cpu_count()} CPUs",
        flush=True,
    )
    curves: list[FunctionCurve] = []
    workers: dict[str, Worker] = {}
    started = time.perf_counter()
    try:
        with Emulator(port=0) as emulator, _environment(aws_environment(emulator.endpoint_url)):
            provisioned = provision(topo)
            specs = {fn.key: fn for fn in topo.functions}
            monitor_env = {
                "MONITOR_PERIOD_S": str(MONITOR_PERIOD_S),
                "MONITOR_HISTORY_DAYS": f"{args.history_days:g}",
            }
            needs_api = {"cars-api", "telemetry-ingest", "outbox-relay"} & set(wanted)
            api = Worker(topo, specs["cars-api"], emulator.endpoint_url, {}) if needs_api else None
            cars = _register_cars(api, 50, args.seed % 1000) if api is not None else {}
            for key in wanted:
                fn = specs[key]
                worker = (
                    api
                    if key == "cars-api" and api is not None
                    else Worker(topo, fn, emulator.endpoint_url, monitor_env if key == "monitor" else {})
                )
                workers[key] = worker
                per_size = args.monitor_invocations if key == "monitor" else args.invocations
                mix: Mix
                if key == "cars-api":
                    mix = CarsApiMix(rng, cars)
                elif key == "telemetry-ingest":
                    mix = IngestMix(rng, list(cars), provisioned.telemetry_queue_arn)
                elif key == "outbox-relay":
                    assert api is not None
                    assert provisioned.outbox_stream_arn is not None
                    need = int(per_size * (len(base_sizes) + 3) * 1.4) + 10
                    feeder = CarsApiMix(random.Random(args.seed + 1), cars)
                    feeder.weights = {"transition": 1.0}
                    stream = OutboxStream(provisioned.outbox_stream_arn, fn.name)
                    records = stream.read()
                    while len(records) < need:
                        for _ in range(need - len(records)):
                            api.invoke(feeder(), api.fn.memory_mb)
                        records += stream.read()
                    mix = RelayMix(rng, records)
                else:
                    end = datetime.now(UTC).replace(second=0, microsecond=0)
                    t0 = time.perf_counter()
                    run_backfill(
                        topo,
                        days=args.history_days,
                        fine_hours=0.1,
                        end=end,
                        home=tempfile.mkdtemp(prefix="bench-power-"),
                    )
                    backfill_s = time.perf_counter() - t0
                    runs = per_size * (len(base_sizes) + 3) + 3
                    train_at = end - timedelta(seconds=MONITOR_PERIOD_S * (runs + 1))
                    mix = MonitorMix(train_at)
                    training = worker.invoke(mix(), fn.memory_mb)
                    print(
                        f"monitor: history {args.history_days:g} days written in {backfill_s:.0f} s; "
                        f"training run {training.wall_ms / 1000:.1f} s wall, "
                        f"{training.cpu_ms / 1000:.1f} s CPU, unlimited "
                        f"({'ok' if training.ok else 'FAILED: ' + '; '.join(worker.errors)})",
                        flush=True,
                    )
                for _ in range(3):  # warm: lazily created clients, caches, peak memory
                    worker.invoke(mix(), fn.memory_mb)
                old = cost.right_size(
                    function=key,
                    memory_mb=fn.memory_mb,
                    max_used_mb=worker.peak_memory_mb,
                    avg_duration_ms=1.0,
                    invocations_per_day=1.0,
                )
                overrides = stage_memory(key)
                sizes = sorted({*base_sizes, fn.memory_mb, old.suggested_mb, *overrides.values()})
                t0 = time.perf_counter()
                per, unlimited = measure(
                    worker,
                    mix,
                    sizes,
                    per_size=per_size,
                    limit=limit,
                    rng=rng,
                    batch=min(args.batch, per_size),
                )
                curve = curve_for(key, worker, fn.memory_mb, mix.describe(), sizes, per, unlimited, model)
                curves.append(curve)
                print(
                    f"\n{key} (configured {fn.memory_mb} MB, peak memory {worker.peak_memory_mb:.0f} MB, "
                    f"init {worker.init_ms:.0f} ms; {curve.mix}; {time.perf_counter() - t0:.0f} s)",
                    flush=True,
                )
                for row in _fmt_table(curve, unlimited, model, overrides):
                    print(row)
                cheapest, fastest = curve.cheapest(), curve.fastest()
                if cheapest is not None and fastest is not None:
                    print(
                        f"  cheapest {cheapest.memory_mb} MB (${cheapest.cost_per_million_usd:.3f}/1M), "
                        f"fastest {fastest.memory_mb} MB ({fastest.mean_ms:.1f} ms mean), "
                        f"configured {fn.memory_mb} MB (contract/topology.py)"
                        + "".join(f", {mb} MB in {stage} (cdk.json)" for stage, mb in overrides.items())
                    )
                print(_baseline(curve))
                if worker.errors:
                    print(f"  errors (first {len(worker.errors)}): {'; '.join(worker.errors)}")
    finally:
        for worker in workers.values():
            worker.close()
        limit.close()
    result = PowerCurve(
        measured_at=datetime.now(UTC).replace(microsecond=0),
        host=f"{platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, load {load[0]:.1f} -> "
        f"{os.getloadavg()[0]:.1f}",
        cpu_limit=limit.kind,
        cpu_limit_detail=limit.detail,
        gb_s_usd=cost.PRICES.lambda_gb_s_arm64,
        request_usd=cost.PRICES.lambda_request,
        prices_note=(
            f"Lambda arm64 list prices, {cost.REGION}, as of {cost.PRICES_AS_OF:%Y-%m-%d} (dashboard/cost.py)"
        ),
        functions=tuple(curves),
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(result.model_dump_json(indent=1), encoding="utf-8")
    print(f"\ncurve saved to {args.out} ({time.perf_counter() - started:.0f} s in all)")
