"""The PEP's calls to the identity manager (ours or Keyrock), over the project's HTTP client.

* ``GET /user`` (token validation, Keyrock's level-2 decision): the token goes in
  ``Authorization: Bearer`` rather than Wilma's ``?access_token=``, which Keyrock accepts
  as well, so that no URL that may reach a log holds a token; the PEP's own token, once
  it has one, goes in ``X-Auth-Token`` as Wilma sends it;
* ``GET /v1/policy_version`` and the ``X-Policy-Version`` of ``/user`` answers: when
  policies changed (absent from Keyrock: then :meth:`policy_version` is None);
* ``GET /.well-known/openid-configuration`` (the issuer) and ``/.well-known/jwks.json``:
  the keys of local JWT checks, always fetched from the configured identity manager's URL,
  not from a ``jwks_uri`` the document points at;
* ``GET /v1/ngsi_policies?app_id=``: the NGSI policy set, with the PEP's own token;
* ``POST /v3/auth/tokens {"name", "password"}`` → ``X-Subject-Token``: the PEP's login, as
  Wilma's (when a username and password are configured): before the first ``/user`` call,
  or when ``/v1/ngsi_policies`` needs it, and again once when that token is refused.

No answer, or one that is not what the identity manager answers, raises :class:`IdMError`,
whose message names the call, never a token or the password. ``calls`` counts the calls by
kind (the tests count them; so may a metrics exporter).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import orjson

from ngsi.client.http11 import HTTPClient, HTTPError
from ngsi.client.response import Response
from ngsi.client.transport import Transport
from security.authz.policy import PolicyError, PolicySet, parse_policy_set

log = logging.getLogger("waziup.security.pep")

JSON_HEADERS = (("Accept", "application/json"),)


class IdMError(Exception):
    """The identity manager gave no usable answer."""


@dataclass(frozen=True, slots=True)
class UserAnswer:
    """``GET /user``: ``info`` (the user object; ``{}`` for a client's own token) when the
    token is valid, None when it is not; the policy version the answer carried."""

    info: dict[str, Any] | None
    version: int | None
    decision: str = ""  # authorization_decision: "", "Permit" or "Deny"


def _version(response: Response) -> int | None:
    raw = response.header("x-policy-version")
    if raw is None or not raw.strip().isdigit() or len(raw) > 20:
        return None
    return int(raw)


class IdMClient:
    def __init__(
        self,
        base_url: str,
        *,
        transport: Transport | None = None,
        timeout: float = 5.0,
        username: str = "",
        password: str = "",
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.transport: Transport = transport if transport is not None else HTTPClient(max_per_host=32)
        self.timeout = timeout
        self.username = username
        self._password = password
        self._token: str | None = None
        self._tried = False
        self._login_lock = asyncio.Lock()
        self.calls: Counter[str] = Counter()

    async def aclose(self) -> None:
        await self.transport.aclose()

    async def _call(
        self, kind: str, method: str, path: str, headers: list[tuple[str, str]], body: bytes = b""
    ) -> Response:
        self.calls[kind] += 1
        try:
            return await self.transport.request(method, self.base_url + path, headers, body, self.timeout)
        except HTTPError as exc:
            raise IdMError(f"{kind}: {exc.reason}") from None

    @staticmethod
    def _json(kind: str, response: Response) -> Any:
        try:
            return response.json()
        except ValueError:
            raise IdMError(f"{kind}: the answer is not JSON") from None

    async def _published(self, kind: str, path: str) -> Response | None:
        """The answer to a GET of a document the identity manager may not publish (Keyrock
        has no policy version): None when it answers 404, IdMError when it fails otherwise."""
        response = await self._call(kind, "GET", path, list(JSON_HEADERS))
        if response.status == 404:
            return None
        if response.status != 200:
            raise IdMError(f"{kind}: status {response.status}")
        return response

    # -- tokens ------------------------------------------------------------------------------

    async def user(self, token: str, params: dict[str, str] | None = None) -> UserAnswer:
        if self._token is None and not self._tried and self.username and self._password:
            self._tried = True  # once, as Wilma does at start-up; Keyrock's /user does not require it
            try:
                await self._login(None)
            except IdMError as exc:
                log.warning("%s: /user is asked without the PEP's token", exc)
        headers = [*JSON_HEADERS, ("Authorization", f"Bearer {token}")]
        if self._token is not None:
            headers.append(("X-Auth-Token", self._token))
        query = "?" + urlencode(params) if params else ""
        response = await self._call("user", "GET", "/user" + query, headers)
        version = _version(response)
        if response.status in (401, 403, 404):
            return UserAnswer(None, version)
        if response.status != 200:
            raise IdMError(f"user: status {response.status}")
        info = self._json("user", response)
        if not isinstance(info, dict):
            raise IdMError("user: the answer is not a JSON object")
        decision = info.get("authorization_decision")
        return UserAnswer(info, version, decision if isinstance(decision, str) else "")

    # -- change notification ------------------------------------------------------------------

    async def policy_version(self) -> int | None:
        """The identity manager's policy version; None when it has none (Keyrock)."""
        response = await self._published("policy_version", "/v1/policy_version")
        if response is None:
            return None
        found = self._json("policy_version", response)
        value = found.get("policy_version") if isinstance(found, dict) else None
        if isinstance(value, bool) or not isinstance(value, int):
            raise IdMError("policy_version: no number in the answer")
        return value

    # -- keys ----------------------------------------------------------------------------------

    async def issuer(self) -> str | None:
        """The ``issuer`` of the discovery document; None when there is none."""
        response = await self._call("discovery", "GET", "/.well-known/openid-configuration", list(JSON_HEADERS))
        if response.status != 200:
            return None
        found = self._json("discovery", response)
        issuer = found.get("issuer") if isinstance(found, dict) else None
        return issuer if isinstance(issuer, str) and issuer else None

    async def jwks(self) -> Any | None:
        """The JWKS document; None when the identity manager publishes none."""
        response = await self._published("jwks", "/.well-known/jwks.json")
        return None if response is None else self._json("jwks", response)

    # -- the PEP's own login, and what needs it ---------------------------------------------------

    async def _login(self, refused: str | None) -> str:
        async with self._login_lock:
            if self._token is not None and self._token != refused:
                return self._token  # another call logged in meanwhile
            if not self.username or not self._password:
                raise IdMError("login: the PEP has no username and password")
            body = orjson.dumps({"name": self.username, "password": self._password})
            response = await self._call(
                "login", "POST", "/v3/auth/tokens", [*JSON_HEADERS, ("Content-Type", "application/json")], body
            )
            token = response.header("x-subject-token")
            if response.status not in (200, 201) or not token:
                raise IdMError(f"login: the identity manager refused the PEP's login (status {response.status})")
            self._token = token
            log.info("PEP logged in at the identity manager as %s", self.username)
            return token

    async def _authenticated(self, kind: str, path: str, method: str = "GET", body: Any = None) -> Response:
        """A call with the PEP's own token (logging in again once when it has expired);
        ``body``, when given, is sent as JSON."""
        headers = list(JSON_HEADERS)
        raw = b""
        if body is not None:
            headers.append(("Content-Type", "application/json"))
            raw = orjson.dumps(body)
        token = self._token or await self._login(None)
        response = await self._call(kind, method, path, [*headers, ("X-Auth-Token", token)], raw)
        if response.status == 401:
            token = await self._login(token)
            response = await self._call(kind, method, path, [*headers, ("X-Auth-Token", token)], raw)
        return response

    async def audit_event(self, event: dict[str, Any]) -> None:
        """``POST /audit/events``: one event of the audit trail, the PEP's account its actor
        of record (the event names who was denied)."""
        response = await self._authenticated("audit_event", "/audit/events", "POST", event)
        if response.status != 201:
            raise IdMError(f"audit_event: status {response.status}")

    # -- privacy (security/privacy) ------------------------------------------------------------

    async def privacy_export(self) -> dict[str, Any]:
        """``GET /v1/privacy/export``: the privacy policies, the pseudonym keys and the version."""
        response = await self._authenticated("privacy_export", "/v1/privacy/export")
        if response.status == 404:  # Keyrock: no privacy policies can exist there
            return {"policy_version": None, "policies": [], "keys": None}
        if response.status != 200:
            raise IdMError(f"privacy_export: status {response.status}")
        found = self._json("privacy_export", response)
        if not isinstance(found, dict):
            raise IdMError("privacy_export: the answer is not a JSON object")
        return found

    async def privacy_spend(self, consumer: str, policy_id: str, epsilon: float) -> dict[str, Any]:
        """``POST /v1/privacy/budget/spend``: ``{"granted", "remaining", ...}``."""
        response = await self._authenticated(
            "privacy_spend", "/v1/privacy/budget/spend", "POST",
            {"consumer": consumer, "policy": policy_id, "epsilon": epsilon},
        )
        if response.status != 200:
            raise IdMError(f"privacy_spend: status {response.status}")
        found = self._json("privacy_spend", response)
        if not isinstance(found, dict) or not isinstance(found.get("granted"), bool):
            raise IdMError("privacy_spend: no decision in the answer")
        return found

    async def ngsi_policies(self, app_id: str) -> tuple[int | None, PolicySet]:
        """(policy version, the policy set) of the application (``""``: all, for an admin PEP)."""
        path = "/v1/ngsi_policies" + ("?" + urlencode({"app_id": app_id}) if app_id else "")
        response = await self._authenticated("ngsi_policies", path)
        if response.status != 200:
            raise IdMError(f"ngsi_policies: status {response.status}")
        found = self._json("ngsi_policies", response)
        if not isinstance(found, dict):
            raise IdMError("ngsi_policies: the answer is not a JSON object")
        document = {"policies": found.get("policies", []), "tenantBindings": found.get("tenantBindings", {})}
        try:
            policy_set = parse_policy_set(document)
        except PolicyError as exc:
            raise IdMError(f"ngsi_policies: the policy set is invalid: {exc}") from None
        version = found.get("policy_version")
        if not isinstance(version, int) or isinstance(version, bool):
            version = _version(response)
        return version, policy_set
