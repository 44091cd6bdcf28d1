"""Sign-in for the dashboard on a platform run with ``-auth``: OAuth 2.0 authorization code
with PKCE (RFC 7636, S256) against the identity manager, the tokens kept on this server.

Why on the server (the "backend for frontend" of the OAuth 2.0 for Browser-Based Apps
draft): the page never holds a token, so a script injected into it cannot carry one away,
and the refresh token never reaches the browser. The browser holds only a session cookie
(``HttpOnly``, ``SameSite=Lax``: a cross-site form cannot post with it; ``Secure`` when the
page is served over HTTPS), which maps to the user's tokens here. The dashboard is a
confidential client of the platform's own application (``waziup``, its secret from the
environment), so the tokens it gets are the ones the PEPs of the broker, the history, the
agent and the rules service accept; PKCE binds the code to this server's request anyway.

The flow: ``GET /auth/login?next=/`` draws ``state`` and a verifier and sends the browser to
the identity manager's ``/oauth2/authorize``; the user signs in there; it comes back to
``GET /auth/callback?code&state``, where the code and the verifier are exchanged for tokens
at ``/oauth2/token``, the user read from ``/user`` (Keyrock's user object), and a session
begun. ``GET /auth/me`` tells the page who is signed in and which tenants to offer; ``POST
/auth/logout`` ends the session and revokes its refresh token.

Which tenants the picker offers: the default tenant, the names of the user's organizations
(Keyrock's tenants by convention, as Wilma's ``organizations`` option uses them) and the
tenants the dashboard was told of (``-tenants``), each kept only if the broker, asked with
the user's token, lets the user read it: the broker's PEP decides, as for everything else.

Sessions live in this process's memory (a restart signs everyone out); at most
``MAX_SESSIONS``, the oldest dropped first; pending sign-ins expire after ``PENDING_SECONDS``.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import orjson

from ngsi.client import HTTPClient, HTTPError

log = logging.getLogger("waziup.dashboard.signin")

COOKIE = "waziup_dashboard"
STATE_COOKIE = "waziup_signin"  # binds a sign-in's state to the browser that began it
MAX_SESSIONS = 10_000
MAX_PENDING = 1_000
PENDING_SECONDS = 600.0  # a sign-in page left open longer starts over
REFRESH_MARGIN = 30.0  # seconds before expiry when a token is refreshed
SESSION_SECONDS = 12 * 3600  # the cookie's lifetime; the session ends sooner if its refresh fails


class SignInError(Exception):
    """A sign-in that cannot go on; the message is shown to the user."""


# -- pure parts -------------------------------------------------------------------------------


def code_challenge(verifier: str) -> str:
    """RFC 7636 §4.2, S256: BASE64URL(SHA256(verifier)) without padding."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def new_verifier() -> str:
    """43 to 128 characters of ``[A-Za-z0-9-._~]`` (RFC 7636 §4.1): 64 here, 384 random bits."""
    return secrets.token_urlsafe(48)


def local_path(next_url: str | None) -> str:
    """Where to go after signing in: a path of this site only (no open redirect), else ``/``."""
    if not next_url or not next_url.startswith("/") or next_url.startswith("//") or "\\" in next_url:
        return "/"
    return next_url


def session_of(cookie_header: str, name: str = COOKIE) -> str:
    """The value of cookie ``name`` (the session id) in a ``Cookie`` header ("" when none)."""
    for part in cookie_header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return ""


def set_cookie(value: str, *, secure: bool, max_age: int = SESSION_SECONDS, name: str = COOKIE,
               path: str = "/") -> str:
    """The ``Set-Cookie`` value for a session (``max_age`` 0 clears it). The sign-in's state
    goes in ``STATE_COOKIE`` on ``/auth`` too, so that a callback URL made by someone else
    (their code, their state: "login CSRF") cannot sign this browser in as them."""
    flags = f"; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Lax" + ("; Secure" if secure else "")
    return f"{name}={value}{flags}"


