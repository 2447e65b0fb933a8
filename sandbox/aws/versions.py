"""Lambda alias routing in the local runtime: which published version serves an invocation of ``live``.

`AliasRouter` reads the alias file (`sandbox.home.aliases`) when it changes (checked at most every
`recheck_s`) and picks, per invocation, the alias's extra version with its weight and the primary
version otherwise, as Lambda's weighted alias routing does. The pick comes with the fault the
version was published with (``fleetscope deploy --fault``), as a `FaultAction` for the runtime.
A corrupt file keeps the last good routing and is reported once.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from sandbox.aws.hooks import NO_ACTION, FaultAction
from sandbox.home.aliases import ALIASED_FUNCTIONS, AliasesDocument, AliasFile, AliasFileError, VersionFault

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RoutedVersion:
    version: str  # "1", "2", ...
    fault: FaultAction = NO_ACTION


class AliasRouter:
    """Thread-safe weighted routing of the ``live`` alias of the aliased functions."""

    def __init__(
        self, home: Path | str | None = None, *, rng: random.Random | None = None, recheck_s: float = 0.25
    ) -> None:
        self.file = AliasFile(home)
        self._rng = rng or random.Random()
        self._recheck_s = recheck_s
        self._lock = threading.Lock()
        self._checked_at = float("-inf")
        self._signature: tuple[int, int, int] | None = None
        self._document = AliasesDocument()
        self._last_error: str | None = None

    def route(self, function_key: str) -> RoutedVersion | None:
        """The version serving this invocation; None for a function not invoked through an alias."""
        if function_key not in ALIASED_FUNCTIONS:
            return None
        self._refresh()
        with self._lock:
            alias = self._document.functions.get(function_key)
            if alias is None:
                return RoutedVersion("1")
            version = alias.version
            if alias.canary_version is not None and self._rng.random() < alias.canary_weight:
                version = alias.canary_version
            return RoutedVersion(str(version), self._action(alias.versions.get(version)))

    def _action(self, fault: VersionFault | None) -> FaultAction:
        if fault is None:
            return NO_ACTION
        if fault.kind == "latency":
            return FaultAction(delay_s=fault.intensity * self._rng.uniform(0.85, 1.15))
        hit = self._rng.random() < fault.intensity
        if not hit:
            return NO_ACTION
        if fault.kind == "error-burst":
            return FaultAction(raise_error="Injected fault (error-burst) in the new version")
        if fault.kind == "throttling":
            return FaultAction(throttle=True)
        return FaultAction(cold_start=True)

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
            document = self.file.read()
        except AliasFileError as err:
            with self._lock:
                self._signature = signature
                if str(err) != self._last_error:
                    self._last_error = str(err)
                    log.error("alias routing unchanged: %s", err)
            return
        with self._lock:
            self._signature, self._document, self._last_error = signature, document, None


def merge(hook: FaultAction, version: FaultAction) -> FaultAction:
    """The fault-injection hook's action and the version's fault, applied together."""
    if version.is_noop:
        return hook
    return FaultAction(
        delay_s=hook.delay_s + version.delay_s,
        raise_error=hook.raise_error or version.raise_error,
        throttle=hook.throttle or version.throttle,
        cold_start=hook.cold_start or version.cold_start,
    )
