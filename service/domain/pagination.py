"""Opaque, tamper-evident pagination tokens. Pure.

A token is base64url(JSON{v, k: position, f: filters}) + "." + base64url(keyed BLAKE2b MAC). The MAC makes a
hand-edited token fail instead of silently reading from an arbitrary key; the filters inside must match the
request's filters, so a token cannot be replayed against another listing.

The MAC key is a secret (`SigningKeys`: on AWS a Secrets Manager secret the CDK app creates, in the sandbox
one it provisions): tokens are signed with the current key and accepted under the current or the previous
one, so rotating the key does not break the tokens clients hold. A token no key verifies is refreshed
against the key source once (a newer key may have been rotated in since it was cached).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Sequence
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from service.domain.errors import InvalidCursorError

MAX_TOKEN_CHARS = 2048


class _Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    v: int = Field(ge=1, le=1)
    k: dict[str, str]
    f: dict[str, str | None]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SigningKeys(Protocol):
    def get(self, *, refresh: bool = False) -> Sequence[bytes]:
        """The keys, current first, then the previous one(s); `refresh` asks the source again."""
        ...


class StaticKeys:
    """Fixed keys (tests, the in-memory adapter)."""

    def __init__(self, current: bytes, *previous: bytes) -> None:
        self._keys = (current, *previous)

    def get(self, *, refresh: bool = False) -> Sequence[bytes]:
        return self._keys


def _mac(key: bytes, body: bytes) -> bytes:
    return hashlib.blake2b(body, key=hashlib.blake2b(key, digest_size=32).digest(), digest_size=16).digest()


class CursorCodec:
    def __init__(self, keys: SigningKeys | bytes) -> None:
        self._keys = StaticKeys(keys) if isinstance(keys, bytes) else keys

    def _verified(self, body: bytes, mac: bytes) -> bool:
        for refresh in (False, True):
            if any(hmac.compare_digest(mac, _mac(key, body)) for key in self._keys.get(refresh=refresh)):
                return True
        return False

    def encode(self, position: dict[str, str], filters: dict[str, str | None]) -> str:
        body = json.dumps(
            {"v": 1, "k": position, "f": filters}, separators=(",", ":"), sort_keys=True
        ).encode()
        return f"{_b64(body)}.{_b64(_mac(self._keys.get()[0], body))}"

    def decode(self, token: str, filters: dict[str, str | None]) -> dict[str, str]:
        """The position inside `token`; InvalidCursorError unless we issued it for exactly these filters."""
        if len(token) > MAX_TOKEN_CHARS or token.count(".") != 1:
            raise InvalidCursorError("next_token is not a token this API issued")
        body_text, mac_text = token.split(".")
        try:
            body, mac = _unb64(body_text), _unb64(mac_text)
        except (binascii.Error, ValueError) as err:
            raise InvalidCursorError("next_token is not a token this API issued") from err
        if not self._verified(body, mac):
            raise InvalidCursorError("next_token was altered or not issued by this API")
        try:
            payload = _Payload.model_validate_json(body)
        except ValidationError as err:
            raise InvalidCursorError("next_token is not a token this API issued") from err
        if payload.f != filters:
            raise InvalidCursorError("next_token belongs to a listing with other filters")
        return payload.k
