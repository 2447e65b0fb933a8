"""The alert inbox: an SQS queue subscribed to the SNS topics, and `fleetscope alerts`.

`Inbox.ensure(topo)` creates the queue ``<prefix>-alerts-inbox`` in the emulator and subscribes it to
every topic of the topology (the alerts topic and the monitor-health topic, whose messages carry its
TopicArn) with raw message delivery *off*, so every message is the SNS envelope (Type,
MessageId, TopicArn, Subject, Message, Timestamp, MessageAttributes, ...) exactly as SNS delivers it.

Who reads the queue: only the running sandbox. Its `AlertPrinter` thread receives alerts as they
arrive, prints one short human line each and appends the envelope to
``${FLEETSCOPE_HOME:-.fleetscope}/alerts.jsonl`` (one JSON object per line, under a file lock) before
deleting the message, so an alert is never lost between the queue and the file. A single consumer
means no alert is split between two readers.

`fleetscope alerts` prints that file (one JSON object per line); ``--follow`` keeps printing new
alerts as the sandbox appends them. It works whether or not the sandbox is running.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import boto3

from contract.topology import Topology
from sandbox.aws.provision import subscribe_queue
from sandbox.home.settings import fleetscope_home

log = logging.getLogger(__name__)

ALERTS_FILE = "alerts.jsonl"


def inbox_queue_name(topo: Topology) -> str:
    return f"{topo.prefix}-alerts-inbox"


class AlertLog:
    """``alerts.jsonl``: append under an exclusive lock, read back line by line."""

    def __init__(self, home: Path | str | None = None) -> None:
        self.home = Path(home) if home is not None else fleetscope_home()
        self.path = self.home / ALERTS_FILE

    def append(self, envelopes: list[dict[str, Any]]) -> None:
        if not envelopes:
            return
        self.home.mkdir(parents=True, exist_ok=True)
        data = "".join(json.dumps(e, separators=(",", ":")) + "\n" for e in envelopes)
        with open(self.path, "a", encoding="utf-8") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def read(self) -> tuple[list[dict[str, Any]], list[str]]:
        """(alerts, problems): every parseable line, and a description of each bad line."""
        alerts: list[dict[str, Any]] = []
        problems: list[str] = []
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return alerts, problems
        for number, line in enumerate(text.splitlines(), start=1):
            parsed = _parse_line(line)
            if parsed is None:
                if line.strip():
                    problems.append(f"{self.path}:{number}: not a JSON object: {line.strip()[:80]!r}")
                continue
            alerts.append(parsed)
        return alerts, problems


def _parse_line(line: str) -> dict[str, Any] | None:
    if not line.strip():
        return None
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def attribute(envelope: dict[str, Any], *names: str) -> str | None:
    """A MessageAttribute value of an SNS envelope by any of `names` (case-insensitive)."""
    attrs = envelope.get("MessageAttributes") or {}
    lowered = {str(k).lower(): v for k, v in attrs.items()}
    for name in names:
        value = lowered.get(name.lower())
        if isinstance(value, dict) and "Value" in value:
            return str(value["Value"])
    return None


def summary_line(envelope: dict[str, Any]) -> str:
    """One short human line for the console."""
    state = attribute(envelope, "kind", "state", "status") or "ALERT"
    severity = attribute(envelope, "severity") or "-"
    subject = envelope.get("Subject") or _message_title(envelope) or "(no subject)"
    return f"[{envelope.get('Timestamp', '?')}] {state.upper():<9} {severity:<8} {subject}"


def _message_title(envelope: dict[str, Any]) -> str | None:
    try:
        message = json.loads(envelope.get("Message") or "")
    except ValueError:
        return str(envelope.get("Message") or "")[:120] or None
    if isinstance(message, dict):
        for key in ("title", "summary", "series", "id"):
            if message.get(key):
                return str(message[key])
    return None


class Inbox:
    """The inbox queue; `receive()` moves delivered alerts from SQS into alerts.jsonl."""

    def __init__(self, queue_url: str, *, home: Path | str | None = None, sqs: Any = None) -> None:
        self.queue_url = queue_url
        self.log = AlertLog(home)
        self._sqs = sqs or boto3.client("sqs")

    @classmethod
    def ensure(
        cls,
        topo: Topology,
        *,
        session: boto3.Session | None = None,
        home: Path | str | None = None,
        topic_arn: str | None = None,
    ) -> Inbox:
        """Create the inbox queue and its subscriptions to the alerts topic (`topic_arn` or the topology's)
        and the monitor-health topic (idempotent)."""
        session = session or boto3.Session()
        sqs = session.client("sqs")
        sns = session.client("sns")
        topics = [topic_arn or sns.create_topic(Name=topo.alerts_topic)["TopicArn"]]
        topics.append(sns.create_topic(Name=topo.monitor_health_topic)["TopicArn"])
        queue_url: str = sqs.create_queue(
            QueueName=inbox_queue_name(topo), Attributes={"MessageRetentionPeriod": str(14 * 24 * 3600)}
        )["QueueUrl"]
        queue_arn: str = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        subscribe_queue(sns, sqs, topics, queue_url, queue_arn)
        return cls(queue_url, home=home, sqs=sqs)

    def receive(self, *, wait_s: int = 1, max_messages: int = 10) -> list[dict[str, Any]]:
        """Receive up to `max_messages` alerts, append them to alerts.jsonl, then delete them."""
        resp = self._sqs.receive_message(
            QueueUrl=self.queue_url, MaxNumberOfMessages=max_messages, WaitTimeSeconds=wait_s
        )
        messages = resp.get("Messages", [])
        envelopes = []
        for msg in messages:
            parsed = _parse_line(msg["Body"])
            # Something that is not an SNS envelope is still kept, wrapped, rather than dropped.
            envelopes.append(parsed if parsed is not None else {"Type": "Unparsed", "Body": msg["Body"]})
        self.log.append(envelopes)
        if messages:
            self._sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
            )
        return envelopes

    def drain(self) -> list[dict[str, Any]]:
        """Everything currently in the queue (used by tests and at shutdown)."""
        received: list[dict[str, Any]] = []
        while batch := self.receive(wait_s=0):
            received.extend(batch)
        return received


class AlertPrinter:
    """Background thread: receive alerts, print one line each, keep them in alerts.jsonl."""

    def __init__(self, inbox: Inbox, *, out: IO[str] | None = None, wait_s: int = 1) -> None:
        self.inbox = inbox
        self.out = out or sys.stdout
        self.wait_s = wait_s
        self.received = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> AlertPrinter:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="alert-printer", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout_s)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                envelopes = self.inbox.receive(wait_s=self.wait_s)
            except Exception as err:  # the emulator may be restarting; keep trying
                log.warning("alert inbox: receive failed: %s", err)
                self._stop.wait(1.0)
                continue
            for envelope in envelopes:
                self.received += 1
                print(summary_line(envelope), file=self.out, flush=True)


# --- CLI ----------------------------------------------------------------------------------------------


def add_alerts_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Print the alerts the sandbox received on the SNS alerts topic, one JSON object per line "
        "(the SNS envelope as delivered), from ${FLEETSCOPE_HOME:-.fleetscope}/alerts.jsonl."
    )
    parser.add_argument("--follow", "-f", action="store_true", help="keep printing new alerts")
    parser.add_argument("--interval", type=float, default=0.5, help=argparse.SUPPRESS)


def cli_alerts(args: argparse.Namespace) -> int:
    """`fleetscope alerts [--follow]`; exit 1 if alerts.jsonl had unreadable lines (the rest is printed)."""
    alert_log = AlertLog()
    if args.interval <= 0:
        print("fleetscope alerts: --interval must be > 0", file=sys.stderr)
        return 2
    bad = 0
    try:
        for line, problem in _lines(alert_log.path, follow=args.follow, interval_s=args.interval):
            if problem:
                bad += 1
                print(f"fleetscope alerts: {problem}", file=sys.stderr)
            else:
                print(line, flush=True)
    except KeyboardInterrupt:
        pass
    if not alert_log.path.exists() and not args.follow:
        print(f"fleetscope alerts: no alerts received yet ({alert_log.path} does not exist)", file=sys.stderr)
    return 1 if bad else 0


def _lines(path: Path, *, follow: bool, interval_s: float) -> Iterator[tuple[str, str | None]]:
    """(compact JSON line, None) per alert, or ("", problem) per bad line; tails the file if `follow`."""
    position = 0
    number = 0
    pending = ""
    while True:
        with contextlib.suppress(FileNotFoundError), open(path, encoding="utf-8") as handle:
            handle.seek(position)
            chunk = handle.read()
            position = handle.tell()
            pending += chunk
            *complete, pending = pending.split("\n")
            for line in complete:
                number += 1
                if not line.strip():
                    continue
                parsed = _parse_line(line)
                if parsed is None:
                    yield "", f"{path}:{number}: not a JSON object: {line.strip()[:80]!r}"
                else:
                    yield json.dumps(parsed, separators=(",", ":")), None
        if not follow:
            if pending.strip():  # a last line without newline (a writer was interrupted)
                parsed = _parse_line(pending)
                if parsed is None:
                    yield "", f"{path}:{number + 1}: incomplete line: {pending.strip()[:80]!r}"
                else:
                    yield json.dumps(parsed, separators=(",", ":")), None
            return
        time.sleep(interval_s)
