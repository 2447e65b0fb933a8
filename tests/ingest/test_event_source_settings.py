"""SqsEventSource settings validation and its local Lambda context (no emulator needed)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from sandbox.aws import event_source
from sandbox.aws.event_source import LocalLambdaContext, SqsEventSource


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


def test_local_context_counts_down(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a context with a 250 ms timeout, on a monotonic clock the test moves
    clock = SimpleNamespace(now=1000.0)
    monkeypatch.setattr(event_source, "time", SimpleNamespace(monotonic=lambda: clock.now))
    context = LocalLambdaContext(function_name="f", timeout_s=0.25)
    assert context.get_remaining_time_in_millis() == 250
    # When 125 ms pass, then 250 more
    clock.now += 0.125
    assert context.get_remaining_time_in_millis() == 125
    clock.now += 0.25
    # Then it counts down to 0, never below
    assert context.get_remaining_time_in_millis() == 0
