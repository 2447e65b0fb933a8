"""Every metric the CDK app's alarms and dashboard widgets reference is one the sandbox publishes.

Given the app synthesized for the sandbox's stage (``python -m infra.preview``), every (namespace,
name, dimensions) its alarms and widgets name — SEARCH expressions included — must appear in the
emulator's CloudWatch (ListMetrics) once a real sandbox has run with traffic, except the metrics AWS
itself publishes only when the event happens (`EVENT_ONLY`, the list docs/monitoring/dashboard.md gives). A
misspelt metric name or dimension in an alarm would stay INSUFFICIENT_DATA forever on AWS; here it
fails this test (the lister's own tests below show that).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from dashboard.cdk_preview import MetricRef, Preview, load_preview, unpublished

ROOT = Path(__file__).resolve().parents[2]
STAGE = "local"  # the sandbox's default stage: what `fleetscope sandbox up` runs and the page shows

# Metrics AWS publishes only when the event happens (or, for this app, never): expected missing from
# a healthy sandbox. Keep in step with docs/monitoring/dashboard.md ("Every metric they reference").
EVENT_ONLY: dict[tuple[str, str], str] = {
    ("AWS/DynamoDB", "SystemErrors"): "only when a request fails with an HTTP 500 (per Operation)",
    ("AWS/DynamoDB", "ReadThrottleEvents"): "only when a read is throttled",
    ("AWS/DynamoDB", "WriteThrottleEvents"): "only when a write is throttled",
    ("AWS/Lambda", "ProvisionedConcurrencySpilloverInvocations"): (
        "only for functions with provisioned concurrency (none has any)"
    ),
    ("AWS/Events", "FailedInvocations"): "only when a rule's target invocation fails",
    ("Fleetscope/Canary", "CanaryFail"): "only while a CodeDeploy deployment is judged (prod's judging loop)",
}


def event_only_reason(ref: MetricRef, topology_names: dict[str, str]) -> str | None:
    """Why `ref` may be missing from a healthy sandbox, or None if it must be there."""
    reason = EVENT_ONLY.get((ref.namespace, ref.name))
    if reason:
        return reason
    dims = dict(ref.dimensions)
    if ref.name == "IteratorAge" and dims.get("FunctionName") != topology_names["outbox-relay"]:
        return (
            "Lambda publishes it only for stream-invoked functions (the library draws it for every function)"
        )
    if ref.name == "SentMessageSize" and dims.get("QueueName") != topology_names["telemetry-queue"]:
        return "only in minutes with a SendMessage (nobody sends to the DLQs and failure queues normally)"
    return None


# ----------------------------------------------------------------------------------- the lister


def _document(alarm_metric: dict[str, Any], widget_metric: list[Any]) -> dict[str, Any]:
    body = {
        "widgets": [
            {
                "type": "metric",
                "x": 0,
                "y": 0,
                "width": 6,
                "height": 6,
                "properties": {"metrics": [widget_metric]},
            }
        ]
    }
    return {
        "stage": "t",
        "stacks": {
            "S": {
                "A": {"Type": "AWS::CloudWatch::Alarm", "Properties": {"AlarmName": "a", **alarm_metric}},
                "D": {
                    "Type": "AWS::CloudWatch::Dashboard",
                    "Properties": {
                        "DashboardName": "d",
                        "DashboardBody": {"Fn::Join": ["", [json.dumps(body)]]},
                    },
                },
            }
        },
    }


PUBLISHED = [
    ("AWS/Lambda", "Errors", (("FunctionName", "f"),)),
    ("AWS/DynamoDB", "SuccessfulRequestLatency", (("Operation", "GetItem"), ("TableName", "t"))),
]
GOOD_ALARM = {
    "Namespace": "AWS/Lambda",
    "MetricName": "Errors",
    "Dimensions": [{"Name": "FunctionName", "Value": "f"}],
}


def test_the_lister_finds_alarm_and_widget_metrics_and_they_match_what_is_published() -> None:
    preview = load_preview(
        _document(GOOD_ALARM, ["AWS/Lambda", "Errors", "FunctionName", "f", {"stat": "Sum"}])
    )
    refs = preview.referenced_metrics()
    assert [r.describe() for r in refs] == ["AWS/Lambda Errors [FunctionName=f]"]
    assert unpublished(refs, PUBLISHED) == []


@pytest.mark.parametrize(
    ("alarm", "widget"),
    [
        # a misspelt metric name in the alarm
        ({**GOOD_ALARM, "MetricName": "Error"}, ["AWS/Lambda", "Errors", "FunctionName", "f"]),
        # a misspelt dimension name in the alarm
        (
            {**GOOD_ALARM, "Dimensions": [{"Name": "Functionname", "Value": "f"}]},
            ["AWS/Lambda", "Errors", "FunctionName", "f"],
        ),
        # a wrong dimension value (another function) in a widget
        (GOOD_ALARM, ["AWS/Lambda", "Errors", "FunctionName", "g"]),
        # a dimension too many in a widget (CloudWatch matches dimension sets exactly)
        (GOOD_ALARM, ["AWS/Lambda", "Errors", "FunctionName", "f", "Resource", "f:live"]),
    ],
)
def test_a_misspelt_metric_or_dimension_is_reported_unpublished(
    alarm: dict[str, Any], widget: list[Any]
) -> None:
    refs = load_preview(_document(alarm, widget)).referenced_metrics()
    missing = unpublished(refs, PUBLISHED)
    assert len(missing) == 1, [r.describe() for r in missing]


def test_a_search_expression_references_its_metric_with_the_free_dimensions_open() -> None:
    search = (
        'SEARCH(\'{"AWS/DynamoDB","TableName","Operation"} "TableName"="t" '
        "MetricName=\"SuccessfulRequestLatency\"', 'Average', 300)"
    )
    ok = load_preview(_document(GOOD_ALARM, [{"expression": search}])).referenced_metrics()
    assert unpublished(ok, PUBLISHED) == []
    wrong = load_preview(
        _document(GOOD_ALARM, [{"expression": search.replace('"t"', '"other"')}])
    ).referenced_metrics()
    assert [r.describe() for r in unpublished(wrong, PUBLISHED)] == [
        "AWS/DynamoDB SuccessfulRequestLatency [Operation=*, TableName=other]"
    ]


# ----------------------------------------------------------------------------------- the sandbox


@pytest.fixture(scope="module")
def preview(tmp_path_factory: pytest.TempPathFactory) -> Preview:
    out = tmp_path_factory.mktemp("cdk-preview") / f"{STAGE}.json"
    env = os.environ | {"JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20"}
    subprocess.run(
        [sys.executable, "-m", "infra.preview", "--stage", STAGE, "--out", str(out)],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )
    return load_preview(json.loads(out.read_text()))


@pytest.fixture
def own_environment() -> Iterator[None]:
    saved = dict(os.environ)  # the sandbox points AWS_* at its emulator
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _listed(cloudwatch: Any) -> list[tuple[str, str, tuple[tuple[str, str], ...]]]:
    listed = []
    for page in cloudwatch.get_paginator("list_metrics").paginate():
        for m in page["Metrics"]:
            dims = tuple(sorted((d["Name"], d["Value"]) for d in m.get("Dimensions", [])))
            listed.append((m["Namespace"], m["MetricName"], dims))
    return listed


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.infra
def test_the_sandbox_publishes_every_metric_the_cdk_alarms_and_dashboards_reference(
    preview: Preview, tmp_path: Path, own_environment: None
) -> None:
    from contract.topology import topology
    from sandbox.app import Sandbox, SandboxConfig

    topo = topology(STAGE)
    names = {"outbox-relay": topo.outbox_relay.name, "telemetry-queue": topo.telemetry_queue.name}
    refs = preview.referenced_metrics()
    required = [r for r in refs if event_only_reason(r, names) is None]
    # Given a real sandbox with a small fleet, its monitor and the AWS metrics published every 2 s
    config = SandboxConfig(
        stage=STAGE,
        home=tmp_path,
        emulator_port=0,
        api_port=0,
        fleet_size=8,
        backfill=False,
        calibration_s=0,
        monitor_interval_s=5,
        tracing=False,
        flush_interval_s=0.5,
        aws_metrics_interval_s=2.0,
    )
    sandbox = Sandbox(config)
    try:
        sandbox.start()
        cloudwatch = boto3.client("cloudwatch")
        # When it has run with traffic until every required metric is listed (or the deadline passes)
        deadline = time.monotonic() + 240
        missing = required
        while time.monotonic() < deadline:
            missing = unpublished(required, _listed(cloudwatch))
            if not missing:
                break
            time.sleep(2)
        listed = _listed(cloudwatch)
    finally:
        sandbox.stop()
    # Then every metric but the event-only ones is there
    assert not missing, "never published: " + "; ".join(f"{r.describe()} ({r.where})" for r in missing)
    published = [r for r in refs if not unpublished([r], listed)]
    print(
        f"CDK METRICS referenced={len(refs)} required={len(required)} published={len(published)} "
        f"event_only={len(refs) - len(required)}"
    )
    assert len(refs) >= 100  # the lister sees the whole app (129 for the local stage when written)
