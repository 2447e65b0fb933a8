"""Incident injection for the sandbox, applied around the handlers like AWS FIS Lambda actions.

`fleetscope incident KIND --minutes N [--intensity X] [--target FUNCTION]` records an injection in
``${FLEETSCOPE_HOME:-.fleetscope}/incidents.json``; the running sandbox (another process) re-reads
the file when its mtime changes and applies it through `FileFaultInjector`, which is both the
runtime's `FaultHook` and the fleet simulator's `FleetControls`. The service code never knows.

Every injection keeps its kind, start, end and parameters forever (`clear` ends active ones early
by moving their end, it deletes nothing), so a run can be scored against what was injected.

The file is written atomically (temp file + rename) under an exclusive lock (``incidents.json.lock``,
`fcntl.flock`), so concurrent `fleetscope incident` commands never lose each other's entries. A
corrupt file is never overwritten: commands fail with `IncidentFileError` naming it, and a running
injector keeps the last good state.

Kinds and what ``--intensity`` means for each (defaults in `KINDS`):

| kind | effect | intensity |
|---|---|---|
| error-burst | a share of the target's invocations raise (→ Errors, API 5XX) | share of invocations, (0, 1] |
| latency | added delay inside each invocation, as after a bad deploy | seconds added, (0, 30] |
| throttling | a share of invocations is throttled (→ Lambda Throttles, API 500) | share, (0, 1] |
| cold-start-storm | a share of invocations re-initialise the function | share, (0, 1] |
| traffic-drop | the fleet's request rate falls | share of traffic lost, (0, 1] |
| traffic-spike | the fleet's request rate rises | rate multiplier, (1, 20] |
| poison-telemetry | the fleet sends malformed telemetry (→ retries → DLQ) | share of messages, (0, 1] |
| consumer-stall | the telemetry-ingest poller stops (→ queue age grows) | share of polls skipped, (0, 1] |
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import random
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from sandbox.hooks import NO_ACTION, FaultAction

INCIDENTS_FILE = "incidents.json"
FUNCTION_KEYS = ("cars-api", "telemetry-ingest", "outbox-relay", "monitor")
MAX_MINUTES = 24 * 60
RECENT = timedelta(hours=1)


def fleetscope_home() -> Path:
    """``$FLEETSCOPE_HOME`` or ``.fleetscope`` (relative to the working directory)."""
    return Path(os.environ.get("FLEETSCOPE_HOME") or ".fleetscope")


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
    "latency": KindSpec("seconds of delay added to each invocation", 0.8, 0.0, 30.0, True, "cars-api"),
    "throttling": KindSpec("a share of invocations is throttled", 0.5, 0.0, 1.0, True, "cars-api"),
    "cold-start-storm": KindSpec("a share of invocations cold-start", 0.6, 0.0, 1.0, True, "cars-api"),
    "traffic-drop": KindSpec("share of fleet traffic lost", 0.8, 0.0, 1.0),
    "traffic-spike": KindSpec("multiplier of fleet traffic", 4.0, 1.0, 20.0),
    "poison-telemetry": KindSpec("share of telemetry sent malformed", 0.3, 0.0, 1.0),
    "consumer-stall": KindSpec("share of telemetry-ingest polls skipped", 1.0, 0.0, 1.0, False, None),
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
            f"{self.id}  {self.kind:<17} {state:<7} {_fmt(self.start)} → {_fmt(self.end)}"
            f"  intensity={self.intensity:g}{target}{left}"
        )


class IncidentsDocument(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = 1
    injections: list[Injection] = Field(default_factory=list)


def _fmt(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _now() -> datetime:
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
        at = now or _now()
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
    begin = start or _now()
    return Injection(
        id=uuid.uuid4().hex[:8],
        kind=kind,
        start=begin,
        end=begin + timedelta(minutes=minutes),
        intensity=value,
        target=target or spec.default_target,
        created_at=_now(),
    )


class FileFaultInjector:
    """The sandbox's `FaultHook` and `FleetControls`, driven by the incidents file of `home`.

    Thread-safe. Re-reads the file when its mtime/size/inode changes (checked at most every
    `recheck_s`); on a corrupt file it keeps the last good state and reports the problem once.
    """

    def __init__(
        self,
        home: Path | str | None = None,
        *,
        rng: random.Random | None = None,
        clock: Callable[[], datetime] = _now,
        recheck_s: float = 0.25,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        self.file = IncidentFile(home)
        self._rng = rng or random.Random()
        self._clock = clock
        self._recheck_s = recheck_s
        self._on_error = on_error or (lambda msg: print(f"fleetscope faults: {msg}", file=sys.stderr))
        self._lock = threading.Lock()
        self._signature: tuple[int, int, int] | None = None
        self._checked_at = float("-inf")
        self._injections: list[Injection] = []
        self._last_error: str | None = None

    def injections(self) -> list[Injection]:
        self._refresh()
        with self._lock:
            return list(self._injections)

    def active(self, kind: str | None = None) -> list[Injection]:
        now = self._clock()
        return [i for i in self.injections() if i.active(now) and (kind is None or i.kind == kind)]

    def _refresh(self) -> None:
        mono = time.monotonic()
        with self._lock:
            if mono - self._checked_at < self._recheck_s:
                return
            self._checked_at = mono
        try:
            st = os.stat(self.file.path)
            signature: tuple[int, int, int] | None = (st.st_mtime_ns, st.st_size, st.st_ino)
        except FileNotFoundError:
            signature = None
        with self._lock:
            if signature == self._signature:
                return
        try:
            injections = self.file.read()
        except IncidentFileError as err:
            with self._lock:
                self._signature = signature
                if str(err) != self._last_error:
                    self._last_error = str(err)
                    self._on_error(str(err))
            return
        with self._lock:
            self._signature = signature
            self._injections = injections
            self._last_error = None

    def _strongest(self, kind: str, function_key: str | None = None) -> float:
        values = [i.intensity for i in self.active(kind) if function_key is None or i.target == function_key]
        return max(values, default=0.0)

    def _chance(self, share: float) -> bool:
        if share <= 0:
            return False
        with self._lock:
            return self._rng.random() < share

    # -- FaultHook ------------------------------------------------------------------------------------

    def before_invoke(self, function_key: str, event: dict[str, Any]) -> FaultAction:
        now = self._clock()
        active = [i for i in self.injections() if i.active(now) and i.target == function_key]
        if not active:
            return NO_ACTION

        def strongest(kind: str) -> float:
            return max((i.intensity for i in active if i.kind == kind), default=0.0)

        if self._chance(strongest("throttling")):
            return FaultAction(throttle=True)
        delay = strongest("latency")
        if delay > 0:
            with self._lock:
                delay *= self._rng.uniform(0.85, 1.15)
        error = None
        if self._chance(strongest("error-burst")):
            error = f"Injected fault (error-burst) in {function_key}"
        return FaultAction(
            delay_s=delay, raise_error=error, cold_start=self._chance(strongest("cold-start-storm"))
        )

    def consumer_paused(self, function_key: str) -> bool:
        if function_key != "telemetry-ingest":
            return False
        return self._chance(self._strongest("consumer-stall"))

    # -- FleetControls --------------------------------------------------------------------------------

    def traffic_factor(self) -> float:
        factor = 1.0
        drop = self._strongest("traffic-drop")
        if drop > 0:
            factor *= 1.0 - drop
        spike = self._strongest("traffic-spike")
        if spike > 0:
            factor *= spike
        return factor

    def poison_fraction(self) -> float:
        return self._strongest("poison-telemetry")


# --- CLI ----------------------------------------------------------------------------------------------


def add_incident_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `fleetscope incident` (the platform CLI registers the subcommand)."""
    kinds = "\n".join(f"  {name:<17} {spec.description}" for name, spec in KINDS.items())
    parser.description = "Inject an incident into the running sandbox, list or clear injections."
    parser.epilog = f"kinds (--intensity meaning):\n{kinds}"
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("action", metavar="KIND|list|clear", help="an incident kind, `list` or `clear`")
    parser.add_argument("--minutes", type=float, help="duration of the injection (required for a KIND)")
    parser.add_argument("--intensity", type=float, help="strength, meaning per kind (see below)")
    parser.add_argument("--target", help=f"function key for per-function kinds ({', '.join(FUNCTION_KEYS)})")
    parser.add_argument("--all", action="store_true", help="list: every injection, not only active/recent")
    parser.add_argument("--json", action="store_true", help="list: one JSON object per line")
    parser.add_argument("--id", dest="injection_id", help="clear: only this injection")


