"""Plain alias updates (CloudTrail UpdateAlias through EventBridge) recorded as deployments: the pure
parsing, table-driven, and the handler that writes the record (or nothing)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from contract.topology import topology
from monitor.alias_handler import record_alias_update
from monitor.alias_updates import (
    AliasUpdate,
    AliasUpdateEventError,
    Skipped,
    alias_update_deployment,
    function_name_of,
    parse_update_alias_event,
)
from monitor.deployments import Deployment, DeploymentState

TOPO = topology("prod")
CARS = TOPO.cars_api.name
AT = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def cloudtrail_event(**detail: Any) -> dict[str, Any]:
    """An EventBridge "AWS API Call via CloudTrail" event of `aws lambda update-alias` (as delivered)."""
    base: dict[str, Any] = {
        "eventVersion": "1.08",
        "userIdentity": {
            "type": "AssumedRole",
            "principalId": "AROAEXAMPLE:alice",
            "arn": "arn:aws:sts::123456789012:assumed-role/Admin/alice",
        },
        "eventTime": "2026-12-01T12:00:00Z",
        "eventSource": "lambda.amazonaws.com",
        "eventName": "UpdateAlias20150331",
        "awsRegion": "eu-west-1",
        "sourceIPAddress": "203.0.113.7",
        "requestParameters": {
            "functionName": f"arn:aws:lambda:eu-west-1:123456789012:function:{CARS}",
            "name": "live",
            "functionVersion": "7",
            "routingConfig": {"additionalVersionWeights": {"8": 0.1}},
        },
        "responseElements": {
            "aliasArn": f"arn:aws:lambda:eu-west-1:123456789012:function:{CARS}:live",
            "name": "live",
            "functionVersion": "7",
            "routingConfig": {"additionalVersionWeights": {"8": 0.1}},
            "revisionId": "r-1",
        },
        "requestID": "req-1",
        "eventID": "ev-1",
        "readOnly": False,
        "eventType": "AwsApiCall",
    }
    base.update(detail)
    return {
        "version": "0",
        "id": "eb-1",
        "detail-type": "AWS API Call via CloudTrail",
        "source": "aws.lambda",
        "account": "123456789012",
        "time": "2026-12-01T12:00:01Z",
        "region": "eu-west-1",
        "resources": [],
        "detail": base,
    }


def _without(event: dict[str, Any], *path: str) -> dict[str, Any]:
    out = copy.deepcopy(event)
    node = out
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    return out


def _promote(version: str = "8") -> dict[str, Any]:
    params = {"functionName": CARS, "name": "live", "functionVersion": version}
    return cloudtrail_event(
        requestParameters=params,
        responseElements=params | {"routingConfig": {"additionalVersionWeights": {}}},
    )


@pytest.mark.parametrize(
    ("name", "event", "expected"),
    [
        (
            "weighted canary by hand",
            cloudtrail_event(),
            {"version": "7", "additional_version": "8", "weight": 0.1, "function_name": CARS},
        ),
        ("promotion: the new version takes all", _promote(), {"version": "8", "additional_version": None}),
        (
            "a function given by name, no response elements",
            _without(_promote(), "detail", "responseElements"),
            {"version": "8", "function_name": CARS},
        ),
        (
            "a zero weight is no canary",
            cloudtrail_event(
                responseElements={
                    "functionVersion": "7",
                    "routingConfig": {"additionalVersionWeights": {"8": 0}},
                }
            ),
            {"version": "7", "additional_version": None, "weight": 0.0},
        ),
    ],
)
def test_update_alias_events_parse_to_what_the_call_did(
    name: str, event: dict[str, Any], expected: dict[str, Any]
) -> None:
    update = parse_update_alias_event(event)
    assert isinstance(update, AliasUpdate), name
    assert update.model_dump(include=set(expected)) == expected, name
    assert (update.at, update.event_id, update.alias) == (AT, "ev-1", "live")


@pytest.mark.parametrize(
    ("name", "event", "reason"),
    [
        (
            "CodeDeploy's own shift (invokedBy)",
            cloudtrail_event(userIdentity={"type": "AWSService", "invokedBy": "codedeploy.amazonaws.com"}),
            "CodeDeploy",
        ),
        (
            "CodeDeploy's own shift (source IP)",
            cloudtrail_event(sourceIPAddress="codedeploy.amazonaws.com"),
            "CodeDeploy",
        ),
        ("a failed call", cloudtrail_event(errorCode="ResourceConflictException"), "failed"),
        (
            "another alias",
            cloudtrail_event(
                requestParameters={"functionName": CARS, "name": "beta", "functionVersion": "8"},
                responseElements=None,
            ),
            "not watched",
        ),
    ],
)
def test_calls_that_are_not_ours_to_record_are_skipped_with_a_reason(
    name: str, event: dict[str, Any], reason: str
) -> None:
    skipped = parse_update_alias_event(event)
    assert isinstance(skipped, Skipped), name
    assert reason in skipped.reason, name


@pytest.mark.parametrize(
    ("name", "event", "message"),
    [
        ("not an object", [], "not an object"),
        (
            "another source",
            cloudtrail_event() | {"source": "aws.codedeploy"},
            "not a Lambda CloudTrail event",
        ),
        ("no detail", _without(cloudtrail_event(), "detail"), "detail is not an object"),
        ("another API call", cloudtrail_event(eventName="PublishVersion20150331"), "not an UpdateAlias call"),
        (
            "no request parameters",
            _without(cloudtrail_event(), "detail", "requestParameters"),
            "requestParameters",
        ),
        (
            "no function",
            _without(cloudtrail_event(), "detail", "requestParameters", "functionName"),
            "functionName",
        ),
        (
            "no version anywhere",
            cloudtrail_event(requestParameters={"functionName": CARS, "name": "live"}, responseElements=None),
            "functionVersion",
        ),
        (
            "two weighted versions",
            cloudtrail_event(
                responseElements={
                    "functionVersion": "7",
                    "routingConfig": {"additionalVersionWeights": {"8": 0.1, "9": 0.1}},
                }
            ),
            "Lambda allows one",
        ),
        (
            "a weight that is no number",
            cloudtrail_event(
                responseElements={
                    "functionVersion": "7",
                    "routingConfig": {"additionalVersionWeights": {"8": "10%"}},
                }
            ),
            "not a number",
        ),
        ("a time without zone", cloudtrail_event(eventTime="2026-12-01T12:00:00"), "time zone"),
        ("a time that is no time", cloudtrail_event(eventTime="yesterday"), "ISO-8601"),
        ("no event id", _without(cloudtrail_event(), "detail", "eventID"), "eventID"),
    ],
)
def test_malformed_events_raise_a_clear_error(name: str, event: Any, message: str) -> None:
    with pytest.raises(AliasUpdateEventError, match=message):
        parse_update_alias_event(event)


@pytest.mark.parametrize(
    ("given", "name"),
    [
        ("fn", "fn"),
        ("123456789012:function:fn", "fn"),
        ("arn:aws:lambda:eu-west-1:123456789012:function:fn", "fn"),
        ("arn:aws:lambda:eu-west-1:123456789012:function:fn:live", "fn"),
    ],
)
def test_function_names_come_from_names_and_arns(given: str, name: str) -> None:
    assert function_name_of(given) == name


def test_a_weighted_update_is_an_in_progress_canary_and_a_full_one_a_succeeded_deployment() -> None:
    # Given CodeDeploy promoted version 7 yesterday
    seven = _codedeploy("7", DeploymentState.SUCCEEDED, AT - timedelta(days=1))
    canary = parse_update_alias_event(cloudtrail_event())
    assert isinstance(canary, AliasUpdate)
    # When version 8 gets 10 % by hand, Then that is a canary in progress from 7, not judged
    record = alias_update_deployment(canary, function="cars-api", last=seven)
    assert record is not None
    assert (record.from_version, record.to_version, record.canary_percent, record.state) == (
        "7",
        "8",
        10.0,
        DeploymentState.IN_PROGRESS,
    )
    assert (record.deployment_id, record.verdict) == ("alias-ev-1", None)
    assert "outside CodeDeploy by arn:aws:sts::123456789012:assumed-role/Admin/alice" in record.reasons[0]
    # When instead version 8 takes all of live, Then that is a deployment from 7, succeeded at once
    full = parse_update_alias_event(_promote())
    assert isinstance(full, AliasUpdate)
    promoted = alias_update_deployment(full, function="cars-api", last=seven)
    assert promoted is not None
    assert (promoted.from_version, promoted.to_version, promoted.canary_percent, promoted.state) == (
        "7",
        "8",
        100.0,
        DeploymentState.SUCCEEDED,
    )
    # without any record of the function, from an unknown version
    unknown = alias_update_deployment(full, function="cars-api", last=None)
    assert unknown is not None
    assert unknown.from_version == "unknown"
    # and an update that leaves the alias on the version it had is no deployment
    eight = _codedeploy("8", DeploymentState.SUCCEEDED, AT - timedelta(hours=1))
    assert alias_update_deployment(full, function="cars-api", last=eight) is None


@pytest.mark.parametrize(("primary", "state"), [("8", "SUCCEEDED"), ("7", "ROLLED_BACK")])
def test_a_full_update_ends_the_canary_set_by_hand_in_the_same_record(primary: str, state: str) -> None:
    # Given version 8 taking 10 % beside 7, set by hand an hour ago and recorded IN_PROGRESS
    first = parse_update_alias_event(cloudtrail_event(eventTime="2026-12-01T11:00:00Z", eventID="ev-0"))
    assert isinstance(first, AliasUpdate)
    in_progress = alias_update_deployment(first, function="cars-api", last=None)
    assert in_progress is not None
    # When live goes back to one version, 8 (promoted) or 7 (rolled back)
    update = parse_update_alias_event(_promote(primary))
    assert isinstance(update, AliasUpdate)
    ended = alias_update_deployment(update, function="cars-api", last=in_progress)
    # Then the same record ends, at the update's time, and says how
    assert ended is not None
    assert (ended.deployment_id, ended.started_at, ended.state.value, ended.ended_at) == (
        "alias-ev-0",
        in_progress.started_at,
        state,
        AT,
    )
    assert len(ended.reasons) == 2


def test_a_codedeploy_canary_in_progress_is_not_ended_by_a_plain_update() -> None:
    # Given a CodeDeploy canary of version 8 in progress (its loop records its end)
    running = _codedeploy("8", DeploymentState.IN_PROGRESS, AT - timedelta(minutes=2))
    update = parse_update_alias_event(_promote("9"))
    assert isinstance(update, AliasUpdate)
    # When someone points live at version 9 by hand, Then that is a deployment of its own, from 7
    record = alias_update_deployment(update, function="cars-api", last=running)
    assert record is not None
    assert (record.deployment_id, record.from_version, record.to_version) == ("alias-ev-1", "7", "9")


class MemoryLog:
    def __init__(self, items: list[Deployment] | None = None) -> None:
        self.items = list(items or [])

    def put(self, deployment: Deployment) -> None:
        self.items.append(deployment)

    def between(self, start: datetime, end: datetime) -> list[Deployment]:
        return [d for d in self.items if start <= d.started_at <= end]


def _codedeploy(to: str, state: DeploymentState, at: datetime) -> Deployment:
    return Deployment(
        deployment_id=f"d-{to}",
        function="cars-api",
        function_name=CARS,
        from_version=str(int(to) - 1),
        to_version=to,
        canary_percent=10,
        state=state,
        started_at=at,
    )


def test_the_handler_records_the_update_with_the_version_the_alias_had_before() -> None:
    # Given CodeDeploy promoted version 7 yesterday and rolled back version 8 an hour ago
    log = MemoryLog(
        [
            _codedeploy("7", DeploymentState.SUCCEEDED, AT - timedelta(days=1)),
            _codedeploy("8", DeploymentState.ROLLED_BACK, AT - timedelta(hours=1)),
        ]
    )
    # When someone points live at version 9 by hand
    out = record_alias_update(_promote("9"), log=log, stage="prod")  # type: ignore[arg-type]
    # Then a SUCCEEDED deployment from 7 (where the rollback left the alias) to 9 is recorded
    assert out["recorded"] is True
    record = log.items[-1]
    assert (record.from_version, record.to_version, record.state, record.started_at) == (
        "7",
        "9",
        DeploymentState.SUCCEEDED,
        AT,
    )


@pytest.mark.parametrize(
    ("name", "event"),
    [
        ("CodeDeploy's own shift", cloudtrail_event(sourceIPAddress="codedeploy.amazonaws.com")),
        (
            "a function that does not deploy through live",
            cloudtrail_event(
                requestParameters={"functionName": TOPO.monitor.name, "name": "live", "functionVersion": "2"},
                responseElements=None,
            ),
        ),
    ],
)
def test_the_handler_writes_nothing_for_a_skipped_call(name: str, event: dict[str, Any]) -> None:
    log = MemoryLog()
    out = record_alias_update(event, log=log, stage="prod")  # type: ignore[arg-type]
    assert out["recorded"] is False, name
    assert log.items == [], name


def test_the_handler_writes_nothing_for_a_malformed_event() -> None:
    log = MemoryLog()
    with pytest.raises(AliasUpdateEventError):
        record_alias_update(_without(cloudtrail_event(), "detail", "eventTime"), log=log, stage="prod")  # type: ignore[arg-type]
    assert log.items == []
