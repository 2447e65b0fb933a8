"""boto3 clients, created lazily, once per process; they reach AWS or the emulator (AWS_ENDPOINT_URL)."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_secretsmanager import SecretsManagerClient

_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=2, read_timeout=5)


@cache
def dynamodb_client() -> DynamoDBClient:
    return boto3.session.Session().client("dynamodb", config=_CONFIG)


@cache
def events_client() -> EventBridgeClient:
    return boto3.session.Session().client("events", config=_CONFIG)


@cache
def secretsmanager_client() -> SecretsManagerClient:
    return boto3.session.Session().client("secretsmanager", config=_CONFIG)


def reset_clients() -> None:
    """Forget the cached clients (tests that move AWS_ENDPOINT_URL)."""
    dynamodb_client.cache_clear()
    events_client.cache_clear()
    secretsmanager_client.cache_clear()
