"""Per-series alert decision: turns a detector's scores into alert transitions for one series.

A point *counts* when its value is present, its score reaches ``threshold``, it sits outside the
expected band on the side that matters (``direction``) and, for rate metrics, its volume reaches
``min_volume``. An alert opens when ``confirm_m`` of the last ``confirm_n`` present points count
(and the series is not cooling down); it resolves after ``clear_points`` consecutive present points
that do not count; after a resolve no new alert opens for ``cooldown_points`` points. Missing points
(NaN value or score) change nothing: they neither count, nor clear, nor advance the cooldown.
Grouping alerts of several series into incidents belongs to the incident layer, not here.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any, Literal, Self

Direction = Literal["up", "down", "both"]


class AlertRuleError(ValueError):
    """An AlertRule with inconsistent parameters."""


@dataclass(frozen=True)
class AlertRule:
    threshold: float
    confirm_m: int
    confirm_n: int
    direction: Direction
    min_volume: float = 0.0
    cooldown_points: int = 0
    clear_points: int = 1

    def __post_init__(self) -> None:
        if not 0.0 <= self.threshold <= 1.0:
            raise AlertRuleError(f"threshold must be in [0, 1], got {self.threshold}")
        if not 1 <= self.confirm_m <= self.confirm_n:
            raise AlertRuleError(f"need 1 <= confirm_m <= confirm_n, got {self.confirm_m}/{self.confirm_n}")
        if self.direction not in ("up", "down", "both"):
            raise AlertRuleError(f"direction must be up, down or both, got {self.direction!r}")
        if self.min_volume < 0 or self.cooldown_points < 0 or self.clear_points < 1:
            raise AlertRuleError("min_volume and cooldown_points must be >= 0, clear_points >= 1")

    def counts(self, *, score: float, value: float, lower: float, upper: float, volume: float | None) -> bool:
        """Whether one point is evidence for an alert under this rule."""
        if math.isnan(value) or math.isnan(score) or score < self.threshold:
            return False
        if self.min_volume > 0 and (volume is None or math.isnan(volume) or volume < self.min_volume):
            return False
        above = not math.isnan(upper) and value > upper
        below = not math.isnan(lower) and value < lower
        if self.direction == "up":
            return above
        if self.direction == "down":
            return below
        return above or below


@dataclass(frozen=True)
class AlertDecision:
    firing: bool  # the series is in alert after this point
    opened: bool  # this point opens an alert (one notification)
    resolved: bool  # this point resolves the alert
    counted: bool = False  # this point counted as evidence


# One rule per detector profile. Scores are calibrated (0.5 <=> tail probability 1e-5, 0.4 <=> 1e-4), so
# the thresholds mean the same on every metric; confirmation and cooldown are in points (5-min steps).
# Latency alerts at 1e-4: its shift CUSUMs alarm there (see `profile_config`), since a regression of a
# few tens of percent on a latency averaged over a few requests takes hours to reach 1e-5.
# The operational profiles resolve after 3 clear points (sparse counts after 4: at night a burst of
# errors still has periods with none), so "is it over?" is answered within a few periods of the
# graph being back in its band; the incident layer's hold-down (two periods by default) and the
# per-series cooldown keep a flapping metric to one incident. The rate rule's volume gate (requests per
# 5 minutes; the catalog sets its own per series) is one request: a burst spread over hours at 1-4
# requests a period reaches the CUSUM's alarm level without any single period being large, and a gate of
# 5 kept every one of its periods from counting (bench_unseen: two error bursts more on three seeds, no
# false episode more).
_RULES: dict[str, AlertRule] = {
    "default": AlertRule(0.45, 1, 1, "both", cooldown_points=36, clear_points=6),
    "latency": AlertRule(0.4, 2, 3, "up", cooldown_points=24, clear_points=3),
    "latency-tail": AlertRule(0.5, 2, 3, "up", cooldown_points=24, clear_points=3),
    "traffic": AlertRule(0.5, 2, 3, "both", cooldown_points=24, clear_points=3),
    "count": AlertRule(0.5, 1, 1, "up", cooldown_points=12, clear_points=4),
    "rate": AlertRule(0.5, 2, 3, "up", min_volume=1.0, cooldown_points=24, clear_points=3),
    "backlog": AlertRule(0.5, 2, 3, "up", cooldown_points=24, clear_points=3),
    # A verdict (the canary judge's FAIL) is already decided: one point opens, no cooldown (the next
    # failed canary is a new event), clear after 3 points like the operational profiles.
    "verdict": AlertRule(0.5, 1, 1, "up", cooldown_points=0, clear_points=3),
    # A dead-letter queue's arrivals: one rise opens; it resolves once 3 points bring no new message
    # (the messages stay until redriven: the alert says when they stopped coming, not that they left).
    "dlq": AlertRule(0.5, 1, 1, "up", cooldown_points=12, clear_points=3),
}


def default_rule(profile: str) -> AlertRule:
    try:
        return _RULES[profile]
    except KeyError:
        raise AlertRuleError(f"unknown profile {profile!r}; known: {', '.join(sorted(_RULES))}") from None


class SeriesAlertState:
    """The alert state machine of one series (serialisable, so the Lambda can keep it between runs)."""

    version = 1

    def __init__(self, rule: AlertRule) -> None:
        self.rule = rule
        self.window: deque[bool] = deque(maxlen=rule.confirm_n)
        self.firing = False
        self.quiet = 0  # consecutive non-counting present points while firing
        self.cooldown = 0  # present points left before a new alert may open

    def step(
        self, *, score: float, value: float, lower: float, upper: float, volume: float | None = None
    ) -> AlertDecision:
        if math.isnan(value) or math.isnan(score):
            return AlertDecision(firing=self.firing, opened=False, resolved=False)
        counted = self.rule.counts(score=score, value=value, lower=lower, upper=upper, volume=volume)
        self.window.append(counted)
        if self.firing:
            self.quiet = 0 if counted else self.quiet + 1
            if self.quiet >= self.rule.clear_points:
                self.firing = False
                self.quiet = 0
                self.cooldown = self.rule.cooldown_points
                self.window.clear()
                return AlertDecision(firing=False, opened=False, resolved=True, counted=counted)
            return AlertDecision(firing=True, opened=False, resolved=False, counted=counted)
        if self.cooldown > 0:
            self.cooldown -= 1
            return AlertDecision(firing=False, opened=False, resolved=False, counted=counted)
        if sum(self.window) >= self.rule.confirm_m:
            self.firing = True
            self.quiet = 0
            return AlertDecision(firing=True, opened=True, resolved=False, counted=counted)
        return AlertDecision(firing=False, opened=False, resolved=False, counted=counted)

    def to_state(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "rule": asdict(self.rule),
            "window": [int(b) for b in self.window],
            "firing": self.firing,
            "quiet": self.quiet,
            "cooldown": self.cooldown,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        if state.get("version") != cls.version:
            raise AlertRuleError(f"unsupported alert state version {state.get('version')!r}")
        obj = cls(AlertRule(**state["rule"]))
        obj.window.extend(bool(b) for b in state["window"])
        obj.firing = bool(state["firing"])
        obj.quiet = int(state["quiet"])
        obj.cooldown = int(state["cooldown"])
        return obj
