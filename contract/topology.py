"""The one shared definition of Fleetscope's AWS resources.

The CDK stacks, the sandbox provisioner, the integration-test fixtures and the monitor's catalog all
derive names and settings from here, so a resource is described once. This module is pure Python:
it must not import aws-cdk-lib, boto3 or anything that talks to AWS.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache

# The monitor schedule's input: {SCHEDULED_TIME_FIELD: <aws.scheduler.scheduled-time>} (ISO 8601, UTC).
# The monitor runs at that time, so a retried invocation scores exactly the same periods.
SCHEDULED_TIME_FIELD = "scheduled_time"

# Every trigger invokes a function through this alias; the functions in CANARY_FUNCTIONS deploy through
# it with a canary (CodeDeploy on AWS, `fleetscope deploy` in the sandbox), so AWS/Lambda publishes
# their metrics per version too (dimensions FunctionName, Resource = "<name>:live", ExecutedVersion).
LIVE_ALIAS = "live"
CANARY_FUNCTIONS = ("cars-api", "telemetry-ingest")


@dataclass(frozen=True, kw_only=True)
class IndexSpec:
    """A DynamoDB global secondary index (projection ALL)."""

    name: str
    partition_key: str
    sort_key: str | None = None


@dataclass(frozen=True, kw_only=True)
class TableSpec:
    """A DynamoDB table, on-demand. String keys throughout."""

    name: str
    partition_key: str
    sort_key: str | None = None
    indexes: tuple[IndexSpec, ...] = ()
    ttl_attribute: str | None = None
    stream: str | None = None  # e.g. "NEW_IMAGE"; None = no stream

    @property
    def key_attributes(self) -> tuple[str, ...]:
        names: list[str] = []
        for key in (self.partition_key, self.sort_key):
            if key and key not in names:
                names.append(key)
        for index in self.indexes:
            for key in (index.partition_key, index.sort_key):
                if key and key not in names:
                    names.append(key)
        return tuple(names)


@dataclass(frozen=True, kw_only=True)
class QueueSpec:
    """An SQS standard queue, optionally with a dead-letter queue."""

    name: str
    visibility_timeout_s: int = 30
    retention_s: int = 4 * 24 * 3600
    dead_letter: QueueSpec | None = None
    max_receive_count: int = 3


@dataclass(frozen=True, kw_only=True)
class EventSourceSpec:
    """How a function is fed from a queue (SQS event source mapping)."""

    batch_size: int = 10
    max_batching_window_s: int = 1
    report_batch_item_failures: bool = True


@dataclass(frozen=True, kw_only=True)
class StreamSourceSpec:
    """How a function is fed from a DynamoDB stream (event source mapping with partial failures)."""

    batch_size: int = 25
    max_batching_window_s: int = 1
    retry_attempts: int = 5
    max_record_age_s: int = 3600
    bisect_batch_on_error: bool = True
    report_batch_item_failures: bool = True
    # Filter criteria on eventName: the outbox's MODIFY records (claim, published mark) invoke nothing.
    event_names: tuple[str, ...] | None = ("INSERT",)


@dataclass(frozen=True, kw_only=True)
class FunctionSpec:
    """A Lambda function: its entry point and the house settings that differ per function."""

    key: str  # short logical name: "cars-api", "telemetry-ingest", ...
    name: str  # physical function name
    handler: str  # module.path.lambda_handler
    service: str  # POWERTOOLS_SERVICE_NAME
    memory_mb: int = 512
    timeout_s: int = 10
    reserved_concurrency: int | None = None

    @property
    def log_group(self) -> str:
        return f"/aws/lambda/{self.name}"


@dataclass(frozen=True, kw_only=True)
class Topology:
    """Everything Fleetscope deploys for one stage."""

    stage: str
    prefix: str
    metrics_namespace: str
    api_name: str
    api_stage: str
    cars_table: TableSpec
    idempotency_table: TableSpec
    outbox_table: TableSpec
    monitor_table: TableSpec
    telemetry_queue: QueueSpec
    event_bus: str
    alerts_topic: str
    cars_api: FunctionSpec
    telemetry_ingest: FunctionSpec
    outbox_relay: FunctionSpec
    monitor: FunctionSpec
    telemetry_source: EventSourceSpec = field(default_factory=EventSourceSpec)
    outbox_source: StreamSourceSpec = field(default_factory=StreamSourceSpec)
    monitor_rate_minutes: int = 5

    @property
    def relay_failures(self) -> QueueSpec:
        """On-failure destination of the outbox stream mapping (records that exhausted their retries)."""
        return QueueSpec(name=f"{self.prefix}-outbox-relay-failures", retention_s=14 * 24 * 3600)

    @property
    def event_source(self) -> str:
        """`source` of every event the service puts on the fleet bus (its relay may publish no other)."""
        return "fleetscope.cars"

    @property
    def event_detail_types(self) -> tuple[str, ...]:
        """`detail-type`s of the service's events (service/domain/events.py; a test keeps them equal)."""
        return ("CarRegistered", "CarUpdated", "CarStatusChanged", "CarRetired")

    @property
    def pagination_secret(self) -> str:
        """Secrets Manager secret holding the key that signs the cars API's next_token (AWSCURRENT signs,
        AWSCURRENT and AWSPREVIOUS verify)."""
        return f"{self.prefix}-cars-api-pagination-key"

    @property
    def event_log_rule(self) -> str:
        """Rule on the fleet bus that copies every event to a CloudWatch log group."""
        return f"{self.prefix}-fleet-events-to-logs"

    @property
    def event_rules(self) -> tuple[str, ...]:
        """Every rule on the fleet bus (the monitor watches their FailedInvocations)."""
        return (self.event_log_rule,)

    @property
    def event_log_input(self) -> dict[str, object]:
        """The log rule's InputTransformer: ids, type, version and status only, no VIN and no position
        (personal data; the CDK context ``logEventPositions`` logs whole events instead)."""
        return {
            "InputPathsMap": {
                "time": "$.time",
                "type": "$.detail-type",
                "event_id": "$.detail.event_id",
                "car_id": "$.detail.car_id",
                "version": "$.detail.version",
                "status": "$.detail.car.status",
            },
            # CloudWatch Logs targets take exactly {"timestamp", "message"}, the message a string.
            "InputTemplate": (
                '{"timestamp": <time>, "message": "<type> event_id=<event_id> car_id=<car_id> '
                'version=<version> status=<status>"}'
            ),
        }

    @property
    def event_log_group(self) -> str:
        return f"/aws/events/{self.prefix}-fleet"

    @property
    def event_archive(self) -> str:
        return f"{self.prefix}-fleet-archive"

    @property
    def monitor_schedule(self) -> str:
        return f"{self.prefix}-monitor-every-{self.monitor_rate_minutes}m"

    @property
    def alerts_receipts(self) -> QueueSpec:
        """An SQS queue subscribed to the alerts topic: the monitor reads what SNS delivered before it
        publishes again (`monitor.receipts`), so a run that died after a publish sends nothing twice."""
        return QueueSpec(name=f"{self.prefix}-alerts-receipts", visibility_timeout_s=20)

    @property
    def monitor_health_topic(self) -> str:
        """The topic of the alarms on the monitor itself (heartbeat, notification failures, run
        errors), with a KMS key of its own: a broken alerts topic or key cannot silence them."""
        return f"{self.prefix}-monitor-health"

    @property
    def topics(self) -> tuple[str, ...]:
        """Every SNS topic: the alerts and the monitor's own health (the CDK app and sandbox make both)."""
        return (self.alerts_topic, self.monitor_health_topic)

    @property
    def outbox_sweep_schedule(self) -> str:
        """Schedule that runs the outbox sweeper (the relay function, invoked without stream records)."""
        return f"{self.prefix}-outbox-sweep-every-5m"

    @property
    def outbox_sweep_schedule_dlq(self) -> QueueSpec:
        return QueueSpec(name=f"{self.prefix}-outbox-sweep-schedule-dlq", retention_s=14 * 24 * 3600)

    @property
    def monitor_schedule_dlq(self) -> QueueSpec:
        """Where EventBridge Scheduler puts invocations of the monitor it could not deliver."""
        return QueueSpec(name=f"{self.prefix}-monitor-schedule-dlq", retention_s=14 * 24 * 3600)

    @property
    def functions(self) -> tuple[FunctionSpec, ...]:
        return (self.cars_api, self.telemetry_ingest, self.outbox_relay, self.monitor)

    @property
    def tables(self) -> tuple[TableSpec, ...]:
        return (self.cars_table, self.idempotency_table, self.outbox_table, self.monitor_table)

    @property
    def telemetry_dlq(self) -> QueueSpec:
        assert self.telemetry_queue.dead_letter is not None
        return self.telemetry_queue.dead_letter

    def function_environment(self, fn: FunctionSpec) -> dict[str, str]:
        """Environment variables a function needs; the CDK app and the sandbox both set exactly these."""
        common = {
            "POWERTOOLS_SERVICE_NAME": fn.service,
            "POWERTOOLS_METRICS_NAMESPACE": self.metrics_namespace,
            "POWERTOOLS_LOG_LEVEL": "INFO",
            "FLEETSCOPE_STAGE": self.stage,
        }
        service = {
            "CARS_TABLE_NAME": self.cars_table.name,
            "IDEMPOTENCY_TABLE_NAME": self.idempotency_table.name,
            "OUTBOX_TABLE_NAME": self.outbox_table.name,
            "EVENT_BUS_NAME": self.event_bus,
            "PAGINATION_SECRET_ID": self.pagination_secret,
        }
        monitor = {
            "MONITOR_TABLE_NAME": self.monitor_table.name,
            "ALERTS_TOPIC_NAME": self.alerts_topic,
            "ALERTS_RECEIPTS_QUEUE_NAME": self.alerts_receipts.name,
        }
        if fn.key == "monitor":
            return common | monitor
        return common | service


