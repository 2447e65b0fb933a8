"""Alert content: subject, human text, JSON part, attributes, console link."""

from __future__ import annotations

import json

import pytest

from contract.resources import ResourceNames
from contract.topology import topology
from monitor.catalog import Catalog, Severity, build_catalog
from monitor.incidents import IncidentTracker, PointSignal, Transition
from monitor.notifier import AlertPayload, console_domain, jsurl, render

P = 300
T0 = 1_767_225_600


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return build_catalog(ResourceNames.from_topology(topology("test")), period_s=P)


def _transitions(catalog: Catalog) -> list[Transition]:
    rate = next(d for d in catalog.derived if d.title == "API 5XX rate")
    latency = next(m for m in catalog.metrics if m.title == "API latency p99")
    errors = next(d for d in catalog.derived if d.title == "cars-api error rate")  # the API's function
    tracker = IncidentTracker(cooldown_s=P)

    def point(spec_id: str, severity: Severity, i: int, value: float, **flags: bool) -> PointSignal:
        spec = catalog.get(spec_id)
        return PointSignal(
            series_id=spec_id,
            resource=spec.resource,
            group=spec.group,
            severity=severity,
            t=T0 + i * P,
            value=value,
            lower=0.0,
            upper=0.02 if spec_id == rate.id else 250.0,
            score=0.93,
            firing=flags.get("firing", False),
            opened=flags.get("opened", False),
            resolved=flags.get("resolved", False),
        )

    out = tracker.process(
        [
            point(latency.id, latency.severity, 0, 900.0, firing=True, opened=True),
            point(rate.id, rate.severity, 1, 0.31, firing=True, opened=True),
            point(errors.id, errors.severity, 1, 0.3, firing=True, opened=True),
        ],
        until=T0 + P,
    )
    out += tracker.process(
        [
            point(latency.id, latency.severity, 2, 100.0, resolved=True),
            point(rate.id, rate.severity, 2, 0.0, resolved=True),
            point(errors.id, errors.severity, 2, 0.0, resolved=True),
            point(rate.id, rate.severity, 3, 0.0),
        ],
        until=T0 + 3 * P,
    )
    return out


def test_open_message_explains_the_anomaly_for_people_and_machines(catalog: Catalog) -> None:
    # Given latency, then the API's 5XX rate and its function's error rate, all of service cars-api
    opened, updated, updated_again, resolved = _transitions(catalog)
    assert [t.kind for t in (opened, updated, updated_again, resolved)] == [
        "OPEN", "UPDATED", "UPDATED", "RESOLVED"
    ]  # fmt: skip
    message = render(updated_again, catalog, region="eu-west-1", stage="test")
    # Subject: severity, kind, service, headline; short printable ASCII
    assert message.subject.startswith("[CRITICAL] UPDATED cars-api: API 5XX rate (+2 related)")
    assert len(message.subject) <= 100
    assert message.subject.isascii()
    # Text: observed vs expected band, score, since when, related metrics, console link
    assert "API 5XX rate: observed 0.31, expected 0 to 0.02" in message.text
    assert "score 0.93" in message.text
    assert "since 2026-01-01T00:05:00Z" in message.text
    # one incident of the service, naming every resource that shows it
    assert (
        "critical incident on service:cars-api (test): api:fleetscope-test-cars-api, "
        "lambda:fleetscope-test-cars-api" in message.text
    )
    assert "Other metrics of service:cars-api: " in message.text
    assert "API requests" in message.text
    assert (
        "https://eu-west-1.console.aws.amazon.com/cloudwatch/home?region=eu-west-1#metricsV2:graph="
        in message.text
    )
    # Attributes for subscription filters
    assert message.attributes["severity"] == "critical"
    assert message.attributes["service"] == "cars-api"
    assert message.attributes["kind"] == "UPDATED"
    # Structured SNS message: text for default/email, the JSON payload for sqs/lambda/https
    publish = message.publish_input("arn:aws:sns:eu-west-1:123456789012:alerts")
    assert publish["MessageStructure"] == "json"
    parts = json.loads(publish["Message"])
    assert parts["default"] == parts["email"] == message.text
    payload = AlertPayload.model_validate_json(parts["sqs"])
    assert parts["lambda"] == parts["https"] == parts["sqs"]
    assert payload.kind == "UPDATED"
    assert payload.severity == "critical"
    assert payload.dedup_key == f"{updated.incident_id}#0003"
    assert payload.resource == "service:cars-api"
    assert payload.resources == ["api:fleetscope-test-cars-api", "lambda:fleetscope-test-cars-api"]
    assert {a.title for a in payload.anomalies} == {"API 5XX rate", "API latency p99", "cars-api error rate"}
    rate = next(a for a in payload.anomalies if a.title == "API 5XX rate")
    assert (rate.observed, rate.expected_lower, rate.expected_upper) == (0.31, 0.0, 0.02)
    assert {m.metric_name for m in rate.metrics} == {"5XXError", "Count"}  # what the rate is made of
    assert publish["MessageAttributes"]["severity"] == {"DataType": "String", "StringValue": "critical"}


