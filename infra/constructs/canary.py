"""CodeDeploy canary for a Lambda alias: 10 % for 5 minutes, rolled back when its alarms fire."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_codedeploy as codedeploy
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from constructs import Construct

from infra.constructs.lambda_function import LIVE_ALIAS
from infra.nag import acknowledge


class CanaryDeployment(Construct):
    """Exposes ``deployment_group`` and ``alarms`` (alias errors, API 5xx) that stop a bad rollout."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        alias: lambda_.Alias,
        function_name: str,
        api_5xx: cloudwatch.IMetric,
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
        self.alarms: tuple[cloudwatch.Alarm, ...] = (alias_errors, api_errors)
        for alarm in self.alarms:
            alarm.add_alarm_action(cw_actions.SnsAction(alerts_topic))
            alarm.add_ok_action(cw_actions.SnsAction(alerts_topic))
        self.deployment_group = codedeploy.LambdaDeploymentGroup(
            self,
            "DeploymentGroup",
            alias=alias,
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
