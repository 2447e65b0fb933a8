"""The monitor's time budget: one retry layer, bounded calls, and a run that ends inside its Lambda.

Every AWS client of the monitor is built with `client_config`: botocore's standard retry mode (the
only retry layer: exponential backoff with jitter on throttling and transient errors, at most
`MAX_ATTEMPTS` attempts) with short connect and read timeouts, so one call can take at most
`worst_case_s(read_timeout_s)`. A run checks `RunBudget.allows(...)` before it starts remote work
that could outlast the invocation (a training batch, the scoring fetch, a notification) and leaves
that work for the next run instead; the commit of what it did always gets `COMMIT_S`. The handler
feeds the budget from `context.get_remaining_time_in_millis()`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from botocore.config import Config

MAX_ATTEMPTS = 3
CONNECT_TIMEOUT_S = 1.0
CLOUDWATCH_READ_S = 10.0  # GetMetricData: up to 500 queries x 100,800 datapoints
DYNAMODB_READ_S = 5.0
SNS_READ_S = 5.0
SQS_READ_S = 5.0  # the delivery receipts queue
_BACKOFF_S = 1.0 + 2.0  # standard mode: random(0, 1) * 2^attempt before attempts 2 and 3


def client_config(*, read_timeout_s: float) -> Config:
    return Config(
        retries={"mode": "standard", "total_max_attempts": MAX_ATTEMPTS},
        connect_timeout=CONNECT_TIMEOUT_S,
        read_timeout=read_timeout_s,
    )


def worst_case_s(read_timeout_s: float) -> float:
    """The longest one call can take with `client_config(read_timeout_s=...)`, retries included."""
    return MAX_ATTEMPTS * (CONNECT_TIMEOUT_S + read_timeout_s) + _BACKOFF_S


FETCH_S = worst_case_s(CLOUDWATCH_READ_S)  # one GetMetricData call
COMMIT_S = 2 * worst_case_s(DYNAMODB_READ_S)  # state chunks, then the transaction with the head
PUBLISH_S = worst_case_s(SNS_READ_S) + 2 * worst_case_s(DYNAMODB_READ_S)  # claim, publish, mark sent
RECEIPTS_S = 2 * worst_case_s(SQS_READ_S) + worst_case_s(
    DYNAMODB_READ_S
)  # read + delete a batch, mark an item


@dataclass(frozen=True)
class RunBudget:
    """Seconds left in the invocation (`remaining_s`; unbounded outside Lambda)."""

    remaining_s: Callable[[], float] = lambda: math.inf

    def allows(self, seconds: float) -> bool:
        """Whether work that may take `seconds` still ends before the invocation does."""
        return self.remaining_s() > seconds
