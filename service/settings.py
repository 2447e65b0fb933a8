"""Settings of the service Lambdas, read once from the environment (names defined in contract/topology.py)."""

from __future__ import annotations

from functools import cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    cars_table_name: str
    idempotency_table_name: str
    outbox_table_name: str
    event_bus_name: str
    pagination_secret_id: str = Field(
        validation_alias="PAGINATION_SECRET_ID", description="secret whose value signs next_token"
    )
    stage: str = Field(default="local", validation_alias="FLEETSCOPE_STAGE")
    max_body_bytes: int = Field(default=64 * 1024, gt=0)
    outbox_sweep_after_s: int = Field(
        default=600,
        gt=0,
        validation_alias="OUTBOX_SWEEP_AFTER_S",
        description="the sweeper republishes outbox items still unpublished this long after they occurred",
    )
    outbox_claim_s: int = Field(
        default=60,
        gt=0,
        validation_alias="OUTBOX_CLAIM_S",
        description="how long a relay or sweeper holds an item it is publishing",
    )


@cache
def get_settings() -> ServiceSettings:
    return ServiceSettings()  # values come from the environment
