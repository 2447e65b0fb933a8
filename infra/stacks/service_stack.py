"""ServiceStack: the cars service — API, tables, outbox relay, fleet bus, telemetry queue, functions."""

from __future__ import annotations

from aws_cdk import CfnOutput, Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_sns as sns
from constructs import Construct

from contract.topology import Topology
from infra.constructs.canary import CanaryDeployment
from infra.constructs.cars_api import CarsApi
from infra.constructs.event_bus import FleetEventBus
from infra.constructs.lambda_function import HouseFunction
from infra.constructs.queue import TopologyQueue
from infra.constructs.table import TopologyTable
from infra.nag import acknowledge, ref
from infra.settings import StageSettings
from infra.stacks.common import log_retention, removal_policy


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

        # cars-api: cars + outbox written in one transaction; idempotency records; reads by GSI.
        self.cars.table.grant_read_write_data(self.cars_api.function)
        self.idempotency.table.grant_read_write_data(self.cars_api.function)
        self.outbox.table.grant_write_data(self.cars_api.function)
        # telemetry-ingest: conditional UpdateItem of a car's telemetry attributes.
        self.cars.table.grant(self.telemetry_ingest.function, "dynamodb:UpdateItem", "dynamodb:GetItem")
        for reader in (self.cars_api, self.telemetry_ingest):
            acknowledge(
                reader.role,
                f"IAM5[Resource::{ref(self.cars.table, 'Arn')}/index/*]",
                "Queries by GSI (by_listing, by_status, by_model) need the table's index ARNs; the "
                "wildcard covers only this table's indexes.",
            )
        acknowledge(
            self.outbox_relay.role,
            "IAM5[Resource::*]",
            "Resource '*' only for actions without resource-level permissions: dynamodb:ListStreams "
            "(added by the stream event source mapping) and X-Ray PutTraceSegments/PutTelemetryRecords.",
        )
        # outbox-relay: reads the outbox stream, publishes to the fleet bus.
        self.events.bus.grant_put_events_to(self.outbox_relay.function)

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
            )
        )

        self.api = CarsApi(
            self,
            "CarsApi",
            api_name=topology.api_name,
            stage_name=topology.api_stage,
            handler=self.cars_api.alias,
            throttle=settings.api_throttle,
            log_retention=retention,
            removal_policy=removal,
        )

        self.canary: CanaryDeployment | None = None
        if settings.canary:
            self.canary = CanaryDeployment(
                self,
                "CarsApiCanary",
                alias=self.cars_api.alias,
                function_name=topology.cars_api.name,
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
