"""The alias file ``$FLEETSCOPE_HOME/aliases.json``: the published versions of each function and how
its ``live`` alias routes, as Lambda's alias routing configuration does.

`fleetscope deploy` (sandbox.aws.deploy) publishes versions and moves the weights; the running
sandbox's runtime (`sandbox.aws.versions.AliasRouter`) re-reads the file when it changes and routes
each invocation of the alias to a version by weight. A version is the same code as the others (the
sandbox runs the working tree); a version published with ``--fault`` carries one per-function
incident kind (`sandbox.home.incidents.KINDS`) that the runtime applies to that version only.

Functions absent from the file have one version, 1, that takes all of ``live``'s traffic. Writes are
atomic under an exclusive lock, as for the incidents file; a corrupt file is never overwritten.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from contract.topology import CANARY_FUNCTIONS
from contract.topology import LIVE_ALIAS as LIVE_ALIAS
from sandbox.home.incidents import KINDS
from sandbox.home.settings import fleetscope_home

ALIASES_FILE = "aliases.json"
ALIASED_FUNCTIONS = CANARY_FUNCTIONS  # deploy through `live` (infra: CodeDeploy)
VERSION_FAULT_KINDS = ("error-burst", "latency", "throttling", "cold-start-storm")


class AliasFileError(RuntimeError):
    """The alias file cannot be read or written."""


def version_fault(kind: str | None, intensity: float | None) -> VersionFault | None:
    """The fault a CLI's ``--fault KIND [--intensity X]`` asks for (None without one); ValueError with the
    message for the user when the kind or the intensity is not one `fleetscope incident` accepts."""
    if kind is None:
        if intensity is not None:
            raise ValueError("--intensity needs --fault")
        return None
    if kind not in VERSION_FAULT_KINDS:
        raise ValueError(f"--fault {kind!r}: choose one of {', '.join(VERSION_FAULT_KINDS)}")
    spec = KINDS[kind]
    value = spec.default_intensity if intensity is None else intensity
    if not spec.low < value <= spec.high:
        raise ValueError(f"--intensity of {kind} must be in ({spec.low:g}, {spec.high:g}]")
    return VersionFault(kind=kind, intensity=value)


class VersionFault(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: str
    intensity: float

    @model_validator(mode="after")
    def _check(self) -> VersionFault:
        if self.kind not in VERSION_FAULT_KINDS:
            raise ValueError(f"a version fault is one of {', '.join(VERSION_FAULT_KINDS)}, not {self.kind!r}")
        return self


def _first_version() -> dict[int, VersionFault | None]:
    return {1: None}


class FunctionAlias(BaseModel):
    """Versions of one function (number -> fault or None) and the ``live`` alias's routing."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    versions: dict[int, VersionFault | None] = Field(default_factory=lambda: _first_version())
    version: int = 1  # the alias's primary version
    canary_version: int | None = None  # AdditionalVersionWeights: one extra version ...
    canary_weight: float = Field(default=0.0, ge=0.0, le=1.0)  # ... and its share of invocations

    @model_validator(mode="after")
    def _check(self) -> FunctionAlias:
        for v in (self.version, self.canary_version):
            if v is not None and v not in self.versions:
                raise ValueError(f"the alias routes to version {v}, which is not published")
        return self

    @property
    def latest(self) -> int:
        return max(self.versions)


class AliasesDocument(BaseModel):
    model_config = ConfigDict(extra="forbid")

    functions: dict[str, FunctionAlias] = Field(default_factory=dict)


class AliasFile:
    """The alias file of one FLEETSCOPE_HOME: locked read-modify-write, atomic replace."""

    def __init__(self, home: Path | str | None = None) -> None:
        self.home = Path(home) if home is not None else fleetscope_home()
        self.path = self.home / ALIASES_FILE
        self.lock_path = self.home / (ALIASES_FILE + ".lock")

    def read(self) -> AliasesDocument:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return AliasesDocument()
        except OSError as err:
            raise AliasFileError(f"cannot read {self.path}: {err}") from err
        try:
            return AliasesDocument.model_validate_json(raw)
        except ValidationError as err:
            raise AliasFileError(
                f"{self.path} is corrupt ({err.error_count()} errors); left untouched"
            ) from err

    def alias(self, function_key: str) -> FunctionAlias:
        return self.read().functions.get(function_key) or FunctionAlias()

    def update(self, function_key: str, change: Callable[[FunctionAlias], FunctionAlias]) -> FunctionAlias:
        """Apply `change` to one function's alias under the lock and write the file atomically."""
        with self._locked():
            document = self.read()
            updated = change(document.functions.get(function_key) or FunctionAlias())
            document.functions[function_key] = updated
            self._write(document)
            return updated

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.home.mkdir(parents=True, exist_ok=True)
        with open(self.lock_path, "a+") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    def _write(self, document: AliasesDocument) -> None:
        fd, tmp = tempfile.mkstemp(prefix=".aliases-", suffix=".tmp", dir=self.home)
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(document.model_dump_json(indent=2) + "\n")
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
