"""The incidents file ``$FLEETSCOPE_HOME/incidents.json``: what `fleetscope incident` (and the
dashboard's Sandbox page) inject, and what the running sandbox's fault injector
(`sandbox.traffic.faults.FileFaultInjector`) applies.

Every injection keeps its kind, start, end and parameters forever (`clear` ends active ones early
by moving their end, it deletes nothing), so a run can be scored against what was injected.

The file is written atomically (temp file + rename) under an exclusive lock (``incidents.json.lock``,
`fcntl.flock`), so concurrent `fleetscope incident` commands never lose each other's entries. A
corrupt file is never overwritten: commands fail with `IncidentFileError` naming it.

`KINDS` names the incident kinds, with their default intensity and its range.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from sandbox.home.settings import fleetscope_home

INCIDENTS_FILE = "incidents.json"
FUNCTION_KEYS = ("cars-api", "telemetry-ingest", "outbox-relay", "monitor")
MAX_MINUTES = 24 * 60


@dataclass(frozen=True)
class KindSpec:
    description: str
    default_intensity: float
    low: float  # exclusive
    high: float  # inclusive
    targets_function: bool = False  # accepts --target (default cars-api)
    default_target: str | None = None


KINDS: dict[str, KindSpec] = {
    "error-burst": KindSpec("a share of invocations raise", 0.5, 0.0, 1.0, True, "cars-api"),
    "latency": KindSpec("seconds of delay added to each invocation", 3.0, 0.0, 30.0, True, "cars-api"),
    "throttling": KindSpec("a share of invocations is throttled", 0.5, 0.0, 1.0, True, "cars-api"),
    "cold-start-storm": KindSpec("a share of invocations cold-start", 0.6, 0.0, 1.0, True, "cars-api"),
    "traffic-drop": KindSpec("share of fleet traffic lost", 0.8, 0.0, 1.0),
    "traffic-spike": KindSpec("multiplier of fleet traffic", 4.0, 1.0, 20.0),
    "poison-telemetry": KindSpec("share of telemetry sent malformed", 0.3, 0.0, 1.0),
    "consumer-stall": KindSpec("share of telemetry-ingest polls skipped", 1.0, 0.0, 1.0, False, None),
    "eventbridge-outage": KindSpec(
        "share of EventBridge PutEvents that fail (relay and sweeper)", 1.0, 0.0, 1.0
    ),
}
KindName = Literal[
    "error-burst",
    "latency",
    "throttling",
    "cold-start-storm",
    "traffic-drop",
    "traffic-spike",
    "poison-telemetry",
    "consumer-stall",
    "eventbridge-outage",
]


class IncidentFileError(RuntimeError):
    """The incidents file cannot be read or written (corrupt, unreadable, ...)."""


class InjectionError(ValueError):
    """An injection request is invalid (unknown kind, bad duration or intensity, bad target)."""


class Injection(BaseModel):
    """One injected incident: what, when (start inclusive, end exclusive) and how hard."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1)
    kind: KindName
    start: datetime
    end: datetime
    intensity: float
    target: str | None = None
    created_at: datetime
    cleared_at: datetime | None = None

    @model_validator(mode="after")
    def _check(self) -> Injection:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("start and end must carry a UTC offset")
        if self.end < self.start:
            raise ValueError("end is before start")
        spec = KINDS[self.kind]
        if not spec.low < self.intensity <= spec.high:
            raise ValueError(
                f"intensity of {self.kind} must be in ({spec.low:g}, {spec.high:g}], got {self.intensity:g}"
            )
        if self.target is not None and self.target not in FUNCTION_KEYS:
            raise ValueError(f"unknown target function {self.target!r}")
        return self

    def active(self, now: datetime) -> bool:
        return self.start <= now < self.end

    def describe(self, now: datetime) -> str:
        state = "active" if self.active(now) else ("pending" if now < self.start else "ended")
        target = f" target={self.target}" if self.target else ""
        left = ""
        if state == "active":
            left = f" ({(self.end - now).total_seconds() / 60:.1f} min left)"
        return (
            f"{self.id}  {self.kind:<17} {state:<7} {fmt_utc(self.start)} → {fmt_utc(self.end)}"
            f"  intensity={self.intensity:g}{target}{left}"
        )


