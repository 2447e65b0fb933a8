"""Stage settings of the CDK app, parsed from CDK context (``cdk.json`` and ``-c key=value``).

``cdk.json`` holds a preset per stage under ``stages``; command-line context overrides single keys:

    npx cdk deploy --all -c stage=prod -c alertEmails=ops@example.com,oncall@example.com

Command-line context values arrive as strings, so lists accept ``a,b`` and mappings accept JSON.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from contract.runbooks import DEFAULT_RUNBOOK_BASE_URL

# The retention periods CloudWatch Logs accepts (days).
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557)
_EMAIL = re.compile(r"^[^@\s,]+@[^@\s,]+\.[^@\s,]+$")
_STAGE = re.compile(r"^[a-z][a-z0-9-]{1,15}$")

# Keys read from context, besides the per-stage presets.
CONTEXT_KEYS = (
    "alertEmails",
    "logRetentionDays",
    "canary",
    "memoryMb",
    "removalPolicy",
    "apiThrottle",
    "logEventPositions",
    "runbookBaseUrl",
    "canaryOnInconclusive",
)


class SettingsError(ValueError):
    """Bad stage settings in CDK context; the message says which key and why."""


class ApiThrottle(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    rate_limit: float = Field(default=50, gt=0, alias="rateLimit", description="steady requests/s")
    burst_limit: int = Field(default=100, gt=0, alias="burstLimit", description="burst requests")
    # POST /cars/{car_id}/telemetry: a method throttle of its own (every car reports every ~20 s, so the
    # fleet's telemetry must neither starve the inventory routes nor be starved by them).
    telemetry_rate_limit: float = Field(
        default=100, gt=0, alias="telemetryRateLimit", description="steady telemetry readings/s"
    )
    telemetry_burst_limit: int = Field(
        default=200, gt=0, alias="telemetryBurstLimit", description="burst telemetry readings"
    )


class StageSettings(BaseModel):
    """What differs between stages; everything else comes from ``contract.topology``."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    stage: str
    alert_emails: tuple[str, ...] = Field(default=(), alias="alertEmails")
    log_retention_days: int = Field(default=14, alias="logRetentionDays")
    canary: bool = True
    memory_mb: dict[str, int] = Field(default_factory=dict, alias="memoryMb")
    removal_policy: Literal["destroy", "retain"] = Field(default="destroy", alias="removalPolicy")
    api_throttle: ApiThrottle = Field(default_factory=ApiThrottle, alias="apiThrottle")
    runbook_base_url: str = Field(
        default=DEFAULT_RUNBOOK_BASE_URL,
        alias="runbookBaseUrl",
        description="where docs/runbooks/ is published; every alarm and alert links <base>/<page>/",
    )
    canary_on_inconclusive: Literal["promote", "rollback"] = Field(
        default="promote",
        alias="canaryOnInconclusive",
        description="the canary judge's FLEETSCOPE_CANARY_ON_INCONCLUSIVE: what a canary still "
        "INCONCLUSIVE at its last look does",
    )
    log_event_positions: bool = Field(
        default=False,
        alias="logEventPositions",
        description="copy whole fleet events (VIN, position) to the event log group, not only ids and status",
    )

    @field_validator("stage")
    @classmethod
    def _stage_name(cls, value: str) -> str:
        if not _STAGE.match(value):
            raise ValueError(
                "must be 2-16 characters: lower-case letters, digits and '-', starting with a letter"
            )
        return value

    @field_validator("alert_emails", mode="before")
    @classmethod
    def _split_emails(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("alert_emails")
    @classmethod
    def _valid_emails(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [address for address in value if not _EMAIL.match(address)]
        if bad:
            raise ValueError(f"not e-mail addresses: {', '.join(bad)}")
        return value

    @field_validator("log_retention_days")
    @classmethod
    def _valid_retention(cls, value: int) -> int:
        if value not in LOG_RETENTION_DAYS:
            raise ValueError(f"CloudWatch Logs accepts only {LOG_RETENTION_DAYS}")
        return value

    @field_validator("memory_mb", "api_throttle", mode="before")
    @classmethod
    def _json_mapping(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return json.loads(value)
            except json.JSONDecodeError as exc:
                raise ValueError(f"expected a JSON object, got {value!r}") from exc
        return value

    @field_validator("memory_mb")
    @classmethod
    def _valid_memory(cls, value: dict[str, int]) -> dict[str, int]:
        for key, mb in value.items():
            if not 128 <= mb <= 10240:
                raise ValueError(f"{key}: Lambda memory must be 128..10240 MB, got {mb}")
        return value

    @field_validator("runbook_base_url")
    @classmethod
    def _valid_runbook_base(cls, value: str) -> str:
        if not re.match(r"^https?://[^\s/]+(/\S*)?$", value):
            raise ValueError(f"runbookBaseUrl must be an http(s) URL, got {value!r}")
        return value

    def memory_for(self, function_key: str, default: int) -> int:
        return self.memory_mb.get(function_key, default)


def stage_settings(try_get_context: Callable[[str], Any]) -> StageSettings:
    """Read ``stage``, its preset under ``stages`` and any overriding keys from CDK context."""
    stage = try_get_context("stage") or "dev"
    presets = try_get_context("stages") or {}
    if isinstance(presets, str):
        presets = json.loads(presets)
    if not isinstance(presets, Mapping):
        raise SettingsError("context 'stages' must be an object of stage name -> settings")
    raw: dict[str, Any] = dict(presets.get(stage, {}))
    for key in CONTEXT_KEYS:
        value = try_get_context(key)
        if value is not None:
            raw[key] = value
    raw["stage"] = stage
    try:
        return StageSettings.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'context'}: {error['msg']}"
            for error in exc.errors()
        )
        raise SettingsError(f"invalid CDK context for stage {stage!r}: {problems}") from None
