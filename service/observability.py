"""Powertools Logger, Tracer and Metrics shared by the service's modules (configured by POWERTOOLS_* env)."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger()
tracer = Tracer()
metrics = Metrics()
