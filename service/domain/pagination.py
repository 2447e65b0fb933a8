"""Opaque, tamper-evident pagination tokens. Pure.

A token is base64url(JSON{v, k: position, f: filters}) + "." + base64url(keyed BLAKE2b MAC). The MAC makes a
hand-edited token fail instead of silently reading from an arbitrary key; the filters inside must match the
request's filters, so a token cannot be replayed against another listing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json

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


class CursorCodec:
    def __init__(self, key: bytes) -> None:
        self._key = hashlib.blake2b(key, digest_size=32).digest()

    def _mac(self, body: bytes) -> bytes:
        return hashlib.blake2b(body, key=self._key, digest_size=16).digest()

    def encode(self, position: dict[str, str], filters: dict[str, str | None]) -> str:
        body = json.dumps(
            {"v": 1, "k": position, "f": filters}, separators=(",", ":"), sort_keys=True
        ).encode()
        return f"{_b64(body)}.{_b64(self._mac(body))}"

    def decode(self, token: str, filters: dict[str, str | None]) -> dict[str, str]:
        """The position inside `token`; InvalidCursorError unless we issued it for exactly these filters."""
        if len(token) > MAX_TOKEN_CHARS or token.count(".") != 1:
            raise InvalidCursorError("next_token is not a token this API issued")
        body_text, mac_text = token.split(".")
        try:
            body, mac = _unb64(body_text), _unb64(mac_text)
        except (binascii.Error, ValueError) as err:
            raise InvalidCursorError("next_token is not a token this API issued") from err
        if not hmac.compare_digest(mac, self._mac(body)):
            raise InvalidCursorError("next_token was altered or not issued by this API")
        try:
            payload = _Payload.model_validate_json(body)
        except ValidationError as err:
            raise InvalidCursorError("next_token is not a token this API issued") from err
        if payload.f != filters:
            raise InvalidCursorError("next_token belongs to a listing with other filters")
        return payload.k
