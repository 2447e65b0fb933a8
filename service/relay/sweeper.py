"""The outbox sweeper: publishes outbox items still unpublished `outbox_sweep_after_s` after they occurred.

The stream mapping gives up on a record after its retries or its age (an EventBridge outage, a bus policy or
KMS mistake); stream records expire after 24 h. The outbox item stays, `pending`, until it is published, so
the sweeper (EventBridge Scheduler → the relay function every 5 minutes on AWS, a thread in the sandbox)
finds it in the sparse `by_pending` index and delivers it through the same claim as the relay: exactly once,
whoever gets there first. A sweep stops after `max_consecutive_failures` failed PutEvents in a row (the bus
is down: the next sweep tries again) and when `time_left_s` says the function is about to time out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from service.relay.outbox import Outbox, Publisher, deliver


@dataclass
class SweepResult:
    published: int = 0
    skipped: int = 0  # published or claimed by someone else meanwhile
    failed: int = 0


def sweep(
    *,
    outbox: Outbox,
    publisher: Publisher,
    now: datetime,
    older_than: timedelta,
    lease: timedelta,
    max_consecutive_failures: int = 10,
    time_left_s: Callable[[], float] = lambda: float("inf"),
) -> SweepResult:
    result = SweepResult()
    consecutive = 0
    for event_id in outbox.unpublished(occurred_before=now - older_than):
        if time_left_s() < 5 or consecutive >= max_consecutive_failures:
            break
        try:
            published = deliver(event_id, outbox=outbox, publisher=publisher, now=now, lease=lease)
        except Exception:
            result.failed += 1
            consecutive += 1
            continue
        consecutive = 0
        if published:
            result.published += 1
        else:
            result.skipped += 1
    return result
