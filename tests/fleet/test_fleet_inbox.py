"""The alert inbox: SNS envelopes reach alerts.jsonl and `fleetscope alerts` prints them as JSON lines."""

from __future__ import annotations

import argparse
import io
import json
import time
from pathlib import Path

import boto3
import pytest

from contract.topology import Topology
from sandbox.aws.inbox import AlertLog, AlertPrinter, Inbox, add_alerts_arguments, cli_alerts, summary_line
from sandbox.aws.provision import Provisioned


def run_alerts(home: Path, monkeypatch: pytest.MonkeyPatch, *argv: str) -> int:
    monkeypatch.setenv("FLEETSCOPE_HOME", str(home))
    parser = argparse.ArgumentParser(prog="fleetscope alerts")
    add_alerts_arguments(parser)
    return cli_alerts(parser.parse_args(list(argv)))


def publish(topic_arn: str, subject: str, state: str) -> str:
    message_id: str = boto3.client("sns").publish(
        TopicArn=topic_arn,
        Subject=subject,
        Message=json.dumps({"title": subject, "state": state}),
        MessageAttributes={
            "state": {"DataType": "String", "StringValue": state},
            "severity": {"DataType": "String", "StringValue": "critical"},
        },
    )["MessageId"]
    return message_id


@pytest.mark.integration
def test_alerts_arrive_as_sns_envelopes_and_are_kept_in_order(
    provisioned: Provisioned, topo: Topology, tmp_path: Path
) -> None:
    # Given the inbox, ensured twice (idempotent: one subscription)
    Inbox.ensure(topo, home=tmp_path, topic_arn=provisioned.alerts_topic_arn)
    inbox = Inbox.ensure(topo, home=tmp_path, topic_arn=provisioned.alerts_topic_arn)
    inbox.drain()
    for topic in (provisioned.alerts_topic_arn, provisioned.monitor_health_topic_arn):
        subs = boto3.client("sns").list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
        assert sum(1 for s in subs if s["Endpoint"].endswith(":fleetscope-test-alerts-inbox")) == 1
    # When two alerts are published and the printer runs
    ids = [
        publish(provisioned.alerts_topic_arn, "API 5XX rate", "OPEN"),
        publish(provisioned.alerts_topic_arn, "API 5XX rate", "RESOLVED"),
    ]
    out = io.StringIO()
    printer = AlertPrinter(inbox, out=out, wait_s=1).start()
    try:
        deadline = time.monotonic() + 20
        while printer.received < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        printer.stop()
    # Then the file holds both envelopes, with subject, timestamp and message attributes
    alerts, problems = AlertLog(tmp_path).read()
    assert problems == []
    assert [a["MessageId"] for a in alerts] == ids
    assert alerts[0]["Type"] == "Notification"
    assert alerts[0]["Subject"] == "API 5XX rate"
    assert alerts[0]["MessageAttributes"]["state"]["Value"] == "OPEN"
    assert "Timestamp" in alerts[0]
    # And the console got one short line per alert
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert "OPEN" in lines[0]
    assert "critical" in lines[0]
    assert "RESOLVED" in lines[1]
    # And the queue is empty (each alert moved once)
    assert inbox.drain() == []
    # And an alarm on the monitor's own health (its own topic) reaches the inbox too, with its topic
    health_id = publish(provisioned.monitor_health_topic_arn, "Monitor heartbeat missing", "ALARM")
    deadline = time.monotonic() + 20
    received: list[dict[str, object]] = []
    while not received and time.monotonic() < deadline:
        received = inbox.drain()
    assert [(m["MessageId"], m["TopicArn"]) for m in received] == [
        (health_id, provisioned.monitor_health_topic_arn)
    ]


def test_cli_prints_one_json_object_per_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    envelopes = [{"Type": "Notification", "MessageId": str(i), "Subject": f"alert {i}"} for i in range(3)]
    AlertLog(tmp_path).append(envelopes)
    assert run_alerts(tmp_path, monkeypatch) == 0
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert printed == envelopes


def test_cli_without_alerts_prints_nothing_and_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_alerts(tmp_path, monkeypatch) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "no alerts received yet" in captured.err


def test_cli_skips_a_corrupt_line_loudly_and_keeps_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "alerts.jsonl"
    path.write_text('{"MessageId": "1"}\n{"MessageId": \n{"MessageId": "3"}\n')
    assert run_alerts(tmp_path, monkeypatch) == 1
    captured = capsys.readouterr()
    assert [json.loads(line)["MessageId"] for line in captured.out.splitlines()] == ["1", "3"]
    assert "alerts.jsonl:2" in captured.err
    assert path.read_text().count("\n") == 3  # nothing was rewritten


def test_summary_line_is_short_and_readable() -> None:
    line = summary_line(
        {
            "Timestamp": "2026-11-25T18:00:00.000Z",
            "Subject": "cars-api error rate",
            "MessageAttributes": {"State": {"Type": "String", "Value": "open"}},
        }
    )
    assert line == "[2026-11-25T18:00:00.000Z] OPEN      -        cars-api error rate"
