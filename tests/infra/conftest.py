"""Session fixtures of the infra tests: the CDK context and the one synthesis (see infra_support)."""

from __future__ import annotations

import os
from typing import Any

import pytest
from infra_support import (
    ALERT_EMAILS,
    DISABLE_ASSET_STAGING,
    STAGE,
    Synthesized,
    cdk_json_context,
)


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
