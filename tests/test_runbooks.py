"""Every alert kind has a runbook page, and every page answers the same four questions.

The alarms the CDK app synthesizes are checked in tests/infra/test_runbook_links.py (one synthesis per
session); here: the pages themselves, the mapping in contract/runbooks.py, and every series the
monitor can alert on.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from contract.resources import ResourceNames
from contract.runbooks import INDEX, RUNBOOKS, runbook_for_metric, runbook_url
from contract.topology import topology
from monitor.catalog import build_catalog
from monitor.notifier import runbook_slug

PAGES = Path(__file__).resolve().parents[1] / "docs" / "runbooks"
SECTIONS = ("## What it means", "## First three checks", "## Mitigate", "## Is it over?")


def test_every_runbook_has_its_page_and_every_page_is_a_runbook() -> None:
    on_disk = {p.stem for p in PAGES.glob("*.md")}
    assert on_disk == set(RUNBOOKS), (
        f"missing pages: {sorted(set(RUNBOOKS) - on_disk)}; "
        f"pages no alert links: {sorted(on_disk - set(RUNBOOKS))}"
    )


@pytest.mark.parametrize("slug", sorted(set(RUNBOOKS) - {INDEX}))
def test_each_page_says_what_it_means_what_to_check_how_to_mitigate_and_when_it_is_over(slug: str) -> None:
    text = (PAGES / f"{slug}.md").read_text(encoding="utf-8")
    assert text.startswith("# "), "a page starts with its title"
    positions = [text.find(section) for section in SECTIONS]
    assert all(p >= 0 for p in positions), (
        f"{slug}.md lacks {[s for s, p in zip(SECTIONS, positions, strict=True) if p < 0]}"
    )
    assert positions == sorted(positions), f"{slug}.md: sections out of order"
    checks = text[positions[1] : positions[2]]
    # the first three checks: numbered, each with an AWS way (console or CLI) and the sandbox's way
    assert re.search(r"^1\. .*^2\. .*^3\. ", checks, re.S | re.M), f"{slug}.md: three numbered checks"
    assert "aws " in checks, f"{slug}.md: an AWS CLI command among the checks"
    assert "fleetscope" in text, f"{slug}.md: the sandbox equivalent (a fleetscope command)"


def test_links_between_runbooks_point_at_existing_pages() -> None:
    for page in PAGES.glob("*.md"):
        for target in re.findall(r"\]\(([^)#\s]+\.md)(?:#[^)]*)?\)", page.read_text(encoding="utf-8")):
            assert (page.parent / target).resolve().is_file(), (
                f"{page.name} links {target}, which does not exist"
            )


def test_every_series_the_monitor_can_alert_on_has_a_specific_runbook() -> None:
    # Given the catalog the monitor builds for a stage (every metric and derived rate it scores)
    catalog = build_catalog(ResourceNames.from_topology(topology("runbooks")), period_s=300)
    for spec in catalog.series:
        # When an incident is led by it, Then its alert links a page of its own (not the index)
        slug = runbook_slug(catalog, spec.id)
        assert slug in RUNBOOKS
        assert slug != INDEX, f"{spec.id} ({spec.title}) has no runbook"


def test_metric_mapping_distinguishes_queues_and_falls_back_to_the_index() -> None:
    assert runbook_for_metric(
        "AWS/SQS", "ApproximateNumberOfMessagesVisible", {"QueueName": "x-car-telemetry-dlq"}
    ) == ("telemetry-rejected")
    assert runbook_for_metric(
        "AWS/SQS", "ApproximateNumberOfMessagesVisible", {"QueueName": "x-car-telemetry"}
    ) == ("queue-backlog")
    assert runbook_for_metric(
        "AWS/SQS", "ApproximateNumberOfMessagesVisible", {"QueueName": "x-monitor-schedule-dlq"}
    ) == ("monitor-heartbeat")
    assert runbook_for_metric("Some/Namespace", "Unknown") == INDEX


def test_runbook_urls_are_directory_urls_under_the_base() -> None:
    assert (
        runbook_url("https://docs.example/runbooks/", "api-errors")
        == "https://docs.example/runbooks/api-errors/"
    )
    assert runbook_url("https://docs.example/runbooks", "index") == "https://docs.example/runbooks/"
    with pytest.raises(KeyError, match="no runbook page"):
        runbook_url("https://docs.example/runbooks", "no-such-page")
