"""EventBridge Scheduler, locally: the event a schedule delivers to its target function."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

ACCOUNT = "123456789012"
REGION = "us-east-1"


def scheduled_event(schedule_name: str, now: datetime | None = None) -> dict[str, Any]:
    """What EventBridge Scheduler sends when the schedule `schedule_name` fires at `now`."""
    at = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.scheduler",
        "account": ACCOUNT,
        "time": at.isoformat().replace("+00:00", "Z"),
        "region": REGION,
        "resources": [f"arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule/default/{schedule_name}"],
        "detail": {},
    }
