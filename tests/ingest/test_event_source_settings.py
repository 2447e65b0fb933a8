"""SqsEventSource settings validation and its local Lambda context (no emulator needed)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from sandbox.event_source import LocalLambdaContext, SqsEventSource


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": 11}, "batching window"),
        ({"concurrency": 0}, "concurrency"),
        ({"max_batching_window_s": -1}, "max_batching_window_s"),
    ],
)
def test_rejects_settings_aws_would_reject(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SqsEventSource("http://queue", lambda e, c: None, function_name="f", **kwargs)


def test_needs_something_to_invoke() -> None:
    with pytest.raises(ValueError, match="handler"):
        SqsEventSource("http://queue", function_name="f")


def test_local_context_counts_down() -> None:
    context = LocalLambdaContext(function_name="f", timeout_s=0.05)
    assert 0 < context.get_remaining_time_in_millis() <= 50
    time.sleep(0.06)
    assert context.get_remaining_time_in_millis() == 0
