"""Plain alias updates as deployments: Lambda's UpdateAlias outside CodeDeploy, from CloudTrail.

Someone who shifts the ``live`` alias by hand (``aws lambda update-alias``, a script, a console click)
deploys as surely as CodeDeploy does, and an incident that follows should say so. CloudTrail records
the call; EventBridge delivers it as an "AWS API Call via CloudTrail" event (source ``aws.lambda``,
``detail.eventName`` ``UpdateAlias20150331`` or similar) to ``monitor/alias_handler.py``, which turns
it into a `monitor.deployments.Deployment` in the monitor table, where incidents find it.

Pure, in two steps:

- `parse_update_alias_event(event) -> AliasUpdate | Skipped`: the event's facts (function, alias,
  primary version, the weighted additional version and its weight, when, who). A call that is not
  ours to record — made by CodeDeploy itself (``userIdentity.invokedBy`` or ``sourceIPAddress``
  ``codedeploy.amazonaws.com``: the CodeDeploy judging loop records that deployment), a failed call
  (``errorCode``), another alias — is `Skipped` with a reason. An event that is not an UpdateAlias
  call or lacks what one always carries raises `AliasUpdateEventError` (nothing is written).
- `alias_update_deployment(update, *, function, last) -> Deployment | None`: the record to write,
  given the function's last recorded deployment (`last_deployment`; CloudTrail does not say what the
  alias routed to before). With a weighted additional version the new version is the weighted one and
  it is a canary (``canary_percent`` = its weight, IN_PROGRESS, from the primary). Without one, the
  primary takes 100 %: if the last record is a canary set by hand and still IN_PROGRESS, this update
  ends it (SUCCEEDED when the primary is its new version, ROLLED_BACK when it is its old one: the same
  record, updated); otherwise it is a new SUCCEEDED deployment from the version the last record left
  the alias on (``unknown`` without one). An update that changes nothing is no deployment: None.

The sandbox's ``fleetscope alias`` builds an `AliasUpdate` from its arguments and records it through
the same `alias_update_deployment`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from monitor.deployments import Deployment, DeploymentState

CODEDEPLOY = "codedeploy.amazonaws.com"
DETAIL_TYPE = "AWS API Call via CloudTrail"
EVENT_NAME_PREFIX = "UpdateAlias"
UNKNOWN_VERSION = "unknown"
ID_PREFIX = "alias-"  # deployment ids of alias updates (CodeDeploy's are d-...)


class AliasUpdateEventError(ValueError):
    """The event is not a CloudTrail record of a Lambda UpdateAlias call, or lacks what one carries."""


class AliasUpdate(BaseModel):
    """What an UpdateAlias call did to one alias (its request, as Lambda applied it)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: str = Field(min_length=1)  # CloudTrail's eventID (or the sandbox's own id): idempotent
    function_name: str = Field(min_length=1)  # physical name, from a name or an ARN
    alias: str = Field(min_length=1)
    version: str = Field(min_length=1)  # the primary version
    additional_version: str | None = None  # AdditionalVersionWeights: one version ...
    weight: float = Field(default=0.0, ge=0.0, le=1.0)  # ... and its share of invocations
    at: datetime
    actor: str = ""  # userIdentity.arn (who did it), for the reasons


class Skipped(BaseModel):
    model_config = ConfigDict(frozen=True)

    reason: str


def function_name_of(name_or_arn: str) -> str:
    """``fn``, ``123:function:fn``, ``arn:aws:lambda:r:123:function:fn[:qualifier]`` -> ``fn``."""
    parts = name_or_arn.split(":")
    if "function" in parts:
        i = parts.index("function")
        if i + 1 < len(parts) and parts[i + 1]:
            return parts[i + 1]
        raise AliasUpdateEventError(f"functionName {name_or_arn!r} has no function name after 'function:'")
    if len(parts) == 1 and parts[0]:
        return parts[0]
    raise AliasUpdateEventError(f"functionName {name_or_arn!r} is neither a function name nor its ARN")


def _require(mapping: Mapping[str, Any], key: str, where: str) -> Any:
    value = mapping.get(key)
    if value is None or value == "":
        raise AliasUpdateEventError(f"{where} has no {key!r}")
    return value


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise AliasUpdateEventError(f"{where} is not an object (got {type(value).__name__})")
    return value


def _weights(parameters: Mapping[str, Any]) -> tuple[str | None, float]:
    routing = parameters.get("routingConfig")
    if routing is None:
        return None, 0.0
    weights = _mapping(_mapping(routing, "routingConfig").get("additionalVersionWeights") or {}, "weights")
    live = {str(v): w for v, w in weights.items()}
    if len(live) > 1:
        raise AliasUpdateEventError(f"additionalVersionWeights has {len(live)} versions; Lambda allows one")
    for version, weight in live.items():
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0.0 <= weight <= 1.0:
            raise AliasUpdateEventError(
                f"the weight of version {version} is {weight!r}, not a number in [0, 1]"
            )
        if weight > 0:
            return version, float(weight)
    return None, 0.0


