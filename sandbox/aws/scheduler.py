"""EventBridge Scheduler, locally: the input a schedule delivers to its target function."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from contract.topology import SCHEDULED_TIME_FIELD


def scheduled_event(now: datetime | None = None) -> dict[str, Any]:
    """What the monitor schedule sends when it fires at `now`: its target input, the template
    `{SCHEDULED_TIME_FIELD: "<aws.scheduler.scheduled-time>"}` (infra/constructs/schedule.py) filled in."""
    at = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    return {SCHEDULED_TIME_FIELD: at.isoformat().replace("+00:00", "Z")}
