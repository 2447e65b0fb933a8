"""CodeDeploy canary for a Lambda alias: 10 % for 5 minutes, rolled back when its alarms fire.

Its alarms: the alias's errors, the API's 5XX (for the API's function), and the canary judge's
verdict (``Fleetscope/Canary`` ``CanaryFail`` of this deployment group, published every minute by
the judging loop, ``infra.constructs.canary_judge``). Application and group carry literal names
(``canary_group_name``) so the verdict alarm names its group without a reference cycle.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_codedeploy as codedeploy
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from constructs import Construct

from contract.runbooks import CANARY_ROLLBACK
from infra.constructs.canary_judge import VERDICT_METRIC, VERDICT_NAMESPACE
from infra.constructs.lambda_function import LIVE_ALIAS
from infra.constructs.runbooks import pin_runbook
from infra.nag import acknowledge


class CanaryDeployment(Construct):
    """Exposes ``deployment_group`` and ``alarms`` (alias errors, API 5xx, verdict) that stop a rollout."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        alias: lambda_.Alias,
        function_name: str,
        group_name: str,
        api_5xx: cloudwatch.IMetric | None,
        alarm_name_prefix: str,
        alerts_topic: sns.ITopic,
        extra_alarms: Sequence[cloudwatch.IAlarm] = (),
    ) -> None:
        super().__init__(scope, construct_id)
        alias_name = LIVE_ALIAS  # a literal: alias.alias_name would be a token referencing the alias
        alias_errors = cloudwatch.Alarm(
            self,
            "AliasErrors",
            alarm_name=f"{alarm_name_prefix}-canary-alias-errors",
            alarm_description=f"Errors of {function_name}:{alias_name} (roll the canary back)",
            # By name, not alias.metric_errors(): a Ref to the alias would close a cycle with the
            # alias's CodeDeploy UpdatePolicy (alias -> deployment group -> alarm -> alias).
            metric=cloudwatch.Metric(
                namespace="AWS/Lambda",
                metric_name="Errors",
                dimensions_map={"FunctionName": function_name, "Resource": f"{function_name}:{alias_name}"},
                statistic="Sum",
                period=Duration.minutes(1),
            ),
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        verdict = cloudwatch.Alarm(
            self,
            "VerdictFail",
            alarm_name=f"{alarm_name_prefix}-canary-verdict-fail",
            alarm_description=f"The canary judge says FAIL for {group_name} (roll the canary back)",
            metric=cloudwatch.Metric(
                namespace=VERDICT_NAMESPACE,
                metric_name=VERDICT_METRIC,
                dimensions_map={"DeploymentGroup": group_name},
                statistic="Maximum",
                period=Duration.minutes(1),
            ),
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self.alarms: tuple[cloudwatch.Alarm, ...] = (alias_errors, verdict)
        if api_5xx is not None:
            api_errors = cloudwatch.Alarm(
                self,
                "Api5xx",
                alarm_name=f"{alarm_name_prefix}-canary-api-5xx",
                alarm_description="API 5XX responses during a deployment (roll the canary back)",
                metric=api_5xx,
                threshold=1,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
            self.alarms += (api_errors,)
        for alarm in self.alarms:
            pin_runbook(alarm, CANARY_ROLLBACK)  # whatever the metric, these alarms mean a rollback
            alarm.add_alarm_action(cw_actions.SnsAction(alerts_topic))
            alarm.add_ok_action(cw_actions.SnsAction(alerts_topic))
        self.deployment_group = codedeploy.LambdaDeploymentGroup(
            self,
            "DeploymentGroup",
            alias=alias,
            application=codedeploy.LambdaApplication(self, "Application", application_name=group_name),
            deployment_group_name=group_name,
            deployment_config=codedeploy.LambdaDeploymentConfig.CANARY_10_PERCENT_5_MINUTES,
            alarms=[*self.alarms, *extra_alarms],
            auto_rollback=codedeploy.AutoRollbackConfig(
                failed_deployment=True, stopped_deployment=True, deployment_in_alarm=True
            ),
        )
        acknowledge(
            self.deployment_group,
            "IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSCodeDeployRoleForLambdaLimited]",
            "CodeDeploy's service role for Lambda uses the AWS-maintained minimal policy made for it "
            "(update aliases, invoke hooks, read alarms); AWS keeps it in step with CodeDeploy.",
        )
