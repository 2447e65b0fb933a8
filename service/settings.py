"""Settings of the service Lambdas, read once from the environment (names defined in contract/topology.py).

Every field is read from its alias only (no `populate_by_name`): `stage` never comes from `STAGE`.
"""

from __future__ import annotations

from functools import cache
from typing import ClassVar

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(frozen=True, extra="ignore", case_sensitive=True)

    # Bodies over this many bytes get a 413 (a constant of the service, not read from the environment).
    max_body_bytes: ClassVar[int] = 64 * 1024

    cars_table_name: str = Field(validation_alias="CARS_TABLE_NAME")
    idempotency_table_name: str = Field(validation_alias="IDEMPOTENCY_TABLE_NAME")
    outbox_table_name: str = Field(validation_alias="OUTBOX_TABLE_NAME")
    event_bus_name: str = Field(validation_alias="EVENT_BUS_NAME")
    pagination_secret_id: str = Field(
        validation_alias="PAGINATION_SECRET_ID", description="secret whose value signs next_token"
    )
    stage: str = Field(default="local", validation_alias="FLEETSCOPE_STAGE")
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
