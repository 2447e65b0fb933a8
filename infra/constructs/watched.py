"""References to the service's resources by the physical names in ``contract.topology``.

The observability side watches the service by name (metric dimensions are names), so it needs no
cross-stack exports from ServiceStack and can never watch a resource under a different name than the
one the service deploys: both read the same topology.
"""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from contract.topology import FunctionSpec, QueueSpec, TableSpec, Topology


class WatchedResources(Construct):
    """Exposes ``api``, ``functions`` (by key), ``tables`` (by name) and ``queues`` (by name)."""

    def __init__(self, scope: Construct, construct_id: str, *, topology: Topology) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        # Only the name matters for metrics (dimension ApiName); the id is never used by a metric.
        self.api = apigw.RestApi.from_rest_api_attributes(
            self,
            "Api",
            rest_api_id="unused-by-metrics",
            root_resource_id="unused-by-metrics",
            rest_api_name=topology.api_name,
        )
        self.functions: dict[str, lambda_.IFunction] = {
            spec.key: self._function(spec) for spec in topology.functions
        }
        self.tables: dict[str, dynamodb.ITable] = {spec.name: self._table(spec) for spec in topology.tables}
        queue_specs: list[QueueSpec] = [
            topology.telemetry_queue,
            topology.telemetry_dlq,
            topology.relay_failures,
            topology.monitor_schedule_dlq,
        ]
        self.queues: dict[str, sqs.IQueue] = {
            spec.name: sqs.Queue.from_queue_attributes(
                self,
                f"Queue-{spec.name}",
                queue_arn=stack.format_arn(service="sqs", resource=spec.name),
                queue_name=spec.name,
            )
            for spec in queue_specs
        }

    def _function(self, spec: FunctionSpec) -> lambda_.IFunction:
        return lambda_.Function.from_function_name(self, f"Function-{spec.key}", spec.name)

    def _table(self, spec: TableSpec) -> dynamodb.ITable:
        return dynamodb.Table.from_table_name(self, f"Table-{spec.name}", spec.name)
