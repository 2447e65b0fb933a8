"""The outbox relay Lambda: outbox table stream (NEW_IMAGE) -> EventBridge PutEvents.

Fed by a DynamoDB Streams event source mapping with ReportBatchItemFailures, bisect-on-error and an on-failure
destination. Each INSERT of an outbox item is published once per attempt; a record whose PutEvents fails
(exception or FailedEntryCount > 0) is reported as a batch item failure, so Lambda retries from it. Delivery
is at-least-once: consumers deduplicate on detail.event_id. REMOVE records (TTL expiry) are ignored.
"""

from __future__ import annotations

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
from service.adapters.aws import events_client
from service.adapters.eventbridge import EventBridgePublisher
from service.adapters.items import OutboxItem
from service.observability import logger, metrics, tracer
from service.settings import get_settings

processor = BatchProcessor(event_type=EventType.DynamoDBStreams)


@cache
def get_publisher() -> EventBridgePublisher:
    return EventBridgePublisher(client=events_client(), bus_name=get_settings().event_bus_name)


@tracer.capture_method(capture_response=False)
def record_handler(record: DynamoDBRecord) -> None:
    if record.event_name is not DynamoDBRecordEventName.INSERT or record.dynamodb is None:
        return  # TTL expiry (REMOVE) or an unexpected MODIFY: nothing to publish
    item = OutboxItem.model_validate(record.dynamodb.new_image)
    logger.append_keys(car_id=item.car_id, event_id=item.event_id)
    get_publisher().publish(item)
    metrics.add_metric(name=metric_names.EVENTS_PUBLISHED, unit=MetricUnit.Count, value=1)
    logger.info("event published", extra={"event_type": item.event_type})
    logger.remove_keys(["car_id", "event_id"])


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
