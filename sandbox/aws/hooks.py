"""Fault-injection hook protocol between the sandbox runtime and the fault injector.

The runtime (`sandbox.aws.runtime.LambdaRuntime`) asks its hook before every invocation what to do —
like AWS FIS Lambda actions: add latency, raise an error inside the invocation, throttle it, or
force a cold start. Event-source pollers ask `consumer_paused` before fetching a batch, so a fault
can stop a consumer and let its queue back up. `NoFaults` is the default: every call is a no-op.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class FaultAction:
    """What the runtime does to one invocation. The default action changes nothing."""

    delay_s: float = 0.0  # added latency, inside the invocation (counts in Duration)
    raise_error: str | None = None  # message of an error raised inside the invocation (-> Errors, 502)
    throttle: bool = False  # reject before running (-> Throttles, 429 via the gateway)
    cold_start: bool = False  # re-initialise the function before running (-> Init Duration, ColdStart)

    def __post_init__(self) -> None:
        if self.delay_s < 0:
            raise ValueError(f"delay_s must be >= 0, got {self.delay_s}")

    @property
    def is_noop(self) -> bool:
        return self == NO_ACTION


NO_ACTION = FaultAction()


@runtime_checkable
class FaultHook(Protocol):
    """Decides, per invocation, which fault (if any) the runtime injects. Must be thread-safe."""

    def before_invoke(self, function_key: str, event: dict[str, Any]) -> FaultAction:
        """Called before each invocation of the function with this topology key (e.g. "cars-api")."""
        ...

    def consumer_paused(self, function_key: str) -> bool:
        """True while the event source feeding this function should not poll."""
        ...


class NoFaults:
    """The default hook: no faults, consumers never paused."""

    def before_invoke(self, function_key: str, event: dict[str, Any]) -> FaultAction:
        return NO_ACTION

    def consumer_paused(self, function_key: str) -> bool:
        return False
