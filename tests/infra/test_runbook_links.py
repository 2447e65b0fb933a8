"""Every alarm the CDK app synthesizes names an existing runbook; the monitor gets the base URL."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from infra_support import ROOT, Synthesized

from contract.runbooks import DEFAULT_RUNBOOK_BASE_URL, INDEX, RUNBOOKS
from infra.constructs.runbooks import DESCRIPTION_MAX, with_runbook
from infra.settings import SettingsError, stage_settings

pytestmark = [pytest.mark.infra, pytest.mark.slow]

PAGES = Path(ROOT) / "docs" / "runbooks"
RUNBOOK_LINE = re.compile(r"Runbook: " + re.escape(DEFAULT_RUNBOOK_BASE_URL) + r"/([a-z0-9-]+)/$")


def _alarms(templates: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    found = {}
    for template in templates.values():
        for resource in template["Resources"].values():
            if resource["Type"] in ("AWS::CloudWatch::Alarm", "AWS::CloudWatch::CompositeAlarm"):
                props = resource["Properties"]
                found[props.get("AlarmName") or props.get("CompositeAlarmName")] = props
    return found


@pytest.mark.parametrize("stage", ["prod", "dev"])
def test_every_synthesized_alarm_links_an_existing_runbook(synthesized: Synthesized, stage: str) -> None:
    templates = synthesized.templates if stage == "prod" else synthesized.dev_templates
    alarms = _alarms(templates)
    assert len(alarms) >= 25
    for name, props in alarms.items():
        description = props.get("AlarmDescription")
        assert isinstance(description, str), f"{name} has no plain description"
        assert len(description) <= DESCRIPTION_MAX
        match = RUNBOOK_LINE.search(description)
        assert match, f"{name}: no runbook URL at the end of {description!r}"
        slug = match.group(1)
        assert slug in RUNBOOKS, f"{name} links {slug!r}"
        assert slug != INDEX, f"{name} links only the index"
        assert (PAGES / f"{slug}.md").is_file(), f"{name} links {slug}, which has no page"


def test_alarms_link_the_runbook_of_what_they_mean(synthesized: Synthesized) -> None:
    def slug_of(name: str) -> str:
        match = RUNBOOK_LINE.search(_alarms(synthesized.templates)[name]["AlarmDescription"])
        assert match
        return match.group(1)

    expected = {
        "fleetscope-prod-api-5xx-rate": "api-errors",  # metric math of Count and 5XXError: errors win
        "fleetscope-prod-api-latency-anomaly": "api-latency",
        "fleetscope-prod-api-traffic-anomaly": "traffic",
        "fleetscope-prod-car-telemetry-DLQ-Queue-Message-Count-Max-Critical": "telemetry-rejected",
        "fleetscope-prod-car-telemetry-Queue-Message-Age-Max-Warning": "queue-backlog",
        "fleetscope-prod-outbox-relay-failures-Queue-Message-Count-Max-Critical": "event-delivery",
        "fleetscope-prod-monitor-heartbeat-missing": "monitor-heartbeat",
        "fleetscope-prod-monitor-notification-failures": "monitor-notifications",
        "fleetscope-prod-cars-api-Fault-Count-Critical": "lambda-errors",
        "fleetscope-prod-canary-alias-errors": "canary-rollback",  # pinned: its Errors metric says otherwise
        "fleetscope-prod-canary-api-5xx": "canary-rollback",
        "fleetscope-prod-ingest-canary-verdict-fail": "canary-rollback",
        "fleetscope-prod-fleet-service-unhealthy": "service-unhealthy",
    }
    assert {name: slug_of(name) for name in expected} == expected


def test_the_monitor_the_canary_judge_and_the_alias_recorder_get_the_runbook_base_url(
    synthesized: Synthesized,
) -> None:
    functions = synthesized.resources("AWS::Lambda::Function", "observability")
    with_monitor_env = [
        f["Properties"]["Environment"]["Variables"]
        for f in functions.values()
        if "MONITOR_RESOURCES" in f["Properties"].get("Environment", {}).get("Variables", {})
    ]
    assert len(with_monitor_env) == 3  # the monitor, the canary judge and the alias-update recorder
    assert all(env["MONITOR_RUNBOOK_BASE_URL"] == DEFAULT_RUNBOOK_BASE_URL for env in with_monitor_env)


def test_runbook_base_url_comes_from_context_and_must_be_a_url(cdk_context: dict[str, Any]) -> None:
    get: Callable[[dict[str, Any]], Callable[[str], Any]] = lambda ctx: ctx.get  # noqa: E731
    settings = stage_settings(
        get(cdk_context | {"stage": "prod", "runbookBaseUrl": "https://docs.example/rb"})
    )
    assert settings.runbook_base_url == "https://docs.example/rb"
    with pytest.raises(SettingsError, match="runbookBaseUrl"):
        stage_settings(get(cdk_context | {"stage": "prod", "runbookBaseUrl": "docs.example/rb"}))


def test_a_long_description_is_cut_so_the_runbook_line_always_fits() -> None:
    url = "https://docs.example/runbooks/api-errors/"
    text = with_runbook("x" * 2000, url)
    assert len(text) <= DESCRIPTION_MAX
    assert text.endswith(f"... Runbook: {url}")
    assert with_runbook(None, url) == f"Runbook: {url}"
    assert with_runbook("Short.", url) == f"Short. Runbook: {url}"
