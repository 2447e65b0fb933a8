"""The outbox relay Lambda: outbox table stream (NEW_IMAGE) -> EventBridge PutEvents, and the outbox sweeper.

Fed by a DynamoDB Streams event source mapping with ReportBatchItemFailures, bisect-on-error and an on-failure
destination. Each INSERT of an outbox item goes through `service.relay.outbox.deliver` (claim, publish, mark
published); a record whose PutEvents fails (exception or FailedEntryCount > 0) is reported as a batch item
failure, so Lambda retries from it; an item already published (by the sweeper) is skipped. REMOVE (TTL
expiry) and MODIFY records (the claim and the mark) are ignored. Any other event (the EventBridge Scheduler
schedule) runs the sweeper (service/relay/sweeper.py). Delivery is at-least-once: consumers deduplicate on
detail.event_id.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import (
    DynamoDBRecord,
    DynamoDBRecordEventName,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from contract import metrics as metric_names
from service.adapters.aws import dynamodb_client, events_client
from service.adapters.eventbridge import EventBridgePublisher
from service.adapters.items import OutboxItem
from service.observability import logger, metrics, tracer
from service.relay.outbox import DynamoDbOutbox, Outbox, deliver
from service.relay.sweeper import SweepResult, sweep
from service.settings import get_settings

processor = BatchProcessor(event_type=EventType.DynamoDBStreams)


@cache
def get_publisher() -> EventBridgePublisher:
    return EventBridgePublisher(client=events_client(), bus_name=get_settings().event_bus_name)


@cache
def get_outbox() -> Outbox:
    return DynamoDbOutbox(client=dynamodb_client(), table=get_settings().outbox_table_name)


@tracer.capture_method(capture_response=False)
def record_handler(record: DynamoDBRecord) -> None:
    if record.event_name is not DynamoDBRecordEventName.INSERT or record.dynamodb is None:
        return  # TTL expiry (REMOVE) or an unexpected MODIFY: nothing to publish
    item = OutboxItem.model_validate(record.dynamodb.new_image)
    logger.append_keys(car_id=item.car_id, event_id=item.event_id)
    try:
        published = deliver(
            item.event_id,
            outbox=get_outbox(),
            publisher=get_publisher(),
            now=datetime.now(UTC),
            lease=_lease(),
        )
    finally:
        logger.remove_keys(["car_id", "event_id"])
    if published:
        metrics.add_metric(name=metric_names.EVENTS_PUBLISHED, unit=MetricUnit.Count, value=1)
        logger.info("event published", extra={"event_type": item.event_type, "event_id": item.event_id})
    else:
        logger.info("event already published or being published", extra={"event_id": item.event_id})


def _lease() -> timedelta:
    return timedelta(seconds=get_settings().outbox_claim_s)


def run_sweep(now: datetime, time_left_s: Callable[[], float] = lambda: float("inf")) -> SweepResult:
    settings = get_settings()
    result = sweep(
        outbox=get_outbox(),
        publisher=get_publisher(),
        now=now,
        older_than=timedelta(seconds=settings.outbox_sweep_after_s),
        lease=_lease(),
        time_left_s=time_left_s,
    )
    metrics.add_metric(name=metric_names.EVENTS_PUBLISHED, unit=MetricUnit.Count, value=result.published)
    logger.info("outbox swept", extra=asdict(result))
    return result


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(
    event: dict[str, Any], context: LambdaContext
) -> PartialItemFailureResponse | dict[str, int]:
    if "Records" not in event:  # the sweeper's schedule
        result = run_sweep(datetime.now(UTC), lambda: context.get_remaining_time_in_millis() / 1000)
        return asdict(result)
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
