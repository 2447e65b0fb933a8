"""The sandbox platform: start-up time, API throughput through the local gateway, GetMetricData latency.

Prints, in one run:
1. start-up: seconds to live (emulator + provisioning + warm cars API + gateway) and to live with
   14 days of history (backfill done) — as `fleetscope sandbox up` starts (fleet first, latency
   calibration, then the backfill) and for the platform alone (no fleet: default latency profile);
2. GetMetricData for the monitor's full catalog (1-minute and 5-minute periods, p50/p99 included)
   over those 14 days in the sandbox — next to unpatched moto 5.2 on the same, smaller data set
   (`--baseline-hours` (6) of history written identically into both; percentiles are left out of the
   baseline queries because unpatched moto answers them with HTTP 500);
3. Locust headless (`--users` for `--seconds`, GET /cars/{id} : GET /cars = 3 : 1) through the
   gateway — next to the handler's in-process cost for the same two requests.

`python -m benchmarks bench_sandbox [--users 20] [--seconds 30] [--baseline-hours 6] [--no-locust]`
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import botocore.session
import requests
from botocore.config import Config
from botocore.exceptions import ClientError, ReadTimeoutError
from botocore.utils import parse_timestamp

from contract.topology import Topology
from sandbox.app import Sandbox, SandboxConfig
from sandbox.emulator.server import Emulator, aws_environment

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _catalog_queries(topo: Topology, period_s: int, *, percentiles: bool = True) -> list[dict[str, Any]]:
    from contract.resources import ResourceNames
    from monitor.catalog import build_catalog

    catalog = build_catalog(ResourceNames.from_topology(topo), period_s=period_s)
    return [
        {
            "Id": f"m{i}",
            "MetricStat": {
                "Metric": {
                    "Namespace": m.namespace,
                    "MetricName": m.metric_name,
                    "Dimensions": m.dimension_list(),
                },
                "Period": m.period_s,
                "Stat": m.statistic,
            },
        }
        for i, m in enumerate(catalog.metrics)
        if percentiles or not m.statistic.startswith("p")
    ]


class _ServerClock:
    """Time from sending each GetMetricData to having its response, before boto3 parses it."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._started = 0.0

    def start(self, **_: Any) -> None:
        self._started = time.perf_counter()

    def stop(self, **_: Any) -> None:
        self.seconds += time.perf_counter() - self._started


def _get_all(
    client: Any, queries: list[dict[str, Any]], start: datetime, end: datetime
) -> tuple[float, float, int]:
    """Seconds in total and until the responses arrived (server + transfer, before boto3 parses
    them), and the datapoints, of one complete GetMetricData (500 queries per call, all pages)."""
    clock = _ServerClock()
    client.meta.events.register("before-call.cloudwatch.GetMetricData", clock.start)
    client.meta.events.register("before-parse.cloudwatch.GetMetricData", clock.stop)
    started = time.perf_counter()
    points = 0
    try:
        paginator = client.get_paginator("get_metric_data")
        for i in range(0, len(queries), 500):
            pages = paginator.paginate(MetricDataQueries=queries[i : i + 500], StartTime=start, EndTime=end)
            points += sum(len(r["Values"]) for page in pages for r in page["MetricDataResults"])
    finally:
        client.meta.events.unregister("before-call.cloudwatch.GetMetricData", clock.start)
        client.meta.events.unregister("before-parse.cloudwatch.GetMetricData", clock.stop)
    return time.perf_counter() - started, clock.seconds, points


def _epoch_timestamp(value: Any) -> datetime:
    """A faster timestamp parser than botocore's default (which builds a tzlocal per value)."""
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    return parse_timestamp(value)


def _client(endpoint: str, *, fast_timestamps: bool = False, read_timeout: int = 900) -> Any:
    session = botocore.session.get_session()
    if fast_timestamps:
        session.get_component("response_parser_factory").set_parser_defaults(
            timestamp_parser=_epoch_timestamp
        )
    return boto3.Session(botocore_session=session).client(
        "cloudwatch",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(read_timeout=read_timeout, retries={"max_attempts": 1}),
    )