class IncidentsDocument(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = 1
    injections: list[Injection] = Field(default_factory=list)


def fmt_utc(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def utc_now() -> datetime:
    return datetime.now(UTC)


class IncidentFile:
    """The incidents file of one FLEETSCOPE_HOME: locked read-modify-write, atomic replace."""

    def __init__(self, home: Path | str | None = None) -> None:
        self.home = Path(home) if home is not None else fleetscope_home()
        self.path = self.home / INCIDENTS_FILE
        self.lock_path = self.home / (INCIDENTS_FILE + ".lock")

    def read(self) -> list[Injection]:
        """Every recorded injection (none if the file does not exist yet)."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return []
        except OSError as err:
            raise IncidentFileError(f"cannot read {self.path}: {err}") from err
        return self._parse(raw)

    def _parse(self, raw: bytes) -> list[Injection]:
        try:
            return IncidentsDocument.model_validate_json(raw).injections
        except ValidationError as err:
            first = err.errors(include_url=False)[0]
            where = ".".join(str(p) for p in first["loc"]) or "document"
            raise IncidentFileError(
                f"{self.path} is corrupt ({where}: {first['msg']}); it was left untouched — "
                f"fix or move it away, then retry"
            ) from err

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.home.mkdir(parents=True, exist_ok=True)
        with open(self.lock_path, "a+") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    def update(self, change: Callable[[list[Injection]], list[Injection]]) -> list[Injection]:
        """Apply `change` to the current list under the lock and write the result atomically."""
        with self._locked():
            injections = self.read()
            updated = change(list(injections))
            self._write(updated)
            return updated

    def _write(self, injections: list[Injection]) -> None:
        document = IncidentsDocument(injections=injections).model_dump_json(indent=2)
        fd, tmp = tempfile.mkstemp(prefix=".incidents-", suffix=".tmp", dir=self.home)
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(document + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def add(
        self,
        kind: str,
        *,
        minutes: float,
        intensity: float | None = None,
        target: str | None = None,
        start: datetime | None = None,
    ) -> Injection:
        injection = new_injection(kind, minutes=minutes, intensity=intensity, target=target, start=start)
        self.update(lambda current: [*current, injection])
        return injection

    def clear(self, *, injection_id: str | None = None, now: datetime | None = None) -> list[Injection]:
        """End active (and pending) injections now; return the ones changed. Nothing is deleted."""
        at = now or utc_now()
        changed: list[Injection] = []

        def end_them(current: list[Injection]) -> list[Injection]:
            result = []
            for inj in current:
                wanted = injection_id is None or inj.id == injection_id
                if wanted and inj.end > at:
                    inj = inj.model_copy(update={"end": max(at, inj.start), "cleared_at": at})
                    changed.append(inj)
                result.append(inj)
            return result

        self.update(end_them)
        if injection_id is not None and not changed:
            known = {i.id for i in self.read()}
            if injection_id not in known:
                raise InjectionError(f"no injection with id {injection_id!r}")
        return changed


def new_injection(
    kind: str,
    *,
    minutes: float,
    intensity: float | None = None,
    target: str | None = None,
    start: datetime | None = None,
) -> Injection:
    """A validated injection starting at `start` (default now) and lasting `minutes`."""
    spec = KINDS.get(kind)
    if spec is None:
        raise InjectionError(f"unknown incident kind {kind!r}; choose one of: {', '.join(KINDS)}")
    if not (isinstance(minutes, int | float) and 0 < minutes <= MAX_MINUTES) or minutes != minutes:
        raise InjectionError(f"--minutes must be in (0, {MAX_MINUTES}], got {minutes!r}")
    value = spec.default_intensity if intensity is None else intensity
    if not spec.low < value <= spec.high:
        raise InjectionError(
            f"--intensity of {kind} ({spec.description}) must be in "
            f"({spec.low:g}, {spec.high:g}], got {value:g}"
        )
    if target is not None and not spec.targets_function:
        raise InjectionError(f"{kind} does not take --target")
    if target is not None and target not in FUNCTION_KEYS:
        raise InjectionError(f"unknown --target {target!r}; choose one of: {', '.join(FUNCTION_KEYS)}")
    begin = start or utc_now()
    return Injection(
        id=uuid.uuid4().hex[:8],
        kind=kind,
        start=begin,
        end=begin + timedelta(minutes=minutes),
        intensity=value,
        target=target or spec.default_target,
        created_at=utc_now(),
    )
