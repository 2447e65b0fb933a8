"""The stacks' outputs are the contract the dashboard's AWS target reads."""

from __future__ import annotations

import re

import pytest
from infra_support import Synthesized

from dashboard.target import OUTPUT_KEYS

pytestmark = pytest.mark.infra


def _norm(key: str) -> str:
    return re.sub(r"[^a-z0-9]", "", key.lower())


def test_every_resource_the_dashboard_resolves_is_an_output_of_a_stack(synthesized: Synthesized) -> None:
    # Given the outputs of both synthesized stacks
    declared = {_norm(key) for template in synthesized.templates.values() for key in template["Outputs"]}
    # Then each key the dashboard looks up is declared, so names never silently fall back to guesses
    assert set(OUTPUT_KEYS.values()) <= declared
    # And every function's name is published for the dashboard's Lambda panels
    for fn in ("carsapi", "telemetryingest", "outboxrelay", "monitor"):
        assert f"{fn}functionname" in declared
