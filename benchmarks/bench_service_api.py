"""Cars API latency per route, in-process, next to a bare constant handler (the floor).

Three columns per route: the real Lambda handler with in-memory adapters, the same handler against the AWS
emulator (moto over HTTP, so DynamoDB round trips are included), and a bare handler that returns a constant.
Then the import time of each Lambda entry module in a fresh interpreter (a cold-start proxy) next to a bare
`python -c pass`. Tracing is disabled (no X-Ray daemon); logs and EMF lines are written to a buffer.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

from contract.topology import topology

ENTRY_MODULES = ("service.api.handler", "service.ingest.handler", "service.relay.handler")


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def _fmt(samples: list[float]) -> str:
    if not samples:
        return "-"
    return f"{_percentile(samples, 0.5) * 1000:7.3f} / {_percentile(samples, 0.99) * 1000:7.3f}"


def bare_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": '{"status":"ok"}'}


def _valid_vin(n: int) -> str:
    from service.domain.vin import with_check_digit

    return with_check_digit(f"1BN{n:014d}")


class RouteDriver:
    """Builds the event for each route and runs it N times against one handler."""

    def __init__(self, handler: Callable[[dict[str, Any], Any], Any], seed: int) -> None:
        from tests.service.apigw import FakeLambdaContext

        self.handler = handler
        self.context = FakeLambdaContext()
        self.seed = seed
        self.counter = 0

    def _call(self, event: dict[str, Any]) -> tuple[float, dict[str, Any]]:
        started = time.perf_counter()
        response = self.handler(event, self.context)
        return time.perf_counter() - started, response

    def run(self, iterations: int) -> dict[str, list[float]]:
        import json

        from tests.service.apigw import rest_event

        timings: dict[str, list[float]] = {}

        def body(n: int) -> dict[str, Any]:
            return {
                "vin": _valid_vin(self.seed * 1_000_000 + n),
                "model": "Bench",
                "year": 2025,
                "seats": 4,
                "position": {"lat": 1.0, "lon": 2.0},
            }

        ids: list[str] = []
        for n in range(iterations):
            took, response = self._call(rest_event("POST", "/cars", body=body(n)))
            timings.setdefault("POST /cars", []).append(took)
            ids.append(json.loads(response["body"]).get("car_id", ""))
        plan: list[tuple[str, Callable[[int], dict[str, Any]]]] = [
            ("GET /health", lambda n: rest_event("GET", "/health")),
            ("GET /cars/{id}", lambda n: rest_event("GET", f"/cars/{ids[n]}")),
            ("GET /cars?limit=20", lambda n: rest_event("GET", "/cars?limit=20")),
            (
                "PUT /cars/{id}",
                lambda n: rest_event(
                    "PUT",
                    f"/cars/{ids[n]}",
                    body={"model": "Bench2", "year": 2025, "seats": 5, "bike_rack": True},
                    headers={"If-Match": '"1"'},
                ),
            ),
            (
                "PATCH /cars/{id}/status",
                lambda n: rest_event("PATCH", f"/cars/{ids[n]}/status", body={"status": "charging"}),
            ),
            ("DELETE /cars/{id}", lambda n: rest_event("DELETE", f"/cars/{ids[n]}")),
        ]
        for name, make in plan:
            for n in range(iterations):
                took, response = self._call(make(n))
                if response["statusCode"] >= 500:
                    raise RuntimeError(f"{name} failed: {response['body']}")
                timings.setdefault(name, []).append(took)
        return timings


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Send stdout (EMF) and the Powertools logger's JSON lines to a buffer: still written, not printed."""
    import logging

    from service.observability import logger

    handler = logger.registered_handler
    buffer = io.StringIO()
    previous = handler.setStream(buffer) if isinstance(handler, logging.StreamHandler) else None
    try:
        with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
            yield
    finally:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(previous or sys.stdout)


def _import_time(module: str, repeats: int, env: dict[str, str]) -> list[float]:
    code = (
        "import time; t = time.perf_counter(); "
        + (f"import {module}; " if module else "")
        + "print(time.perf_counter() - t)"
    )
    samples = []
    for _ in range(repeats):
        out = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            env=env,
            check=False,
            cwd=os.getcwd(),
        )
        if out.returncode != 0:
            return []
        samples.append(float(out.stdout.strip().splitlines()[-1]))
    return samples


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="bench_service_api")
    parser.add_argument("--iterations", type=int, default=300, help="requests per route, in-memory")
    parser.add_argument("--emulator-iterations", type=int, default=40, help="requests per route, emulator")
    parser.add_argument("--import-repeats", type=int, default=3)
    parser.add_argument("--no-emulator", action="store_true")
    args = parser.parse_args(argv)

    topo = topology("bench")
    env = topo.function_environment(topo.cars_api) | {
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_NAMESPACE": topo.metrics_namespace,
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    os.environ.update(env)

    from sandbox.aws.provision import provision
    from sandbox.emulator.server import Emulator, aws_environment
    from service.adapters import aws
    from service.adapters.idempotency import InMemoryIdempotencyStore
    from service.adapters.memory import InMemoryCarRepository
    from service.api import dependencies
    from service.api.handler import app, lambda_handler
    from service.domain.cars import CarService

    results: dict[str, dict[str, list[float]]] = {}
    with _quiet():
        results["floor"] = RouteDriver(bare_handler, seed=1).run(args.iterations)
        memory = CarService(InMemoryCarRepository())
        store = InMemoryIdempotencyStore()
        app.dependency_overrides[dependencies.get_car_service] = lambda: memory
        app.dependency_overrides[dependencies.get_idempotency_store] = lambda: store
        results["memory"] = RouteDriver(lambda_handler, seed=2).run(args.iterations)
        app.dependency_overrides.clear()
    if not args.no_emulator:
        with Emulator(port=0) as emulator:
            os.environ.update(aws_environment(emulator.endpoint_url))
            provision(topo)
            aws.reset_clients()
            dependencies.get_car_service.cache_clear()
            with _quiet():
                results["emulator"] = RouteDriver(lambda_handler, seed=3).run(args.emulator_iterations)

    print(
        f"Cars API handler latency, ms p50 / p99 (in-memory n={args.iterations}, "
        f"emulator n={args.emulator_iterations}; floor = bare constant handler)"
    )
    header = f"{'route':<26}{'floor (bare)':>20}{'ours, in-memory':>22}{'ours, emulator':>22}"
    print(header)
    print("-" * len(header))
    for route in results["memory"]:
        print(
            f"{route:<26}{_fmt(results['floor'][route]):>20}{_fmt(results['memory'][route]):>22}"
            f"{_fmt(results.get('emulator', {}).get(route, [])):>22}"
        )

    print(
        f"\nImport time in a fresh interpreter, ms (median of {args.import_repeats}, runs interleaved); "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (shared machines inflate these)"
    )
    child_env = dict(os.environ) | {"PYTHONPATH": os.getcwd()}
    rows = {
        "(nothing: the floor)": "",
        "boto3 (baseline)": "boto3",
        "powertools+pydantic (baseline)": "aws_lambda_powertools.event_handler, pydantic",
    } | {module: module for module in ENTRY_MODULES}
    samples: dict[str, list[float]] = {name: [] for name in rows}
    for _ in range(args.import_repeats):
        for name, module in rows.items():
            samples[name] += _import_time(module, 1, child_env)
    for name, values in samples.items():
        shown = f"{statistics.median(values) * 1000:10.1f}" if values else "   missing"
        print(f"{name:<34}{shown:>12}")


if __name__ == "__main__":
    main(sys.argv[1:])
