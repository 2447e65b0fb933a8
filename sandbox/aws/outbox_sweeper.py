"""The outbox sweeper in the sandbox: a thread where AWS has an EventBridge Scheduler schedule.

Every `interval_s` it runs `service.relay.sweeper.sweep` against the emulator (same claim, same index, same
default window as the deployed relay function), in this process: it is not a Lambda
invocation, so it adds nothing to the relay's metrics. `fails()` (the fault injector's
`eventbridge-outage`) makes a PutEvents call fail, as during an EventBridge outage.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from contract.topology import Topology
from service.adapters.aws import dynamodb_client, events_client
from service.adapters.eventbridge import EventBridgePublisher, EventPublishError
from service.adapters.items import OutboxItem
from service.relay.outbox import DynamoDbOutbox
from service.relay.sweeper import SweepResult, sweep
from service.settings import ServiceSettings

log = logging.getLogger(__name__)
_DEFAULT_SWEEP_AFTER_S = float(ServiceSettings.model_fields["outbox_sweep_after_s"].default)
_DEFAULT_CLAIM_S = float(ServiceSettings.model_fields["outbox_claim_s"].default)


class _FaultyPublisher:
    def __init__(self, real: EventBridgePublisher, fails: Callable[[], bool]) -> None:
        self._real, self._fails = real, fails

    def publish(self, item: OutboxItem) -> None:
        if self._fails():
            raise EventPublishError(f"injected eventbridge-outage: PutEvents of {item.event_id} failed")
        self._real.publish(item)


class OutboxSweeper:
    def __init__(
        self,
        topo: Topology,
        *,
        interval_s: float = 60.0,
        older_than_s: float = _DEFAULT_SWEEP_AFTER_S,
        fails: Callable[[], bool] = lambda: False,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.older_than = timedelta(seconds=older_than_s)
        self.lease = timedelta(seconds=_DEFAULT_CLAIM_S)
        self.outbox = DynamoDbOutbox(client=dynamodb_client(), table=topo.outbox_table.name)
        self.publisher = _FaultyPublisher(
            EventBridgePublisher(client=events_client(), bus_name=topo.event_bus), fails
        )
        self.interval_s = interval_s
        self.clock = clock
        self.totals = SweepResult()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sweep_once(self) -> SweepResult:
        result = sweep(
            outbox=self.outbox,
            publisher=self.publisher,
            now=self.clock(),
            older_than=self.older_than,
            lease=self.lease,
        )
        self.totals.published += result.published
        self.totals.skipped += result.skipped
        self.totals.failed += result.failed
        if result.published or result.failed:
            log.info("outbox sweep: %s published, %s failed", result.published, result.failed)
        return result

    def start(self) -> OutboxSweeper:
        self._thread = threading.Thread(target=self._run, name="outbox-sweeper", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.sweep_once()
            except Exception as err:  # the emulator going away at stop, a transient error: next time
                log.warning("outbox sweep failed: %s", err)

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