def organizations(user: dict[str, Any]) -> list[str]:
    """The tenant names a Keyrock user object suggests: its organizations' names, lower-cased
    (tenants are lower case in NGSI), those that are valid tenant names."""
    out: list[str] = []
    for org in user.get("organizations") or []:
        name = str(org.get("name", "")).strip().lower() if isinstance(org, dict) else ""
        if name and len(name) <= 50 and all(c.isalnum() and c.isascii() or c == "_" for c in name):
            out.append(name)
    return out


@dataclass(frozen=True)
class SignInConfig:
    idm_url: str  # where this server reaches the identity manager
    idm_public_url: str  # where browsers reach it (its sign-in page)
    client_id: str
    client_secret: str
    callback_url: str  # this dashboard's /auth/callback as browsers reach it
    secure_cookie: bool = False
    tenants: tuple[str, ...] = ()

    def authorize_url(self, state: str, challenge: str) -> str:
        query = urlencode({"response_type": "code", "client_id": self.client_id, "redirect_uri": self.callback_url,
                           "state": state, "code_challenge": challenge, "code_challenge_method": "S256"})
        return f"{self.idm_public_url.rstrip('/')}/oauth2/authorize?{query}"

    def basic(self) -> str:
        pair = f"{self.client_id}:{self.client_secret}".encode()
        return "Basic " + base64.b64encode(pair).decode("ascii")


@dataclass
class Session:
    token: str
    refresh: str
    expires_at: float  # on the monotonic clock
    user: dict[str, Any]
    tenants: list[str] | None = None  # what /auth/me offered, once asked
    began: float = field(default=0.0)


# -- the sign-in service ----------------------------------------------------------------------


