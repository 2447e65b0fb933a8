"""SecretsManagerSigningKeys over a fake Secrets Manager client: stages, caching, refresh rate limit."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from service.adapters.secrets import SecretsManagerSigningKeys


class FakeSecrets:
    def __init__(self, **stages: str) -> None:
        self.stages = stages
        self.calls = 0

    def get_secret_value(self, *, SecretId: str, VersionStage: str) -> dict[str, Any]:  # noqa: N803
        self.calls += 1
        if VersionStage not in self.stages:
            raise ClientError({"Error": {"Code": "ResourceNotFoundException"}}, "GetSecretValue")
        return {"SecretString": self.stages[VersionStage]}


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def test_current_signs_previous_verifies_and_refreshes_are_rate_limited() -> None:
    # Given a secret never rotated (no AWSPREVIOUS)
    client, clock = FakeSecrets(AWSCURRENT="k1"), Clock()
    keys = SecretsManagerSigningKeys(
        client=client,  # type: ignore[arg-type]
        secret_id="s",
        max_age_s=300,
        min_refresh_s=10,
        clock=clock,
    )
    assert keys.get() == (b"k1",)
    # When it is rotated, the cache holds the old keys until asked to refresh ...
    client.stages = {"AWSCURRENT": "k2", "AWSPREVIOUS": "k1"}
    assert keys.get() == (b"k1",)
    assert keys.get(refresh=True) == (b"k1",)  # ... and a refresh within 10 s of the last fetch is not made
    clock.now = 11
    assert keys.get(refresh=True) == (b"k2", b"k1")
    calls = client.calls
    for _ in range(100):  # forged tokens asking for refreshes do not reach Secrets Manager
        keys.get(refresh=True)
    assert client.calls == calls
    # Then the cache expires by itself after max_age_s
    client.stages = {"AWSCURRENT": "k3", "AWSPREVIOUS": "k2"}
    clock.now = 312
    assert keys.get() == (b"k3", b"k2")


def test_a_secret_without_a_current_value_is_an_error() -> None:
    keys = SecretsManagerSigningKeys(client=FakeSecrets(), secret_id="s")  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="no AWSCURRENT"):
        keys.get()
