"""SecretsManagerSigningKeys: the next_token signing keys, read from a Secrets Manager secret and cached.

The secret's AWSCURRENT version signs; AWSCURRENT and AWSPREVIOUS verify, so rotating the secret
(`aws secretsmanager put-secret-value`, which moves AWSPREVIOUS to the old version) leaves the tokens
clients hold valid. Keys are cached for `max_age_s`; a refresh that a token with an unknown MAC asks for
goes to Secrets Manager at most once every `min_refresh_s`, so forged tokens cannot flood it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient


class SecretsManagerSigningKeys:
    def __init__(
        self,
        *,
        client: SecretsManagerClient,
        secret_id: str,
        max_age_s: float = 300.0,
        min_refresh_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._secret_id = secret_id
        self._max_age_s = max_age_s
        self._min_refresh_s = min_refresh_s
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: tuple[bytes, ...] = ()
        self._fetched_at = float("-inf")

    def get(self, *, refresh: bool = False) -> Sequence[bytes]:
        with self._lock:
            age = self._clock() - self._fetched_at
            if age >= self._max_age_s or (refresh and age >= self._min_refresh_s):
                self._keys = self._fetch()
                self._fetched_at = self._clock()
            return self._keys

    def _fetch(self) -> tuple[bytes, ...]:
        current = self._value("AWSCURRENT")
        if current is None:
            raise RuntimeError(f"secret {self._secret_id} has no AWSCURRENT value")
        previous = self._value("AWSPREVIOUS")
        return (current,) if previous is None or previous == current else (current, previous)

    def _value(self, stage: str) -> bytes | None:
        try:
            response = self._client.get_secret_value(SecretId=self._secret_id, VersionStage=stage)
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                return None  # no such stage (a secret never rotated has no AWSPREVIOUS)
            raise
        text = response.get("SecretString")
        return text.encode() if text else response.get("SecretBinary")
