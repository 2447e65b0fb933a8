"""What routes need, built lazily once per process (tests override via app.dependency_overrides)."""

# No `from __future__ import annotations` here: Powertools rebuilds the Depends() tree on every request
# with typing.get_type_hints, and string annotations would be eval()ed each time (~3 ms per request).
from functools import cache

from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer, IdempotencyConfig
from aws_lambda_powertools.utilities.idempotency.persistence.base import BasePersistenceLayer

from service.adapters.aws import dynamodb_client, secretsmanager_client
from service.adapters.dynamodb import DynamoDbCarRepository
from service.adapters.secrets import SecretsManagerSigningKeys
from service.domain.cars import CarService
from service.domain.pagination import CursorCodec
from service.settings import get_settings

IDEMPOTENCY_TTL_S = 24 * 3600


@cache
def get_car_service() -> CarService:
    settings = get_settings()
    repository = DynamoDbCarRepository(
        client=dynamodb_client(),
        cars_table=settings.cars_table_name,
        outbox_table=settings.outbox_table_name,
        cursor_codec=CursorCodec(get_signing_keys()),
    )
    return CarService(repository)


@cache
def get_signing_keys() -> SecretsManagerSigningKeys:
    """The next_token keys: the pagination secret's current and previous values, cached in the process."""
    return SecretsManagerSigningKeys(
        client=secretsmanager_client(), secret_id=get_settings().pagination_secret_id
    )


@cache
def get_idempotency_store() -> BasePersistenceLayer:
    """Powertools idempotency records in the idempotency table (key `id`, TTL `expiration`)."""
    return DynamoDBPersistenceLayer(
        table_name=get_settings().idempotency_table_name,
        key_attr="id",
        expiry_attr="expiration",
        boto3_client=dynamodb_client(),
    )


@cache
def get_idempotency_config() -> IdempotencyConfig:
    return IdempotencyConfig(
        event_key_jmespath="idempotency_key",
        payload_validation_jmespath="body",
        raise_on_no_idempotency_key=True,
        expires_after_seconds=IDEMPOTENCY_TTL_S,
    )
