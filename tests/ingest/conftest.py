"""Fixtures of the telemetry-ingest tests."""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from aws_lambda_powertools.metrics.provider import cold_start
from ingest_helpers import InMemoryTelemetryRepository

from sandbox.aws.event_source import LocalLambdaContext
from service.ingest import handler as ingest_handler


@pytest.fixture
def repo(monkeypatch: pytest.MonkeyPatch) -> InMemoryTelemetryRepository:
    """An in-memory repository wired into the handler in place of DynamoDB."""
    repository = InMemoryTelemetryRepository()
    monkeypatch.setattr(ingest_handler, "get_repository", lambda: repository)
    return repository


@pytest.fixture
def invoke() -> Callable[[dict[str, Any]], Any]:
    def _invoke(event: dict[str, Any]) -> Any:
        return ingest_handler.lambda_handler(event, LocalLambdaContext(function_name="telemetry-ingest-test"))

    return _invoke


@pytest.fixture
def warm() -> None:
    """Handler invocations in this test are warm starts (no ColdStart metric)."""
    cold_start.is_cold_start = False


@pytest.fixture
def handler_logs() -> Iterator[io.StringIO]:
    """What the handler logs during the test (JSON lines), instead of stdout."""
    handler = ingest_handler.logger.registered_handler
    assert isinstance(handler, logging.StreamHandler)
    buffer = io.StringIO()
    previous = handler.setStream(buffer)
    yield buffer
    handler.setStream(previous or sys.stdout)
