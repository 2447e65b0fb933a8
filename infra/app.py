"""The Fleetscope CDK app: ``npx cdk synth`` / ``npx cdk deploy --all -c stage=dev -c alertEmails=...``.

Also runnable as ``python -m infra.app`` (writes ``cdk.out`` when no CLI is driving it). Synthesizes
offline: no AWS credentials, no Docker. Lambda bundles are built locally and cached under
``build/bundles`` (see ``infra.bundling``); ``FLEETSCOPE_SKIP_BUNDLING=1`` stages the project sources
only (no dependencies) for a fast synth that must never be deployed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_lambda as lambda_
from cdk_nag import AwsSolutionsChecks

from infra.bundling import (
    Bundle,
    BundleSpec,
    build_bundle,
    monitor_bundle_spec,
    service_bundle_spec,
    stage_sources,
)
from infra.constructs.lambda_function import RUNTIME_PYTHON_VERSION
from infra.settings import StageSettings, stage_settings
from infra.stacks.observability_stack import ObservabilityStack
from infra.stacks.service_stack import ServiceStack
from infra.topology import Topology, topology

SKIP_BUNDLING_ENV = "FLEETSCOPE_SKIP_BUNDLING"


@dataclass(frozen=True, kw_only=True)
class FleetscopeApp:
    app: cdk.App
    topology: Topology
    settings: StageSettings
    service: ServiceStack
    observability: ObservabilityStack
    bundles: dict[str, Bundle]


def _code(spec: BundleSpec, *, skip_bundling: bool) -> tuple[lambda_.Code, Bundle]:
    bundle = stage_sources(spec) if skip_bundling else build_bundle(spec)
    code = lambda_.Code.from_asset(
        str(bundle.path),
        asset_hash=bundle.content_hash,
        asset_hash_type=cdk.AssetHashType.CUSTOM,
    )
    return code, bundle


def build_app(app: cdk.App | None = None, *, skip_bundling: bool | None = None) -> FleetscopeApp:
    """Compose both stacks of the stage named in context, with the cdk-nag AwsSolutions plugin."""
    app = app or cdk.App()
    if skip_bundling is None:
        skip_bundling = os.environ.get(SKIP_BUNDLING_ENV, "") not in ("", "0", "false")
    settings = stage_settings(app.node.try_get_context)
    topo = topology(settings.stage)
    env = cdk.Environment(
        account=os.environ.get("CDK_DEFAULT_ACCOUNT"), region=os.environ.get("CDK_DEFAULT_REGION")
    )
    service_code, service_bundle = _code(
        service_bundle_spec(RUNTIME_PYTHON_VERSION), skip_bundling=skip_bundling
    )
    monitor_code, monitor_bundle = _code(
        monitor_bundle_spec(RUNTIME_PYTHON_VERSION), skip_bundling=skip_bundling
    )

    observability = ObservabilityStack(
        app,
        f"Fleetscope-{settings.stage}-Observability",
        topology=topo,
        settings=settings,
        code=monitor_code,
        env=env,
        description=f"Fleetscope {settings.stage}: alerts topic, monitor, dashboards and alarms",
    )
    service = ServiceStack(
        app,
        f"Fleetscope-{settings.stage}-Service",
        topology=topo,
        settings=settings,
        code=service_code,
        env=env,
        description=f"Fleetscope {settings.stage}: cars API, tables, telemetry queue, fleet event bus",
    )
    service.add_dependency(observability, "the canary's alarms notify the alerts topic")
    for stack in (service, observability):
        cdk.Tags.of(stack).add("project", "fleetscope")
        cdk.Tags.of(stack).add("stage", settings.stage)
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return FleetscopeApp(
        app=app,
        topology=topo,
        settings=settings,
        service=service,
        observability=observability,
        bundles={"service": service_bundle, "monitor": monitor_bundle},
    )


def main() -> None:
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    # Driven by the CDK CLI, CDK_OUTDIR says where to write; run directly, write ./cdk.out.
    app = cdk.App() if "CDK_OUTDIR" in os.environ else cdk.App(outdir="cdk.out")
    built = build_app(app)
    built.app.synth()


if __name__ == "__main__":
    main()