def bench_get_metric_data(sandbox: Sandbox, baseline_hours: float, home: Path) -> None:
    topo = sandbox.topology
    end = datetime.now(UTC)
    start = end - timedelta(days=14)
    print("\nGetMetricData, monitor catalog, 14 days, in the sandbox (patched emulator), median of 3:")
    print("  (server = until the response arrived; total = with boto3 parsing every timestamp)")
    for period in (60, 300):
        queries = _catalog_queries(topo, period)
        for label, fast in (("stock boto3", False), ("fast timestamp parser", True)):
            client = _client(sandbox.emulator_url, fast_timestamps=fast)
            runs = [_get_all(client, queries, start, end) for _ in range(3)]
            total = statistics.median(r[0] for r in runs)
            server = statistics.median(r[1] for r in runs)
            print(
                f"  period {period:>3}s, {len(queries)} metrics (p50/p99 incl.), {runs[0][2]:,} datapoints, "
                f"{label}: server {server:.3f}s, total {total:.3f}s"
            )

    from sandbox.history.backfill import backfill_history

    print(f"\nSame data in both ({baseline_hours:g} h of history, 5-minute resolution), no percentiles:")
    port = _free_port()
    moto = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=os.environ | aws_environment(f"http://127.0.0.1:{port}"),
    )
    patched = Emulator(port=0)
    try:
        patched.start()
        moto_url = f"http://127.0.0.1:{port}"
        _wait_http(moto_url + "/moto-api/")
        history_end = end.replace(second=0, microsecond=0)
        for url in (moto_url, patched.endpoint_url):
            backfill_history(
                topo,
                days=baseline_hours / 24,
                fine_hours=0,
                end=history_end,
                cloudwatch=_client(url),
                home=home / "baseline",
            )
        window = (history_end - timedelta(hours=baseline_hours), history_end)
        queries = _catalog_queries(topo, 300, percentiles=False)
        _get_all(_client(patched.endpoint_url), queries, *window)  # warm-up (first query imports code)
        ours_total, ours_server, ours_points = _get_all(_client(patched.endpoint_url), queries, *window)
        print(f"  {len(queries)} metrics, period 300s over {baseline_hours:g} h")
        print(
            f"  patched emulator: server {ours_server:8.3f}s, total {ours_total:8.3f}s "
            f"({ours_points:,} datapoints)"
        )
        try:
            moto_total, moto_server, moto_points = _get_all(
                _client(moto_url, read_timeout=1200), queries, *window
            )
        except (ReadTimeoutError, ClientError) as err:
            print(f"  unpatched moto:   gave up: {err}")
        else:
            print(
                f"  unpatched moto:   server {moto_server:8.3f}s, total {moto_total:8.3f}s "
                f"({moto_points:,} datapoints): {moto_server / ours_server:.0f}x the patched server time"
            )
    finally:
        patched.stop()
        moto.terminate()
        moto.wait(timeout=10)


def _wait_http(url: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"nothing answering at {url}")


def _register_cars(api_url: str, count: int) -> list[str]:
    from sandbox.traffic.vins import random_vin

    rng = random.Random(11)
    ids = []
    for i in range(count):
        body = {
            "vin": random_vin(rng, 2024),
            "model": "Zoox Robotaxi",
            "year": 2024,
            "seats": 4,
            "bike_rack": i % 2 == 0,
            "battery_level": 90.0,
            "position": {"lat": 38.72, "lon": -9.14},
        }
        response = requests.post(f"{api_url}/cars", json=body, timeout=30)
        response.raise_for_status()
        ids.append(response.json()["car_id"])
    return ids


LOCUSTFILE = """
import random
from locust import HttpUser, constant, task

IDS = {ids!r}


class Reader(HttpUser):
    wait_time = constant(0)

    @task(3)
    def get_car(self):
        self.client.get(f"/cars/{{random.choice(IDS)}}", name="GET /cars/{{id}}")

    @task(1)
    def list_cars(self):
        self.client.get("/cars?limit=20", name="GET /cars")
"""


