"""Shared fixtures. The AWS emulator runs once per test session (per xdist worker) over HTTP."""

from __future__ import annotations

import os
from collections.abc import Iterator

import boto3
import pytest

from contract.topology import Topology, topology
from sandbox.aws.provision import Provisioned, provision
from sandbox.emulator.server import Emulator, aws_environment

# Unit tests must never reach a real account, even by accident.
for _key, _value in aws_environment("http://127.0.0.1:9").items():
    os.environ.setdefault(_key, _value)
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "Fleetscope")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")


@pytest.fixture(scope="session")
def emulator() -> Iterator[Emulator]:
    """moto server on a free 127.0.0.1 port; AWS_ENDPOINT_URL points at it for the whole session."""
    with Emulator(port=0) as emu:
        saved = {key: os.environ.get(key) for key in aws_environment(emu.endpoint_url)}
        os.environ.update(aws_environment(emu.endpoint_url))
        try:
            yield emu
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


@pytest.fixture(scope="session")
def topo() -> Topology:
    return topology("test")


@pytest.fixture(scope="session")
def provisioned(emulator: Emulator, topo: Topology) -> Provisioned:
    """The tables, queues, bus and topic of the `test` stage, created the way the service expects."""
    result = provision(topo, session=boto3.Session())
    for fn in (topo.cars_api, topo.telemetry_ingest, topo.outbox_relay, topo.monitor):
        for key, value in topo.function_environment(fn).items():
            if key not in ("POWERTOOLS_SERVICE_NAME",):
                os.environ[key] = value
    return result
