"""The sandbox's home (``$FLEETSCOPE_HOME``): its settings, the files in it, and how to start a sandbox.

This package is all that code outside the sandbox (the dashboard) may import from `sandbox`, and it
imports no other part of the sandbox (`make lint` checks both):

- `settings`: `SandboxSettings` / `read_settings()`, the documented `FLEETSCOPE_*` variables;
- `state`: `sandbox.json` as one model (`SandboxState`), written and read only here, and `pid_alive`;
- `incidents`: `incidents.json` (`IncidentFile`) and the incident kinds (`KINDS`);
- `embedded`: `EmbeddedSandbox`, a ``fleetscope sandbox up --no-dashboard`` child process.
"""

from sandbox.home.embedded import EmbeddedSandbox
from sandbox.home.incidents import KINDS, IncidentFile, IncidentFileError, Injection, InjectionError
from sandbox.home.settings import HomeSettings, SandboxSettings, SettingsError, fleetscope_home, read_settings
from sandbox.home.state import (
    STATE_FILE,
    SandboxState,
    StateFileError,
    pid_alive,
    read_state,
    remove_state,
    state_path,
    wait_for_state,
    write_state,
)

__all__ = [
    "KINDS",
    "STATE_FILE",
    "EmbeddedSandbox",
    "HomeSettings",
    "IncidentFile",
    "IncidentFileError",
    "Injection",
    "InjectionError",
    "SandboxSettings",
    "SandboxState",
    "SettingsError",
    "StateFileError",
    "fleetscope_home",
    "pid_alive",
    "read_settings",
    "read_state",
    "remove_state",
    "state_path",
    "wait_for_state",
    "write_state",
]
