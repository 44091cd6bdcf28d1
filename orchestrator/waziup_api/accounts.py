"""The WAZIUP API's accounts: the identity manager's users, seen over HTTP.

The API keeps no passwords and checks no token itself. The platform's identity manager
(``security/idm``, Keyrock-compatible; or Keyrock for what Keyrock also has) does both:

* ``POST /auth/token`` is the OAuth2 password grant as the API's application
  (``client_id``); clients send a username ("cdupont") or an e-mail, both of which the
  identity manager takes as the login;
* a bearer token is checked with RFC 7662 introspection (``/oauth2/introspect``), which
  gives the username, the id (``sub``) and the admin flag in one call. Only access tokens
  issued to the API's own application count: a token another application got is not meant
  for this API. Answers are cached ``cache_seconds`` (bounded by the token's expiry) under
  the token's SHA-256, so a revoked token may pass that long; raw tokens are never kept
  or logged. A missing, unknown or expired token, or an identity manager that does not
  answer, is the guest (contract §2: never 401);
* users are read and created through the Keyrock API (``/v1/users``) with the API's admin
  account (``admin_user``/``admin_password``, logged in at ``/v1/auth/tokens``). The profile
  fields the identity manager has no column for (first and last name, phone, facebook,
  twitter, SMS credit) live in :class:`Profiles`, the API's own store.

Failed logins count against the identity manager's lockout per account and per client
address; every login arriving from the API has the API's address, so pass the end
client's ``address`` (sent as ``X-Forwarded-For``) and run the identity manager with
``-trustForwarded`` when it is reached only through trusted hops.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import ssl
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol
from urllib.parse import quote, urlencode

from ngsi.client import HTTPClient, NGSIClient, NGSIConnectionError, Response, Transport

from .caller import GUEST, Caller
from .errors import ApiError

log = logging.getLogger("waziup.api.accounts")

PROFILE_FIELDS = ("first_name", "last_name", "phone", "facebook", "twitter", "sms_credit")
TEXT_PROFILE_FIELDS = PROFILE_FIELDS[:-1]
# the contract's User shape, in its order (§4)
USER_FIELDS = ("id", "username", "first_name", "last_name", "email", "phone", "facebook", "twitter", "sms_credit",
               "admin")
# The identity manager needs an e-mail; an account created without one gets <username>@this domain, never shown.
# Same value as security.idm.keycloak_import.NO_EMAIL_DOMAIN (not imported: that would load the IdM's package).
NO_EMAIL_DOMAIN = "no-email.invalid"
FORM = "application/x-www-form-urlencoded"
MAX_TOKEN = 16 * 1024  # longer is no token of ours: not even sent to the identity manager
MAX_CACHED = 10_000  # cached token answers at most (a flood of random tokens must not grow memory)


class AccountsError(ApiError):
    """What the route answers instead: ``status`` and a free-text ``text`` (contract §1).

    An :class:`ApiError`, so that wherever it escapes (``GET /users`` or a social message's
    user lookup while the identity manager does not answer) the app's error handler answers
    its status and text, never an internal-error 500."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(status, text)
        self.args = (f"{status}: {text}",)


class Profiles(Protocol):
    """The WAZIUP profile fields of users, by user id (the API's store)."""

    async def get(self, user_id: str) -> dict[str, Any]:
        """The fields kept for the user ({} when none)."""
        ...

    async def put(self, user_id: str, fields: dict[str, Any]) -> None:
        """Set these fields (others kept)."""
        ...


class MemoryProfiles:
    """:class:`Profiles` in memory (tests, and until the API's store is plugged in)."""

    def __init__(self) -> None:
        self.kept: dict[str, dict[str, Any]] = {}

    async def get(self, user_id: str) -> dict[str, Any]:
        return dict(self.kept.get(user_id, {}))

    async def put(self, user_id: str, fields: dict[str, Any]) -> None:
        self.kept.setdefault(user_id, {}).update(fields)


def user_shape(account: Mapping[str, Any], profile: Mapping[str, Any]) -> dict[str, Any]:
    """The contract's User (§4) from the identity manager's user and the profile: absent
    fields left out, never null; a placeholder e-mail is absent."""
    email = account.get("email")
    values = {**{k: v for k, v in profile.items() if k in PROFILE_FIELDS}, "id": account.get("id"),
              "username": account.get("username"), "admin": bool(account.get("admin", False))}
    if isinstance(email, str) and email and not email.endswith("@" + NO_EMAIL_DOMAIN):
        values["email"] = email
    return {name: values[name] for name in USER_FIELDS if values.get(name) is not None}


