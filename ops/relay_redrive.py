"""Republish the outbox's change events that occurred in a time range.

    python -m service.relay.redrive --since 2026-12-01T10:00Z --until 2026-12-01T12:00Z
        [--stage local] [--unpublished-only] [--dry-run]

Every outbox item (kept 7 days) that occurred in [since, until) is put on the fleet bus again, exactly
as recorded, and marked published. With ``--unpublished-only`` only items nobody published yet are
sent, through the same claim as the relay and the sweeper (so never twice); without it, published
ones are sent again too (a consumer that lost events asks for this; consumers deduplicate on
``detail.event_id``). Prints one JSON summary line. Names come from ``contract/topology.py`` for the
stage; the endpoint from ``AWS_ENDPOINT_URL`` (``http://127.0.0.1:5055`` for a local sandbox).
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime, timedelta

from pydantic import AwareDatetime, BaseModel, TypeAdapter

from contract.topology import topology
from service.adapters.aws import dynamodb_client, events_client
from service.adapters.eventbridge import EventBridgePublisher
from service.relay.outbox import DynamoDbOutbox, Outbox, Publisher, deliver

_WHEN: TypeAdapter[AwareDatetime] = TypeAdapter(AwareDatetime)
LEASE = timedelta(minutes=1)


class RedriveSummary(BaseModel):
    matched: int = 0
    published: int = 0
    skipped: int = 0
    failed: int = 0


def redrive(
    outbox: Outbox,
    publisher: Publisher,
    *,
    since: datetime,
    until: datetime,
    unpublished_only: bool,
    dry_run: bool = False,
    now: datetime | None = None,
) -> RedriveSummary:
    now = now or datetime.now(UTC)
    summary = RedriveSummary()
    for item in sorted(outbox.occurred_between(since, until), key=lambda i: i.occurred_at):
        if unpublished_only and item.published_at is not None:
            continue
        summary.matched += 1
        if dry_run:
            continue
        try:
            if unpublished_only:
                sent = deliver(item.event_id, outbox=outbox, publisher=publisher, now=now, lease=LEASE)
            else:
                publisher.publish(item)
                outbox.mark_published(item.event_id, now=now)
                sent = True
        except Exception:
            summary.failed += 1
            continue
        if sent:
            summary.published += 1
        else:
            summary.skipped += 1
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m service.relay.redrive", description=__doc__.split("\n")[1]
    )
    parser.add_argument("--since", required=True, help="ISO-8601 with offset, inclusive")
    parser.add_argument("--until", required=True, help="ISO-8601 with offset, exclusive")
    parser.add_argument("--stage", default="local")
    parser.add_argument("--unpublished-only", action="store_true")
    parser.add_argument("--dry-run", action="store_true", help="count what would be sent, send nothing")
    args = parser.parse_args(argv)
    try:
        since, until = _WHEN.validate_python(args.since), _WHEN.validate_python(args.until)
    except ValueError as err:
        parser.error(f"--since/--until must be ISO-8601 timestamps with an offset: {err}")
    if until <= since:
        parser.error("--until must be after --since")
    topo = topology(args.stage)
    summary = redrive(
        DynamoDbOutbox(client=dynamodb_client(), table=topo.outbox_table.name),
        EventBridgePublisher(client=events_client(), bus_name=topo.event_bus),
        since=since,
        until=until,
        unpublished_only=args.unpublished_only,
        dry_run=args.dry_run,
    )
    print(json.dumps(summary.model_dump()))
    return 1 if summary.failed else 0
