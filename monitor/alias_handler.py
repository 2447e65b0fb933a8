"""Lambda entry point: records a plain ``live`` alias update (CloudTrail UpdateAlias) as a deployment.

An EventBridge rule (infra/constructs/alias_updates.py) sends Lambda's UpdateAlias calls on the
canary functions' ``live`` alias, as CloudTrail records them, here. The handler parses the event
(`monitor.alias_updates`, pure), reads the function's deployments of the last 30 days to know which
version the alias routed to before (CloudTrail does not say), or which canary set by hand this update
ends, and writes the `Deployment` to the
monitor table through `DynamoDbDeploymentLog`. Calls made by CodeDeploy, failed calls, other aliases
and functions the stage does not deploy through ``live`` are skipped (``{"recorded": false, ...}``);
a malformed event raises `AliasUpdateEventError` and nothing is written.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from contract.topology import CANARY_FUNCTIONS, LIVE_ALIAS, topology
from monitor.alias_updates import Skipped, alias_update_deployment, last_deployment, parse_update_alias_event
from monitor.deployments import RETENTION, DynamoDbDeploymentLog

logger = logging.getLogger(__name__)


def record_alias_update(event: dict[str, Any], *, log: DynamoDbDeploymentLog, stage: str) -> dict[str, Any]:
    update = parse_update_alias_event(event, aliases=(LIVE_ALIAS,))
    if isinstance(update, Skipped):
        logger.info("alias update not recorded: %s", update.reason)
        return {"recorded": False, "reason": update.reason}
    keys = {fn.name: fn.key for fn in topology(stage).functions if fn.key in CANARY_FUNCTIONS}
    function = keys.get(update.function_name)
    if function is None:
        reason = f"{update.function_name} does not deploy through {LIVE_ALIAS} in stage {stage}"
        logger.info("alias update not recorded: %s", reason)
        return {"recorded": False, "reason": reason}
    earlier = log.between(update.at - RETENTION, update.at - timedelta(microseconds=1))
    last = last_deployment(earlier, update.function_name)
    deployment = alias_update_deployment(update, function=function, last=last)
    if deployment is None:
        return {
            "recorded": False,
            "reason": f"the alias already routed all traffic to version {update.version}",
        }
    log.put(deployment)
    return {"recorded": True, "deployment": deployment.summary()}


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    from monitor.settings import get_settings

    settings = get_settings()
    return record_alias_update(
        event, log=DynamoDbDeploymentLog(settings.monitor_table_name), stage=settings.stage
    )