def _text(body: Mapping[str, Any], name: str, *, required: bool = False, limit: int = 256) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value.strip()) or len(value) > limit:
        raise AccountsError(400, f"{name} must be a non-empty string of at most {limit} characters"
                            if required else f"{name} must be a string of at most {limit} characters")
    return value


def new_user_fields(body: Any) -> tuple[dict[str, str], dict[str, Any]]:
    """``POST /users``'s body checked: (the identity manager's user, the profile fields).
    ``admin`` in the body is ignored: only an admin of the identity manager grants it."""
    if not isinstance(body, Mapping):
        raise AccountsError(400, "the body must be a JSON object")
    username = _text(body, "username", required=True, limit=64) or ""
    if any(c.isspace() or c in "/@" for c in username):
        raise AccountsError(400, "username must not hold spaces, '/' or '@'")
    password = _text(body, "password", required=True, limit=1024) or ""
    email = _text(body, "email", limit=254) or f"{username}@{NO_EMAIL_DOMAIN}"
    profile: dict[str, Any] = {}
    for name in TEXT_PROFILE_FIELDS:
        value = _text(body, name)
        if value is not None:
            profile[name] = value
    credit = body.get("sms_credit")
    if credit is not None:
        if not isinstance(credit, int) or isinstance(credit, bool):
            raise AccountsError(400, "sms_credit must be an integer")
        profile["sms_credit"] = credit
    return {"username": username, "email": email, "password": password}, profile


