"""The sandbox's settings: the documented `FLEETSCOPE_*` variables, each read through its alias.

| variable | default | meaning |
|---|---|---|
| `FLEETSCOPE_HOME` | `.fleetscope` | the state of a running sandbox (`sandbox.json`, `incidents.json`, ...) |
| `FLEETSCOPE_API_PORT` | 3000 | the local API gateway (0 = a free port) |
| `FLEETSCOPE_EMULATOR_PORT` | 5055 | the AWS emulator (0 = a free port) |
| `FLEETSCOPE_DASHBOARD_PORT` | 8501 | the dashboard `sandbox up` starts (0 = a free port) |
| `FLEETSCOPE_CALIBRATION_S` | 8 | seconds of live traffic measured to calibrate the history (0 = off) |

`MonitorOverrides` reads the two monitor settings a user may override for the sandbox's monitor
(`MONITOR_SETTLE_S`, `MONITOR_HISTORY_DAYS`; the sandbox's defaults are 10 s and 2 days) and the
dashboard URL its alerts link to (`MONITOR_DASHBOARD_URL`; default: the dashboard `sandbox up` starts).

An empty variable counts as unset. `read_settings()` reads the environment each time it is called
(the CLI and the orchestrator call it once per command or sandbox).
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

_S = TypeVar("_S", bound=BaseSettings)


class SettingsError(ValueError):
    """A `FLEETSCOPE_*` variable has a value the sandbox cannot use; the message names it."""


class HomeSettings(BaseSettings):
    """Where the sandbox keeps its state; all that the CLI's file commands need."""

    # No populate_by_name: a field is read from its alias only (`home` must never come from $HOME).
    model_config = SettingsConfigDict(frozen=True, extra="ignore", env_ignore_empty=True, case_sensitive=True)

    home: Path = Field(default=Path(".fleetscope"), validation_alias="FLEETSCOPE_HOME")


class SandboxSettings(HomeSettings):
    """Everything `fleetscope sandbox up` reads from the environment."""

    api_port: int = Field(default=3000, ge=0, le=65535, validation_alias="FLEETSCOPE_API_PORT")
    emulator_port: int = Field(default=5055, ge=0, le=65535, validation_alias="FLEETSCOPE_EMULATOR_PORT")
    dashboard_port: int = Field(default=8501, ge=0, le=65535, validation_alias="FLEETSCOPE_DASHBOARD_PORT")
    calibration_s: float = Field(default=8.0, validation_alias="FLEETSCOPE_CALIBRATION_S")


class MonitorOverrides(BaseSettings):
    """The monitor settings a user may set for the sandbox's monitor; unset = the sandbox's default."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore", env_ignore_empty=True, case_sensitive=True)

    settle_s: int | None = Field(default=None, ge=0, validation_alias="MONITOR_SETTLE_S")
    history_days: float | None = Field(default=None, gt=0, le=15, validation_alias="MONITOR_HISTORY_DAYS")
    dashboard_url: str | None = Field(default=None, validation_alias="MONITOR_DASHBOARD_URL")


_WHAT = {
    "FLEETSCOPE_API_PORT": "a port number (0-65535)",
    "FLEETSCOPE_EMULATOR_PORT": "a port number (0-65535)",
    "FLEETSCOPE_DASHBOARD_PORT": "a port number (0-65535)",
    "FLEETSCOPE_CALIBRATION_S": "a number of seconds",
    "MONITOR_SETTLE_S": "a whole number of seconds (>= 0)",
    "MONITOR_HISTORY_DAYS": "a number of days (0-15)",
}


def _read(cls: type[_S]) -> _S:
    try:
        return cls()
    except ValidationError as err:
        first = err.errors(include_url=False)[0]
        variable = str(first["loc"][0]) if first["loc"] else "FLEETSCOPE_*"
        raise SettingsError(f"{variable}={first['input']!r} is not {_WHAT.get(variable, 'valid')}") from err


def read_settings() -> SandboxSettings:
    """The settings from the environment; `SettingsError` names the variable that is wrong."""
    return _read(SandboxSettings)


def read_monitor_overrides() -> MonitorOverrides:
    """`MONITOR_SETTLE_S` / `MONITOR_HISTORY_DAYS` if set; `SettingsError` names a bad one."""
    return _read(MonitorOverrides)


def fleetscope_home() -> Path:
    """``$FLEETSCOPE_HOME`` or ``.fleetscope`` (relative to the working directory)."""
    return HomeSettings().home
