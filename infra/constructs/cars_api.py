"""The cars REST API: API Gateway (REST, regional) → Lambda proxy → the ``live`` alias of cars-api.

Authorisation: AWS IAM (SigV4) on every ``/cars`` method, reads included. The clients of a fleet back
office are other services and operators' tools that already hold AWS credentials, so IAM needs no user
directory and access is granted with ordinary policies (``execute-api:Invoke`` on the stage ARN, see
``CarsApi.grant_invoke``). Only ``GET /health`` is open, for load-balancer style probes; it reveals
nothing. Stage throttling caps the blast radius of a runaway client; access logs are JSON; X-Ray traces
every request end to end with the function's segments.

``POST /cars/{car_id}/telemetry`` has no Lambda: a request validator checks the body against the
``TelemetryReading`` model, and an AWS service integration sends the ingest's message to the telemetry
queue (SQS, AWS JSON protocol) with a role that may only send to that queue; 202 ``{"messageId"}`` only
for an SQS 2xx, 503 otherwise, 400 with the model's reason for a bad body. It has a method throttle of
its own. The templates and the model are ``contract.telemetry_api``'s, which the sandbox's gateway plays.
"""

from __future__ import annotations

import json

from aws_cdk import Aws, RemovalPolicy
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from contract.telemetry_api import (
    ACCEPTED_SELECTION_PATTERN,
    ACCEPTED_STATUS,
    ACCEPTED_TEMPLATE,
    BAD_REQUEST_BODY_TEMPLATE,
    NOT_QUEUED_STATUS,
    NOT_QUEUED_TEMPLATE,
    READING_MODEL_NAME,
    READING_SCHEMA,
    SQS_REQUEST_HEADERS,
    TELEMETRY_PATH,
    TELEMETRY_RESOURCE,
    send_message_template,
)
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
        telemetry_queue: sqs.IQueue,
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
                method_options={
                    f"{TELEMETRY_PATH}/POST": apigw.MethodDeploymentOptions(
                        throttling_rate_limit=throttle.telemetry_rate_limit,
                        throttling_burst_limit=throttle.telemetry_burst_limit,
                    )
                },
            ),
            default_method_options=apigw.MethodOptions(authorization_type=apigw.AuthorizationType.IAM),
        )
        integration = apigw.LambdaIntegration(handler, proxy=True)
        cars = self.api.root.add_resource("cars")
        cars.add_method("ANY", integration)
        # API Gateway allows one variable child per resource, so the car is {car_id} (not {proxy+}) and the
        # routes below it a {proxy+} beside the static `telemetry`.
        car = cars.add_resource("{car_id}")
        car.add_method("ANY", integration)
        car.add_resource("{proxy+}").add_method("ANY", integration)
        self.telemetry_method = self._telemetry(car.add_resource(TELEMETRY_RESOURCE), telemetry_queue)
        self.health_method = self.api.root.add_resource("health").add_method(
            "GET", integration, authorization_type=apigw.AuthorizationType.NONE
        )
        self.stage = self.api.deployment_stage
        self._acknowledge()

    def _telemetry(self, resource: apigw.Resource, queue: sqs.IQueue) -> apigw.Method:
        """POST a reading: request model → SQS SendMessage (no Lambda) → 202 {messageId}."""
        self.telemetry_role = iam.Role(
            self,
            "TelemetrySendRole",
            assumed_by=iam.ServicePrincipal("apigateway.amazonaws.com"),
            description="API Gateway's telemetry route: SendMessage to the telemetry queue, nothing else",
        )
        self.telemetry_role.add_to_policy(
            iam.PolicyStatement(actions=["sqs:SendMessage"], resources=[queue.queue_arn])
        )
        integration = apigw.AwsIntegration(
            service="sqs",
            path=f"{Aws.ACCOUNT_ID}/{queue.queue_name}",
            integration_http_method="POST",
            options=apigw.IntegrationOptions(
                credentials_role=self.telemetry_role,
                passthrough_behavior=apigw.PassthroughBehavior.NEVER,
                request_parameters={
                    f"integration.request.header.{name}": f"'{value}'"
                    for name, value in SQS_REQUEST_HEADERS.items()
                },
                request_templates={"application/json": send_message_template(queue.queue_url)},
                integration_responses=[
                    apigw.IntegrationResponse(
                        status_code=str(ACCEPTED_STATUS),
                        selection_pattern=ACCEPTED_SELECTION_PATTERN,
                        response_templates={"application/json": ACCEPTED_TEMPLATE},
                    ),
                    # The default (no pattern): whatever else SQS answered. Nothing was queued.
                    apigw.IntegrationResponse(
                        status_code=str(NOT_QUEUED_STATUS),
                        response_templates={"application/json": NOT_QUEUED_TEMPLATE},
                    ),
                ],
            ),
        )
        model = apigw.CfnModel(
            self,
            "TelemetryReadingModel",
            rest_api_id=self.api.rest_api_id,
            name=READING_MODEL_NAME,
            content_type="application/json",
            description="One telemetry reading (contract.telemetry_api.READING_SCHEMA)",
            schema=READING_SCHEMA,
        )
        validator = self.api.add_request_validator(
            "TelemetryBodyValidator", validate_request_body=True, validate_request_parameters=False
        )
        self.api.add_gateway_response(
            "BadRequestBody",
            type=apigw.ResponseType.BAD_REQUEST_BODY,
            templates={"application/json": BAD_REQUEST_BODY_TEMPLATE},
        )
        return resource.add_method(
            "POST",
            integration,
            request_validator=validator,
            request_models={
                "application/json": apigw.Model.from_model_name(self, "TelemetryReading", model.ref)
            },
            method_responses=[
                apigw.MethodResponse(status_code=str(ACCEPTED_STATUS)),
                apigw.MethodResponse(status_code=str(NOT_QUEUED_STATUS)),
            ],
        )

    def _acknowledge(self) -> None:
        acknowledge(
            self.api,
            "APIG2",
            "The telemetry route validates its body with a request model (no Lambda behind it); the Lambda "
            "routes are validated in the function against the same Pydantic models that produce the "
            "OpenAPI document (Powertools enable_validation, 422 problem+json); gateway models for them "
            "would duplicate those and drift.",
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
