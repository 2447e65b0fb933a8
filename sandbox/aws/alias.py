"""`fleetscope alias FUNCTION`: a plain update of the ``live`` alias, outside `fleetscope deploy`.

What ``aws lambda update-alias`` is on AWS: no judge, no rollback, the routing changes at once.
``--version N`` makes version N the alias's primary version (all traffic, any weighted version
dropped); with ``--weight W`` (a fraction in (0, 1), as Lambda's AdditionalVersionWeights) version N
takes W of the traffic beside the primary instead. ``--publish`` publishes a new version first (the
same code; ``--fault KIND`` makes it carry that incident kind, as for `fleetscope deploy`) and routes
to it.

The update is recorded as a deployment in the monitor's table exactly as the AWS recorder records a
CloudTrail UpdateAlias (`monitor.alias_updates.alias_update_deployment`, given the function's last
recorded deployment): IN_PROGRESS at the weight, SUCCEEDED at 100 %, or the end of a canary set by hand
(its record SUCCEEDED or ROLLED_BACK); so an incident that follows names it. One
JSON line; exit 0 done, 2 bad usage, 1 any other failure (no sandbox, an unreadable alias file; or
the record could not be written, which happens after the routing changed, as on AWS, and says so).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from pydantic import ValidationError

from contract.topology import Topology, topology
from monitor.alias_updates import AliasUpdate, alias_update_deployment, last_deployment
from monitor.deployments import RETENTION, Deployment
from sandbox.emulator.server import aws_environment
from sandbox.home.aliases import (
    ALIASED_FUNCTIONS,
    LIVE_ALIAS,
    VERSION_FAULT_KINDS,
    AliasFile,
    AliasFileError,
    FunctionAlias,
    VersionFault,
    version_fault,
)
from sandbox.home.settings import HomeSettings
from sandbox.home.state import StateFileError, read_state

EXIT_DONE, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


class AliasUsageError(ValueError):
    """The requested routing is not possible (an unpublished version, a weight on the primary)."""


class DeploymentSink(Protocol):
    def put(self, deployment: Deployment) -> None: ...

    def between(self, start: datetime, end: datetime) -> list[Deployment]: ...


def update_alias(
    *,
    topo: Topology,
    function_key: str,
    aliases: AliasFile,
    log: DeploymentSink,
    version: int | None,
    weight: float | None = None,
    publish: VersionFault | bool = False,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> tuple[FunctionAlias, Deployment | None]:
    """Route ``live`` as asked, then record the deployment it is (None when nothing moved).

    ``publish``: False routes to the published ``version``; True or a `VersionFault` publishes a new
    version (carrying that fault) and routes to it.
    """
    fn = next(f for f in topo.functions if f.key == function_key)
    before = aliases.alias(function_key)
    at = clock()
    target: dict[str, int] = {}

    def change(alias: FunctionAlias) -> FunctionAlias:
        if publish is not False:
            versions = dict(alias.versions)
            versions[alias.latest + 1] = publish if isinstance(publish, VersionFault) else None
            alias = alias.model_copy(update={"versions": versions})
            chosen = alias.latest
        else:
            assert version is not None
            chosen = version
        if chosen not in alias.versions:
            raise AliasUsageError(
                f"version {chosen} of {function_key} is not published (published: "
                f"{', '.join(str(v) for v in sorted(alias.versions))})"
            )
        target["version"] = chosen
        if weight is None:
            return alias.model_copy(update={"version": chosen, "canary_version": None, "canary_weight": 0.0})
        if chosen == alias.version:
            raise AliasUsageError(f"version {chosen} is the primary version already; a weight needs another")
        return alias.model_copy(update={"canary_version": chosen, "canary_weight": weight})

    after = aliases.update(function_key, change)
    update = AliasUpdate(
        event_id=f"sandbox-{uuid.uuid4().hex[:10]}",
        function_name=fn.name,
        alias=LIVE_ALIAS,
        version=str(after.version),
        additional_version=None if after.canary_version is None else str(after.canary_version),
        weight=after.canary_weight,
        at=at,
        actor="fleetscope alias",
    )
    last = last_deployment(log.between(at - RETENTION, at - timedelta(microseconds=1)), fn.name)
    deployment = alias_update_deployment(
        update, function=function_key, last=last, known_previous=str(before.version)
    )
    if deployment is not None:
        log.put(deployment)
    return after, deployment


# --- CLI ----------------------------------------------------------------------------------------------


def _weight(text: str) -> float:
    try:
        value = float(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from err
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be a fraction in (0, 1), got {value:g}")
    return value


def _version(text: str) -> int:
    try:
        value = int(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{text!r} is not a version number") from err
    if value < 1:
        raise argparse.ArgumentTypeError(f"versions start at 1, got {value}")
    return value


def add_alias_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Update FUNCTION's `live` alias by hand, as `aws lambda update-alias` does (no judge, no "
        "rollback): route all traffic to a version, or a share of it with --weight. Recorded as a "
        "deployment, so incidents that follow name it. One JSON line; exit 0 done, 2 bad usage, 1 failure."
    )
    parser.add_argument("function", metavar="FUNCTION", help=f"one of {', '.join(ALIASED_FUNCTIONS)}")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--version", type=_version, metavar="N", help="a published version")
    target.add_argument("--publish", action="store_true", help="publish a new version and route to it")
    parser.add_argument(
        "--weight",
        type=_weight,
        metavar="W",
        help="the version takes this fraction of traffic beside the primary (default: all of it)",
    )
    parser.add_argument(
        "--fault",
        metavar="KIND",
        help=f"with --publish: the new version carries this incident kind ({', '.join(VERSION_FAULT_KINDS)})",
    )
    parser.add_argument("--intensity", type=float, help="of the fault (its `fleetscope incident` meaning)")


def _usage(message: str) -> int:
    print(f"fleetscope alias: {message}", file=sys.stderr)
    return EXIT_USAGE


def cli_alias(args: argparse.Namespace) -> int:
    if args.function not in ALIASED_FUNCTIONS:
        return _usage(
            f"{args.function!r} does not deploy through an alias; "
            f"choose one of {', '.join(ALIASED_FUNCTIONS)}"
        )
    if args.fault is not None and not args.publish:
        return _usage("--fault needs --publish (a published version keeps what it was published with)")
    try:
        fault = version_fault(args.fault, args.intensity)
    except ValueError as err:
        return _usage(str(err))
    publish: VersionFault | bool = fault if fault is not None else bool(args.publish)
    try:
        settings = HomeSettings()
    except ValidationError as err:
        return _usage(f"bad setting: {err.errors(include_url=False)[0]['loc'][0]}")
    try:
        state = read_state(settings.home)
    except StateFileError as err:
        print(f"fleetscope alias: {err}", file=sys.stderr)
        return EXIT_FAILURE
    if state is None:
        print("fleetscope alias: no sandbox is running (fleetscope sandbox up)", file=sys.stderr)
        return EXIT_FAILURE
    os.environ.update(aws_environment(state.emulator_url))
    import boto3

    from monitor.deployments import DynamoDbDeploymentLog

    topo = topology(state.stage)
    log = DynamoDbDeploymentLog(boto3.resource("dynamodb").Table(topo.monitor_table.name))
    try:
        after, deployment = update_alias(
            topo=topo,
            function_key=args.function,
            aliases=AliasFile(settings.home),
            log=log,
            version=args.version,
            weight=args.weight,
            publish=publish,
        )
    except AliasUsageError as err:
        return _usage(str(err))
    except AliasFileError as err:
        print(f"fleetscope alias: {err}", file=sys.stderr)
        return EXIT_FAILURE
    except Exception as err:  # the deployment log (AWS errors): the routing has changed already
        print(
            f"fleetscope alias: the alias was updated but not recorded ({type(err).__name__}: {err})",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    line: dict[str, Any] = {
        "function": args.function,
        "alias": LIVE_ALIAS,
        "version": str(after.version),
        "weights": {str(after.version): 1 - after.canary_weight}
        | ({str(after.canary_version): after.canary_weight} if after.canary_version is not None else {}),
        "deployment": deployment.summary() if deployment else None,
    }
    print(json.dumps(line), flush=True)
    return EXIT_DONE
