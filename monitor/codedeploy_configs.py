"""CodeDeploy deployment configurations, as the AWS judging loop needs them: how much traffic a Lambda
deployment gives the new version, and from which minute on a verdict is the canary's last look.

GetDeploymentConfig's ``deploymentConfigInfo.trafficRoutingConfig`` says how CodeDeploy shifts a Lambda
alias (``CodeDeployDefault.Lambda*`` or a custom config):

- ``TimeBasedCanary`` (``timeBasedCanary.canaryPercentage``, ``canaryInterval`` in minutes): the new
  version takes the percentage at once; ``canaryInterval`` minutes later CodeDeploy shifts the rest and
  the deployment ends. The judging loop is called about once a minute from the start, so the verdict
  judged when the canary has run ``canaryInterval - 1`` full minutes is the last one that comes before
  the full shift; the next call, a minute later, races it (`TrafficRouting.last_look_minutes`).
- ``TimeBasedLinear`` (``timeBasedLinear.linearPercentage`` every ``linearInterval`` minutes): every
  step gives the new version more traffic and evidence, and the step before the last already puts
  most traffic on it; no verdict is singled out as the last look (`last_look_minutes` is None).
- ``AllAtOnce``: no canary (percentage 100, no last look).

A config without a Lambda traffic routing (a server config), or one that cannot be read, is ``Unknown``:
no percentage, no last look. Configs never change under a name (CodeDeploy cannot update them), so
`CodeDeployDeploymentConfigs` reads each one once per process (the Lambda container) and keeps it.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field

logger = logging.getLogger(__name__)

RoutingKind = Literal["TimeBasedCanary", "TimeBasedLinear", "AllAtOnce", "Unknown"]


class TrafficRouting(BaseModel):
    """How one deployment config shifts traffic (GetDeploymentConfig's ``trafficRoutingConfig``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    config_name: str
    kind: RoutingKind
    percent: float | None = Field(default=None, ge=0, le=100)  # the canary's (first step's) share
    interval_minutes: int | None = Field(default=None, ge=0)

    @classmethod
    def from_config_info(cls, info: dict[str, Any]) -> TrafficRouting:
        """From GetDeploymentConfig's ``deploymentConfigInfo``."""
        name = str(info.get("deploymentConfigName", ""))
        routing = info.get("trafficRoutingConfig") or {}
        kind = routing.get("type")
        if kind == "TimeBasedCanary" and "timeBasedCanary" in routing:
            step = routing["timeBasedCanary"]
            return cls(
                config_name=name,
                kind=kind,
                percent=float(step["canaryPercentage"]),
                interval_minutes=int(step["canaryInterval"]),
            )
        if kind == "TimeBasedLinear" and "timeBasedLinear" in routing:
            step = routing["timeBasedLinear"]
            return cls(
                config_name=name,
                kind=kind,
                percent=float(step["linearPercentage"]),
                interval_minutes=int(step["linearInterval"]),
            )
        if kind == "AllAtOnce":
            return cls(config_name=name, kind=kind, percent=100.0)
        return cls(config_name=name, kind="Unknown")

    @property
    def last_look_minutes(self) -> int | None:
        """Full minutes the canary must have run for its verdict to be a last look, or None (no last look).

        A TimeBasedCanary: ``canaryInterval - 1``. The loop judges about once a minute; the call after
        that one may come when CodeDeploy has shifted all traffic and finished, so waiting for
        ``canaryInterval`` full minutes would usually judge too late to stop anything."""
        if self.kind == "TimeBasedCanary" and self.interval_minutes is not None:
            return max(0, self.interval_minutes - 1)
        return None


class CodeDeployDeploymentConfigs:
    """GetDeploymentConfig through a boto3 CodeDeploy client, each config read once and kept."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._known: dict[str, TrafficRouting] = {}

    def routing(self, config_name: str) -> TrafficRouting:
        """The config's traffic routing; ``Unknown`` (and read again next time) when it cannot be read."""
        if config_name in self._known:
            return self._known[config_name]
        try:
            info = self._client.get_deployment_config(deploymentConfigName=config_name)[
                "deploymentConfigInfo"
            ]
        except ClientError as err:
            logger.warning("cannot read deployment config %s: %s", config_name, err)
            return TrafficRouting(config_name=config_name, kind="Unknown")
        routing = TrafficRouting.from_config_info({"deploymentConfigName": config_name, **info})
        self._known[config_name] = routing
        return routing
