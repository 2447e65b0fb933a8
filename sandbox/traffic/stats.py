"""What the fleet did, counted: `FleetStats`, and `write_stats_file` (``$FLEETSCOPE_HOME/fleet.json``)."""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


@dataclass
class FleetStats:
    """Counters of what the simulator did (thread-safe through `FleetSimulator.stats()`)."""

    requests: Counter[str] = field(default_factory=Counter)  # "GET 200", "PATCH 502", ...
    trips_requested: int = 0
    trips_started: int = 0
    trips_completed: int = 0
    unserved: int = 0
    telemetry_valid: int = 0
    telemetry_poison: int = 0  # broken but well-formed: queued (202), then dead-lettered by the ingest
    telemetry_refused: int = 0  # refused by the API's request model (400), never queued (0 unless a bug)
    telemetry_send_failed: int = 0

    @property
    def api_requests(self) -> int:
        return sum(self.requests.values())

    @property
    def telemetry_sent(self) -> int:
        return self.telemetry_valid + self.telemetry_poison

    def snapshot(self) -> dict[str, Any]:
        return {
            "api_requests": self.api_requests,
            "requests": dict(self.requests),
            "trips_requested": self.trips_requested,
            "trips_started": self.trips_started,
            "trips_completed": self.trips_completed,
            "unserved": self.unserved,
            "telemetry_valid": self.telemetry_valid,
            "telemetry_poison": self.telemetry_poison,
            "telemetry_refused": self.telemetry_refused,
            "telemetry_send_failed": self.telemetry_send_failed,
        }


def write_stats_file(path: Path, document: dict[str, Any]) -> None:
    """Replace `path` with `document` atomically; a failure is logged, never raised."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(document, indent=2) + "\n")
        os.replace(tmp, path)
    except OSError as err:
        log.warning("fleet: cannot write %s: %s", path, err)
