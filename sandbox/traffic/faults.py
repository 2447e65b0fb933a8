"""Incident injection for the sandbox, applied around the handlers like AWS FIS Lambda actions.

`fleetscope incident KIND --minutes N [--intensity X] [--target FUNCTION]` records an injection in
``${FLEETSCOPE_HOME:-.fleetscope}/incidents.json``; the running sandbox (another process) re-reads
the file when its mtime changes and applies it through `FileFaultInjector`, which is both the
runtime's `FaultHook` and the fleet simulator's `FleetControls`. The service code never knows.

The incidents file and its kinds are `sandbox.home.incidents` (the dashboard injects through it
too); on a corrupt file a running injector keeps the last good state and reports the problem once.

Kinds and what ``--intensity`` means for each (defaults in `KINDS`):

| kind | effect | intensity |
|---|---|---|
| error-burst | a share of the target's invocations raise (→ Errors, API 5XX) | share of invocations, (0, 1] |
| latency | added delay inside each invocation, as after a bad deploy | seconds added, (0, 30] |
| throttling | a share of invocations is throttled (→ Lambda Throttles, API 500) | share, (0, 1] |
| cold-start-storm | a share of invocations re-initialise the function | share, (0, 1] |
| traffic-drop | the fleet's request rate falls | share of traffic lost, (0, 1] |
| traffic-spike | the fleet's request rate rises | rate multiplier, (1, 20] |
| poison-telemetry | broken telemetry (bad clock or unknown car → DLQ) | share of messages, (0, 1] |
| consumer-stall | the telemetry-ingest poller stops (→ queue age grows) | share of polls skipped, (0, 1] |
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sandbox.aws.hooks import NO_ACTION, FaultAction
from sandbox.home.incidents import (
    FUNCTION_KEYS,
    KINDS,
    IncidentFile,
    IncidentFileError,
    Injection,
    InjectionError,
    utc_now,
)

RECENT = timedelta(hours=1)


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
        clock: Callable[[], datetime] = utc_now,
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
        if function_key == "outbox-relay" and self.eventbridge_fails():
            # The relay's PutEvents fails: the invocation errors, the stream mapping retries, then gives up.
            return FaultAction(raise_error="Injected fault (eventbridge-outage): PutEvents unavailable")
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

    def eventbridge_fails(self) -> bool:
        """Whether one PutEvents call fails now (an `eventbridge-outage` of intensity 1 fails every call)."""
        return self._chance(self._strongest("eventbridge-outage"))

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
            now = utc_now()
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
        print(f"injected {injection.describe(utc_now())}")
        print(f"recorded in {incidents.path}")
        return 0
    except InjectionError as err:
        print(f"fleetscope incident: {err}", file=sys.stderr)
        return 2
    except IncidentFileError as err:
        print(f"fleetscope incident: {err}", file=sys.stderr)
        return 1


def _list(incidents: IncidentFile, *, show_all: bool, as_json: bool) -> int:
    now = utc_now()
    shown = [i for i in incidents.read() if show_all or i.end > now - RECENT]
    for inj in shown:
        print(inj.model_dump_json() if as_json else inj.describe(now))
    if not shown and not as_json:
        print("no active or recent injections" + ("" if show_all else " (--all shows every one)"))
    return 0
