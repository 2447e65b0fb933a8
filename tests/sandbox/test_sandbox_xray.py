"""The local X-Ray daemon: UDP segment documents -> PutTraceSegments in the emulator."""

from __future__ import annotations

import time

import boto3
import pytest

from sandbox.aws.xray import XRayDaemon, new_segment_id, new_trace_id, parse_datagram, send_datagram
from sandbox.emulator.server import Emulator


def test_parse_datagram_accepts_only_daemon_documents() -> None:
    assert parse_datagram(b'{"format": "json", "version": 1}\n{"id": "a", "trace_id": "t"}') == {
        "id": "a",
        "trace_id": "t",
    }
    assert parse_datagram(b'{"id": "a", "trace_id": "t"}') is None  # no header
    assert parse_datagram(b'{"format": "json", "version": 1}\nnot json') is None
    assert parse_datagram(b'{"format": "json", "version": 1}\n{"id": "a"}') is None  # no trace id


@pytest.mark.integration
def test_segments_sent_over_udp_are_stored_in_the_emulator(emulator: Emulator) -> None:
    daemon = XRayDaemon(flush_interval_s=0.2).start()
    trace_id = new_trace_id()
    parent, child = new_segment_id(), new_segment_id()
    now = time.time()
    try:
        send_datagram(
            daemon.address,
            {
                "name": "cars-api",
                "id": parent,
                "trace_id": trace_id,
                "start_time": now - 0.5,
                "end_time": now,
            },
        )
        send_datagram(
            daemon.address,
            {"name": "DynamoDB", "id": child, "trace_id": trace_id, "parent_id": parent, "type": "subsegment",
             "start_time": now - 0.4, "end_time": now - 0.1, "namespace": "aws"},
        )  # fmt: skip
        send_datagram(daemon.address, {"garbage": True})
        deadline = time.monotonic() + 10
        while daemon.stored < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        daemon.stop()
    assert daemon.received == 2
    assert daemon.rejected == 1
    traces = boto3.client("xray").batch_get_traces(TraceIds=[trace_id])["Traces"]
    assert [t["Id"] for t in traces] == [trace_id]
    ids = {segment["Id"] for segment in traces[0]["Segments"]}
    assert ids == {parent, child}
