"""The thin handler: event parsing, result mapping to the monitor's own metrics, failures."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from contract.topology import SCHEDULED_TIME_FIELD
from monitor import handler
from monitor.budget import RunBudget
from monitor.handler import MonitorEvent
from monitor.service import RunResult
from sandbox.aws.scheduler import scheduled_event


@dataclass
class Ctx:
    function_name: str = "fleetscope-test-monitor"
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:fleetscope-test-monitor"
    aws_request_id: str = "req-1"
    remaining_ms: int = 120_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def _emf(out: str) -> dict[str, float]:
    values: dict[str, float] = {}
    for line in out.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            doc = json.loads(line)
            for d in doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]:
                value = doc[d["Name"]]
                values[d["Name"]] = value[0] if isinstance(value, list) else value
    return values


def test_scheduled_time_is_the_clock_and_absent_time_is_now() -> None:
    # Given the input the schedule sends (EventBridge Scheduler fills in <aws.scheduler.scheduled-time>)
    event = {SCHEDULED_TIME_FIELD: "2026-01-01T00:05:00Z"}
    # Then that time is the run's clock; without it, the wall clock
    assert MonitorEvent.model_validate(event).now() == 1_767_225_900
    assert abs(MonitorEvent.model_validate({}).now() - time.time()) < 5


def test_a_retried_invocation_runs_at_the_same_scheduled_time(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []
    monkeypatch.setattr(
        handler, "run_monitor", lambda event, **_: (seen.append(event.now()), RunResult("ok", event.now()))[1]
    )
    # Given the sandbox's scheduler event (the shape the CDK schedule sends), delivered twice
    event = scheduled_event(datetime(2026, 1, 1, 0, 5, 7, tzinfo=UTC))
    handler.lambda_handler(event, Ctx())  # type: ignore[arg-type]
    handler.lambda_handler(event, Ctx(aws_request_id="req-2"))  # type: ignore[arg-type]
    # Then both runs use the scheduled time, not the wall clock
    assert seen == [1_767_225_907, 1_767_225_907]


def test_a_successful_run_emits_heartbeat_and_run_metrics(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: list[tuple[int, str]] = []

    def fake_run(event: MonitorEvent, *, owner: str, **_: Any) -> RunResult:
        seen.append((event.now(), owner))
        return RunResult(status="ok", now=event.now(), series_scored=42, open_incidents=1)

    monkeypatch.setattr(handler, "run_monitor", fake_run)
    out = handler.lambda_handler({SCHEDULED_TIME_FIELD: "2026-01-01T00:05:00Z"}, Ctx())  # type: ignore[arg-type]
    assert out["series_scored"] == 42
    assert seen == [(1_767_225_900, "req-1")]
    metrics = _emf(capsys.readouterr().out)
    assert metrics["Heartbeat"] == 1
    assert metrics["MetricsEvaluated"] == 42
    assert metrics["AnomaliesOpen"] == 1
    assert metrics["RunErrors"] == 0


def test_a_skipped_run_sends_no_heartbeat(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(handler, "run_monitor", lambda event, **_: RunResult(status="skipped", now=0))
    assert handler.lambda_handler({}, Ctx())["status"] == "skipped"  # type: ignore[arg-type]
    assert "Heartbeat" not in _emf(capsys.readouterr().out)


def test_a_failed_run_counts_an_error_and_raises_for_lambda_to_retry(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def boom(event: MonitorEvent, **_: Any) -> Any:
        raise RuntimeError("GetMetricData unavailable")

    monkeypatch.setattr(handler, "run_monitor", boom)
    with pytest.raises(RuntimeError, match="unavailable"):
        handler.lambda_handler({}, Ctx())  # type: ignore[arg-type]
    metrics = _emf(capsys.readouterr().out)
    assert metrics["RunErrors"] == 1
    assert "Heartbeat" not in metrics


def test_the_run_budget_is_the_invocation_s_remaining_time(monkeypatch: pytest.MonkeyPatch) -> None:
    budgets: list[float] = []

    def fake_build(settings: object, *, owner: str, budget: RunBudget) -> Any:
        budgets.append(budget.remaining_s())
        return type("Svc", (), {"run": lambda self, now: RunResult(status="ok", now=now)})()

    monkeypatch.setattr(handler, "get_settings", lambda: None)
    monkeypatch.setattr(handler, "build_service", fake_build)
    # Given an invocation with 42.5 s left
    handler.lambda_handler({}, Ctx(remaining_ms=42_500))  # type: ignore[arg-type]
    # Then the run's budget is that time (it stops starting work it could not finish)
    assert budgets == [42.5]
