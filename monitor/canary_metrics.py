"""`CloudWatchVersionMetrics`: per-minute AWS/Lambda metrics of one version behind an alias, for the judge.

AWS/Lambda publishes, for invocations through an alias, the dimensions ``FunctionName``,
``Resource`` (``function:alias``) and ``ExecutedVersion``. One GetMetricData call reads Invocations,
Errors, Throttles (Sum) and Duration p50/p90/p99 of both versions for every period of the window
and returns them as `monitor.canary.VersionMinute` lists aligned on the same periods (a period
without invocations is a minute with zero invocations and no percentiles).

`put_verdict` writes the judge's verdict back: ``Fleetscope/Canary`` ``CanaryFail`` (1 on FAIL, else
0) per ``DeploymentGroup``, which CodeDeploy's rollback alarm and the monitor's ``canary-fail`` series
watch (the AWS judging loop and the sandbox's ``fleetscope deploy`` both call it).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from contract.metrics import CANARY_FAIL, CANARY_GROUP_DIMENSION, CANARY_NAMESPACE
from monitor.canary import Outcome, VersionMinute
from monitor.source import CloudWatchClient

_STATS = (
    ("invocations", "Invocations", "Sum"),
    ("errors", "Errors", "Sum"),
    ("throttles", "Throttles", "Sum"),
    ("p50_ms", "Duration", "p50"),
    ("p90_ms", "Duration", "p90"),
    ("p99_ms", "Duration", "p99"),
)


class CloudWatchVersionMetrics:
    def __init__(self, client: Any) -> None:
        self.client: CloudWatchClient = client  # a boto3 CloudWatch client (or a fake with get_metric_data)

    def minutes(
        self,
        *,
        function_name: str,
        alias: str,
        versions: tuple[str, ...],
        start: datetime,
        periods: int,
        period_s: int = 60,
    ) -> dict[str, list[VersionMinute]]:
        """`periods` consecutive periods from `start`, per version."""
        queries = []
        for v, version in enumerate(versions):
            dimensions = [
                {"Name": "FunctionName", "Value": function_name},
                {"Name": "Resource", "Value": f"{function_name}:{alias}"},
                {"Name": "ExecutedVersion", "Value": version},
            ]
            for s, (_, name, stat) in enumerate(_STATS):
                metric = {"Namespace": "AWS/Lambda", "MetricName": name, "Dimensions": dimensions}
                queries.append(
                    {
                        "Id": f"v{v}s{s}",
                        "MetricStat": {"Metric": metric, "Period": period_s, "Stat": stat},
                        "ReturnData": True,
                    }
                )
        t0 = int(start.timestamp())
        end = datetime.fromtimestamp(t0 + periods * period_s, UTC)
        values: dict[str, dict[int, float]] = {}
        kwargs: dict[str, Any] = {
            "MetricDataQueries": queries,
            "StartTime": datetime.fromtimestamp(t0, UTC),
            "EndTime": end,
            "ScanBy": "TimestampAscending",
        }
        while True:
            page: Mapping[str, Any] = self.client.get_metric_data(**kwargs)
            for result in page.get("MetricDataResults", []):
                column = values.setdefault(result["Id"], {})
                for ts, value in zip(result.get("Timestamps", []), result.get("Values", []), strict=False):
                    column[(int(ts.timestamp()) - t0) // period_s] = float(value)
            if not page.get("NextToken"):
                break
            kwargs["NextToken"] = page["NextToken"]
        out: dict[str, list[VersionMinute]] = {}
        for v, version in enumerate(versions):
            minutes = []
            for i in range(periods):
                row = {field: values.get(f"v{v}s{s}", {}).get(i) for s, (field, _, _) in enumerate(_STATS)}
                invocations = int(row["invocations"] or 0)
                minutes.append(
                    VersionMinute(
                        invocations=invocations,
                        errors=min(invocations, int(row["errors"] or 0)),
                        throttles=int(row["throttles"] or 0),
                        p50_ms=row["p50_ms"] if invocations else None,
                        p90_ms=row["p90_ms"] if invocations else None,
                        p99_ms=row["p99_ms"] if invocations else None,
                    )
                )
            out[version] = minutes
        return out


def put_verdict(
    client: Any,
    *,
    deployment_group: str,
    outcome: Outcome,
    timestamp: datetime | None = None,
    rollback: bool | None = None,
) -> None:
    """Publish one judged minute's ``CanaryFail`` for `deployment_group`: 1 on FAIL, else 0, or 1
    exactly when `rollback` says so when given (the AWS loop's INCONCLUSIVE rolled back at its last look)."""
    fail = outcome == Outcome.FAIL if rollback is None else rollback
    datum: dict[str, Any] = {
        "MetricName": CANARY_FAIL,
        "Dimensions": [{"Name": CANARY_GROUP_DIMENSION, "Value": deployment_group}],
        "Value": 1.0 if fail else 0.0,
        "Unit": "Count",
    }
    if timestamp is not None:
        datum["Timestamp"] = timestamp
    client.put_metric_data(Namespace=CANARY_NAMESPACE, MetricData=[datum])