class SignIn:
    """Pending sign-ins and sessions; the calls to the identity manager and the broker."""

    def __init__(self, config: SignInConfig, client: HTTPClient, broker_url: str, *, timeout: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.client = client
        self.broker_url = broker_url.rstrip("/")
        self.timeout = timeout
        self.clock = clock
        self.pending: OrderedDict[str, tuple[str, float, str]] = OrderedDict()  # state -> verifier, when, next
        self.sessions: OrderedDict[str, Session] = OrderedDict()

    def begin(self, next_url: str | None) -> tuple[str, str]:
        """(the identity manager's URL to send the browser to, the state to bind to it)."""
        now = self.clock()
        while self.pending and (len(self.pending) >= MAX_PENDING or next(iter(self.pending.values()))[1] < now - PENDING_SECONDS):
            self.pending.popitem(last=False)
        state, verifier = secrets.token_urlsafe(24), new_verifier()
        self.pending[state] = (verifier, now, local_path(next_url))
        return self.config.authorize_url(state, code_challenge(verifier)), state

    async def finish(self, code: str, state: str, browser_state: str) -> tuple[str, str]:
        """The code exchanged for tokens: (the new session's id, where to go). ``browser_state``
        is the state this browser was given when it began (its cookie)."""
        if not state or not secrets.compare_digest(state.encode(), browser_state.encode()):
            raise SignInError("this sign-in was not begun in this browser: sign in again")
        entry = self.pending.pop(state, None)
        if entry is None or entry[1] < self.clock() - PENDING_SECONDS:
            raise SignInError("this sign-in has expired or was already used: sign in again")
        verifier, _, next_url = entry
        tokens = await self._token({"grant_type": "authorization_code", "code": code,
                                    "redirect_uri": self.config.callback_url, "code_verifier": verifier})
        user = await self._user(tokens["access_token"])
        session_id = secrets.token_urlsafe(32)
        self.sessions[session_id] = self._session(tokens, user)
        while len(self.sessions) > MAX_SESSIONS:
            self.sessions.popitem(last=False)
        log.info("signed in user=%s", user.get("username") or user.get("id"))
        return session_id, next_url

    async def token(self, session_id: str) -> str:
        """The session's access token, refreshed when about to expire; "" when there is no
        such session or it cannot be refreshed (the page signs in again)."""
        session = self.sessions.get(session_id) if session_id else None
        if session is None:
            return ""
        if session.expires_at - REFRESH_MARGIN > self.clock():
            return session.token
        if not session.refresh:
            self.sessions.pop(session_id, None)
            return ""
        try:
            tokens = await self._token({"grant_type": "refresh_token", "refresh_token": session.refresh})
        except SignInError as exc:
            log.info("session ended: its refresh was refused (%s)", exc)
            self.sessions.pop(session_id, None)
            return ""
        fresh = self._session(tokens, session.user)
        fresh.tenants = session.tenants
        self.sessions[session_id] = fresh
        return fresh.token

    async def end(self, session_id: str) -> None:
        session = self.sessions.pop(session_id, None) if session_id else None
        if session is not None and session.refresh:
            try:  # RFC 7009: revoking the refresh token ends the grant at the identity manager
                await self._post("/oauth2/revoke", {"token": session.refresh, "token_type_hint": "refresh_token"})
            except (HTTPError, SignInError) as exc:
                log.warning("could not revoke a signed-out session's token: %s", exc)

    async def me(self, session_id: str) -> dict[str, Any] | None:
        """Who is signed in and the tenants to offer; None when nobody is."""
        token = await self.token(session_id)
        session = self.sessions.get(session_id)
        if not token or session is None:
            return None
        if session.tenants is None:
            session.tenants = await self.readable(token, ["", *organizations(session.user), *self.config.tenants])
        user = session.user
        return {"username": user.get("username") or user.get("displayName") or "", "id": user.get("id", ""),
                "email": user.get("email", ""), "tenants": session.tenants}

    async def readable(self, token: str, candidates: Sequence[str]) -> list[str]:
        """The candidates the broker lets this token read (its PEP decides)."""
        out: list[str] = []
        for tenant in dict.fromkeys(candidates):
            headers = [("x-auth-token", token), ("fiware-servicepath", "/#")]
            if tenant:
                headers.append(("fiware-service", tenant))
            try:
                answer = await self.client.request("GET", self.broker_url + "/v2/entities?limit=1&attrs=id", headers,
                                                   timeout=self.timeout)
            except HTTPError as exc:
                log.warning("tenant %r not offered: the broker did not answer (%s)", tenant, exc)
                continue
            if answer.status == 200:
                out.append(tenant)
        return out

    # -- the identity manager --

    def _session(self, tokens: dict[str, Any], user: dict[str, Any]) -> Session:
        expires_in = tokens.get("expires_in")
        lifetime = float(expires_in) if isinstance(expires_in, (int, float)) and expires_in > 0 else 3600.0
        now = self.clock()
        return Session(str(tokens["access_token"]), str(tokens.get("refresh_token") or ""), now + lifetime, user,
                       began=now)

    async def _token(self, form: dict[str, str]) -> dict[str, Any]:
        try:
            answer = await self._post("/oauth2/token", form)
        except HTTPError as exc:
            raise SignInError(f"the identity manager did not answer: {exc}") from exc
        body = _json(answer.body)
        if answer.status != 200 or not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
            reason = body.get("error_description") or body.get("error") if isinstance(body, dict) else None
            raise SignInError(f"the identity manager refused the sign-in ({answer.status}: {reason or 'no reason given'})")
        return body

    async def _user(self, token: str) -> dict[str, Any]:
        try:
            answer = await self.client.request("GET", f"{self.config.idm_url.rstrip('/')}/user?access_token={token}",
                                               timeout=self.timeout)
        except HTTPError as exc:
            raise SignInError(f"the identity manager did not answer: {exc}") from exc
        body = _json(answer.body)
        if answer.status != 200 or not isinstance(body, dict):
            raise SignInError(f"the identity manager did not say who signed in ({answer.status})")
        return body

    async def _post(self, path: str, form: dict[str, str]) -> Any:
        headers = [("content-type", "application/x-www-form-urlencoded"), ("authorization", self.config.basic()),
                   ("accept", "application/json")]
        return await self.client.request("POST", self.config.idm_url.rstrip("/") + path, headers,
                                         urlencode(form).encode(), timeout=self.timeout)


def _json(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
