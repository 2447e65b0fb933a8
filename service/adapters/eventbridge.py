"""EventBridgePublisher: puts outbox items on the bus; a partially failed PutEvents is an error to retry."""

from __future__ import annotations

from typing import TYPE_CHECKING

from service.adapters.items import OutboxItem
from service.observability import tracer

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_events.type_defs import PutEventsRequestEntryTypeDef

MAX_ENTRIES_PER_CALL = 10


class EventPublishError(RuntimeError):
    """EventBridge did not accept an event (FailedEntryCount > 0); the caller must retry it."""


class EventBridgePublisher:
    def __init__(self, *, client: EventBridgeClient, bus_name: str) -> None:
        self._events = client
        self._bus = bus_name

    @tracer.capture_method(capture_response=False)
    def publish(self, item: OutboxItem) -> None:
        tracer.put_annotation("event_type", item.event_type)
        tracer.put_annotation("car_id", item.car_id)
        entry: PutEventsRequestEntryTypeDef = {
            "Source": item.source,
            "DetailType": item.event_type,
            "Detail": item.detail,
            "EventBusName": self._bus,
            "Time": item.occurred_at,
        }
        response = self._events.put_events(Entries=[entry])
        if response.get("FailedEntryCount", 0) > 0:
            codes = [
                f"{e.get('ErrorCode')}: {e.get('ErrorMessage', '')}" for e in response.get("Entries", [])
            ]
            raise EventPublishError(f"PutEvents rejected event {item.event_id}: {'; '.join(codes)}")
