"""Handlers the runtime tests run in real execution environments (imported by sandbox.aws.lambda_worker)."""

from __future__ import annotations

import json
import os
import time
from typing import Any

INIT_PID = os.getpid()


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Behaves as the event says: log, emit EMF, sleep, hold until a file exists, fail; echoes what the
    environment looks like."""
    for line in event.get("log", []):
        print(line)
    if "emf" in event:
        emf = event["emf"]
        print(
            json.dumps(
                {
                    "_aws": {
                        "Timestamp": int(time.time() * 1000),
                        "CloudWatchMetrics": [
                            {
                                "Namespace": emf["namespace"],
                                "Dimensions": [["service"]],
                                "Metrics": [{"Name": emf["name"], "Unit": "Count"}],
                            }
                        ],
                    },
                    "service": os.environ.get("POWERTOOLS_SERVICE_NAME"),
                    emf["name"]: emf["values"],
                }
            )
        )
    if event.get("sleep_s"):
        time.sleep(float(event["sleep_s"]))
    if event.get("hold_until_exists"):  # busy until the test releases it (at most 60 s)
        deadline = time.monotonic() + 60
        while not os.path.exists(event["hold_until_exists"]) and time.monotonic() < deadline:
            time.sleep(0.01)
    if event.get("fail"):
        raise ValueError(event["fail"])
    return {
        "pid": os.getpid(),
        "init_pid": INIT_PID,
        "service": os.environ.get("POWERTOOLS_SERVICE_NAME"),
        "trace": os.environ.get("_X_AMZN_TRACE_ID"),
        "function_name": context.function_name,
        "request_id": context.aws_request_id,
        "remaining_ms": context.get_remaining_time_in_millis(),
    }
