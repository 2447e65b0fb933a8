"""Which deployment the dashboard shows, and the physical names of its resources. No Streamlit here.

- `sandbox`: a running sandbox described by `${FLEETSCOPE_HOME}/sandbox.json` (its pid must be alive;
  read through `sandbox.home`, the only part of the sandbox the dashboard imports); every client
  goes to its AWS emulator with the emulator's fixed local credentials.
- `aws`: the standard AWS credential chain, region `AWS_REGION`; resource names come from the
  deployed CloudFormation stacks' outputs (read-only `DescribeStacks`), else from `contract.topology`.
- `auto`: a running sandbox if there is one; otherwise the caller starts an embedded sandbox
  (`sandbox.home.EmbeddedSandbox`) and connects to it.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict

from contract.resources import FunctionName, ResourceNames
from contract.topology import Topology, topology
from dashboard.settings import DashboardSettings
from sandbox.home import SandboxState, StateFileError, read_state

LOCAL_CREDENTIALS = {
    "aws_access_key_id": "testing",
    "aws_secret_access_key": "testing",
    "aws_session_token": "testing",
}


class TargetError(RuntimeError):
    """The dashboard cannot tell what to show (no sandbox, unreadable sandbox file, ...)."""


class FunctionInfo(BaseModel):
    model_config = ConfigDict(frozen=True)

    key: str
    name: str
    service: str
    memory_mb: int


class Resources(BaseModel):
    """Physical names of what the dashboard reads; `source` says where they came from."""

    model_config = ConfigDict(frozen=True)

    stage: str
    namespace: str
    api_name: str
    api_stage: str
    cars_table: str
    outbox_table: str
    monitor_table: str
    telemetry_queue: str
    telemetry_dlq: str
    event_bus: str
    alerts_topic: str
    functions: tuple[FunctionInfo, ...]
    tables: tuple[str, ...]
    source: Literal["topology", "cloudformation"] = "topology"

    @classmethod
    def from_topology(cls, topo: Topology) -> Resources:
        return cls(
            stage=topo.stage,
            namespace=topo.metrics_namespace,
            api_name=topo.api_name,
            api_stage=topo.api_stage,
            cars_table=topo.cars_table.name,
            outbox_table=topo.outbox_table.name,
            monitor_table=topo.monitor_table.name,
            telemetry_queue=topo.telemetry_queue.name,
            telemetry_dlq=topo.telemetry_dlq.name,
            event_bus=topo.event_bus,
            alerts_topic=topo.alerts_topic,
            functions=tuple(
                FunctionInfo(key=f.key, name=f.name, service=f.service, memory_mb=f.memory_mb)
                for f in topo.functions
            ),
            tables=tuple(t.name for t in topo.tables),
        )

    def resource_names(self) -> ResourceNames:
        """The monitor's view of the same names (for its catalog of watched metrics)."""
        return ResourceNames(
            stage=self.stage,
            namespace=self.namespace,
            api_name=self.api_name,
            api_stage=self.api_stage,
            functions=tuple(FunctionName(key=f.key, name=f.name, service=f.service) for f in self.functions),
            tables=self.tables,
            queues=(self.telemetry_queue,),
            dlqs=(self.telemetry_dlq,),
            event_bus=self.event_bus,
            consumers={self.telemetry_queue: "telemetry-ingest", self.telemetry_dlq: "telemetry-ingest"},
        )

    def function(self, key: str) -> FunctionInfo | None:
        return next((f for f in self.functions if f.key == key), None)


class Target(BaseModel):
    """A resolved deployment: where to send API calls and what the resources are called."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["sandbox", "aws"]
    region: str
    endpoint_url: str | None = None
    api_url: str | None = None
    resources: Resources
    home: Path
    embedded: bool = False
    sandbox_pid: int | None = None
    notes: tuple[str, ...] = ()

    @property
    def stage(self) -> str:
        return self.resources.stage

    @property
    def is_sandbox(self) -> bool:
        return self.kind == "sandbox"

    @property
    def is_local_sandbox(self) -> bool:
        """A sandbox whose emulator listens on this machine's loopback: the only target faults may be
        injected into (sandbox.json is a file; it could name any address)."""
        return self.kind == "sandbox" and self.endpoint_url is not None and _is_loopback(self.endpoint_url)

    @property
    def inbox_file(self) -> Path:
        return self.home / "alerts.jsonl"

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `boto3.client(...)`: the sandbox never sees real credentials."""
        kwargs: dict[str, Any] = {"region_name": self.region}
        if self.kind == "sandbox":
            kwargs |= LOCAL_CREDENTIALS | {"endpoint_url": self.endpoint_url}
        return kwargs

    def describe(self) -> str:
        if self.kind == "sandbox":
            how = "embedded sandbox" if self.embedded else "running sandbox"
            how += f" (pid {self.sandbox_pid})" if self.sandbox_pid else ""
            return f"{how} · stage `{self.stage}` · emulator {self.endpoint_url}"
        return f"AWS · stage `{self.stage}` · {self.region} · names from {self.resources.source}"


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name other than localhost
        return False


