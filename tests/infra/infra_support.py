"""What the infra tests share: the synthesized app and the context it was synthesized with.

One synthesis of the CDK app per test session, shared by every infra test (fixture in conftest.py).

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
