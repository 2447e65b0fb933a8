"""The sandbox configures the monitor for its own clock: fresh 1-minute data and a short history."""

from __future__ import annotations

import pytest

from sandbox.app import Sandbox, SandboxConfig, SandboxError


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


def test_the_calibration_window_defaults_to_8_s_and_follows_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given no setting, the sandbox measures itself for 8 s before writing the history
    monkeypatch.delenv("FLEETSCOPE_CALIBRATION_S", raising=False)
    assert SandboxConfig().calibration_s == 8.0
    # When FLEETSCOPE_CALIBRATION_S is set, it wins; 0 turns calibration off
    monkeypatch.setenv("FLEETSCOPE_CALIBRATION_S", "7.5")
    assert SandboxConfig().calibration_s == 7.5
    monkeypatch.setenv("FLEETSCOPE_CALIBRATION_S", "0")
    Sandbox(SandboxConfig())  # valid
    # And an explicit value beats the environment
    assert SandboxConfig(calibration_s=3).calibration_s == 3


@pytest.mark.parametrize("raw", ["soon", "-1", "nan", "inf", "601"])
def test_a_bad_calibration_window_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv("FLEETSCOPE_CALIBRATION_S", raw)
    with pytest.raises(SandboxError, match="FLEETSCOPE_CALIBRATION_S"):
        Sandbox(SandboxConfig())


def test_a_bad_monitor_override_stops_the_sandbox_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a monitor setting the sandbox cannot pass on
    monkeypatch.setenv("MONITOR_SETTLE_S", "soon")
    # When the sandbox builds the monitor's environment, it stops before anything starts, naming it
    with pytest.raises(SandboxError, match="MONITOR_SETTLE_S='soon'"):
        Sandbox._monitor_environment(SandboxConfig(monitor_period_s=60))


def test_alerts_link_to_the_dashboard_the_sandbox_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MONITOR_DASHBOARD_URL", raising=False)
    env = Sandbox._monitor_environment(SandboxConfig(dashboard=True, dashboard_port=8599))
    assert env["MONITOR_DASHBOARD_URL"] == "http://127.0.0.1:8599"
    # A port picked at start (0) is not known yet: no link rather than a wrong one; a set URL wins
    assert "MONITOR_DASHBOARD_URL" not in Sandbox._monitor_environment(
        SandboxConfig(dashboard=True, dashboard_port=0)
    )
    monkeypatch.setenv("MONITOR_DASHBOARD_URL", "https://dash.example")
    env = Sandbox._monitor_environment(SandboxConfig(dashboard=True, dashboard_port=8599))
    assert env["MONITOR_DASHBOARD_URL"] == "https://dash.example"
