"""The dashboard's sign-in (analytics/dashboard/signin.py) without a browser: the pure parts
(RFC 7636's PKCE, the redirect after sign-in, the cookie), and the session's life (expiry,
refresh, sign-out) against a scripted identity manager whose clock the test moves. The
whole flow against the real identity manager and broker is in tests/test_auth_platform.py.
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from analytics.dashboard.config import ConfigError, parse
from analytics.dashboard.signin import (
    PENDING_SECONDS, SignIn, SignInConfig, SignInError, code_challenge, local_path, new_verifier, organizations,
    session_of, set_cookie,
)
from ngsi.client import Response

CONFIG = SignInConfig(idm_url="http://idm:3005", idm_public_url="https://login.example", client_id="app",
                      client_secret="s3cret", callback_url="http://dash:3000/auth/callback", tenants=("farm", "coop"))


def test_pkce_matches_rfc7636_appendix_b() -> None:
    assert code_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk") == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_verifiers_are_long_random_and_of_the_allowed_characters() -> None:
    seen = {new_verifier() for _ in range(100)}
    assert len(seen) == 100
    allowed = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
    assert all(43 <= len(v) <= 128 and set(v) <= allowed for v in seen)  # RFC 7636 §4.1


@given(st.text())
def test_after_sign_in_the_browser_stays_on_this_site(next_url: str) -> None:
    target = local_path(next_url)
    assert target.startswith("/") and not target.startswith("//") and "\\" not in target
    parts = urlsplit(target)
    assert not parts.scheme and not parts.netloc


@pytest.mark.parametrize("bad", ["https://evil.example/", "//evil.example/x", "/\\evil.example", "evil", ""])
def test_foreign_redirects_become_the_home_page(bad: str) -> None:
    assert local_path(bad) == "/"
    assert local_path("/?service=farm#map") == "/?service=farm#map"


def test_the_cookie_is_http_only_lax_and_secure_over_https() -> None:
    plain = set_cookie("abc", secure=False)
    assert plain.startswith("waziup_dashboard=abc;") and "HttpOnly" in plain and "SameSite=Lax" in plain
    assert "Secure" not in plain
    assert "; Secure" in set_cookie("abc", secure=True)
    assert "Max-Age=0" in set_cookie("", secure=False, max_age=0)
    assert session_of("a=1; waziup_dashboard=xyz; b=2") == "xyz"
    assert session_of("a=1") == ""


def test_organizations_become_tenant_names() -> None:
    user = {"organizations": [{"name": "Coop"}, {"name": "bad name"}, {"name": "x" * 51}, "junk", {"name": "farm_2"}]}
    assert organizations(user) == ["coop", "farm_2"]
    assert organizations({}) == []


def test_the_authorization_request() -> None:
    url = urlsplit(CONFIG.authorize_url("st", "ch"))
    assert (url.scheme, url.netloc, url.path) == ("https", "login.example", "/oauth2/authorize")
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert query == {"response_type": "code", "client_id": "app", "redirect_uri": "http://dash:3000/auth/callback",
                     "state": "st", "code_challenge": "ch", "code_challenge_method": "S256"}


def test_options() -> None:
    with pytest.raises(ConfigError, match="WAZIUP_DASHBOARD_CLIENT_SECRET"):
        parse(["-idmURL", "http://127.0.0.1:3005", "-clientId", "app"], {})
    config = parse(["-idmURL", "http://127.0.0.1:3005", "-clientId", "app", "-tenants", "farm", "-port", "3100"],
                   {"WAZIUP_DASHBOARD_CLIENT_SECRET": "s3cret"})
    assert config.client_secret == "s3cret" and "s3cret" not in repr(config)
    assert config.page_url == "http://localhost:3100" and config.tenants == ("farm",)
    with pytest.raises(ConfigError, match="-key"):
        parse(["-https"], {})


class ScriptedIdM:
    """The identity manager's token, user and revoke endpoints, and a broker that lets the
    token read the tenants in ``readable``; records what it was sent."""

    def __init__(self) -> None:
        self.forms: list[dict[str, str]] = []
        self.auth: list[str] = []
        self.refuse_refresh = False
        self.issued = 0
        self.readable = {"", "coop"}

    async def request(self, method: str, url: str, headers: Any = (), body: bytes = b"",
                      timeout: float | None = 5.0) -> Response:
        h = dict(headers)
        if url.startswith("http://idm:3005/oauth2/"):
            form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
            self.forms.append(form)
            self.auth.append(h.get("authorization", ""))
            if url.endswith("/revoke"):
                return Response(200, [], b"")
            if form["grant_type"] == "refresh_token" and self.refuse_refresh:
                return Response(400, [], orjson.dumps({"error": "invalid_grant", "error_description": "revoked"}))
            self.issued += 1
            return Response(200, [], orjson.dumps({"access_token": f"t{self.issued}", "refresh_token": f"r{self.issued}",
                                                   "expires_in": 3600, "token_type": "Bearer"}))
        if url.startswith("http://idm:3005/user?access_token="):
            return Response(200, [], orjson.dumps({"username": "alice", "id": "u1", "email": "a@x",
                                                   "organizations": [{"name": "Farm"}]}))
        if url.startswith("http://broker:1026/v2/entities"):
            return Response(200 if h.get("fiware-service", "") in self.readable else 403, [], b"[]")
        return Response(404, [], b"")


def _signed_in(idm: ScriptedIdM, now: list[float]) -> tuple[SignIn, str]:
    signin = SignIn(CONFIG, idm, "http://broker:1026", clock=lambda: now[0])  # type: ignore[arg-type]
    url, state = signin.begin("/?service=coop")
    query = parse_qs(urlsplit(url).query)
    assert query["state"] == [state]
    session, next_url = asyncio.run(signin.finish("the-code", state, state))
    assert next_url == "/?service=coop"
    # the verifier sent with the code is the one whose challenge went to the browser
    assert code_challenge(idm.forms[0]["code_verifier"]) == query["code_challenge"][0]
    return signin, session


def test_a_code_becomes_a_session_once() -> None:
    idm, now = ScriptedIdM(), [1000.0]
    signin, session = _signed_in(idm, now)
    form = idm.forms[0]
    assert form["grant_type"] == "authorization_code" and form["code"] == "the-code"
    assert form["redirect_uri"] == CONFIG.callback_url
    assert idm.auth[0] == "Basic " + base64.b64encode(b"app:s3cret").decode()
    me = asyncio.run(signin.me(session))
    assert me is not None and me["username"] == "alice"
    assert me["tenants"] == ["", "coop"]  # farm (an organization, and -tenants) is not readable
    _, state = signin.begin("/")
    with pytest.raises(SignInError, match="not begun in this browser"):  # login CSRF: another's state
        asyncio.run(signin.finish("c", state, "someone-elses"))
    asyncio.run(signin.finish("c", state, state))
    with pytest.raises(SignInError, match="expired or was already used"):
        asyncio.run(signin.finish("c", state, state))


def test_a_pending_sign_in_expires() -> None:
    idm, now = ScriptedIdM(), [1000.0]
    signin = SignIn(CONFIG, idm, "http://broker:1026", clock=lambda: now[0])  # type: ignore[arg-type]
    _, state = signin.begin("/")
    now[0] += PENDING_SECONDS + 1
    with pytest.raises(SignInError):
        asyncio.run(signin.finish("c", state, state))
    assert idm.forms == []  # never sent


def test_tokens_are_refreshed_before_they_expire_and_a_refused_refresh_ends_the_session() -> None:
    idm, now = ScriptedIdM(), [1000.0]
    signin, session = _signed_in(idm, now)
    assert asyncio.run(signin.token(session)) == "t1"
    now[0] += 3600 - 10  # within the margin
    assert asyncio.run(signin.token(session)) == "t2"
    assert idm.forms[-1] == {"grant_type": "refresh_token", "refresh_token": "r1"}
    now[0] += 3600
    idm.refuse_refresh = True
    assert asyncio.run(signin.token(session)) == ""
    assert asyncio.run(signin.me(session)) is None
    assert asyncio.run(signin.token("no-such-session")) == ""


def test_sign_out_revokes_the_refresh_token() -> None:
    idm, now = ScriptedIdM(), [1000.0]
    signin, session = _signed_in(idm, now)
    asyncio.run(signin.end(session))
    assert idm.forms[-1] == {"token": "r1", "token_type_hint": "refresh_token"}
    assert asyncio.run(signin.token(session)) == ""


def test_a_refused_code_is_a_clear_error() -> None:
    class Refusing(ScriptedIdM):
        async def request(self, method: str, url: str, headers: Any = (), body: bytes = b"",
                          timeout: float | None = 5.0) -> Response:
            if url.endswith("/oauth2/token"):
                return Response(400, [], orjson.dumps({"error": "invalid_grant", "error_description": "bad code"}))
            return await super().request(method, url, headers, body, timeout)

    signin = SignIn(CONFIG, Refusing(), "http://broker:1026")  # type: ignore[arg-type]
    _, state = signin.begin("/")
    with pytest.raises(SignInError, match="400: bad code"):
        asyncio.run(signin.finish("c", state, state))
