"""The query layer's reads follow every page (boto3's paginators) against the seeded emulator."""

from __future__ import annotations

from datetime import timedelta

import boto3
import pytest

from dashboard import queries
from tests.dashboard.conftest import SeededSandbox

pytestmark = pytest.mark.integration


def test_a_scan_follows_every_page_and_stops_at_its_limit(seeded_sandbox: SeededSandbox) -> None:
    # Given the seeded cars table read 7 items a page
    ddb = boto3.client("dynamodb")
    table = seeded_sandbox.topo.cars_table.name
    whole = queries.scan_table(ddb, table, what="cars")
    # When scanned in small pages, and with a limit
    paged = queries.scan_table(ddb, table, what="cars", Limit=7)
    limited = queries.scan_table(ddb, table, what="cars", Limit=7, limit=10)
    # Then the small pages hold every item, and the limit cuts at exactly 10
    assert len(whole) == 40
    assert sorted(i["car_id"] for i in paged) == sorted(i["car_id"] for i in whole)
    assert len(limited) == 10


def test_incidents_and_their_notifications_come_from_a_paginated_query(seeded_sandbox: SeededSandbox) -> None:
    ddb = boto3.client("dynamodb")
    incidents = queries.list_incidents(ddb, seeded_sandbox.topo.monitor_table.name)
    assert len(incidents) == 2
    for incident_id in incidents["incident_id"]:
        sent = queries.incident_notifications(ddb, seeded_sandbox.topo.monitor_table.name, incident_id)
        assert sent
        assert all(n["status"] == "sent" for n in sent)


def test_lambda_reports_are_read_from_the_log_group(seeded_sandbox: SeededSandbox) -> None:
    reports = queries.lambda_reports(
        boto3.client("logs"),
        seeded_sandbox.topo.cars_api.log_group,
        start=seeded_sandbox.now - timedelta(hours=3),
        end=seeded_sandbox.now,
    )
    assert len(reports) == 50
    assert reports["max_used_mb"].max() == 88
