"""telemetry-ingest Lambda: SQS batches of car telemetry → the cars table, with partial batch responses.

Good records are applied (or acknowledged as stale); rejected ones are returned in
``batchItemFailures`` so SQS retries only those and its redrive policy dead-letters them after
``maxReceiveCount`` receives. A batch in which every record fails is reported the same way (all
ids in ``batchItemFailures``) rather than by raising, so the Lambda ``Errors`` metric counts only
crashes of the function itself.

Observability: JSON logs with ``car_id`` and ``message_id`` appended per record; EMF metrics
``TelemetryApplied``, ``TelemetryStale``, ``TelemetryRejected`` per invocation (dimension ``service``,
zeros included) plus ``TelemetryRejected`` per cause (dimensions ``service``, ``reason``), and
``ColdStart``; X-Ray traces with the DynamoDB calls.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache, partial
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer, single_metric
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from contract import metrics as metric_names
from service.ingest.logic import TelemetryRejectedError, apply_telemetry, parse_telemetry
from service.ingest.repository import ApplyOutcome, DynamoDbTelemetryRepository, TelemetryRepository
from service.settings import get_settings

SERVICE_NAME = "telemetry-ingest"
"""Powertools service name (= topology's ``telemetry_ingest.service``). Explicit rather than from
POWERTOOLS_SERVICE_NAME, because the sandbox runs every function in one process."""

logger = Logger(service=SERVICE_NAME)
tracer = Tracer(service=SERVICE_NAME)
metrics = Metrics(service=SERVICE_NAME)


@cache
def get_repository() -> TelemetryRepository:
    """The cars-table repository, built once per process from settings (on first use, not import)."""
    return DynamoDbTelemetryRepository(get_settings().cars_table_name)


@dataclass
class BatchTally:
    """Outcomes of one invocation, turned into metrics once at the end."""

    applied: int = 0
    stale: int = 0
    rejected: Counter[str] = field(default_factory=Counter)


def handle_record(record: SQSRecord, *, tally: BatchTally) -> ApplyOutcome:
    receive_count = record.attributes.approximate_receive_count
    logger.append_keys(message_id=record.message_id, car_id=_car_id_hint(record.body))
    try:
        message = parse_telemetry(record.body)
        outcome = apply_telemetry(message, get_repository(), now=datetime.now(UTC))
    except TelemetryRejectedError as err:
        tally.rejected[err.reason] += 1
        logger.warning(
            "telemetry rejected",
            extra={"reason": err.reason, "error": str(err), "receive_count": receive_count},
        )
        raise
    except Exception:
        tally.rejected[TelemetryRejectedError.reason] += 1
        logger.exception("telemetry failed", extra={"reason": "error", "receive_count": receive_count})
        raise
    finally:
        logger.remove_keys(["message_id", "car_id"])
    if outcome is ApplyOutcome.APPLIED:
        tally.applied += 1
    else:
        tally.stale += 1
        logger.info(
            "stale telemetry acknowledged", extra={"car_id": message.car_id, "ts": message.ts.isoformat()}
        )
    return outcome


@metrics.log_metrics(capture_cold_start_metric=True)
@tracer.capture_lambda_handler(capture_response=False)
@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    tally = BatchTally()
    # One processor per invocation: its state is per batch, and the sandbox may run invocations
    # of this module concurrently in one process.
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    try:
        return process_partial_response(
            event=event,
            record_handler=partial(handle_record, tally=tally),
            processor=processor,
            context=context,
        )
    finally:
        _emit_metrics(tally)
        logger.info(
            "telemetry batch processed",
            extra={"applied": tally.applied, "stale": tally.stale, "rejected": dict(tally.rejected)},
        )


def _emit_metrics(tally: BatchTally) -> None:
    # Totals per service (what the monitor watches), zeros included, in the invocation's EMF blob ...
    metrics.add_metric(name=metric_names.TELEMETRY_APPLIED, unit=MetricUnit.Count, value=tally.applied)
    metrics.add_metric(name=metric_names.TELEMETRY_STALE, unit=MetricUnit.Count, value=tally.stale)
    metrics.add_metric(
        name=metric_names.TELEMETRY_REJECTED, unit=MetricUnit.Count, value=tally.rejected.total()
    )
    # ... and rejections per reason, one EMF line each (a blob has one dimension set for all its metrics).
    for reason, count in sorted(tally.rejected.items()):
        with single_metric(
            name=metric_names.TELEMETRY_REJECTED,
            unit=MetricUnit.Count,
            value=count,
            namespace=metrics.namespace,
            default_dimensions=metrics.default_dimensions,
        ) as metric:
            metric.add_dimension(name="service", value=SERVICE_NAME)
            metric.add_dimension(name="reason", value=reason)


def _car_id_hint(body: str) -> str | None:
    """Best-effort car id for log correlation, even from a body that will fail validation."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):  # not JSON, an int over 4,300 digits, nesting deeper than the stack
        return None
    car_id = data.get("car_id") if isinstance(data, dict) else None
    return car_id if isinstance(car_id, str) else None