def parse_update_alias_event(
    event: Mapping[str, Any], *, aliases: Sequence[str] = ("live",)
) -> AliasUpdate | Skipped:
    """The UpdateAlias call an EventBridge CloudTrail event records (see the module docstring)."""
    event = _mapping(event, "the event")
    if event.get("detail-type") != DETAIL_TYPE or event.get("source") != "aws.lambda":
        raise AliasUpdateEventError(
            f"not a Lambda CloudTrail event (source {event.get('source')!r}, "
            f"detail-type {event.get('detail-type')!r})"
        )
    detail = _mapping(event.get("detail"), "detail")
    name = str(_require(detail, "eventName", "detail"))
    if not name.startswith(EVENT_NAME_PREFIX):
        raise AliasUpdateEventError(f"eventName {name!r} is not an UpdateAlias call")
    identity = detail.get("userIdentity") or {}
    identity = _mapping(identity, "detail.userIdentity")
    if CODEDEPLOY in (identity.get("invokedBy"), detail.get("sourceIPAddress")):
        return Skipped(reason="made by CodeDeploy (its judging loop records that deployment)")
    if detail.get("errorCode"):
        return Skipped(reason=f"the call failed ({detail['errorCode']}): the alias did not change")
    parameters = _mapping(_require(detail, "requestParameters", "detail"), "detail.requestParameters")
    alias = str(_require(parameters, "name", "requestParameters"))
    function_name = function_name_of(str(_require(parameters, "functionName", "requestParameters")))
    if alias not in aliases:
        return Skipped(reason=f"alias {alias!r} of {function_name} is not watched ({', '.join(aliases)})")
    # Lambda applies the request; the response repeats the alias as it now is (fuller when present)
    response = detail.get("responseElements")
    applied = _mapping(response, "detail.responseElements") if response else parameters
    version = applied.get("functionVersion") or parameters.get("functionVersion")
    if not version:
        raise AliasUpdateEventError("neither responseElements nor requestParameters has 'functionVersion'")
    additional, weight = _weights(applied if "routingConfig" in applied else parameters)
    raw_time = str(_require(detail, "eventTime", "detail"))
    try:
        at = datetime.fromisoformat(raw_time.replace("Z", "+00:00"))
    except ValueError as err:
        raise AliasUpdateEventError(f"eventTime {raw_time!r} is not an ISO-8601 time") from err
    if at.tzinfo is None:
        raise AliasUpdateEventError(f"eventTime {raw_time!r} has no time zone")
    return AliasUpdate(
        event_id=str(_require(detail, "eventID", "detail")),
        function_name=function_name,
        alias=alias,
        version=str(version),
        additional_version=additional,
        weight=weight,
        at=at.astimezone(UTC),
        actor=str(identity.get("arn") or identity.get("principalId") or ""),
    )


def alias_update_deployment(
    update: AliasUpdate, *, function: str, last: Deployment | None, known_previous: str | None = None
) -> Deployment | None:
    """The deployment record an alias update writes (see the module docstring); None when it moved
    nothing. ``known_previous``: the primary version before the update when the caller knows it (the
    sandbox's alias file does; CloudTrail does not), instead of what the last record implies."""
    who = f" by {update.actor}" if update.actor else ""
    common = {
        "deployment_id": f"{ID_PREFIX}{update.event_id}",
        "function": function,
        "function_name": update.function_name,
        "started_at": update.at,
    }
    if update.additional_version is not None and update.additional_version != update.version:
        percent = round(update.weight * 100, 6)
        return Deployment(
            **common,
            from_version=update.version,
            to_version=update.additional_version,
            canary_percent=percent,
            state=DeploymentState.IN_PROGRESS,
            reasons=[
                f"alias {update.alias} updated outside CodeDeploy{who}: version {update.additional_version} "
                f"takes {percent:g} % beside version {update.version} (not judged)"
            ],
        )
    if (
        last is not None
        and last.state == DeploymentState.IN_PROGRESS
        and last.deployment_id.startswith(ID_PREFIX)
        and update.version in (last.from_version, last.to_version)
    ):
        promoted = update.version == last.to_version
        return last.model_copy(
            update={
                "state": DeploymentState.SUCCEEDED if promoted else DeploymentState.ROLLED_BACK,
                "ended_at": update.at,
                "reasons": [
                    *last.reasons,
                    f"alias {update.alias} updated outside CodeDeploy{who}: version {update.version} takes "
                    f"all traffic ({'promoted' if promoted else 'rolled back'})",
                ],
            }
        )
    previous = known_previous or (None if last is None else _routed_after(last))
    if previous == update.version:
        return None
    return Deployment(
        **common,
        from_version=previous or UNKNOWN_VERSION,
        to_version=update.version,
        canary_percent=100,
        state=DeploymentState.SUCCEEDED,
        ended_at=update.at,
        reasons=[
            f"alias {update.alias} updated outside CodeDeploy{who}: version {update.version} takes all "
            "traffic (not judged)"
        ],
    )


def _routed_after(deployment: Deployment) -> str:
    """The version a deployment left the alias on (all traffic): its new one if it succeeded."""
    return deployment.to_version if deployment.state == DeploymentState.SUCCEEDED else deployment.from_version


def last_deployment(deployments: Sequence[Deployment], function_name: str) -> Deployment | None:
    """The newest recorded deployment of the function, None without any."""
    mine = [d for d in deployments if d.function_name == function_name]
    return max(mine, key=lambda d: d.started_at) if mine else None