def cli_incident(args: argparse.Namespace) -> int:
    """`fleetscope incident ...`; returns the exit code (2 = bad input, 1 = file problem)."""
    incidents = IncidentFile()
    action = args.action
    try:
        if action == "list":
            return _list(incidents, show_all=args.all, as_json=args.json)
        if action == "clear":
            changed = incidents.clear(injection_id=args.injection_id)
            now = _now()
            for inj in changed:
                print(f"cleared {inj.describe(now)}")
            if not changed:
                print("no active injections")
            return 0
        if args.minutes is None:
            raise InjectionError(f"`fleetscope incident {action}` needs --minutes N")
        if action not in KINDS:
            raise InjectionError(f"unknown incident kind {action!r}; choose one of: {', '.join(KINDS)}")
        injection = incidents.add(action, minutes=args.minutes, intensity=args.intensity, target=args.target)
        print(f"injected {injection.describe(_now())}")
        print(f"recorded in {incidents.path}")
        return 0
    except InjectionError as err:
        print(f"fleetscope incident: {err}", file=sys.stderr)
        return 2
    except IncidentFileError as err:
        print(f"fleetscope incident: {err}", file=sys.stderr)
        return 1


def _list(incidents: IncidentFile, *, show_all: bool, as_json: bool) -> int:
    now = _now()
    shown = [i for i in incidents.read() if show_all or i.end > now - RECENT]
    for inj in shown:
        print(inj.model_dump_json() if as_json else inj.describe(now))
    if not shown and not as_json:
        print("no active or recent injections" + ("" if show_all else " (--all shows every one)"))
    return 0
