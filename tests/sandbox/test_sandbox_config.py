"""The sandbox configures the monitor for its own clock: fresh 1-minute data and a short history."""

from __future__ import annotations

import pytest

from sandbox.app import Sandbox, SandboxConfig


def test_the_monitor_scores_fresh_minutes_on_the_backfills_one_minute_history(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given no monitor settings in the environment
    for key in ("MONITOR_SETTLE_S", "MONITOR_HISTORY_DAYS", "MONITOR_PERIOD_S"):
        monkeypatch.delenv(key, raising=False)
    # When the sandbox builds the monitor's environment
    env = Sandbox._monitor_environment(SandboxConfig(monitor_period_s=60))
    # Then minutes are scored 10 s after they end, over the 2 days of 1-minute history
    assert env == {"MONITOR_PERIOD_S": "60", "MONITOR_SETTLE_S": "10", "MONITOR_HISTORY_DAYS": "2"}


def test_a_monitor_setting_in_the_environment_wins_but_the_period_follows_the_config(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MONITOR_HISTORY_DAYS", "7")
    monkeypatch.setenv("MONITOR_PERIOD_S", "300")
    env = Sandbox._monitor_environment(SandboxConfig(monitor_period_s=60))
    assert env["MONITOR_HISTORY_DAYS"] == "7"
    assert env["MONITOR_PERIOD_S"] == "60"