@cache
def topology(stage: str = "local") -> Topology:
    """The resources of one stage. Physical names carry the stage so stages can share an account."""
    prefix = f"fleetscope-{stage}"
    dlq = QueueSpec(name=f"{prefix}-car-telemetry-dlq", retention_s=14 * 24 * 3600)
    return Topology(
        stage=stage,
        prefix=prefix,
        metrics_namespace="Fleetscope",
        api_name=f"{prefix}-cars-api",
        api_stage="v1",
        cars_table=TableSpec(
            name=f"{prefix}-cars",
            partition_key="car_id",
            indexes=(
                # Sparse: only cars that are not retired carry list_pk, so the default listing is a query.
                IndexSpec(name="by_listing", partition_key="list_pk", sort_key="list_sk"),
                IndexSpec(name="by_status", partition_key="status", sort_key="list_sk"),
                IndexSpec(name="by_model", partition_key="model", sort_key="list_sk"),
            ),
        ),
        idempotency_table=TableSpec(
            name=f"{prefix}-idempotency", partition_key="id", ttl_attribute="expiration"
        ),
        outbox_table=TableSpec(
            name=f"{prefix}-outbox",
            partition_key="event_id",
            # Sparse: only items not yet published carry `pending`; the sweeper queries the oldest.
            indexes=(IndexSpec(name="by_pending", partition_key="pending", sort_key="occurred_at"),),
            ttl_attribute="expires_at",
            stream="NEW_IMAGE",
        ),
        monitor_table=TableSpec(
            name=f"{prefix}-monitor", partition_key="pk", sort_key="sk", ttl_attribute="expires_at"
        ),
        telemetry_queue=QueueSpec(
            name=f"{prefix}-car-telemetry",
            visibility_timeout_s=60,
            dead_letter=dlq,
            max_receive_count=3,
        ),
        event_bus=f"{prefix}-fleet",
        alerts_topic=f"{prefix}-fleet-alerts",
        cars_api=FunctionSpec(
            key="cars-api",
            name=f"{prefix}-cars-api",
            handler="service.api.handler.lambda_handler",
            service="cars-api",
            memory_mb=512,
            timeout_s=10,
        ),
        telemetry_ingest=FunctionSpec(
            key="telemetry-ingest",
            name=f"{prefix}-telemetry-ingest",
            handler="service.ingest.handler.lambda_handler",
            service="telemetry-ingest",
            memory_mb=256,
            # AWS: queue visibility >= 6 x function timeout + batching window (60 >= 6 x 9 + 1).
            timeout_s=9,
        ),
        outbox_relay=FunctionSpec(
            key="outbox-relay",
            name=f"{prefix}-outbox-relay",
            handler="service.relay.handler.lambda_handler",
            service="outbox-relay",
            memory_mb=256,
            timeout_s=30,
        ),
        monitor=FunctionSpec(
            key="monitor",
            name=f"{prefix}-monitor",
            handler="monitor.handler.lambda_handler",
            service="monitor",
            memory_mb=1024,
            timeout_s=120,
            reserved_concurrency=1,
        ),
    )