def test_resolved_message_says_so(catalog: Catalog) -> None:
    resolved = _transitions(catalog)[-1]
    message = render(resolved, catalog, region="us-east-1", stage="test")
    assert message.subject.startswith("[CRITICAL] RESOLVED ")
    assert "resolved at 2026-01-01 00:15 UTC" in message.text
    assert "back to normal" in message.text
    assert message.payload.status == "resolved"
    assert message.payload.resolved_at == "2026-01-01T00:15:00Z"


def test_console_links_follow_the_partition() -> None:
    assert console_domain("eu-central-1") == "https://eu-central-1.console.aws.amazon.com"
    assert console_domain("cn-north-1") == "https://cn-north-1.console.amazonaws.cn"
    assert console_domain("us-gov-west-1") == "https://us-gov-west-1.console.amazonaws-us-gov.com"


def test_jsurl_matches_the_console_encoding() -> None:
    assert jsurl({"metrics": [["AWS/Lambda", "Errors", {"stat": "Sum"}]], "period": 300}) == (
        "~(metrics~(~(~'AWS*2fLambda~'Errors~(stat~'Sum)))~period~300)"
    )


def test_with_the_dashboards_url_the_alert_links_to_its_service_health_chart(catalog: Catalog) -> None:
    # Given an incident led by the API's 5XX rate, and the dashboard's URL known
    updated_again = _transitions(catalog)[2]
    message = render(
        updated_again, catalog, region="eu-west-1", stage="test", dashboard_url="http://127.0.0.1:8501/"
    )
    # Then both the text and the JSON carry the Service health page of that resource, 24 h window
    api = next(d for d in catalog.derived if d.title == "API 5XX rate").resource
    link = f"http://127.0.0.1:8501/health?resource={api.replace(':', '%3A')}&window=24h"
    assert message.payload.dashboard_url == link
    assert f"Dashboard: {link}" in message.text
    # And without it, no link
    assert render(updated_again, catalog, region="eu-west-1", stage="test").payload.dashboard_url is None


def test_every_alert_carries_its_runbook_in_the_json_and_the_text(catalog: Catalog) -> None:
    # Given an incident led by the API's 5XX rate (critical), with latency and Lambda errors as members
    opened, _, updated_again, resolved = _transitions(catalog)
    for transition in (opened, updated_again, resolved):
        # When it is rendered with the site's base URL
        message = render(
            transition,
            catalog,
            region="eu-west-1",
            stage="test",
            runbook_base_url="https://docs.example/runbooks/",
        )
        # Then the JSON and the text both name the page for the lead anomaly's metric
        lead = "api-latency" if transition is opened else "api-errors"
        assert message.payload.runbook_url == f"https://docs.example/runbooks/{lead}/"
        assert f"Runbook: https://docs.example/runbooks/{lead}/" in message.text.splitlines()
        payload = json.loads(json.loads(message.publish_input("arn:t")["Message"])["sqs"])
        assert payload["runbook_url"] == message.payload.runbook_url


def test_the_runbook_follows_the_lead_metric_and_the_settings_base(
    catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    from monitor.notifier import runbook_slug
    from monitor.settings import MonitorSettings

    by_title = {s.title: s.id for s in catalog.series}
    assert runbook_slug(catalog, by_title["fleetscope-test-car-telemetry-dlq dead-letter depth"]) == (
        "telemetry-rejected"
    )
    assert runbook_slug(catalog, by_title["telemetry rejected rate"]) == "telemetry-rejected"
    assert (
        runbook_slug(catalog, by_title["fleetscope-test-car-telemetry oldest message age"]) == "queue-backlog"
    )
    assert runbook_slug(catalog, by_title["cars-api error rate"]) == "lambda-errors"
    assert runbook_slug(catalog, by_title["cars-api throttles"]) == "lambda-throttles"
    assert runbook_slug(catalog, by_title["cars-api duration p99"]) == "lambda-duration"
    assert runbook_slug(catalog, "no-such-series") == "index"  # a series gone from the catalog
    # The base URL is a setting, read from MONITOR_RUNBOOK_BASE_URL only
    monkeypatch.setenv("MONITOR_TABLE_NAME", "t")
    monkeypatch.setenv("ALERTS_TOPIC_NAME", "a")
    monkeypatch.delenv("MONITOR_RUNBOOK_BASE_URL", raising=False)
    assert MonitorSettings().runbook_base_url == "http://127.0.0.1:8000/runbooks"
    monkeypatch.setenv("MONITOR_RUNBOOK_BASE_URL", "https://docs.example/runbooks")
    assert MonitorSettings().runbook_base_url == "https://docs.example/runbooks"
