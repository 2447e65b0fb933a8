"""The cars REST API: API Gateway (REST, regional) → Lambda proxy → the ``live`` alias of cars-api.

Authorisation: AWS IAM (SigV4) on every ``/cars`` method, reads included. The clients of a fleet back
office are other services and operators' tools that already hold AWS credentials, so IAM needs no user
directory and access is granted with ordinary policies (``execute-api:Invoke`` on the stage ARN, see
``CarsApi.grant_invoke``). Only ``GET /health`` is open, for load-balancer style probes; it reveals
nothing. Stage throttling caps the blast radius of a runaway client; access logs are JSON; X-Ray traces
every request end to end with the function's segments.
"""

from __future__ import annotations

import json

from aws_cdk import RemovalPolicy
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.nag import acknowledge
from infra.settings import ApiThrottle

_ACCESS_LOG_FIELDS = {
    "requestId": apigw.AccessLogField.context_request_id(),
    "extendedRequestId": apigw.AccessLogField.context_extended_request_id(),
    "ip": apigw.AccessLogField.context_identity_source_ip(),
    "caller": apigw.AccessLogField.context_identity_caller(),
    "user": apigw.AccessLogField.context_identity_user_arn(),
    "requestTime": apigw.AccessLogField.context_request_time(),
    "httpMethod": apigw.AccessLogField.context_http_method(),
    "resourcePath": apigw.AccessLogField.context_resource_path(),
    "path": apigw.AccessLogField.context_path(),
    "status": apigw.AccessLogField.context_status(),
    "protocol": apigw.AccessLogField.context_protocol(),
    "responseLength": apigw.AccessLogField.context_response_length(),
    "responseLatency": apigw.AccessLogField.context_response_latency(),
    "integrationLatency": apigw.AccessLogField.context_integration_latency(),
    "integrationStatus": apigw.AccessLogField.context_integration_status(),
    "xrayTraceId": apigw.AccessLogField.context_xray_trace_id(),
    "errorMessage": apigw.AccessLogField.context_error_message(),
}


class CarsApi(Construct):
    """Exposes ``api`` (RestApi), ``stage`` and ``access_logs``."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        api_name: str,
        stage_name: str,
        handler: lambda_.IFunction,
        throttle: ApiThrottle,
        log_retention: logs.RetentionDays,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        self.access_logs = logs.LogGroup(
            self,
            "AccessLogs",
            log_group_name=f"/aws/apigateway/{api_name}/access",
            retention=log_retention,
            removal_policy=removal_policy,
        )
        self.api = apigw.RestApi(
            self,
            "Api",
            rest_api_name=api_name,
            description="Fleetscope cars API (IAM auth; /health open)",
            endpoint_types=[apigw.EndpointType.REGIONAL],
            # Execution logging (ERROR level) needs the account-level API Gateway → CloudWatch role. It
            # is one setting per account and region: retained, so destroying the dev stage cannot
            # delete the role that prod's API Gateway logging points at.
            cloud_watch_role=True,
            cloud_watch_role_removal_policy=RemovalPolicy.RETAIN,
            deploy_options=apigw.StageOptions(
                stage_name=stage_name,
                tracing_enabled=True,
                access_log_destination=apigw.LogGroupLogDestination(self.access_logs),
                access_log_format=apigw.AccessLogFormat.custom(json.dumps(_ACCESS_LOG_FIELDS)),
                logging_level=apigw.MethodLoggingLevel.ERROR,
                data_trace_enabled=False,
                throttling_rate_limit=throttle.rate_limit,
                throttling_burst_limit=throttle.burst_limit,
            ),
            default_method_options=apigw.MethodOptions(authorization_type=apigw.AuthorizationType.IAM),
        )
        integration = apigw.LambdaIntegration(handler, proxy=True)
        cars = self.api.root.add_resource("cars")
        cars.add_method("ANY", integration)
        cars.add_resource("{proxy+}").add_method("ANY", integration)
        self.health_method = self.api.root.add_resource("health").add_method(
            "GET", integration, authorization_type=apigw.AuthorizationType.NONE
        )
        self.stage = self.api.deployment_stage
        self._acknowledge()

    def _acknowledge(self) -> None:
        acknowledge(
            self.api,
            "APIG2",
            "Requests are validated in the Lambda against the same Pydantic models that produce the "
            "OpenAPI document (Powertools enable_validation, 422 problem+json); gateway JSON-schema "
            "models would duplicate them and drift.",
        )
        acknowledge(
            self.api,
            "APIG3",
            "No WAF: every /cars method needs SigV4-signed IAM credentials and the stage is throttled; "
            "a web ACL (from $5/month + rules) is worth it once the API is exposed to untrusted clients.",
        )
        acknowledge(
            self.api,
            "COG4",
            "Authorisation is AWS IAM (SigV4), not Cognito: the back-office clients are services and "
            "operators' tools holding AWS credentials; access is granted with execute-api:Invoke.",
        )
        acknowledge(
            self.health_method,
            "APIG4",
            "GET /health is deliberately unauthenticated for liveness probes; it returns only a status.",
        )
        acknowledge(
            self.api,
            "IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs]",
            "The account-level API Gateway logging role uses the AWS-managed policy AWS documents for it; "
            "API Gateway needs it to write the stage's execution logs.",
        )

    def grant_invoke(self, grantee: iam.IGrantable, *, read_only: bool = False) -> iam.Grant:
        """Let a role call the API (all methods, or GET only)."""
        method = "GET" if read_only else "*"
        return iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["execute-api:Invoke"],
            resource_arns=[
                self.api.arn_for_execute_api(method=method, path="/*", stage=self.stage.stage_name)
            ],
        )
