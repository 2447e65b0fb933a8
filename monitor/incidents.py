"""The incident layer: per-series alert decisions -> incident transitions OPEN -> UPDATED -> RESOLVED.

Pure (no I/O, no clock): it sees only the scored points of a run and its own state.

- Grouping: series of the same group that alert while an incident of that group is open join that
  incident instead of opening another one. The catalog puts a service's API, its function, its
  queues and its business metrics in one group (`service:<name>`: one error burst is one incident,
  not one per resource that shows it); shared resources (tables, the event bus) are groups of their
  own. The incident's `resource` is its group; each member keeps the resource it belongs to.
- UPDATED is sent when a new series joins or the incident's severity rises; a series that stays in
  alert does not send anything more.
- Severity of an incident = the highest severity of its members.
- Cooldown (hold-down): an incident resolves only after all its members have stayed clear for
  ``cooldown_s`` of data time; a member alerting again within that time keeps the incident open, so
  a flapping metric produces one incident, not a stream of OPEN/RESOLVED pairs.
- Missing data: a missing point carries no decision, so a gap in the data opens nothing. An
  incident whose alerting members stop reporting altogether is resolved after ``stale_s`` with
  reason "no data" (so it cannot stay open forever).
- Incident ids and transition sequence numbers are deterministic functions of the data (resource
  and data timestamp), so a retried run recomputes the same `incident_id#seq` dedup keys.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import groupby
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from monitor.catalog import Severity

TransitionKind = Literal["OPEN", "UPDATED", "RESOLVED"]


@dataclass(frozen=True)
class PointSignal:
    """One scored point of one series with its alert decision (from `monitor.policy`)."""

    series_id: str
    resource: str
    severity: Severity
    t: int
    value: float
    lower: float
    upper: float
    score: float
    firing: bool
    opened: bool
    resolved: bool
    group: str = ""  # incident group (`MetricSpec.group`); "" = the resource on its own

    @property
    def key(self) -> str:
        return self.group or self.resource


def _num(x: float) -> float | None:
    return None if x is None or math.isnan(x) else float(x)


class Member(BaseModel):
    model_config = ConfigDict(extra="forbid")

    series_id: str
    resource: str = ""  # the resource the series belongs to (an incident's group can span several)
    severity: Severity
    firing: bool = True
    since: int  # first anomalous period
    last_anomalous_at: int
    last_seen: int  # last period with data
    value: float | None = None
    lower: float | None = None
    upper: float | None = None
    score: float | None = None
    peak_score: float = 0.0


class Incident(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    resource: str  # the incident's group: `service:<name>`, or a resource of its own (a table)
    status: Literal["open", "resolved"] = "open"
    severity: Severity
    opened_at: int
    updated_at: int
    resolved_at: int | None = None
    resolve_reason: str | None = None
    seq: int = 0  # sequence number of the last transition
    quiet_since: int | None = None  # all members clear since (hold-down before RESOLVED)
    members: dict[str, Member] = Field(default_factory=dict)

    @property
    def firing_members(self) -> list[Member]:
        return [m for m in self.members.values() if m.firing]

    @property
    def resources(self) -> list[str]:
        """The resources whose series are members, in the order they joined."""
        return list(dict.fromkeys(m.resource or self.resource for m in self.members.values()))


class Transition(BaseModel):
    model_config = ConfigDict(extra="forbid")

    incident_id: str
    seq: int
    kind: TransitionKind
    at: int  # data timestamp (period start) of the transition
    reason: str
    incident: Incident  # snapshot after the transition

    @property
    def dedup_key(self) -> str:
        return f"{self.incident_id}#{self.seq:04d}"


class TrackerState(BaseModel):
    model_config = ConfigDict(extra="forbid")

    open: dict[str, Incident] = Field(default_factory=dict)  # by group


def incident_id(resource: str, opened_at: int) -> str:
    digest = hashlib.sha256(resource.encode()).hexdigest()[:10]
    return f"inc-{opened_at}-{digest}"


class IncidentTracker:
    def __init__(self, state: TrackerState | None = None, *, cooldown_s: int, stale_s: int = 3600) -> None:
        self.state = state.model_copy(deep=True) if state else TrackerState()
        self.cooldown_s = cooldown_s
        self.stale_s = stale_s

    def process(self, signals: Iterable[PointSignal], *, until: int) -> list[Transition]:
        """Feed a run's points (any order); `until` = the newest period scored in this run."""
        out: list[Transition] = []
        ordered = sorted(signals, key=lambda s: (s.t, s.series_id))
        for t, group in groupby(ordered, key=lambda s: s.t):
            for sig in group:
                self._apply(sig, out)
            self._settle(t, out)
        self._settle(until, out)
        return out

    def _apply(self, sig: PointSignal, out: list[Transition]) -> None:
        inc = self.state.open.get(sig.key)
        present = not math.isnan(sig.value)
        member = inc.members.get(sig.series_id) if inc else None
        if present and (sig.opened or (sig.firing and member is None)):
            if inc is None:
                inc = Incident(
                    id=incident_id(sig.key, sig.t),
                    resource=sig.key,
                    severity=sig.severity,
                    opened_at=sig.t,
                    updated_at=sig.t,
                )
                self.state.open[sig.key] = inc
                inc.members[sig.series_id] = self._member(sig)
                out.append(self._transition(inc, "OPEN", sig.t, f"{sig.series_id} is anomalous"))
                return
            if member is None:
                inc.members[sig.series_id] = self._member(sig)
                inc.quiet_since = None
                rose = sig.severity.rank > inc.severity.rank
                inc.severity = max(inc.severity, sig.severity, key=lambda s: s.rank)
                reason = f"{sig.series_id} joined" + (f"; severity now {inc.severity}" if rose else "")
                out.append(self._transition(inc, "UPDATED", sig.t, reason))
                return
            member.firing = True
            inc.quiet_since = None
        if member is None or inc is None:
            return
        if present:
            member.last_seen = sig.t
        if sig.firing and present:
            member.last_anomalous_at = sig.t
            member.value, member.lower, member.upper = _num(sig.value), _num(sig.lower), _num(sig.upper)
            member.score = _num(sig.score)
            member.peak_score = max(member.peak_score, member.score or 0.0)
        # A present point of a series that is not in alert clears its member too: the series' alert
        # state was reset (a rebuilt model state, a changed rule) and will never send `resolved`.
        if sig.resolved or (present and member.firing and not sig.firing):
            member.firing = False
            if not inc.firing_members:
                inc.quiet_since = sig.t

    def _settle(self, t: int, out: list[Transition]) -> None:
        for key, inc in list(self.state.open.items()):
            if inc.quiet_since is not None and t - inc.quiet_since >= self.cooldown_s:
                self._resolve(key, inc, t, "all metrics back within their expected band", out)
            elif inc.firing_members and all(t - m.last_seen >= self.stale_s for m in inc.firing_members):
                self._resolve(key, inc, t, "no data from the anomalous metrics", out)

    def _resolve(self, key: str, inc: Incident, t: int, reason: str, out: list[Transition]) -> None:
        inc.status = "resolved"
        inc.resolved_at = t
        inc.resolve_reason = reason
        for m in inc.members.values():
            m.firing = False
        del self.state.open[key]
        out.append(self._transition(inc, "RESOLVED", t, reason))

    @staticmethod
    def _member(sig: PointSignal) -> Member:
        return Member(
            series_id=sig.series_id,
            resource=sig.resource,
            severity=sig.severity,
            since=sig.t,
            last_anomalous_at=sig.t,
            last_seen=sig.t,
            value=_num(sig.value),
            lower=_num(sig.lower),
            upper=_num(sig.upper),
            score=_num(sig.score),
            peak_score=_num(sig.score) or 0.0,
        )

    @staticmethod
    def _transition(inc: Incident, kind: TransitionKind, t: int, reason: str) -> Transition:
        inc.seq += 1
        inc.updated_at = t
        return Transition(
            incident_id=inc.id,
            seq=inc.seq,
            kind=kind,
            at=t,
            reason=reason,
            incident=inc.model_copy(deep=True),
        )


def supersede(older: Incident, newer: Incident) -> Transition:
    """RESOLVED for `older`, an incident saved open in the same group as `newer`, which carries on.

    A group has one open incident at a time (`TrackerState.open`). Two saved open means a RESOLVED was
    lost (a run died, or a rebuild kept only one); the older one's OPEN went out, so it gets its
    RESOLVED now, at the newest data time either knows, naming the incident that carries on.
    """
    inc = older.model_copy(deep=True)
    at = max(inc.updated_at, newer.updated_at)
    reason = f"superseded by {newer.id}, open in the same group when the model state was rebuilt"
    inc.status = "resolved"
    inc.resolved_at = at
    inc.resolve_reason = reason
    for member in inc.members.values():
        member.firing = False
    return IncidentTracker._transition(inc, "RESOLVED", at, reason)