def read_sandbox_file(home: Path) -> SandboxState | None:
    """The running sandbox of `home`, or None when there is none (missing file or dead pid)."""
    try:
        return read_state(home)
    except StateFileError as err:
        raise TargetError(str(err)) from err


def sandbox_target(info: SandboxState, settings: DashboardSettings, *, embedded: bool = False) -> Target:
    home = Path(info.inbox).parent if info.inbox else settings.home
    return Target(
        kind="sandbox",
        region="us-east-1",
        endpoint_url=info.emulator_url,
        api_url=info.api_url,
        resources=Resources.from_topology(topology(info.stage)),
        home=home,
        embedded=embedded,
        sandbox_pid=info.pid,
    )


# The CloudFormation output keys the CDK stacks declare (infra/stacks/*_stack.py), normalised
# (lower case, alphanumerics only); a test keeps the two in step.
OUTPUT_KEYS: dict[str, str] = {
    "api_name": "apiname",
    "cars_table": "carstablename",
    "outbox_table": "outboxtablename",
    "monitor_table": "monitortablename",
    "telemetry_queue": "telemetryqueueurl",
    "telemetry_dlq": "telemetrydlqurl",
    "event_bus": "eventbusname",
    "alerts_topic": "alertstopicarn",
}
_FUNCTION_OUTPUT = re.compile(r"^(carsapi|telemetryingest|outboxrelay|monitor)functionname$")


def _norm(key: str) -> str:
    return re.sub(r"[^a-z0-9]", "", key.lower())


def resources_from_outputs(base: Resources, outputs: Mapping[str, str]) -> Resources:
    """Override topology names with the deployed stacks' outputs where an output names a resource."""
    by_key = {_norm(k): v for k, v in outputs.items() if v}
    updates: dict[str, Any] = {}
    for field, key in OUTPUT_KEYS.items():
        value = by_key.get(key)
        if value and field in ("telemetry_queue", "telemetry_dlq") and value.startswith("https://"):
            value = value.rstrip("/").rsplit("/", 1)[-1]  # a queue URL: the name is its last segment
        if value and field == "alerts_topic" and value.startswith("arn:"):
            value = value.rsplit(":", 1)[-1]
        if value:
            updates[field] = value
    functions = list(base.functions)
    for key, value in by_key.items():
        match = _FUNCTION_OUTPUT.match(key)
        if not match:
            continue
        for i, fn in enumerate(functions):
            if _norm(fn.key) == match.group(1):
                functions[i] = fn.model_copy(update={"name": value})
    if not updates and functions == list(base.functions):
        return base
    updated = base.model_copy(update=updates | {"functions": tuple(functions), "source": "cloudformation"})
    tables = tuple(
        dict.fromkeys(
            (
                updated.cars_table,
                updated.outbox_table,
                updated.monitor_table,
                *(
                    t
                    for t in base.tables
                    if t not in (base.cars_table, base.outbox_table, base.monitor_table)
                ),
            )
        )
    )
    return updated.model_copy(update={"tables": tables})


def aws_target(
    settings: DashboardSettings, describe_stacks: Callable[[], list[dict[str, Any]]] | None = None
) -> Target:
    """The deployed stage; `describe_stacks` returns CloudFormation's stack descriptions (read-only)."""
    stage = settings.stage or "prod"
    base = Resources.from_topology(topology(stage))
    notes: list[str] = []
    resources = base
    if describe_stacks is not None:
        try:
            stacks = describe_stacks()
        except Exception as err:  # AccessDenied, no credentials, no network: fall back to topology names
            notes.append(f"CloudFormation outputs unavailable ({_short(err)}); using the topology's names.")
        else:
            prefix = base.api_name.rsplit("-cars-api", 1)[0].lower()  # fleetscope-<stage>
            outputs: dict[str, str] = {}
            for stack in stacks:
                name = str(stack.get("StackName", "")).lower()
                if "fleetscope" not in name or (stage.lower() not in name and prefix not in name):
                    continue
                for out in stack.get("Outputs", []) or []:
                    outputs[str(out.get("OutputKey", ""))] = str(out.get("OutputValue", ""))
            resources = resources_from_outputs(base, outputs)
            if resources.source == "topology":
                notes.append(
                    f"No Fleetscope stack outputs found for stage {stage!r}; using the topology's names."
                )
    return Target(
        kind="aws", region=settings.region, resources=resources, home=settings.home, notes=tuple(notes)
    )


def _short(err: BaseException) -> str:
    text = str(err) or type(err).__name__
    return text if len(text) < 200 else text[:197] + "..."
