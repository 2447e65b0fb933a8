"""GET /health."""

from __future__ import annotations

from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from service.api.models import HealthOut
from service.settings import get_settings

router = APIGatewayRouter()


@router.get("/health", summary="Liveness", tags=["health"])
def health() -> HealthOut:
    return HealthOut(stage=get_settings().stage)
