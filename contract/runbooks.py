"""Which runbook page answers which alert: shared by the monitor's SNS alerts and the CDK app's alarms.

Every page is `docs/runbooks/<slug>.md`; on the documentation site (MkDocs, directory URLs) it is
`<base>/<slug>/`, with `<base>` a setting: `MONITOR_RUNBOOK_BASE_URL` for the monitor, the CDK context
key `runbookBaseUrl` for the alarms; both default to `make docs-serve`'s address. A test checks that
every slug here has its page, that every series of the monitor's catalog and every alarm the CDK app
synthesizes resolves to one of them, and nothing falls through to the index.
"""

from __future__ import annotations

from collections.abc import Mapping

# `make docs-serve` serves the site on 127.0.0.1:8000; set the real site's address for a deployment.
DEFAULT_RUNBOOK_BASE_URL = "http://127.0.0.1:8000/runbooks"

INDEX = "index"
API_ERRORS = "api-errors"
API_LATENCY = "api-latency"
TRAFFIC = "traffic"
LAMBDA_ERRORS = "lambda-errors"
LAMBDA_THROTTLES = "lambda-throttles"
LAMBDA_DURATION = "lambda-duration"
DYNAMODB_THROTTLES = "dynamodb-throttles"
TELEMETRY_REJECTED = "telemetry-rejected"
QUEUE_BACKLOG = "queue-backlog"
EVENT_DELIVERY = "event-delivery"
MONITOR_HEARTBEAT = "monitor-heartbeat"
MONITOR_NOTIFICATIONS = "monitor-notifications"
CANARY_ROLLBACK = "canary-rollback"
SERVICE_UNHEALTHY = "service-unhealthy"

# slug -> title: one page each under docs/runbooks/
RUNBOOKS: dict[str, str] = {
    INDEX: "Runbooks",
    API_ERRORS: "API errors (5XX and 4XX)",
    API_LATENCY: "API latency",
    TRAFFIC: "Traffic changed (requests, invocations, business metrics)",
    LAMBDA_ERRORS: "Lambda errors",
    LAMBDA_THROTTLES: "Lambda throttles and concurrency",
    LAMBDA_DURATION: "Lambda duration and cold starts",
    DYNAMODB_THROTTLES: "DynamoDB throttles and capacity",
    TELEMETRY_REJECTED: "Telemetry rejected and the telemetry DLQ",
    QUEUE_BACKLOG: "Queue and stream backlog",
    EVENT_DELIVERY: "Change events not delivered (outbox relay, fleet bus)",
    MONITOR_HEARTBEAT: "Monitor heartbeat missing or runs failing",
    MONITOR_NOTIFICATIONS: "Monitor notifications failing",
    CANARY_ROLLBACK: "Canary rolled back",
    SERVICE_UNHEALTHY: "Fleet service unhealthy (composite alarm)",
}

_BY_METRIC: dict[tuple[str, str], str] = {
    ("AWS/ApiGateway", "5XXError"): API_ERRORS,
    ("AWS/ApiGateway", "4XXError"): API_ERRORS,
    ("AWS/ApiGateway", "Latency"): API_LATENCY,
    ("AWS/ApiGateway", "IntegrationLatency"): API_LATENCY,
    ("AWS/ApiGateway", "Count"): TRAFFIC,
    ("AWS/Lambda", "Errors"): LAMBDA_ERRORS,
    ("AWS/Lambda", "Throttles"): LAMBDA_THROTTLES,
    ("AWS/Lambda", "ConcurrentExecutions"): LAMBDA_THROTTLES,
    ("AWS/Lambda", "Duration"): LAMBDA_DURATION,
    ("AWS/Lambda", "Invocations"): TRAFFIC,
    ("AWS/Lambda", "IteratorAge"): QUEUE_BACKLOG,
    ("AWS/Events", "FailedInvocations"): EVENT_DELIVERY,
    ("Fleetscope/Canary", "CanaryFail"): CANARY_ROLLBACK,
    # Powertools metrics of the functions and the monitor (namespace Fleetscope)
    ("Fleetscope", "ColdStart"): LAMBDA_DURATION,
    ("Fleetscope", "TelemetryRejected"): TELEMETRY_REJECTED,
    ("Fleetscope", "TelemetryApplied"): TRAFFIC,
    ("Fleetscope", "TelemetryStale"): TRAFFIC,
    ("Fleetscope", "CarsRegistered"): TRAFFIC,
    ("Fleetscope", "StatusTransitions"): TRAFFIC,
    ("Fleetscope", "EventsPublished"): EVENT_DELIVERY,
    ("Fleetscope", "Heartbeat"): MONITOR_HEARTBEAT,
    ("Fleetscope", "RunErrors"): MONITOR_HEARTBEAT,
    ("Fleetscope", "RunDurationMs"): MONITOR_HEARTBEAT,
    ("Fleetscope", "NotificationFailures"): MONITOR_NOTIFICATIONS,
    ("Fleetscope", "OutboxOldestUnsentAge"): MONITOR_NOTIFICATIONS,
}

# SQS metrics mean different things per queue: the suffix of the queue name (contract/topology.py) says which.
_BY_QUEUE_SUFFIX: tuple[tuple[str, str], ...] = (
    ("-car-telemetry-dlq", TELEMETRY_REJECTED),
    ("-outbox-relay-failures", EVENT_DELIVERY),
    ("-outbox-sweep-schedule-dlq", EVENT_DELIVERY),
    ("-monitor-schedule-dlq", MONITOR_HEARTBEAT),
)


def runbook_for_metric(namespace: str, metric_name: str, dimensions: Mapping[str, str] | None = None) -> str:
    """The runbook slug for an alert on this CloudWatch metric; `INDEX` when none is specific."""
    if namespace == "AWS/DynamoDB":
        return DYNAMODB_THROTTLES
    if namespace == "AWS/SQS":
        queue = (dimensions or {}).get("QueueName", "")
        return next((slug for suffix, slug in _BY_QUEUE_SUFFIX if queue.endswith(suffix)), QUEUE_BACKLOG)
    return _BY_METRIC.get((namespace, metric_name), INDEX)


def runbook_url(base_url: str, slug: str) -> str:
    """The page's address on the documentation site (MkDocs directory URLs: `<base>/<slug>/`)."""
    if slug not in RUNBOOKS:
        raise KeyError(f"no runbook page {slug!r}")
    base = base_url.rstrip("/")
    return f"{base}/" if slug == INDEX else f"{base}/{slug}/"
