"""The cars API as the fleet calls it: `FleetApi`, over HTTP `HttpFleetApi` (a session per thread)."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Protocol

import requests

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ApiResponse:
    status: int
    body: Any
    elapsed_s: float


class FleetApi(Protocol):
    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: Any = None,
        headers: dict[str, str] | None = None,
    ) -> ApiResponse: ...


class HttpFleetApi:
    """The cars API over HTTP (one `requests.Session` per thread)."""

    def __init__(self, api_url: str, *, timeout_s: float = 15.0) -> None:
        self.api_url = api_url.rstrip("/")
        self.timeout_s = timeout_s
        self._local = threading.local()

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            self._local.session = session
        return session

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: Any = None,
        headers: dict[str, str] | None = None,
    ) -> ApiResponse:
        started = time.monotonic()
        try:
            resp = self._session().request(
                method,
                self.api_url + path,
                json=json_body,
                params=params,
                headers=headers,
                timeout=self.timeout_s,
            )
        except requests.RequestException as err:
            log.debug("fleet: %s %s failed: %s", method, path, err)
            return ApiResponse(0, None, time.monotonic() - started)
        try:
            body = resp.json() if resp.content else None
        except ValueError:
            body = resp.text
        return ApiResponse(resp.status_code, body, time.monotonic() - started)