def bench_locust(api_url: str, ids: list[str], users: int, seconds: int, workdir: Path) -> None:
    locustfile = workdir / "locustfile.py"
    locustfile.write_text(textwrap.dedent(LOCUSTFILE.format(ids=ids)))
    locust = shutil.which("locust", path=str(Path(sys.executable).parent)) or "locust"
    prefix = workdir / "locust"
    subprocess.run(
        [locust, "-f", str(locustfile), "--headless", "-u", str(users), "-r", str(users), "-t", f"{seconds}s",
         "--host", api_url, "--csv", str(prefix), "--only-summary", "--loglevel", "ERROR"],
        check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=seconds + 120,
    )  # fmt: skip
    with open(f"{prefix}_stats.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    print(
        f"\nLocust, {users} users for {seconds}s through the gateway (GET /cars/{{id}} : GET /cars = 3 : 1):"
    )
    for row in rows:
        print(
            f"  {row['Name']:<18} {int(row['Request Count']):>6} req, {int(row['Failure Count']):>4} failed, "
            f"{float(row['Requests/s']):7.1f} req/s, p50 {row['50%']:>5} ms, p99 {row['99%']:>5} ms"
        )


def bench_sequential(api_url: str, ids: list[str], n: int = 200) -> None:
    """One request at a time through the gateway: the per-request cost without queueing."""
    session = requests.Session()
    print(f"\nOne request at a time through the gateway ({n} each, keep-alive):")
    for name, url in (
        ("GET /cars/{id}", lambda: f"{api_url}/cars/{random.choice(ids)}"),
        ("GET /cars", lambda: f"{api_url}/cars?limit=20"),
    ):
        times = []
        for _ in range(n):
            started = time.perf_counter()
            session.get(url(), timeout=30).raise_for_status()
            times.append((time.perf_counter() - started) * 1000)
        times.sort()
        print(
            f"  {name:<18} p50 {statistics.median(times):6.2f} ms, p99 {times[int(n * 0.99) - 1]:6.2f} ms, "
            f"{1000 / statistics.mean(times):7.1f} req/s"
        )


def bench_in_process(sandbox: Sandbox, ids: list[str], n: int = 400) -> None:
    """The handler's own cost: same events, called directly in this process (no gateway, no IPC)."""
    from werkzeug.test import EnvironBuilder
    from werkzeug.wrappers import Request

    from sandbox.aws.gateway import build_proxy_event

    topo = sandbox.topology
    env = topo.function_environment(topo.cars_api) | {"POWERTOOLS_TRACE_DISABLED": "true"}
    os.environ.update(env)
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink):
        from sandbox.aws.event_source import LocalLambdaContext
        from service.api.handler import lambda_handler

        def event(path: str, query: str = "") -> dict[str, Any]:
            request = Request(EnvironBuilder(path=path, query_string=query).get_environ())
            return build_proxy_event(request, b"", stage=topo.api_stage, request_id="bench")

        results = {}
        for name, make in (
            ("GET /cars/{id}", lambda: event(f"/cars/{random.choice(ids)}")),
            ("GET /cars", lambda: event("/cars", "limit=20")),
        ):
            context = LocalLambdaContext(function_name=topo.cars_api.name)
            lambda_handler(make(), context)  # warm
            times = []
            for _ in range(n):
                ev = make()
                started = time.perf_counter()
                lambda_handler(ev, context)
                times.append((time.perf_counter() - started) * 1000)
                sink.seek(0)
                sink.truncate()
            times.sort()
            results[name] = (
                statistics.median(times),
                times[int(len(times) * 0.99) - 1],
                1000 / statistics.mean(times),
            )
    print(f"\nIn-process handler (same events, DynamoDB in the same emulator, {n} calls each, one thread):")
    for name, (p50, p99, rate) in results.items():
        print(f"  {name:<18} p50 {p50:6.2f} ms, p99 {p99:6.2f} ms, {rate:7.1f} calls/s")


