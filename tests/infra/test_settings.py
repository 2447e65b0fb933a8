"""Stage settings parsed from CDK context: presets from cdk.json, string overrides from ``-c``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from infra.settings import SettingsError, stage_settings

pytestmark = pytest.mark.infra


@pytest.fixture
def context(cdk_context: dict[str, Any]) -> Callable[..., dict[str, Any]]:
    def make(**overrides: Any) -> dict[str, Any]:
        return cdk_context | overrides

    return make


def test_presets_differ_per_stage(context: Callable[..., dict[str, Any]]) -> None:
    dev = stage_settings(context(stage="dev").get)
    prod = stage_settings(context(stage="prod").get)

    assert (dev.canary, dev.removal_policy, dev.log_retention_days) == (False, "destroy", 14)
    assert (prod.canary, prod.removal_policy, prod.log_retention_days) == (True, "retain", 90)
    assert prod.memory_for("cars-api", 512) == 1024
    assert prod.memory_for("monitor", 1024) == 1024


def test_command_line_strings_override_the_preset(context: Callable[..., dict[str, Any]]) -> None:
    # Given context values as the CDK CLI passes them (-c key=value: always strings)
    values = context(
        stage="prod",
        canary="false",
        alertEmails="ops@example.com, oncall@example.com",
        memoryMb='{"monitor": 2048}',
        logRetentionDays="30",
    )
    # When
    settings = stage_settings(values.get)
    # Then
    assert settings.canary is False
    assert settings.alert_emails == ("ops@example.com", "oncall@example.com")
    assert settings.memory_for("monitor", 1024) == 2048
    assert settings.log_retention_days == 30


def test_unknown_stage_gets_defaults(context: Callable[..., dict[str, Any]]) -> None:
    settings = stage_settings(context(stage="qa").get)
    assert settings.stage == "qa"
    assert settings.alert_emails == ()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"alertEmails": "ops@example.com,not-an-address"},
            "alertEmails: Value error, not e-mail addresses: not-an-address",
        ),
        ({"logRetentionDays": "10"}, "logRetentionDays: Value error, CloudWatch Logs accepts only"),
        (
            {"memoryMb": '{"cars-api": 64}'},
            "memoryMb: Value error, cars-api: Lambda memory must be 128..10240 MB",
        ),
        ({"memoryMb": "{oops"}, "memoryMb: Value error, expected a JSON object"),
        ({"canary": "perhaps"}, "canary: Input should be a valid boolean"),
        ({"removalPolicy": "snapshot"}, "removalPolicy: Input should be 'destroy' or 'retain'"),
        ({"stage": "Prod!"}, "stage: Value error, must be 2-16 characters"),
    ],
)
def test_bad_context_fails_with_the_key_and_the_reason(
    context: Callable[..., dict[str, Any]], overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        stage_settings(context(stage=overrides.pop("stage", "prod"), **overrides).get)
    assert message in str(caught.value)


def test_unknown_keys_in_a_preset_are_rejected(context: Callable[..., dict[str, Any]]) -> None:
    values = context(stage="dev", stages={"dev": {"logRetention": 14}})
    with pytest.raises(SettingsError, match="logRetention: Extra inputs are not permitted"):
        stage_settings(values.get)
