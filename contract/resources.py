"""The physical names the monitor needs, in a compact form that travels in one environment variable.

`ResourceNames.from_topology(topo)` derives them from `contract.topology`; the CDK app sets
`MONITOR_RESOURCES` = `names.to_env()` on the monitor Lambda, and the monitor builds its catalog of
watched metrics from them (`monitor.catalog.build_catalog`).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from contract.topology import Topology


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FunctionName(_Frozen):
    """A Lambda function: its topology key, physical name and Powertools service name."""

    key: str = Field(min_length=1)
    name: str = Field(min_length=1)
    service: str = Field(min_length=1)


class ResourceNames(_Frozen):
    """The physical names of everything the monitor watches (compact: it travels in an env var)."""

    stage: str = Field(min_length=1)
    namespace: str = Field(min_length=1, description="namespace of the service's business metrics")
    api_name: str = Field(min_length=1)
    api_stage: str = Field(min_length=1)
    functions: tuple[FunctionName, ...] = Field(min_length=1)
    tables: tuple[str, ...] = ()
    queues: tuple[str, ...] = ()
    dlqs: tuple[str, ...] = ()
    event_bus: str = Field(min_length=1)
    event_rules: tuple[str, ...] = ()
    consumers: dict[str, str] = Field(
        default_factory=dict,
        description="queue name -> key of the function that consumes it (its alerts join that service)",
    )

    @classmethod
    def from_topology(cls, topo: Topology) -> ResourceNames:
        return cls(
            stage=topo.stage,
            namespace=topo.metrics_namespace,
            api_name=topo.api_name,
            api_stage=topo.api_stage,
            functions=tuple(FunctionName(key=f.key, name=f.name, service=f.service) for f in topo.functions),
            tables=tuple(t.name for t in topo.tables),
            queues=(topo.telemetry_queue.name,),
            dlqs=(topo.telemetry_dlq.name,),
            event_bus=topo.event_bus,
            event_rules=topo.event_rules,
            consumers={
                topo.telemetry_queue.name: topo.telemetry_ingest.key,
                topo.telemetry_dlq.name: topo.telemetry_ingest.key,
            },
        )

    def to_env(self) -> str:
        """The value of `MONITOR_RESOURCES`: compact JSON (Lambda env vars total at most 4 KB)."""
        return self.model_dump_json(exclude_defaults=True)

    def function(self, key: str) -> FunctionName | None:
        return next((f for f in self.functions if f.key == key), None)
