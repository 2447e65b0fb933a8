"""Which CloudWatch metrics each page reads, as the monitor's `MetricSpec`s. Pure: names in, specs out."""

from __future__ import annotations

from dashboard.target import Resources
from monitor.catalog import Catalog, MetricSpec, Severity, build_catalog


def catalog(resources: Resources, period_s: int) -> Catalog:
    """The monitor's catalog of watched series for these resources, at this period."""
    return build_catalog(resources.resource_names(), period_s=period_s)


def api_ids(resources: Resources) -> dict[str, str]:
    api = f"api:{resources.api_name}"
    return {
        "count": f"{api}:count",
        "4xx": f"{api}:4xx",
        "5xx": f"{api}:5xx",
        "p50": f"{api}:latency-p50",
        "p99": f"{api}:latency-p99",
    }


def overview_specs(resources: Resources, period_s: int) -> list[MetricSpec]:
    cat = catalog(resources, period_s)
    wanted = set(api_ids(resources).values()) - {api_ids(resources)["p50"]}
    return [m for m in cat.metrics if m.id in wanted]


def _spec(
    id: str, namespace: str, name: str, dims: dict[str, str], stat: str, period_s: int, *, fill: bool = True
) -> MetricSpec:
    return MetricSpec(
        id=id,
        title=id,
        resource=id.split(":")[0],
        direction="up",
        severity=Severity.INFO,
        profile="count",
        namespace=namespace,
        metric_name=name,
        dimensions=dims,
        statistic=stat,
        period_s=period_s,
        fill_zero=fill,
    )


def usage_specs(resources: Resources, period_s: int) -> list[MetricSpec]:
    """Usage metrics the cost model needs (all Sums, so any period adds up)."""
    specs: list[MetricSpec] = [
        _spec(
            "usage:api:count",
            "AWS/ApiGateway",
            "Count",
            {"ApiName": resources.api_name, "Stage": resources.api_stage},
            "Sum",
            period_s,
        )
    ]
    for fn in resources.functions:
        dims = {"FunctionName": fn.name}
        specs.append(
            _spec(f"usage:lambda:{fn.key}:invocations", "AWS/Lambda", "Invocations", dims, "Sum", period_s)
        )
        specs.append(
            _spec(f"usage:lambda:{fn.key}:duration", "AWS/Lambda", "Duration", dims, "Sum", period_s)
        )
        specs.append(
            _spec(
                f"usage:logs:{fn.key}:bytes",
                "AWS/Logs",
                "IncomingBytes",
                {"LogGroupName": f"/aws/lambda/{fn.name}"},
                "Sum",
                period_s,
            )
        )
    for table in resources.tables:
        for metric in ("ConsumedReadCapacityUnits", "ConsumedWriteCapacityUnits"):
            specs.append(
                _spec(
                    f"usage:ddb:{table}:{metric}",
                    "AWS/DynamoDB",
                    metric,
                    {"TableName": table},
                    "Sum",
                    period_s,
                )
            )
    for queue in (resources.telemetry_queue, resources.telemetry_dlq):
        for metric in (
            "NumberOfMessagesSent",
            "NumberOfMessagesReceived",
            "NumberOfMessagesDeleted",
            "NumberOfEmptyReceives",
        ):
            specs.append(
                _spec(f"usage:sqs:{queue}:{metric}", "AWS/SQS", metric, {"QueueName": queue}, "Sum", period_s)
            )
    specs.append(
        _spec(
            "usage:sns:published",
            "AWS/SNS",
            "NumberOfMessagesPublished",
            {"TopicName": resources.alerts_topic},
            "Sum",
            period_s,
        )
    )
    api = resources.function("cars-api")
    if api is not None:
        for metric in ("CarsRegistered", "StatusTransitions"):
            specs.append(
                _spec(
                    f"usage:events:{metric}",
                    resources.namespace,
                    metric,
                    {"service": api.service},
                    "Sum",
                    period_s,
                )
            )
    return specs
