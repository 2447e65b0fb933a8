"""ServiceStack: the cars service — API, tables, outbox relay, fleet bus, telemetry queue, functions."""

from __future__ import annotations

from aws_cdk import CfnOutput, Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sns as sns
from constructs import Construct

from contract.topology import Topology
from infra.constructs.canary import CanaryDeployment
from infra.constructs.canary_judge import canary_group_name
from infra.constructs.cars_api import CarsApi
from infra.constructs.event_bus import FleetEventBus
from infra.constructs.lambda_function import HouseFunction
from infra.constructs.queue import TopologyQueue
from infra.constructs.schedule import RateSchedule
from infra.constructs.table import TopologyTable
from infra.nag import acknowledge, ref
from infra.settings import StageSettings
from infra.stacks.common import log_retention, removal_policy

TELEMETRY_ATTRIBUTES = (
    "car_id",  # the key
    "record_type",  # read by the condition (only car items take telemetry)
    "status",  # read by the condition (retired cars take none)
    "position",
    "battery_level",
    "speed_kmh",
    "telemetry_ts",
)
"""What the telemetry ingest's UpdateItem touches (service/ingest/repository.py), the `dynamodb:Attributes`
it is allowed."""


class ServiceStack(Stack):
    """Composes the service's constructs and grants each function what it uses, nothing more."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        topology: Topology,
        settings: StageSettings,
        code: lambda_.Code,
        **kwargs: object,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        # The alerts topic lives in ObservabilityStack (deployed first); imported by its topology name
        # rather than by a cross-stack export, which would pin the topic while this stack uses it.
        alerts_topic = sns.Topic.from_topic_arn(
            self, "AlertsTopic", self.format_arn(service="sns", resource=topology.alerts_topic)
        )
        removal = removal_policy(settings)
        retention = log_retention(settings)

        self.cars = TopologyTable(self, "Cars", spec=topology.cars_table, removal_policy=removal)
        self.idempotency = TopologyTable(
            self, "Idempotency", spec=topology.idempotency_table, removal_policy=removal
        )
        self.outbox = TopologyTable(self, "Outbox", spec=topology.outbox_table, removal_policy=removal)
        self.telemetry = TopologyQueue(self, "Telemetry", spec=topology.telemetry_queue)
        self.relay_failures = TopologyQueue(
            self,
            "RelayFailures",
            spec=topology.relay_failures,
            dead_letter_for="the outbox stream mapping (records that exhausted their retries)",
        )
        self.events = FleetEventBus(
            self,
            "FleetEvents",
            topology=topology,
            archive_retention=Duration.days(90 if settings.removal_policy != "destroy" else 14),
            log_retention=retention,
            removal_policy=removal,
            log_positions=settings.log_event_positions,
        )

        # The key that signs the cars API's next_token: random, never in the template or the code.
        # Rotate with `aws secretsmanager put-secret-value` (a random value): AWSCURRENT signs, AWSCURRENT and
        # AWSPREVIOUS verify, so tokens in flight stay valid; the Lambdas re-read it within 5 minutes.
        self.pagination_key = secretsmanager.Secret(
            self,
            "PaginationKey",
            secret_name=topology.pagination_secret,
            description="Signs the cars API's next_token (AWSCURRENT signs, AWSPREVIOUS still verifies)",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                password_length=64, exclude_punctuation=True
            ),
            removal_policy=removal,
        )
        acknowledge(
            self.pagination_key,
            "SMG4",
            "A MAC key, not a credential: rotated by putting a new random value (README, 'Pagination key'); "
            "the previous value keeps verifying, so no rotation Lambda is needed.",
        )

        def house(construct_id: str, spec_key: str) -> HouseFunction:
            spec = next(f for f in topology.functions if f.key == spec_key)
            return HouseFunction(
                self,
                construct_id,
                spec=spec,
                topology=topology,
                code=code,
                memory_mb=settings.memory_for(spec.key, spec.memory_mb),
                log_retention=retention,
                removal_policy=removal,
            )

        self.cars_api = house("CarsApiFunction", topology.cars_api.key)
        self.telemetry_ingest = house("TelemetryIngestFunction", topology.telemetry_ingest.key)
        self.outbox_relay = house("OutboxRelayFunction", topology.outbox_relay.key)

        # cars-api: reads cars (by key and by GSI), writes a car and its outbox item in one transaction
        # (Put/Update/ConditionCheck items; never Delete or BatchWrite); idempotency records (Powertools
        # deletes a record when the request fails); the pagination key.
        self.cars.table.grant(
            self.cars_api.function,
            "dynamodb:GetItem",
            "dynamodb:Query",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "dynamodb:ConditionCheckItem",
        )
        self.idempotency.table.grant(
            self.cars_api.function,
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "dynamodb:DeleteItem",
        )
        self.cars_api.role.add_to_policy(
            iam.PolicyStatement(actions=["dynamodb:PutItem"], resources=[self.outbox.table.table_arn])
        )
        self.pagination_key.grant_read(self.cars_api.function)
        acknowledge(
            self.cars_api.role,
            f"IAM5[Resource::{ref(self.cars.table, 'Arn')}/index/*]",
            "Queries by GSI (by_listing, by_status, by_model) need the table's index ARNs; the "
            "wildcard covers only this table's indexes.",
        )
        # telemetry-ingest: one conditional UpdateItem per reading, on the telemetry attributes only.
        self.telemetry_ingest.role.add_to_policy(
            iam.PolicyStatement(
                actions=["dynamodb:UpdateItem"],
                resources=[self.cars.table.table_arn],
                conditions={"ForAllValues:StringEquals": {"dynamodb:Attributes": list(TELEMETRY_ATTRIBUTES)}},
            )
        )
        acknowledge(
            self.outbox_relay.role,
            "IAM5[Resource::*]",
            "Resource '*' only for actions without resource-level permissions: dynamodb:ListStreams "
            "(added by the stream event source mapping) and X-Ray PutTraceSegments/PutTelemetryRecords.",
        )
        # outbox-relay: reads the outbox stream, claims and marks items (UpdateItem), the sweeper finds the
        # unpublished ones in the by_pending index, publishes the service's own events to the fleet bus.
        self.outbox_relay.role.add_to_policy(
            iam.PolicyStatement(actions=["dynamodb:UpdateItem"], resources=[self.outbox.table.table_arn])
        )
        self.outbox_relay.role.add_to_policy(
            iam.PolicyStatement(
                actions=["dynamodb:Query"],
                resources=[f"{self.outbox.table.table_arn}/index/{topology.outbox_table.indexes[0].name}"],
            )
        )
        self.sweep_schedule = RateSchedule(
            self,
            "OutboxSweepSchedule",
            schedule_name=topology.outbox_sweep_schedule,
            target=self.outbox_relay.alias,
            every=Duration.minutes(5),
            dead_letter=topology.outbox_sweep_schedule_dlq,
        )
        self.outbox_relay.role.add_to_policy(
            iam.PolicyStatement(
                actions=["events:PutEvents"],
                resources=[self.events.bus.event_bus_arn],
                conditions={
                    "StringEquals": {"events:source": [topology.event_source]},
                    "ForAllValues:StringEquals": {"events:detail-type": list(topology.event_detail_types)},
                },
            )
        )

        telemetry = topology.telemetry_source
        self.telemetry_ingest.alias.add_event_source(
            sources.SqsEventSource(
                self.telemetry.queue,
                batch_size=telemetry.batch_size,
                max_batching_window=Duration.seconds(telemetry.max_batching_window_s),
                report_batch_item_failures=telemetry.report_batch_item_failures,
            )
        )
        outbox = topology.outbox_source
        self.outbox_relay.alias.add_event_source(
            sources.DynamoEventSource(
                self.outbox.table,
                starting_position=lambda_.StartingPosition.TRIM_HORIZON,
                batch_size=outbox.batch_size,
                max_batching_window=Duration.seconds(outbox.max_batching_window_s),
                retry_attempts=outbox.retry_attempts,
                max_record_age=Duration.seconds(outbox.max_record_age_s),
                bisect_batch_on_error=outbox.bisect_batch_on_error,
                report_batch_item_failures=outbox.report_batch_item_failures,
                on_failure=sources.SqsDlq(self.relay_failures.queue),
                filters=[
                    lambda_.FilterCriteria.filter({"eventName": lambda_.FilterRule.or_(*outbox.event_names)})
                ]
                if outbox.event_names
                else None,
            )
        )

        self.api = CarsApi(
            self,
            "CarsApi",
            api_name=topology.api_name,
            stage_name=topology.api_stage,
            handler=self.cars_api.alias,
            telemetry_queue=self.telemetry.queue,
            throttle=settings.api_throttle,
            log_retention=retention,
            removal_policy=removal,
        )

        self.canary: CanaryDeployment | None = None
        self.ingest_canary: CanaryDeployment | None = None
        if settings.canary:
            self.canary = CanaryDeployment(
                self,
                "CarsApiCanary",
                alias=self.cars_api.alias,
                function_name=topology.cars_api.name,
                group_name=canary_group_name(topology, topology.cars_api.key),
                api_5xx=cloudwatch.Metric(
                    namespace="AWS/ApiGateway",
                    metric_name="5XXError",
                    dimensions_map={"ApiName": topology.api_name, "Stage": topology.api_stage},
                    statistic="Sum",
                    period=Duration.minutes(1),
                ),
                alarm_name_prefix=topology.prefix,
                alerts_topic=alerts_topic,
            )
            self.ingest_canary = CanaryDeployment(
                self,
                "TelemetryIngestCanary",
                alias=self.telemetry_ingest.alias,
                function_name=topology.telemetry_ingest.name,
                group_name=canary_group_name(topology, topology.telemetry_ingest.key),
                api_5xx=None,
                alarm_name_prefix=f"{topology.prefix}-ingest",
                alerts_topic=alerts_topic,
            )

        # What the dashboard's AWS target reads (dashboard/target.py: OUTPUT_KEYS), and what a user copies.
        assert self.telemetry.dead_letter_queue is not None
        outputs = {
            "ApiUrl": self.api.api.url,
            "ApiName": topology.api_name,
            "CarsTableName": self.cars.table.table_name,
            "OutboxTableName": self.outbox.table.table_name,
            "TelemetryQueueUrl": self.telemetry.queue.queue_url,
            "TelemetryDlqUrl": self.telemetry.dead_letter_queue.queue_url,
            "EventBusName": self.events.bus.event_bus_name,
            "CarsApiFunctionName": self.cars_api.function.function_name,
            "TelemetryIngestFunctionName": self.telemetry_ingest.function.function_name,
            "OutboxRelayFunctionName": self.outbox_relay.function.function_name,
        }
        for key, value in outputs.items():
            CfnOutput(self, key, value=value)
