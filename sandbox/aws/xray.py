"""A local X-Ray daemon: receives segment documents over UDP and stores them in the emulator.

The X-Ray SDK (through Powertools Tracer) sends each segment or subsegment as one UDP datagram,
``{"format": "json", "version": 1}\\n<document>``, to ``AWS_XRAY_DAEMON_ADDRESS``. `XRayDaemon`
listens on 127.0.0.1 (port 0 = any free port), validates each document, and a flusher thread
stores them with PutTraceSegments in batches of up to 50 — the same call the real daemon makes.
The sandbox's gateway and runtime add the segments AWS itself would record (API Gateway stage,
Lambda function) through `add_document`.
"""

from __future__ import annotations

import json
import logging
import secrets
import socket
import threading
import time
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

log = logging.getLogger(__name__)

_HEADER = b'{"format": "json", "version": 1}'
_BATCH = 50


def new_trace_id(now: float | None = None) -> str:
    return f"1-{int(now if now is not None else time.time()):08x}-{secrets.token_hex(12)}"


def new_segment_id() -> str:
    return secrets.token_hex(8)


def trace_header(root: str, parent: str, sampled: bool = True) -> str:
    return f"Root={root};Parent={parent};Sampled={1 if sampled else 0}"


def parse_trace_header(header: str) -> dict[str, str]:
    parts = (item.split("=", 1) for item in header.split(";") if "=" in item)
    return {key.strip(): value.strip() for key, value in parts}


def parse_datagram(data: bytes) -> dict[str, Any] | None:
    """The segment document of one daemon datagram, or None if it is not one."""
    header, sep, body = data.partition(b"\n")
    if not sep:
        return None
    try:
        if json.loads(header).get("format") != "json":
            return None
        document = json.loads(body)
    except (ValueError, AttributeError):
        return None
    if not isinstance(document, dict) or not {"id", "trace_id"} <= document.keys():
        return None
    return document


class XRayDaemon:
    """UDP listener + batched PutTraceSegments. `address` is what AWS_XRAY_DAEMON_ADDRESS should be."""

    def __init__(
        self, *, port: int = 0, session: boto3.Session | None = None, flush_interval_s: float = 1.0
    ) -> None:
        self._session = session or boto3.Session()
        self._client: Any = None
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", port))
        self._sock.settimeout(0.5)
        self.port: int = self._sock.getsockname()[1]
        self.flush_interval_s = flush_interval_s
        self._pending: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.received = 0
        self.stored = 0
        self.rejected = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def environment(self) -> dict[str, str]:
        return {"AWS_XRAY_DAEMON_ADDRESS": self.address, "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR"}

    def add_document(self, document: dict[str, Any]) -> None:
        with self._lock:
            self._pending.append(json.dumps(document))

    def start(self) -> XRayDaemon:
        for target, name in ((self._listen, "xray-udp"), (self._flush_loop, "xray-flush")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads.clear()
        self._sock.close()
        self.flush()

    def _listen(self) -> None:
        while not self._stop.is_set():
            try:
                data = self._sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            document = parse_datagram(data)
            if document is None:
                self.rejected += 1
                continue
            self.received += 1
            self.add_document(document)

    def _flush_loop(self) -> None:
        while not self._stop.wait(self.flush_interval_s):
            self.flush()

    def flush(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
        if not pending:
            return
        if self._client is None:
            self._client = self._session.client("xray")
        for i in range(0, len(pending), _BATCH):
            batch = pending[i : i + _BATCH]
            try:
                response = self._client.put_trace_segments(TraceSegmentDocuments=batch)
                self.stored += len(batch) - len(response.get("UnprocessedTraceSegments", []))
            except (BotoCoreError, ClientError) as err:
                log.warning("PutTraceSegments failed: %s", err)


def send_datagram(address: str, document: dict[str, Any]) -> None:
    """Send one segment document to a daemon, the way the X-Ray SDK does (used by tests and tools)."""
    host, _, port = address.rpartition(":")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(_HEADER + b"\n" + json.dumps(document).encode(), (host, int(port)))
