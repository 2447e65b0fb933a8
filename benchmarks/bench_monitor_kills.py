"""Monitor runs killed between their writes: duplicate and orphaned alerts.

100 scheduled monitor runs (5-minute periods) over a scripted API with four 40 % 5XX outages, each
of whose first error datapoint reaches CloudWatch two runs late (so a run that re-scores periods
after a dead one can see an incident open one period earlier than the run that died). Every
DynamoDB write and every SNS publish of a run is a point where the Lambda may die (`--kill-p`,
default 10 % each); a run that dies stays dead (its lease is not released, as in Lambda), and the
next scheduled run takes over.
After the 100 runs, kill-free runs flush what is pending. At the subscriber:

- duplicate alerts: deliveries of a dedup key (`incident_id#seq`) that was delivered before;
- orphaned alerts: incidents whose OPEN was delivered and that never got a RESOLVED;
- kills@sent: kills between SNS accepting a message and the write that marks it sent. SNS has no
  idempotent publish on a standard topic, so the next run cannot tell from its table whether SNS had
  it. With the delivery receipts (`monitor.receipts`: a queue subscribed to the topic, read before
  publishing) it marks such an item sent instead of sending it again; without them ("ours, no
  receipts") each is one duplicate. Deleting the receipts is a point where the process may die too.

The real `MonitorService` and `DynamoDbIncidentStore` run against moto's in-process DynamoDB
(TransactWriteItems included) and an in-process GetMetricData (`ops.fakes.FakeCloudWatch`); kills
are botocore `before-call` hooks. The same script runs the code before this change (the branch
point's `monitor/`, `ops/` and `contract/`, or those of `--baseline REV`, from git, in a subprocess)
as the baseline, with the same seeds.

Usage: python -m benchmarks bench_monitor_kills [--runs N] [--seeds K] [--kill-p P] [--no-baseline]
       [--baseline REV]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import asdict, dataclass
from io import BytesIO
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np

P = 300
T0 = 1_767_225_600  # the first scheduled run; aligned on the period
OUTAGES = (12, 34, 57, 80)  # run indexes at which a 4-period outage starts
LATE_RUNS = 2  # the first error datapoint of an outage reaches CloudWatch this many runs late
OUTAGE_PERIODS = 4
FLUSH_RUNS = 12
TABLE = "bench-monitor-kills"
ROOT = Path(__file__).resolve().parents[1]


class Killed(BaseException):  # not an Exception: no handler of the code may catch it (the process is gone)
    """The Lambda process died here."""


@dataclass
class KillsResult:
    runs: int
    duplicate_alerts: int
    orphaned_alerts: int
    incidents_opened: int = 0
    kills: int = 0
    kills_after_publish: int = 0  # between SNS accepting a message and its `sent` mark: resent later
    deliveries: int = 0


class _Killer:
    """Decides, at each write, whether the process dies there; dead stays dead until the next run."""

    def __init__(self, rng: random.Random, p: float) -> None:
        self.rng, self.p = rng, p
        self.dead = False
        self.armed = True
        self.kills = 0
        self.kills_after_publish = 0
        self.published_last = False  # the previous point was a publish SNS accepted

    def point(self, what: str) -> None:
        if self.dead:
            raise Killed(f"dead before {what}")
        after_publish, self.published_last = self.published_last, False
        if self.armed and self.rng.random() < self.p:
            self.dead = True
            self.kills += 1
            self.kills_after_publish += after_publish
            raise Killed(f"killed before {what}")


class _Subscriber:
    """The alerts topic with one subscriber and the monitor's receipts queue: every accepted publish
    is a delivery, and a receipt in the queue until the monitor deletes it."""

    def __init__(self, killer: _Killer) -> None:
        self.killer = killer
        self.deliveries: list[dict[str, Any]] = []
        self.queue: dict[str, str] = {}  # receipt handle -> SNS envelope

    def publish(self, message_input: dict[str, Any]) -> str:
        self.killer.point("SNS Publish")
        sqs_part = json.loads(message_input["Message"])["sqs"]
        self.deliveries.append(json.loads(sqs_part))
        message_id = f"m-{len(self.deliveries)}"
        self.queue[f"h-{len(self.deliveries)}"] = json.dumps({"MessageId": message_id, "Message": sqs_part})
        self.killer.published_last = True
        return message_id


class _Receipts:
    """The receipts queue as the monitor reads it (`monitor.receipts.DeliveryReceipts`); deleting is
    a point where the process may die, as every write is."""

    def __init__(self, subscriber: _Subscriber) -> None:
        self.subscriber = subscriber

    def receive(self) -> list[Any]:
        from monitor.receipts import BATCH, parse_receipt

        return [parse_receipt(body, handle=h) for h, body in list(self.subscriber.queue.items())[:BATCH]]

    def delete(self, receipts: list[Any]) -> None:
        self.subscriber.killer.point("SQS DeleteMessageBatch")
        for r in receipts:
            self.subscriber.queue.pop(r.handle, None)


_WRITES = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}


def simulate(*, runs: int = 100, seed: int = 0, kill_p: float = 0.1, receipts: bool = True) -> KillsResult:
    """One scripted series, `runs` scheduled runs with random kills, then kill-free flush runs
    (`receipts`: the monitor reads the receipts queue, when its code has one)."""
    import inspect

    import boto3
    from moto import mock_aws

    from contract.resources import FunctionName, ResourceNames
    from monitor.catalog import build_catalog
    from monitor.service import MonitorService
    from monitor.settings import MonitorSettings
    from monitor.source import CloudWatchMetricSource
    from monitor.store import DynamoDbIncidentStore
    from ops.fakes import FakeCloudWatch

    names = ResourceNames(
        stage="bench",
        namespace="Fleetscope",
        api_name="bench-api",
        api_stage="v1",
        functions=(FunctionName(key="cars-api", name="bench-fn", service="cars-api"),),
        event_bus="bus",
    )
    api = {"ApiName": "bench-api", "Stage": "v1"}
    catalog = build_catalog(names, period_s=P)
    settings = MonitorSettings.model_validate(
        {
            "MONITOR_TABLE_NAME": TABLE,
            "ALERTS_TOPIC_NAME": "bench-alerts",
            "MONITOR_PERIOD_S": P,
            "MONITOR_HISTORY_DAYS": 2,
            "MONITOR_SETTLE_S": 0,
            "MONITOR_COOLDOWN_S": 600,
        }
    )
    rng = np.random.default_rng(seed)
    total = runs + FLUSH_RUNS
    grid = np.arange(T0 - 2 * 86400, T0 + total * P, P)
    count = rng.poisson(200 + 50 * np.sin(2 * np.pi * (grid % 86400) / 86400)).astype(float)
    errors = np.zeros(len(grid))
    late: set[int] = set()
    for k in OUTAGES:
        start = int(np.searchsorted(grid, T0 + k * P))
        errors[start : start + OUTAGE_PERIODS] = np.round(0.4 * count[start : start + OUTAGE_PERIODS])
        late.add(start)  # its first error datapoint arrives LATE_RUNS runs late
    with_receipts = receipts and "receipts" in inspect.signature(MonitorService).parameters
    fake = FakeCloudWatch()
    killer = _Killer(random.Random(seed), kill_p)
    subscriber = _Subscriber(killer)
    env = {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
    }
    with mock.patch.dict(os.environ, env), mock_aws():
        os.environ.pop("AWS_ENDPOINT_URL", None)
        dynamodb = boto3.resource("dynamodb", region_name="us-east-1")
        dynamodb.create_table(
            TableName=TABLE,
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        table = dynamodb.Table(TABLE)

        def maybe_die(model: Any, **_: Any) -> None:
            if model.name in _WRITES:
                killer.point(model.name)

        table.meta.client.meta.events.register("before-call.dynamodb", maybe_die)
        index = np.arange(len(grid))
        is_late = np.isin(index, sorted(late))
        for k in range(total):
            now = T0 + k * P
            upto = int(np.searchsorted(grid, now))  # periods before `now` have ended
            # in CloudWatch: every ended period's requests; its errors too, except a late error
            # datapoint, which arrives LATE_RUNS runs after its period ended
            ended = index < upto
            fake.put_series("AWS/ApiGateway", "Count", api, grid[ended], count[ended].tolist())
            failing = ended & (errors > 0) & ~(is_late & (index >= upto - LATE_RUNS))
            fake.put_series("AWS/ApiGateway", "5XXError", api, grid[failing], errors[failing].tolist())
            killer.dead = False
            killer.armed = 0 < k < runs  # the first run trains; the flush runs are kill-free
            service = MonitorService(
                settings=settings,
                catalog=catalog,
                source=CloudWatchMetricSource(fake),
                store=DynamoDbIncidentStore(TABLE, table=table),
                notifier=subscriber,
                owner=f"run-{k}",
                train_budget_s=600.0,
                **({"receipts": _Receipts(subscriber)} if with_receipts else {}),
            )
            try:
                service.run(now)
            except Killed:
                continue
    keys = [d["dedup_key"] for d in subscriber.deliveries]
    opened = {d["incident_id"] for d in subscriber.deliveries if d["kind"] == "OPEN"}
    resolved = {d["incident_id"] for d in subscriber.deliveries if d["kind"] == "RESOLVED"}
    return KillsResult(
        runs=runs,
        duplicate_alerts=len(keys) - len(set(keys)),
        orphaned_alerts=len(opened - resolved),
        incidents_opened=len(opened),
        kills=killer.kills,
        kills_after_publish=killer.kills_after_publish,
        deliveries=len(keys),
    )


def measure(runs: int = 100, *, seeds: int = 1, kill_p: float = 0.1, receipts: bool = True) -> KillsResult:
    """`runs` monitor runs with random kills, summed over `seeds` scripted worlds (ours)."""
    return _sum([simulate(runs=runs, seed=s, kill_p=kill_p, receipts=receipts) for s in range(seeds)])


def _sum(results: list[KillsResult]) -> KillsResult:
    return KillsResult(
        runs=sum(r.runs for r in results),
        duplicate_alerts=sum(r.duplicate_alerts for r in results),
        orphaned_alerts=sum(r.orphaned_alerts for r in results),
        incidents_opened=sum(r.incidents_opened for r in results),
        kills=sum(r.kills for r in results),
        kills_after_publish=sum(r.kills_after_publish for r in results),
        deliveries=sum(r.deliveries for r in results),
    )


def _baseline_commit(rev: str | None = None) -> str:
    """`rev`, or the branch point with main."""
    args = ["rev-parse", rev] if rev else ["merge-base", "HEAD", "main"]
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()


def baseline(runs: int, *, seeds: int, kill_p: float, rev: str | None = None) -> KillsResult:
    """The same measurement on the code of `rev` (default: the branch point), in a subprocess."""
    commit = _baseline_commit(rev)
    archive = subprocess.run(
        ["git", "archive", "--format=tar", commit, "monitor", "ops", "contract"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout
    with tempfile.TemporaryDirectory() as old:
        with tarfile.open(fileobj=BytesIO(archive)) as tar:
            tar.extractall(old, filter="data")
        code = (
            f"import sys, json; sys.path[:0] = [{old!r}, {str(ROOT)!r}]\n"
            "from dataclasses import asdict\n"
            "from benchmarks.bench_monitor_kills import _sum, simulate\n"
            f"print(json.dumps(asdict(_sum([simulate(runs={runs}, seed=s, kill_p={kill_p}) "
            f"for s in range({seeds})]))))\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], cwd=old, capture_output=True, text=True, check=True
        )
    return KillsResult(**json.loads(out.stdout.strip().splitlines()[-1]))


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="bench_monitor_kills")
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--seeds", type=int, default=5, help="scripted worlds (kill sequences)")
    parser.add_argument("--kill-p", type=float, default=0.1, help="chance to die at each write")
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--baseline", metavar="REV", help="code to compare with (default: branch point)")
    args = parser.parse_args(argv)
    rows = [
        ("ours", measure(args.runs, seeds=args.seeds, kill_p=args.kill_p)),
        ("ours, no receipts", measure(args.runs, seeds=args.seeds, kill_p=args.kill_p, receipts=False)),
    ]
    if not args.no_baseline:
        old = baseline(args.runs, seeds=args.seeds, kill_p=args.kill_p, rev=args.baseline)
        rows.append((f"before ({_baseline_commit(args.baseline)[:7]})", old))
    print(
        f"{args.seeds} x {args.runs} monitor runs, kill chance {args.kill_p:.0%} at every DynamoDB write "
        f"and SNS publish, {len(OUTAGES)} incidents per world (first error datapoint {LATE_RUNS} runs late)"
    )
    header = ("runs", "kills", "opened", "delivered", "duplicate", "orphaned", "kills@sent")
    print(f"{'code':<20} " + " ".join(f"{h:>9}" for h in header))
    for label, r in rows:
        row = (
            r.runs,
            r.kills,
            r.incidents_opened,
            r.deliveries,
            r.duplicate_alerts,
            r.orphaned_alerts,
            r.kills_after_publish,
        )
        print(f"{label:<20} " + " ".join(f"{v:>9}" for v in row))
    print(json.dumps({label: asdict(r) for label, r in rows}))
