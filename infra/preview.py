"""The CloudWatch dashboards and alarms of one stage, as the CDK app synthesizes them, in one JSON file.

    python -m infra.preview --stage local --out .fleetscope/cdk-preview/local.json

Synthesizes the app offline (``FLEETSCOPE_SKIP_BUNDLING`` sources-only bundles: dashboards and alarms
do not depend on what the bundles hold) into a temporary cloud assembly and keeps, from both stacks,
every ``AWS::CloudWatch::Dashboard``, ``AWS::CloudWatch::Alarm`` and ``AWS::CloudWatch::CompositeAlarm``
resource as CloudFormation has them (intrinsic functions unresolved: the reader resolves them for its
region). The dashboard's CDK preview page and the metric-coverage test read this file; neither has to
load the CDK (jsii, Node) in its own process.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

KEPT_TYPES = ("AWS::CloudWatch::Dashboard", "AWS::CloudWatch::Alarm", "AWS::CloudWatch::CompositeAlarm")
FORMAT_VERSION = 1


def cdk_json_context(root: Path) -> dict[str, Any]:
    context: dict[str, Any] = json.loads((root / "cdk.json").read_text())["context"]
    return context


def synthesize(stage: str, *, root: Path) -> dict[str, Any]:
    """The CloudWatch resources of ``stage``'s stacks.

    ``{"format", "stage", "stacks": {stack name: {logical id: resource}}}``."""
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    import aws_cdk as cdk

    from infra.app import build_app

    with tempfile.TemporaryDirectory(prefix="fleetscope-cdk-preview-") as outdir:
        app = cdk.App(outdir=outdir, context=cdk_json_context(root) | {"stage": stage})
        built = build_app(app, skip_bundling=True)
        assembly = app.synth()
        stacks: dict[str, dict[str, Any]] = {}
        for stack in (built.observability, built.service):
            template = assembly.get_stack_by_name(stack.stack_name).template
            stacks[stack.stack_name] = {
                logical_id: resource
                for logical_id, resource in template.get("Resources", {}).items()
                if resource.get("Type") in KEPT_TYPES
            }
    return {"format": FORMAT_VERSION, "stage": stage, "stacks": stacks}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.preview", description=__doc__.splitlines()[0])
    parser.add_argument("--stage", required=True, help="the stage to synthesize (e.g. local, dev, prod)")
    parser.add_argument("--out", required=True, type=Path, help="the JSON file to write")
    args = parser.parse_args(argv)
    root = Path(__file__).resolve().parents[1]
    document = synthesize(args.stage, root=root)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    staging = args.out.with_name(args.out.name + ".tmp")
    staging.write_text(json.dumps(document, sort_keys=True))
    staging.replace(args.out)  # readers never see half a file
    counts = {name: len(resources) for name, resources in document["stacks"].items()}
    print(json.dumps({"out": str(args.out), "stage": args.stage, "resources": counts}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
