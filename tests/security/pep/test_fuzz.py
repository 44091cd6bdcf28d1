"""Fuzzed tokens and authentication headers against the guard and the real identity manager:
never a 500, never a pass, always Wilma's error body.

Hypothesis drives a synchronous test; the identity manager and the guard live in an event
loop of their own thread, built once for the module (a world takes seconds to build)."""

from __future__ import annotations

import asyncio
import base64
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ngsi.client.asgi import ASGITransport
from security.pep.guard import PEP
from tests.security.idm.conftest import Clock, make_config, running

from .conftest import IDM_URL, CountingTransport, Monotonic, World, incoming

T = TypeVar("T")


class Setting:
    def __init__(self, run: Callable[[Awaitable[Any]], Any], world: World, pep: PEP, tokens: dict[str, str]) -> None:
        self.run = run
        self.world = world
        self.pep = pep
        self.tokens = tokens


@pytest.fixture(scope="module")
def setting(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setting]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    def run(coroutine: Awaitable[T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result(60)  # type: ignore[arg-type]

    context = running(make_config(tmp_path_factory.mktemp("idm"), issuer=IDM_URL), Clock())
    idm = run(context.__aenter__())
    try:
        world = run(World(idm).build())
        tokens = {"opaque": run(world.token("alice")), "jwt": run(world.token("alice", jwt=True))}
        pep = PEP(world.settings(), transport=CountingTransport(ASGITransport(idm.app)), now=idm.clock,
                  monotonic=Monotonic())
        yield Setting(run, world, pep, tokens)
    finally:
        run(context.__aexit__(None, None, None))
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def refused(setting: Setting, headers: dict[str, str]) -> None:
    verdict = setting.run(setting.pep(incoming("GET", "/v2/entities", {
        "fiware-service": "coop", "fiware-servicepath": "/farm1", **headers}, query=b"type=Field")))
    assert verdict is not None and verdict.reply is not None, f"passed: {headers!r}"
    assert verdict.reply.status_code == 401, (verdict.reply.status_code, verdict.reply.body)
    assert set(orjson.loads(verdict.reply.body)) == {"type", "title", "detail"}


def mutate(token: str, data: st.DataObject) -> str:
    """The token with one character changed, never the last of a base64url segment (whose low
    bits may be padding: changing them can leave the same bytes, the same credential)."""
    ends = {i - 1 for i, c in enumerate(token) if c == "."} | {len(token) - 1}
    positions = [i for i in range(len(token)) if i not in ends]
    i = data.draw(st.sampled_from(positions))
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    c = data.draw(st.sampled_from([a for a in alphabet if a != token[i]]))
    return token[:i] + c + token[i + 1:]


FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(st.one_of(st.text(max_size=120), st.from_regex(r"[A-Za-z0-9\-._~+/]{1,80}=*", fullmatch=True),
                 st.builds(lambda a, b, c: f"eyJ{a}.{b}.{c}", st.text("abcXYZ019-_", max_size=40),
                           st.text("abcXYZ019-_", max_size=40), st.text("abcXYZ019-_", max_size=40))))
def test_fuzzed_tokens_never_pass(setting: Setting, token: str) -> None:
    for headers in ({"authorization": f"Bearer {token}"}, {"x-auth-token": token},
                    {"authorization": "Basic " + base64.b64encode(token.encode("utf-8", "replace")).decode()}):
        refused(setting, headers)


SCHEMES = st.sampled_from(["Bearer", "bearer", "Basic", "Token", ""])
VALUES = st.one_of(st.text(max_size=80), st.builds(lambda s, v: f"{s} {v}", SCHEMES, st.text(max_size=60)))


@FAST
@given(st.dictionaries(st.sampled_from(["authorization", "x-auth-token"]), VALUES, min_size=1))
def test_fuzzed_authentication_headers_never_pass(setting: Setting, headers: dict[str, str]) -> None:
    refused(setting, headers)


@FAST
@given(st.data(), st.sampled_from(["opaque", "jwt"]))
def test_a_real_token_changed_anywhere_never_passes(setting: Setting, data: st.DataObject, kind: str) -> None:
    refused(setting, {"authorization": f"Bearer {mutate(setting.tokens[kind], data)}"})


def test_the_real_tokens_do_pass(setting: Setting) -> None:
    for token in setting.tokens.values():
        verdict = setting.run(setting.pep(incoming("GET", "/v2/entities", {
            "authorization": f"Bearer {token}", "fiware-service": "coop", "fiware-servicepath": "/farm1"},
            query=b"type=Field")))
        assert verdict is not None and verdict.reply is None and verdict.ctx is not None
