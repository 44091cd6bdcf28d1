"""How the platform's own clients prove who they are to a broker behind a PEP.

The IoT agent (and every other internal client) gets a token from the identity manager
and sends it with each request to the broker, as iotagent-node-lib's ``authentication``
block does (``IOTA_AUTH_*``; its admin guide, "authentication"):

* ``oauth2``: ``POST <url><tokenPath>`` with HTTP Basic ``clientId:clientSecret`` and
  ``grant_type=client_credentials`` (Keyrock's ``/oauth2/token``), or, with a user and
  password (a service account, whose roles the PEP's policies can name),
  ``grant_type=password``; the token is fetched again a minute before it expires, or when
  the broker answers 401. ``permanentToken``: ``scope=permanent`` once (Keyrock's
  permanent tokens never expire).
* ``keystone``: ``POST <url>/v3/auth/tokens`` with the user's name and password, the token
  in ``X-Subject-Token`` (Keyrock's /v3 API).

The token goes in ``header``: ``Authorization: Bearer <token>``, or the token alone in any
other header (``X-Auth-Token``, Orion's and Wilma's). One fetch at a time: concurrent
requests wait for the same token. Secrets are never logged.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import quote, urlencode

from .transport import Transport

log = logging.getLogger("waziup.client.auth")

REFRESH_MARGIN = 60.0  # seconds before expiry a token is fetched again


class AuthError(Exception):
    """The identity manager gave no token (refused, unreachable, or an answer without one)."""


class Credentials(Protocol):
    async def headers(self) -> list[tuple[str, str]]: ...

    async def expired(self) -> None:
        """The server refused the token (401): the next ``headers`` fetches a new one."""


@dataclass
class _Token:
    value: str
    expires: float | None  # monotonic time; None: never


class _Fetched:
    """A token fetched on demand, kept until a margin before it expires."""

    def __init__(self, header: str, clock: object = time.monotonic) -> None:
        self.header = header
        self._clock = clock
        self._token: _Token | None = None
        self._lock = asyncio.Lock()

    async def headers(self) -> list[tuple[str, str]]:
        token = self._token
        if token is None or (token.expires is not None and token.expires - REFRESH_MARGIN <= self._now()):
            async with self._lock:
                token = self._token
                if token is None or (token.expires is not None and token.expires - REFRESH_MARGIN <= self._now()):
                    token = self._token = await self._fetch()
        value = f"Bearer {token.value}" if self.header.lower() == "authorization" else token.value
        return [(self.header, value)]

    async def expired(self) -> None:
        self._token = None

    def _now(self) -> float:
        return self._clock()  # type: ignore[operator]

    async def _fetch(self) -> _Token:
        raise NotImplementedError


class OAuth2ClientCredentials(_Fetched):
    def __init__(
        self, transport: Transport, token_url: str, client_id: str, client_secret: str, *,
        header: str = "Authorization", permanent: bool = False, timeout: float = 10.0, clock: object = time.monotonic,
        username: str = "", password: str = "",
    ) -> None:
        super().__init__(header, clock)
        self.username = username
        self.password = password
        self.transport = transport
        self.token_url = token_url
        self.basic = base64.b64encode(f"{quote(client_id, safe='')}:{quote(client_secret, safe='')}".encode()).decode()
        self.permanent = permanent
        self.timeout = timeout

    async def _fetch(self) -> _Token:
        form = {"grant_type": "client_credentials"}
        if self.username:
            form = {"grant_type": "password", "username": self.username, "password": self.password}
        if self.permanent:
            form["scope"] = "permanent"
        headers = [("Authorization", f"Basic {self.basic}"), ("Content-Type", "application/x-www-form-urlencoded"),
                   ("Accept", "application/json")]
        try:
            answer = await self.transport.request("POST", self.token_url, headers, urlencode(form).encode(), self.timeout)
        except Exception as exc:
            raise AuthError(f"no token from {self.token_url}: {exc}") from None
        try:
            body = json.loads(answer.body) if answer.body else {}
        except ValueError:
            body = {}
        token = body.get("access_token") if isinstance(body, dict) else None
        if answer.status != 200 or not isinstance(token, str):
            error = body.get("error") if isinstance(body, dict) else None
            raise AuthError(f"no token from {self.token_url}: HTTP {answer.status} {error or ''}".rstrip())
        lifetime = body.get("expires_in")
        expires = self._now() + float(lifetime) if isinstance(lifetime, (int, float)) and not self.permanent else None
        log.info("token from %s (expires in %s s)", self.token_url, lifetime if expires is not None else "never")
        return _Token(token, expires)


class KeystoneCredentials(_Fetched):
    """Keyrock's /v3/auth/tokens (its Keystone-compatible API): user and password."""

    def __init__(
        self, transport: Transport, url: str, user: str, password: str, *,
        header: str = "X-Auth-Token", lifetime: float = 3600.0, timeout: float = 10.0, clock: object = time.monotonic,
    ) -> None:
        super().__init__(header, clock)
        self.transport = transport
        self.url = url.rstrip("/") + "/v3/auth/tokens"
        self.body = json.dumps({"name": user, "password": password}).encode()
        self.lifetime = lifetime
        self.timeout = timeout

    async def _fetch(self) -> _Token:
        try:
            answer = await self.transport.request(
                "POST", self.url, [("Content-Type", "application/json")], self.body, self.timeout
            )
        except Exception as exc:
            raise AuthError(f"no token from {self.url}: {exc}") from None
        token = answer.header("x-subject-token")
        if answer.status not in (200, 201) or not token:
            raise AuthError(f"no token from {self.url}: HTTP {answer.status}")
        return _Token(token, self._now() + self.lifetime)
