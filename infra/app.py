"""The Fleetscope CDK app: ``npx cdk synth`` / ``npx cdk deploy --all -c stage=dev -c alertEmails=...``.

Also runnable as ``python -m infra.app`` (writes ``cdk.out`` when no CLI is driving it). Synthesizes
offline: no AWS credentials, no Docker. Lambda bundles are built locally and cached under
``build/bundles`` (see ``infra.bundling``); ``FLEETSCOPE_SKIP_BUNDLING=1`` stages the project sources
only (no dependencies) for a fast synth that must never be deployed.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_lambda as lambda_
from cdk_nag import AwsSolutionsChecks

from contract.topology import Topology, topology
from infra.bundling import (
    Bundle,
    build_bundle,
    monitor_bundle_spec,
    service_bundle_spec,
    stage_sources,
)
from infra.constructs.lambda_function import RUNTIME_PYTHON_VERSION
from infra.constructs.runbooks import RunbookLinks
from infra.settings import StageSettings, stage_settings
from infra.stacks.observability_stack import ObservabilityStack
from infra.stacks.service_stack import ServiceStack

SKIP_BUNDLING_ENV = "FLEETSCOPE_SKIP_BUNDLING"


@dataclass(frozen=True, kw_only=True)
class StageStacks:
    """The two stacks of one stage."""

    topology: Topology
    settings: StageSettings
    service: ServiceStack
    observability: ObservabilityStack


@dataclass(frozen=True, kw_only=True)
class FleetscopeApp:
    app: cdk.App
    stages: dict[str, StageStacks]  # the stage named in context first
    bundles: dict[str, Bundle]
    primary: str

    @property
    def topology(self) -> Topology:
        return self.stages[self.primary].topology

    @property
    def settings(self) -> StageSettings:
        return self.stages[self.primary].settings

    @property
    def service(self) -> ServiceStack:
        return self.stages[self.primary].service

    @property
    def observability(self) -> ObservabilityStack:
        return self.stages[self.primary].observability


def _code(bundle: Bundle) -> lambda_.Code:
    """A new Code per stack (CDK binds an asset to one stack); the bundle's hash spares re-hashing it."""
    return lambda_.Code.from_asset(
        str(bundle.path), asset_hash=bundle.content_hash, asset_hash_type=cdk.AssetHashType.CUSTOM
    )


def add_stage(
    app: cdk.App, settings: StageSettings, *, service_bundle: Bundle, monitor_bundle: Bundle
) -> StageStacks:
    """Both stacks of one stage; ObservabilityStack first (it owns the alerts topic)."""
    topo = topology(settings.stage)
    env = cdk.Environment(
        account=os.environ.get("CDK_DEFAULT_ACCOUNT"), region=os.environ.get("CDK_DEFAULT_REGION")
    )
    observability = ObservabilityStack(
        app,
        f"Fleetscope-{settings.stage}-Observability",
        topology=topo,
        settings=settings,
        code=_code(monitor_bundle),
        env=env,
        description=f"Fleetscope {settings.stage}: alerts topics, monitor, dashboards and alarms",
    )
    service = ServiceStack(
        app,
        f"Fleetscope-{settings.stage}-Service",
        topology=topo,
        settings=settings,
        code=_code(service_bundle),
        env=env,
        description=f"Fleetscope {settings.stage}: cars API, tables, telemetry queue, fleet event bus",
    )
    service.add_dependency(observability, "the canary's alarms notify the alerts topic")
    for stack in (service, observability):
        cdk.Aspects.of(stack).add(RunbookLinks(settings.runbook_base_url))
        cdk.Tags.of(stack).add("project", "fleetscope")
        cdk.Tags.of(stack).add("stage", settings.stage)
    return StageStacks(topology=topo, settings=settings, service=service, observability=observability)


def build_app(
    app: cdk.App | None = None,
    *,
    skip_bundling: bool | None = None,
    extra_stages: Sequence[StageSettings] = (),
) -> FleetscopeApp:
    """The stage named in context (plus ``extra_stages``, for tests), checked by cdk-nag AwsSolutions."""
    app = app or cdk.App()
    if skip_bundling is None:
        skip_bundling = os.environ.get(SKIP_BUNDLING_ENV, "") not in ("", "0", "false")
    build = stage_sources if skip_bundling else build_bundle
    service_bundle = build(service_bundle_spec(RUNTIME_PYTHON_VERSION))
    monitor_bundle = build(monitor_bundle_spec(RUNTIME_PYTHON_VERSION))
    primary = stage_settings(app.node.try_get_context)
    stages: dict[str, StageStacks] = {}
    for settings in (primary, *extra_stages):
        stages[settings.stage] = add_stage(
            app, settings, service_bundle=service_bundle, monitor_bundle=monitor_bundle
        )
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return FleetscopeApp(
        app=app,
        stages=stages,
        bundles={"service": service_bundle, "monitor": monitor_bundle},
        primary=primary.stage,
    )


def main() -> None:
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    # Driven by the CDK CLI, CDK_OUTDIR says where to write; run directly, write ./cdk.out.
    app = cdk.App() if "CDK_OUTDIR" in os.environ else cdk.App(outdir="cdk.out")
    built = build_app(app)
    built.app.synth()


if __name__ == "__main__":
    main()
