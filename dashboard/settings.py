"""Settings of the dashboard, read once from the environment through a cached `get_settings()`.

- `FLEETSCOPE_TARGET` (`auto`): `auto` = a running sandbox, else an embedded one it starts;
  `sandbox` = a running sandbox only; `aws` = the real deployment (standard AWS credentials).
- `FLEETSCOPE_STAGE`: the stage shown on AWS (default `prod`); a sandbox names its own stage.
- `AWS_REGION` / `AWS_DEFAULT_REGION` (`us-east-1`): the deployment's region on AWS.
- `FLEETSCOPE_HOME` (`.fleetscope`): where a sandbox writes `sandbox.json` and its inbox `alerts.jsonl`
  (the sandbox's own setting, `sandbox.home.settings.HomeSettings`).
- `FLEETSCOPE_SANDBOX_TIMEOUT_S` (180): how long to wait for an embedded sandbox to come up.
- `FLEETSCOPE_POWER_CURVE` (`benchmarks/out/power_tuning.json` of this checkout): the memory → duration →
  cost curve `python -m benchmarks bench_power_tuning` saves; the Cost page's right-sizing reads it.

Every field is read from its alias only (no `populate_by_name`: `home` would otherwise come from `$HOME`).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field

from sandbox.home import HomeSettings, state_path

DEFAULT_POWER_CURVE = Path(__file__).resolve().parents[1] / "benchmarks" / "out" / "power_tuning.json"
TargetKind = Literal["auto", "sandbox", "aws"]


class DashboardSettings(HomeSettings):
    target: TargetKind = Field(default="auto", validation_alias="FLEETSCOPE_TARGET")
    stage: str | None = Field(default=None, min_length=1, validation_alias="FLEETSCOPE_STAGE")
    region: str = Field(
        default="us-east-1", validation_alias=AliasChoices("AWS_REGION", "AWS_DEFAULT_REGION")
    )
    sandbox_start_timeout_s: float = Field(
        default=180.0, gt=0, validation_alias="FLEETSCOPE_SANDBOX_TIMEOUT_S"
    )
    power_curve: Path = Field(default=DEFAULT_POWER_CURVE, validation_alias="FLEETSCOPE_POWER_CURVE")

    @property
    def sandbox_file(self) -> Path:
        return state_path(self.home)

    @property
    def inbox_file(self) -> Path:
        return self.home / "alerts.jsonl"


@cache
def get_settings() -> DashboardSettings:
    return DashboardSettings()
