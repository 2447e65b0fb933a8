"""The custom metrics Fleetscope's functions emit (Powertools EMF), by the service that emits them.

Namespace: the topology's `metrics_namespace`; the only dimension is Powertools' default `service`
(= POWERTOOLS_SERVICE_NAME of the emitting function), plus `reason` on the per-cause breakdown of
`TelemetryRejected`. The handlers emit these names, the CDK dashboards chart every one of them and the
monitor scores the subset in `WATCHED_BUSINESS_METRICS`.
"""

from __future__ import annotations

from typing import Final

CARS_REGISTERED: Final = "CarsRegistered"
STATUS_TRANSITIONS: Final = "StatusTransitions"
TELEMETRY_APPLIED: Final = "TelemetryApplied"
TELEMETRY_STALE: Final = "TelemetryStale"
TELEMETRY_REJECTED: Final = "TelemetryRejected"
EVENTS_PUBLISHED: Final = "EventsPublished"

# Every business metric, by the Powertools service name of the function that emits it.
BUSINESS_METRICS: Final[dict[str, tuple[str, ...]]] = {
    "cars-api": (CARS_REGISTERED, STATUS_TRANSITIONS),
    "telemetry-ingest": (TELEMETRY_APPLIED, TELEMETRY_REJECTED, TELEMETRY_STALE),
    "outbox-relay": (EVENTS_PUBLISHED,),
}

# The ones the monitor scores. Stale telemetry (duplicates, out of order) is normal at any level, and
# the relay's EventsPublished follows CarsRegistered + StatusTransitions one for one, so scoring either
# would only repeat another series' alert.
WATCHED_BUSINESS_METRICS: Final[dict[str, tuple[str, ...]]] = {
    "cars-api": (CARS_REGISTERED, STATUS_TRANSITIONS),
    "telemetry-ingest": (TELEMETRY_APPLIED, TELEMETRY_REJECTED),
}

# The monitor's own metrics (monitor/handler.py), dimension service=monitor.
MONITOR_HEARTBEAT: Final = "Heartbeat"

# The canary judge's verdict (monitor/canary_handler.py on AWS, `fleetscope deploy` in the sandbox):
# 1 on a FAIL verdict, else 0, once a judged minute, dimension DeploymentGroup (the CodeDeploy group,
# named like the function: ``<prefix>-<function key>``). CodeDeploy's rollback alarm and the monitor's
# ``canary-fail`` series watch it.
CANARY_NAMESPACE: Final = "Fleetscope/Canary"
CANARY_FAIL: Final = "CanaryFail"
CANARY_GROUP_DIMENSION: Final = "DeploymentGroup"
