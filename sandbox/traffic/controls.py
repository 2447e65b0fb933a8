"""What an incident may change in the fleet's behaviour (`sandbox.traffic.faults` implements it)."""

from __future__ import annotations

from typing import Protocol


class FleetControls(Protocol):
    """Read by the fleet on every tick."""

    def traffic_factor(self) -> float:
        """Multiplier of rider and back-office request rates (1.0 = normal)."""
        ...

    def poison_fraction(self) -> float:
        """Share of telemetry messages sent malformed (0.0 = none)."""
        ...


class NormalTraffic:
    def traffic_factor(self) -> float:
        return 1.0

    def poison_fraction(self) -> float:
        return 0.0