class Accounts:
    """The identity manager as the WAZIUP API needs it (see the module text).

    ``transport`` (tests: ``ngsi.client.ASGITransport(idm_app)``) replaces the network;
    ``clock`` is the wall clock the identity manager's ``exp`` is compared with."""

    def __init__(
        self,
        idm_url: str,
        client_id: str,
        client_secret: str,
        admin_user: str,
        admin_password: str,
        *,
        ssl_context: ssl.SSLContext | None = None,
        cache_seconds: float = 30.0,
        profiles: Profiles | None = None,
        transport: Transport | None = None,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.idm_url = idm_url.rstrip("/")
        self.client_id = client_id
        self._basic = "Basic " + base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()
        self._admin_login = {"name": admin_user, "password": admin_password}
        self.cache_seconds = cache_seconds
        self.profiles: Profiles = profiles if profiles is not None else MemoryProfiles()
        self._ssl_context = ssl_context
        self._transport = transport
        self._timeout = timeout
        self._clock = clock
        self._client: NGSIClient | None = None
        self._admin_token: str | None = None
        self._admin_lock = asyncio.Lock()  # concurrent calls log the admin in once
        self._cache: dict[str, tuple[float, Caller]] = {}  # SHA-256 of a token -> (valid until, caller)

    # -- life ---------------------------------------------------------------------------------
    async def open(self) -> None:
        if self._client is None:
            transport = self._transport or HTTPClient(ssl_context=self._ssl_context)
            self._client = NGSIClient(self.idm_url, transport=transport, timeout=self._timeout)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        self._cache.clear()
        self._admin_token = None

    async def _send(self, method: str, path: str, *, headers: dict[str, str], body: bytes = b"",
                    json: Any = None) -> Response | None:
        """One call to the identity manager; None when it does not answer."""
        if self._client is None:
            raise RuntimeError("Accounts.open() was not called")
        try:
            return await self._client.send(method, path, headers=headers, body=body, json=json)
        except NGSIConnectionError as exc:
            log.warning("identity manager unreachable on %s %s: %s", method, path.split("?")[0], exc.reason)
            return None

    async def _form(self, path: str, fields: dict[str, str], address: str | None = None) -> Response | None:
        """A form POST as the API's application (HTTP Basic client authentication)."""
        headers = {"Authorization": self._basic, "Content-Type": FORM}
        if address:
            headers["X-Forwarded-For"] = address
        return await self._send("POST", path, headers=headers, body=urlencode(fields).encode())

    # -- logins -------------------------------------------------------------------------------
    async def token(self, username: str, password: str, *, address: str | None = None) -> str | None:
        """An access token for the user, or None when the identity manager refuses the
        credentials (wrong, unknown, disabled, locked). AccountsError 502 when it cannot
        answer or refuses the API's own application (a configuration error, not the user's)."""
        if not username or not password:
            return None
        answer = await self._form("/oauth2/token", {"grant_type": "password", "username": username,
                                                    "password": password}, address)
        if answer is None:
            raise AccountsError(502, "the identity manager does not answer")
        if answer.status_code == 200:
            token = _field(answer, "access_token")
            if token:
                return token
        elif answer.status_code in (400, 401) and _oauth_error(answer) == "invalid_grant":
            return None
        log.error("identity manager refused the API's password grant: %s %s", answer.status_code, _oauth_error(answer))
        raise AccountsError(502, "the identity manager refused the API's application")

    async def check_password(self, username: str, password: str, *, address: str | None = None) -> Caller | None:
        """An MQTT login: the caller when the credentials are right, else None (also when the
        identity manager cannot answer: a login is not granted blind). The token the check
        made is revoked at once, so MQTT logins leave no live token behind."""
        try:
            token = await self.token(username, password, address=address)
        except AccountsError:
            return None
        if token is None:
            return None
        try:
            found = await self._introspect(token)
        finally:
            await self._form("/oauth2/revoke", {"token": token, "token_type_hint": "access_token"})
        return found[1] if found is not None and not found[1].guest else None

    # -- tokens -------------------------------------------------------------------------------
    async def caller(self, authorization: str | None) -> Caller:
        """Who a request's ``Authorization: Bearer <token>`` is; the guest otherwise."""
        token = _bearer(authorization)
        if token is None:
            return GUEST
        key = hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()
        now = self._clock()
        cached = self._cache.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        found = await self._introspect(token)
        if found is None:
            return GUEST  # not answered: not cached, the next request asks again
        until, who = found
        self._remember(key, min(until, now + self.cache_seconds), who)
        return who

    async def _introspect(self, token: str) -> tuple[float, Caller] | None:
        """(until when the answer holds, the caller: GUEST for a token that is not ours or
        not live), or None when the identity manager did not answer."""
        answer = await self._form("/oauth2/introspect", {"token": token, "token_type_hint": "access_token"})
        if answer is None or answer.status_code != 200:
            if answer is not None:
                log.error("identity manager refused the API's introspection: %s", answer.status_code)
            return None
        try:
            body = answer.json()
        except ValueError:
            log.error("identity manager's introspection answer is not JSON")
            return None
        never = self._clock() + self.cache_seconds
        if not isinstance(body, dict) or body.get("active") is not True or body.get("token_type", "access_token") != \
                "access_token" or body.get("client_id") != self.client_id or not isinstance(body.get("username"), str):
            return never, GUEST  # an inactive token never becomes active: remembered as the guest
        expires = body.get("exp")
        until = float(expires) if isinstance(expires, int | float) else never
        return until, Caller(body["username"], admin=body.get("admin") is True, user_id=str(body.get("sub") or ""))

    def _remember(self, key: str, until: float, who: Caller) -> None:
        if until <= self._clock():
            return
        if len(self._cache) >= MAX_CACHED:
            now = self._clock()
            self._cache = {k: v for k, v in self._cache.items() if v[0] > now}
            while len(self._cache) >= MAX_CACHED:
                del self._cache[next(iter(self._cache))]  # the oldest entry
        self._cache[key] = (until, who)

    # -- the Keyrock API as the admin ------------------------------------------------------------
    async def _login_admin(self) -> str:
        answer = await self._send("POST", "/v1/auth/tokens", headers={}, json=self._admin_login)
        token = answer.headers.get("x-subject-token") if answer is not None else None
        if answer is None or answer.status_code != 201 or not token:
            status = answer.status_code if answer is not None else "no answer"
            log.error("the API's admin account could not log in to the identity manager (%s)", status)
            raise AccountsError(502, "the identity manager refuses the API's admin account")
        return str(token)

    async def _admin_session(self) -> str:
        async with self._admin_lock:
            if self._admin_token is None:
                self._admin_token = await self._login_admin()
            return self._admin_token

    async def _admin(self, method: str, path: str, json: Any = None) -> Response:
        """A /v1 call as the admin, logging in (again, once, on a 401) as needed."""
        for attempt in (0, 1):
            token = await self._admin_session()
            answer = await self._send(method, path, headers={"X-Auth-Token": token}, json=json)
            if answer is None:
                raise AccountsError(502, "the identity manager does not answer")
            if answer.status_code != 401 or attempt:
                return answer
            if self._admin_token == token:
                self._admin_token = None  # expired: log in again
        raise AssertionError("unreachable")

    async def _accounts(self) -> list[dict[str, Any]]:
        answer = await self._admin("GET", "/v1/users")
        if answer.status_code != 200:
            raise AccountsError(502, f"the identity manager answered {answer.status_code} to the user list")
        return [u for u in answer.json().get("users", []) if isinstance(u, dict)]

    async def _shaped(self, account: Mapping[str, Any]) -> dict[str, Any]:
        return user_shape(account, await self.profiles.get(str(account.get("id"))))

    # -- users --------------------------------------------------------------------------------
    async def users(self, *, limit: int | None, offset: int, username: str | None) -> list[dict[str, Any]]:
        """``GET /users``: in the identity manager's order (creation), filtered, then paged."""
        accounts = await self._accounts()
        if username is not None:
            accounts = [a for a in accounts if a.get("username") == username]
        start = max(offset, 0)
        page = accounts[start:] if limit is None else accounts[start:start + max(limit, 0)]
        return [await self._shaped(a) for a in page]

    async def user(self, user_id: str) -> dict[str, Any] | None:
        account = await self._account(user_id)
        return None if account is None else await self._shaped(account)

    async def _account(self, user_id: str) -> dict[str, Any] | None:
        if not user_id:
            return None
        answer = await self._admin("GET", "/v1/users/" + quote(user_id, safe=""))
        if answer.status_code == 404:
            return None
        if answer.status_code != 200:
            raise AccountsError(502, f"the identity manager answered {answer.status_code} for a user")
        account = answer.json().get("user")
        return account if isinstance(account, dict) else None

    async def user_by_username(self, username: str) -> dict[str, Any] | None:
        found = await self.users(limit=1, offset=0, username=username)
        return found[0] if found else None

    async def create_user(self, body: Any) -> str:
        """``POST /users``: the new user's id. AccountsError 400 for a bad body, 422 when
        the username or e-mail is taken."""
        account, profile = new_user_fields(body)
        answer = await self._admin("POST", "/v1/users", json={"user": account})
        if answer.status_code == 409:
            raise AccountsError(422, "username or email already used")
        if answer.status_code == 400:
            raise AccountsError(400, _keyrock_message(answer))
        if answer.status_code != 201:
            raise AccountsError(502, f"the identity manager answered {answer.status_code} to the user's creation")
        user_id = str(answer.json()["user"]["id"])
        if profile:
            await self.profiles.put(user_id, profile)
        return user_id

    async def set_sms_credit(self, user_id: str, credit: int) -> None:
        """``PUT /users/{id}/sms_credit``: AccountsError 404 for an unknown user, 400 for a non-integer."""
        if not isinstance(credit, int) or isinstance(credit, bool):
            raise AccountsError(400, "sms_credit must be an integer")
        if await self._account(user_id) is None:
            raise AccountsError(404, "no such user")
        await self.profiles.put(user_id, {"sms_credit": credit})


def _bearer(authorization: str | None) -> str | None:
    """The token of ``Bearer <token>`` (scheme in any case), or None."""
    if not authorization or authorization[:7].lower() != "bearer ":
        return None
    token = authorization[7:].strip()
    return token if token and len(token) <= MAX_TOKEN else None


def _field(answer: Response, name: str) -> str:
    """A string field of a JSON object answer ("" when there is none)."""
    try:
        body = answer.json()
    except ValueError:
        return ""
    value = body.get(name) if isinstance(body, dict) else None
    return value if isinstance(value, str) else ""


def _oauth_error(answer: Response) -> str:
    return _field(answer, "error")


def _keyrock_message(answer: Response) -> str:
    try:
        error = answer.json().get("error")
        return str(error.get("message")) if isinstance(error, dict) else "bad request"
    except (ValueError, AttributeError):
        return "bad request"
