"""Wait for a condition with a deadline (tests wait on conditions, not on time)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    condition: Callable[[], T], *, timeout_s: float = 10.0, interval_s: float = 0.05, what: str = ""
) -> T:
    """Call `condition` until it returns something truthy, and return that; AssertionError after
    `timeout_s` (the condition is always checked at least once)."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"not within {timeout_s:g} s: {what or getattr(condition, '__name__', 'condition')}"
            )
        time.sleep(interval_s)
