"""One synthesis of the CDK app per test session, shared by every infra test.

The app is synthesized as ``npx cdk synth -c stage=prod -c alertEmails=...`` would (context from
``cdk.json``), with the real Lambda bundles (built once per content hash under ``build/``) and asset
staging disabled, so the 200 MB monitor bundle is not copied into the temporary cloud assembly. The
``dev`` stage (canary off, destroyable, no e-mails) is added to the same app and synthesized with it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

ROOT = Path(__file__).resolve().parents[2]
STAGE = "prod"  # the stage with every feature on (canary, retention, e-mail alerts)
ALERT_EMAILS = ("ops@example.com", "oncall@example.com")
DISABLE_ASSET_STAGING = "aws:cdk:disable-asset-staging"


@dataclass(frozen=True)
class Synthesized:
    built: Any  # infra.app.FleetscopeApp
    outdir: Path
    templates: dict[str, dict[str, Any]]  # "service" / "observability" -> CloudFormation template (prod)
    dev_templates: dict[str, dict[str, Any]]  # the same for the dev stage

    def resources(self, type_: str, stack: str | None = None) -> dict[str, dict[str, Any]]:
        """Logical id -> resource, of one type, in one stack or both (ids prefixed by the stack key)."""
        found: dict[str, dict[str, Any]] = {}
        for key, template in self.templates.items():
            if stack and key != stack:
                continue
            for logical_id, resource in template["Resources"].items():
                if resource["Type"] == type_:
                    found[f"{key}:{logical_id}"] = resource
        return found

    def all_resources(self) -> Iterator[tuple[str, str, dict[str, Any]]]:
        for key, template in self.templates.items():
            for logical_id, resource in template["Resources"].items():
                yield key, logical_id, resource


def cdk_json_context() -> dict[str, Any]:
    context: dict[str, Any] = json.loads((ROOT / "cdk.json").read_text())["context"]
    return context


@pytest.fixture(scope="session")
def cdk_context() -> dict[str, Any]:
    """The context of cdk.json, as the CDK CLI passes it to the app."""
    return cdk_json_context()


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    import aws_cdk as cdk

    from infra.app import SKIP_BUNDLING_ENV, build_app
    from infra.settings import stage_settings

    assert not os.environ.get(SKIP_BUNDLING_ENV), "infra tests synthesize the real bundles"
    outdir = tmp_path_factory.mktemp("cdk.out")
    context = cdk_json_context() | {
        "stage": STAGE,
        "alertEmails": ",".join(ALERT_EMAILS),
        DISABLE_ASSET_STAGING: True,
    }
    app = cdk.App(outdir=str(outdir), context=context)
    dev_context = cdk_json_context() | {"stage": "dev"}
    dev = stage_settings(dev_context.get)
    built = build_app(app, skip_bundling=False, extra_stages=[dev])
    assembly = app.synth()  # runs the cdk-nag plugin: fails on any unacknowledged finding

    def templates(stage: str) -> dict[str, dict[str, Any]]:
        stacks = built.stages[stage]
        return {
            "service": assembly.get_stack_by_name(stacks.service.stack_name).template,
            "observability": assembly.get_stack_by_name(stacks.observability.stack_name).template,
        }

    return Synthesized(built=built, outdir=outdir, templates=templates(STAGE), dev_templates=templates("dev"))
