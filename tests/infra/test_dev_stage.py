"""The default stage (``npx cdk deploy --all -c stage=dev``): no canary, everything destroyable."""

from __future__ import annotations

from typing import Any

import pytest
from infra_support import Synthesized

pytestmark = [pytest.mark.infra, pytest.mark.slow]


@pytest.fixture(scope="module")
def dev_templates(synthesized: Synthesized, cdk_context: dict[str, Any]) -> dict[str, Any]:
    assert cdk_context["stage"] == "dev", "cdk.json's default stage"
    return {"settings": synthesized.built.stages["dev"].settings, **synthesized.dev_templates}


def _of_type(template: dict[str, Any], type_: str) -> list[dict[str, Any]]:
    return [r for r in template["Resources"].values() if r["Type"] == type_]


def test_dev_is_the_default_stage_and_has_no_canary(dev_templates: dict[str, Any]) -> None:
    assert dev_templates["settings"].stage == "dev"
    service = dev_templates["service"]
    assert not _of_type(service, "AWS::CodeDeploy::DeploymentGroup")
    aliases = _of_type(service, "AWS::Lambda::Alias")
    assert len(aliases) == 3
    assert all("UpdatePolicy" not in a for a in aliases)


def test_dev_resources_are_destroyed_with_the_stack(dev_templates: dict[str, Any]) -> None:
    for stack in ("service", "observability"):
        for table in _of_type(dev_templates[stack], "AWS::DynamoDB::Table"):
            assert table["DeletionPolicy"] == "Delete"
            assert table["Properties"]["DeletionProtectionEnabled"] is False
        for log_group in _of_type(dev_templates[stack], "AWS::Logs::LogGroup"):
            assert log_group["DeletionPolicy"] == "Delete"
            assert log_group["Properties"]["RetentionInDays"] == 14


def test_dev_without_alert_emails_has_no_email_subscriptions(dev_templates: dict[str, Any]) -> None:
    subscriptions = _of_type(dev_templates["observability"], "AWS::SNS::Subscription")
    assert [s["Properties"]["Protocol"] for s in subscriptions] == ["sqs"]  # the monitor's receipts only
    assert len(_of_type(dev_templates["observability"], "AWS::SNS::Topic")) == 2  # alerts, monitor health


def test_api_gateway_account_logging_role_survives_a_dev_destroy(dev_templates: dict[str, Any]) -> None:
    # One setting per account and region, shared by every stage's API: destroying dev must not
    # delete the role prod's execution logging uses.
    service = dev_templates["service"]
    (account,) = _of_type(service, "AWS::ApiGateway::Account")
    assert account["DeletionPolicy"] == "Retain"
    role_id = account["Properties"]["CloudWatchRoleArn"]["Fn::GetAtt"][0]
    assert service["Resources"][role_id]["DeletionPolicy"] == "Retain"
