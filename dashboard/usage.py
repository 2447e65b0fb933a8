"""From usage metrics (daily Sums) to the cost model's `Usage`, one per day. Pure: no I/O."""

from __future__ import annotations

import pandas as pd

from dashboard.cost import FunctionUsage, Usage, xray_traces_recorded
from dashboard.queries import MetricFrame
from dashboard.target import Resources


def daily_usage(
    frame: MetricFrame,
    resources: Resources,
    *,
    custom_metrics: int = 0,
    standard_alarms: int = 0,
    anomaly_alarms: int = 0,
    monitor_metrics_per_run: int = 0,
) -> dict[pd.Timestamp, Usage]:
    """One `Usage` per day with any usage in the frame (the frame must be at a 1-day period).

    GetMetricData is counted as the monitor's: every run requests each of its catalog's raw metrics
    once (`monitor_metrics_per_run`), one run per monitor invocation. X-Ray traces follow the default
    sampling rule applied to the day's average request rate. EventBridge events are the service's
    CarsRegistered + StatusTransitions (one event per inventory change).
    """
    data = frame.data
    if data.empty:
        return {}
    # Days with any usage at all (zero-filled days before the first datapoint are not "running").
    used = data[data["value"] > 0]
    days = sorted(pd.DatetimeIndex(used["timestamp"]).floor("D").unique())
    by_day = (
        data.assign(day=pd.DatetimeIndex(data["timestamp"]).floor("D")).groupby(["day", "id"])["value"].sum()
    )

    def get(day: pd.Timestamp, series_id: str) -> float:
        try:
            return float(by_day.loc[(day, series_id)])
        except KeyError:
            return 0.0

    out: dict[pd.Timestamp, Usage] = {}
    monitor = resources.function("monitor")
    for day in days:
        functions = tuple(
            FunctionUsage(
                name=fn.name,
                memory_mb=fn.memory_mb,
                invocations=get(day, f"usage:lambda:{fn.key}:invocations"),
                duration_ms_sum=get(day, f"usage:lambda:{fn.key}:duration"),
            )
            for fn in resources.functions
        )
        api = get(day, "usage:api:count")
        monitor_runs = get(day, f"usage:lambda:{monitor.key}:invocations") if monitor else 0.0
        sqs = sum(
            get(day, f"usage:sqs:{queue}:{metric}")
            for queue in (resources.telemetry_queue, resources.telemetry_dlq)
            for metric in (
                "NumberOfMessagesSent",
                "NumberOfMessagesReceived",
                "NumberOfMessagesDeleted",
                "NumberOfEmptyReceives",
            )
        )
        out[day] = Usage(
            days=1.0,
            functions=functions,
            api_requests=api,
            ddb_read_units=sum(
                get(day, f"usage:ddb:{t}:ConsumedReadCapacityUnits") for t in resources.tables
            ),
            ddb_write_units=sum(
                get(day, f"usage:ddb:{t}:ConsumedWriteCapacityUnits") for t in resources.tables
            ),
            sqs_requests=sqs,
            events_published=get(day, "usage:events:CarsRegistered")
            + get(day, "usage:events:StatusTransitions"),
            scheduler_invocations=monitor_runs,
            sns_publishes=get(day, "usage:sns:published"),
            custom_metrics=custom_metrics,
            standard_alarms=standard_alarms,
            anomaly_alarms=anomaly_alarms,
            metrics_requested=monitor_runs * monitor_metrics_per_run,
            log_bytes=sum(get(day, f"usage:logs:{fn.key}:bytes") for fn in resources.functions),
            traces=xray_traces_recorded(api / 86400) * 86400,
        )
    return out
