"""`fleetscope`: the command line of the local sandbox.

- ``fleetscope sandbox up [--no-dashboard] [--fleet-size N] [--monitor-interval S] [--no-backfill]``
  starts everything, prints the endpoints and runs until Ctrl-C / SIGTERM;
- ``fleetscope sandbox status`` says whether a sandbox is running and where (exit 1 if none);
- ``fleetscope incident KIND --minutes N`` / ``fleetscope incident list`` (sandbox.traffic.faults);
- ``fleetscope alerts`` (sandbox.aws.inbox);
- ``fleetscope deploy FUNCTION [--canary-percent P] [--canary-minutes M] [--fault KIND]``
  (sandbox.aws.deploy);
- ``fleetscope alias FUNCTION (--version N | --publish [--fault KIND]) [--weight W]``
  (sandbox.aws.alias).
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import re
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from sandbox.home.settings import fleetscope_home
from sandbox.home.state import STATE_FILE, StateFileError, read_state


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from err
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from err
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _optional_command(module: str, function: str) -> Callable[[argparse.Namespace], int] | None:
    try:
        mod = importlib.import_module(module)
    except ImportError:
        return None
    fn = getattr(mod, function, None)
    return fn if callable(fn) else None


def _delegate(module: str, function: str, what: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        fn = _optional_command(module, function)
        if fn is None:
            print(f"fleetscope {what}: not available yet ({module}.{function} is missing)", file=sys.stderr)
            return 2
        return int(fn(args) or 0)

    return run


def _add_delegated_arguments(parser: argparse.ArgumentParser, module: str, function: str) -> None:
    add = _optional_command(module, function)
    if add is not None:
        add(parser)  # type: ignore[arg-type]
    else:
        parser.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fleetscope", description="Fleetscope's local sandbox and tools.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sandbox = commands.add_parser("sandbox", help="run the local sandbox", description="The local sandbox.")
    sandbox_commands = sandbox.add_subparsers(dest="sandbox_command", required=True, metavar="ACTION")
    up = sandbox_commands.add_parser("up", help="start the sandbox and run until interrupted")
    up.add_argument("--no-dashboard", action="store_true", help="do not start the Streamlit dashboard")
    up.add_argument("--fleet-size", type=_positive_int, default=50, metavar="N", help="robotaxis (50)")
    up.add_argument("--no-fleet", action="store_true", help="no simulated traffic")
    up.add_argument(
        "--monitor-interval",
        type=_positive_float,
        default=60.0,
        metavar="S",
        help="seconds between monitor runs",
    )
    up.add_argument("--no-monitor", action="store_true", help="do not run the monitor on a schedule")
    up.add_argument("--no-backfill", action="store_true", help="skip the 14 days of history")
    up.add_argument("--no-tracing", action="store_true", help="no X-Ray tracing")
    up.add_argument("--stage", default="local", help="topology stage (local)")
    up.set_defaults(handler=cmd_up)
    status = sandbox_commands.add_parser("status", help="is a sandbox running, and where")
    status.add_argument("--json", action="store_true", help="print the state file as JSON")
    status.set_defaults(handler=cmd_status)

    incident = commands.add_parser("incident", help="inject an incident into the running sandbox")
    _add_delegated_arguments(incident, "sandbox.traffic.faults", "add_incident_arguments")
    incident.set_defaults(handler=_delegate("sandbox.traffic.faults", "cli_incident", "incident"))

    deploy = commands.add_parser(
        "deploy", help="canary a new version of a function (judged, then promoted or rolled back)"
    )
    _add_delegated_arguments(deploy, "sandbox.aws.deploy", "add_deploy_arguments")
    deploy.set_defaults(handler=_delegate("sandbox.aws.deploy", "cli_deploy", "deploy"))

    alias = commands.add_parser(
        "alias", help="update a function's live alias by hand (recorded as a deployment, not judged)"
    )
    _add_delegated_arguments(alias, "sandbox.aws.alias", "add_alias_arguments")
    alias.set_defaults(handler=_delegate("sandbox.aws.alias", "cli_alias", "alias"))

    alerts = commands.add_parser("alerts", help="alerts received on the SNS topic, one JSON per line")
    _add_delegated_arguments(alerts, "sandbox.aws.inbox", "add_alerts_arguments")
    alerts.set_defaults(handler=_delegate("sandbox.aws.inbox", "cli_alerts", "alerts"))
    return parser


def cmd_up(args: argparse.Namespace) -> int:
    # Imported here: `status`, `incident` and `alerts` do not pay for the whole platform.
    from sandbox.app import Sandbox, SandboxAlreadyRunningError, SandboxConfig, SandboxError

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    for noisy in ("botocore", "urllib3", "werkzeug"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,30}", args.stage):
        print(
            f"fleetscope sandbox up: bad stage {args.stage!r}: use 1-31 lowercase letters, digits and '-' "
            "(starting with a letter or digit), e.g. local or dev-2",
            file=sys.stderr,
        )
        return 2
    try:
        config = SandboxConfig(
            stage=args.stage,
            dashboard=not args.no_dashboard,
            fleet=not args.no_fleet,
            fleet_size=args.fleet_size,
            backfill=not args.no_backfill,
            monitor=not args.no_monitor,
            monitor_interval_s=args.monitor_interval,
            tracing=not args.no_tracing,
        )
        sandbox = Sandbox(config)
    except SandboxError as err:
        print(f"fleetscope sandbox up: {err}", file=sys.stderr)
        return 2

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        sandbox.request_stop()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        sandbox.start()
    except SandboxAlreadyRunningError as err:
        print(f"fleetscope sandbox up: {err}", file=sys.stderr)
        return 1
    except SandboxError as err:
        print(f"fleetscope sandbox up: {err}", file=sys.stderr)
        return 1
    try:
        state = sandbox.state()
        print(f"Fleetscope sandbox up in {sandbox.timings.get('live_s', 0):.1f}s (stage {state.stage})")
        print(f"  cars API      {state.api_url}")
        print(f"  AWS emulator  {state.emulator_url}")
        print(f"  dashboard     {state.dashboard_url or '(not started)'}")
        if state.xray_daemon:
            print(f"  X-Ray daemon  udp://{state.xray_daemon}")
        print(f"  state file    {Path(sandbox.config.home) / STATE_FILE}")
        print("Press Ctrl-C to stop.", flush=True)
        sandbox.wait()
        print("stopping ...", flush=True)
    finally:
        sandbox.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("sandbox stopped", flush=True)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    try:
        state = read_state(fleetscope_home())
    except StateFileError as err:
        print(f"fleetscope sandbox status: {err}", file=sys.stderr)
        return 2
    if state is None:
        print("no sandbox is running", file=sys.stderr if not args.json else sys.stdout)
        return 1
    if args.json:
        print(json.dumps(state.model_dump(mode="json", exclude_unset=True)))
    else:
        started = state.started_at.isoformat() if state.started_at else None
        print(f"sandbox running (pid {state.pid}, stage {state.stage}, since {started})")
        if state.phase != "live":
            print(f"  starting: {state.phase} {state.detail}".rstrip())
        for key, value in (
            ("api_url", state.api_url),
            ("emulator_url", state.emulator_url),
            ("dashboard_url", state.dashboard_url),
        ):
            print(f"  {key:<13} {value or '-'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Any = args.handler
    try:
        return int(handler(args))
    except BrokenPipeError:
        # The reader of our output went away (`fleetscope alerts | head`): stop quietly, as `cat` does.
        # Point stdout at /dev/null so the interpreter's final flush does not raise again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
