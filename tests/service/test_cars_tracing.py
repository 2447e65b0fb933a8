"""X-Ray segments of the API handler with tracing active (as on Lambda): annotations, subsegments, no PII.

Tracing is decided when Powertools' Tracer is created, so this runs the handler in a fresh interpreter with
LAMBDA_TASK_ROOT and a trace header set, and receives its segments on a local UDP "daemon" address.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from contract.topology import topology

pytestmark = pytest.mark.slow

SCRIPT = """
import json
from service.adapters.idempotency import InMemoryIdempotencyStore
from service.adapters.memory import InMemoryCarRepository
from service.api import dependencies
from service.api.handler import app, lambda_handler
from service.domain.cars import CarService
from tests.service.apigw import call
from tests.service.conftest import car_body

service = CarService(InMemoryCarRepository())
app.dependency_overrides[dependencies.get_car_service] = lambda: service
app.dependency_overrides[dependencies.get_idempotency_store] = lambda: InMemoryIdempotencyStore()
body = car_body(vin="1M8GDM9AXKP042788")
created = call(lambda_handler, "POST", "/cars", body=body)
print(json.dumps({"status": created.status, "car_id": created.body["car_id"]}))
"""


def test_segments_carry_route_and_car_id_and_never_the_vin() -> None:
    daemon = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    daemon.bind(("127.0.0.1", 0))
    daemon.settimeout(30)
    topo = topology("test")
    env = (
        dict(os.environ)
        | topo.function_environment(topo.cars_api)
        | {
            "PYTHONPATH": str(Path.cwd()),
            "LAMBDA_TASK_ROOT": str(Path.cwd()),
            "AWS_XRAY_DAEMON_ADDRESS": f"127.0.0.1:{daemon.getsockname()[1]}",
            "_X_AMZN_TRACE_ID": "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
            "POWERTOOLS_TRACE_DISABLED": "false",
        }
    )
    run = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["status"] == 201
    segments = []
    daemon.settimeout(2)
    try:
        while True:
            segments.append(daemon.recv(65536).decode())
    except TimeoutError:
        pass
    assert segments, "no segment reached the daemon address"
    text = "\n".join(segments)
    assert "1M8GDM9AXKP042788" not in text  # no VIN (PII) in annotations or metadata
    handler = next(
        json.loads(line) for s in segments for line in s.splitlines() if '"## lambda_handler"' in line
    )
    assert handler["annotations"]["route"] == "POST /cars"
    assert handler["annotations"]["car_id"] == result["car_id"]