def _start_timed(config: SandboxConfig) -> tuple[Sandbox, float, float]:
    """A started sandbox, seconds to live and seconds to live with history (the caller stops it)."""
    started = time.perf_counter()
    sandbox = Sandbox(config).start()
    try:
        live = time.perf_counter() - started
        sandbox.history_ready.wait(timeout=900)
    except BaseException:
        sandbox.stop()
        raise
    return sandbox, live, time.perf_counter() - started


PREVIOUS_CALIBRATION_S = 20.0  # the default until issue 12: the baseline of the start-up figure


def bench_startup_as_users_start_it() -> None:
    """`sandbox up` defaults (fleet, calibration, backfill; no monitor/dashboard, which start aside),
    next to the same start with the previous calibration window (the baseline)."""
    _startup(
        f"baseline: FLEETSCOPE_CALIBRATION_S={PREVIOUS_CALIBRATION_S:g} (before)", PREVIOUS_CALIBRATION_S
    )
    _startup("ours: the defaults", None)


def _startup(label: str, calibration_s: float | None) -> None:
    with tempfile.TemporaryDirectory(prefix="fleetscope-bench-") as tmp:
        config = SandboxConfig(home=Path(tmp), emulator_port=0, api_port=0, dashboard=False, monitor=False)
        if calibration_s is not None:
            config.calibration_s = calibration_s
        sandbox, live, with_history = _start_timed(config)
        try:
            marker = json.loads((Path(tmp) / "backfill.json").read_text())
        finally:
            sandbox.stop()
    calibration = marker.get("latency_calibration") or {}
    api = (calibration.get("series") or {}).get("api_latency") or {}
    print(f"Start-up as `fleetscope sandbox up` (fleet of 50 first, calibration, 14-day backfill), {label}:")
    print(
        f"  live in {live:.1f}s; live with history in {with_history:.1f}s "
        f"(backfill {sandbox.timings.get('backfill_s', float('nan')):.1f}s)"
    )
    print(
        f"  calibration {sandbox.timings.get('calibration_s', float('nan')):.1f}s: "
        f"API n={api.get('n', 0)} p50={api.get('p50', float('nan'))} ms; "
        f"history (median ms, sigma): {marker.get('latency', {})}"
    )


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="bench_sandbox", description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--baseline-hours", type=float, default=6.0)
    parser.add_argument("--no-locust", action="store_true")
    parser.add_argument("--startup-only", action="store_true", help="only the start-up figures")
    args = parser.parse_args(argv)
    if args.users < 1 or args.seconds < 1 or not 0 < args.baseline_hours <= 14 * 24:
        parser.error("--users and --seconds must be >= 1, --baseline-hours in (0, 336]")
    bench_startup_as_users_start_it()
    if args.startup_only:
        return
    with tempfile.TemporaryDirectory(prefix="fleetscope-bench-") as tmp:
        home = Path(tmp)
        config = SandboxConfig(
            home=home, emulator_port=0, api_port=0, dashboard=False, fleet=False, monitor=False, backfill=True
        )
        sandbox, live, with_history = _start_timed(config)
        try:
            print("Start-up, platform alone (no fleet; 14-day backfill with the default latency profile):")
            print(f"  live in {live:.1f}s (emulator+provision+gateway {sandbox.timings['live_s']:.1f}s)")
            print(
                f"  live with 14 days of history in {with_history:.1f}s; "
                f"skipped: {sandbox.skipped or 'nothing'}"
            )
            bench_get_metric_data(sandbox, args.baseline_hours, home)
            ids = _register_cars(sandbox.api_url, 20)
            bench_sequential(sandbox.api_url, ids)
            if not args.no_locust:
                bench_locust(sandbox.api_url, ids, args.users, args.seconds, home)
            bench_in_process(sandbox, ids)
        finally:
            sandbox.stop()


if __name__ == "__main__":
    main(sys.argv[1:])
