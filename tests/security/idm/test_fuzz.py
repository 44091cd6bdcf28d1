"""Fuzzed requests: whatever the token, header, query or form, the identity manager never
answers 500 and never authenticates (reference: Keyrock's error shapes, apiary.apib and
oauth_documentation.md; style: "never a 500 for bad input"). Also the lockout counters'
properties (``security/idm/lockout.py``)."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from security.idm.lockout import Lockout

from .conftest import Clock, IdM, make_config, running

text = st.text(max_size=40)
token_like = st.one_of(
    text,
    st.builds(lambda a, b, c: f"eyJ{a}.{b}.{c}", st.text(alphabet="abcXYZ019-_", max_size=30),
              st.text(alphabet="abcXYZ019-_", max_size=30), st.text(alphabet="abcXYZ019-_", max_size=30)),
    st.binary(max_size=40).map(lambda b: base64.urlsafe_b64encode(b).decode()),
)
header_value = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=60)
authorization = st.one_of(
    header_value,
    st.builds(lambda b: "Basic " + base64.b64encode(b).decode(), st.binary(max_size=40)),
    st.builds(lambda t: "Bearer " + t, header_value),
)
form = st.dictionaries(st.sampled_from(["grant_type", "username", "password", "code", "refresh_token", "scope",
                                        "redirect_uri", "client_id", "client_secret", "code_verifier", "token",
                                        "token_type_hint", "state"]),
                       st.one_of(text, st.sampled_from(["password", "client_credentials", "authorization_code",
                                                        "refresh_token", "jwt,permanent", "openid"])), max_size=6)
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[asyncio.AbstractEventLoop, IdM]]:
    loop = asyncio.new_event_loop()
    context = running(make_config(tmp_path_factory.mktemp("fuzz"), lockout_attempts=0, lockout_address_attempts=0), Clock())
    idm = loop.run_until_complete(context.__aenter__())
    app = loop.run_until_complete(idm.application())
    idm.fuzz_app = app  # type: ignore[attr-defined]
    yield loop, idm
    loop.run_until_complete(context.__aexit__())
    loop.close()


def _ok(response: Any) -> None:
    assert response.status_code < 500, response.text
    if response.headers.get("content-type", "").startswith("application/json") and response.content:
        response.json()


@FUZZ
@given(fields=form, auth=st.none() | authorization, path=st.sampled_from(["/oauth2/token", "/oauth2/revoke", "/oauth2/introspect"]))
def test_token_endpoints_never_500_never_issue(served: tuple[asyncio.AbstractEventLoop, IdM], fields: dict[str, str],
                                               auth: str | None, path: str) -> None:
    loop, idm = served
    headers = {"Authorization": auth} if auth is not None else {}
    r = loop.run_until_complete(idm.http.post(path, data=fields, headers=headers))
    _ok(r)
    if path == "/oauth2/token":
        assert r.status_code != 200 and "access_token" not in r.text


@FUZZ
@given(value=token_like, auth=st.none() | authorization, params=st.dictionaries(
    st.sampled_from(["app_id", "action", "resource", "authorization_service_header", "authzforce", "ids"]), text, max_size=4))
def test_user_never_500_never_authenticates(served: tuple[asyncio.AbstractEventLoop, IdM], value: str,
                                            auth: str | None, params: dict[str, str]) -> None:
    loop, idm = served
    headers = {"Authorization": auth} if auth is not None else {}
    r = loop.run_until_complete(idm.http.get("/user", params={"access_token": value, **params}, headers=headers))
    _ok(r)
    assert r.status_code in (400, 401)
    r = loop.run_until_complete(idm.http.get("/userinfo", headers=headers))
    assert r.status_code == 401


@FUZZ
@given(token=header_value, body=st.one_of(st.binary(max_size=80), st.recursive(
    st.none() | st.booleans() | st.integers() | text, lambda kids: st.lists(kids, max_size=3) |
    st.dictionaries(st.sampled_from(["user", "application", "organization", "role", "permission", "name", "password",
                                     "token", "email", "username", "redirect_uri", "grant_type", "token_types", "action",
                                     "resource", "is_regex", "input", "appId"]), kids, max_size=4), max_leaves=8).map(
    lambda v: json.dumps(v).encode())),
    path=st.sampled_from(["/v1/auth/tokens", "/v1/users", "/v1/organizations", "/v1/applications", "/v3/auth/tokens",
                          "/pdp/open_policy_agent"]))
def test_v1_never_500(served: tuple[asyncio.AbstractEventLoop, IdM], token: str, body: bytes, path: str) -> None:
    loop, idm = served
    r = loop.run_until_complete(idm.http.post(path, content=body, headers={"X-Auth-Token": token,
                                                                           "Content-Type": "application/json"}))
    _ok(r)
    if path.endswith("/auth/tokens"):
        assert r.status_code != 201
    elif path != "/pdp/open_policy_agent":
        assert r.status_code == 401


@FUZZ
@given(query=st.dictionaries(st.sampled_from(["response_type", "client_id", "redirect_uri", "scope", "state", "nonce",
                                              "code_challenge", "code_challenge_method", "prompt"]), text, max_size=6),
       use_app=st.booleans())
def test_authorize_never_500(served: tuple[asyncio.AbstractEventLoop, IdM], query: dict[str, str], use_app: bool) -> None:
    loop, idm = served
    if use_app:
        query = {**query, "client_id": idm.fuzz_app["id"]}  # type: ignore[attr-defined]
    r = loop.run_until_complete(idm.http.get("/oauth2/authorize", params=query))
    _ok(r)
    r = loop.run_until_complete(idm.http.post("/oauth2/authorize", data={**query, "username": "admin", "password": "x",
                                                                        "decision": "allow", "csrf_token": "c"},
                                              cookies={"idm_csrf": "c"}))
    _ok(r)
    if r.status_code == 302:
        assert "code=" not in r.headers["location"]


# -- lockout counters (pure) -------------------------------------------------------------------


@given(st.lists(st.tuples(st.sampled_from(["a", "b"]), st.floats(0, 50), st.booleans()), max_size=60))
def test_lockout_locks_after_limit_within_window_and_only_for_duration(events: list[tuple[str, float, bool]]) -> None:
    lockout = Lockout(limit=3, window=10.0, duration=5.0)
    now = 0.0
    failures: dict[str, list[float]] = {"a": [], "b": []}
    locked_until = {"a": 0.0, "b": 0.0}
    for key, step, success in events:
        now += step
        expected_locked = locked_until[key] > now
        assert (lockout.locked(key, now) > 0) == expected_locked
        assert lockout.locked(key, now) <= 5.0
        if success:
            lockout.succeed(key)
            failures[key], locked_until[key] = [], 0.0
            continue
        locked_now = lockout.fail(key, now)
        if expected_locked:
            assert not locked_now
            continue
        failures[key] = [t for t in failures[key] if now - t < 10.0] + [now]
        if len(failures[key]) >= 3:
            failures[key], locked_until[key] = [], now + 5.0
            assert locked_now
        else:
            assert not locked_now


def test_lockout_memory_is_bounded() -> None:
    lockout = Lockout(limit=3, window=10.0, duration=5.0, max_keys=100)
    for i in range(10_000):
        lockout.fail(f"addr{i}", 0.0)
    assert len(lockout) == 100


