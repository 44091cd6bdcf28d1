"""Rate limits: the token bucket's promises, the keyed limiter's memory bound, and the
guard end to end on the real broker and IoT agent apps (an injected clock, no sleeps).

The bucket's two promises are what clients rely on: no window of length t lets more
than ``burst + rate * t`` requests through, and ``Retry-After`` is not a guess (taking
again exactly then succeeds; noticeably earlier does not).
"""

from __future__ import annotations

import copy
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.testclient import TestClient
from starlette.types import ASGIApp, Receive, Scope, Send

from broker.app import create_app as create_broker
from broker.config import Config as BrokerConfig
from iot_agent.app import create_app as create_agent
from iot_agent.config import Config as AgentConfig
from iot_agent.provisioning.store import MemoryProvisioningStore
from ngsi.context import Identity, RequestContext
from ngsi.server.asgi import GuardLayer
from ngsi.server.guards import Incoming, Verdict, admit, load_guards
from ngsi.settings import SettingsError
from security.ratelimit import (
    Bucket,
    Limiter,
    RateLimit,
    admit_all,
    agent_guard,
    broker_guard,
    from_environ,
    retry_after,
)

rates = st.floats(min_value=0.05, max_value=1000)
bursts = st.one_of(st.integers(min_value=1, max_value=50).map(float), st.floats(min_value=1, max_value=50))
starts = st.floats(min_value=0, max_value=1e7)
gaps = st.lists(st.one_of(st.just(0.0), st.floats(min_value=0, max_value=2), st.floats(min_value=0, max_value=1e-3)), max_size=150)


def instants(start: float, steps: list[float]) -> list[float]:
    times, now = [], start
    for gap in steps:
        now += gap
        times.append(now)
    return times


# -- the bucket ---------------------------------------------------------------------------


@given(rates, bursts, starts, gaps)
def test_no_window_lets_more_than_burst_plus_rate_times_its_length_through(
    rate: float, burst: float, start: float, steps: list[float]
) -> None:
    bucket = Bucket(rate, burst)
    accepted = [now for now in instants(start, steps) if bucket.take(now)[0]]
    for i, first in enumerate(accepted):
        for j in range(i, len(accepted)):
            assert j - i + 1 <= burst + rate * (accepted[j] - first) + 1e-9


@given(rates, bursts, starts)
def test_a_full_bucket_lets_burst_through_at_once_then_refuses(rate: float, burst: float, now: float) -> None:
    bucket = Bucket(rate, burst)
    results = [bucket.take(now)[0] for _ in range(int(burst) + 1)]
    assert results == [True] * int(burst) + [False]


@given(rates, bursts, starts, gaps)
def test_retry_after_is_exact(rate: float, burst: float, start: float, steps: list[float]) -> None:
    bucket = Bucket(rate, burst)
    for now in instants(start, steps) + [start + sum(steps)] * (int(burst) + 1):
        before = copy.copy(bucket)
        allowed, wait = bucket.take(now)
        if allowed:
            assert wait == 0.0
            continue
        assert wait > 0
        on_time = copy.copy(bucket)
        assert on_time.take(now + wait)[0], "taking again at now + retry_after must succeed"
        if 1.0 - before.level(now) > 1e-6:  # a deficit big enough to be told apart
            early = copy.copy(bucket)
            assert not early.take(now + wait * 0.999)[0], "retry_after must not be longer than needed"


@given(rates, bursts, st.floats(min_value=1, max_value=1e6), st.floats(min_value=0, max_value=10))
def test_a_clock_going_back_refills_nothing(rate: float, burst: float, now: float, back: float) -> None:
    bucket = Bucket(rate, burst)
    while bucket.take(now)[0]:
        pass
    level = bucket.tokens
    bucket.take(now - back)
    assert bucket.tokens <= level


@pytest.mark.parametrize("rate, burst", [(0, 1), (-1, 1), (float("nan"), 1), (float("inf"), 1), (1, 0.5), (1, float("inf"))])
def test_bucket_rejects_meaningless_numbers(rate: float, burst: float) -> None:
    with pytest.raises(ValueError):
        Bucket(rate, burst)


@given(st.floats(min_value=1e-9, max_value=1e6))
def test_retry_after_header_is_whole_seconds_rounded_up_at_least_one(wait: float) -> None:
    seconds = retry_after(wait)
    assert seconds >= 1 and seconds >= wait and seconds - 1 < max(wait, 1)


# -- the keyed limiter --------------------------------------------------------------------

ops = st.lists(st.tuples(st.sampled_from("abcdefgh"), st.floats(min_value=0, max_value=1.5)), max_size=120)


@given(rates, bursts, st.integers(min_value=1, max_value=5), ops)
def test_the_limiter_keeps_at_most_max_keys(rate: float, burst: float, max_keys: int, steps: list[tuple[str, float]]) -> None:
    limiter = Limiter(rate, burst, max_keys)
    now = 0.0
    for key, gap in steps:
        now += gap
        limiter.take(key, now)
        assert len(limiter) <= max_keys


@given(rates, bursts, ops)
def test_forgetting_idle_buckets_changes_no_answer(rate: float, burst: float, steps: list[tuple[str, float]]) -> None:
    """With room for every key, only full buckets are dropped: as if none ever were."""
    limiter = Limiter(rate, burst, max_keys=8)
    reference: dict[str, Bucket] = {}
    now = 0.0
    for key, gap in steps:
        now += gap
        expected = reference.setdefault(key, Bucket(rate, burst)).take(now)
        assert limiter.take(key, now) == expected


def test_a_flood_of_distinct_addresses_does_not_grow_memory() -> None:
    limiter = Limiter(10, 20, max_keys=1000)
    now = 0.0

    def flood(start: int, count: int) -> None:
        nonlocal now
        for i in range(start, start + count):
            now += 1e-6
            limiter.take(f"192.{i // 65536}.{i // 256 % 256}.{i % 256}", now)
            assert len(limiter) <= 1000

    tracemalloc.start()
    try:
        flood(0, 5_000)  # past the bound: from here on every new address replaces an old one
        settled, _ = tracemalloc.get_traced_memory()
        flood(5_000, 30_000)
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(limiter) == 1000
    assert after - settled < 16 * 1024  # 30,000 more buckets kept would be megabytes


def test_idle_buckets_go_as_new_callers_come() -> None:
    limiter = Limiter(10, 20, max_keys=1000)
    for i in range(1000):
        limiter.take(f"a{i}", 0.0)
    for i in range(10):  # a minute later every old bucket is full again: two out per one in
        limiter.take(f"b{i}", 60.0)
    assert len(limiter) == 1000 - 20 + 10


def test_a_flood_does_not_evict_a_caller_who_keeps_calling() -> None:
    limiter = Limiter(1, 3, max_keys=100)
    assert [limiter.take("greedy", 0.0)[0] for _ in range(4)] == [True, True, True, False]
    for i in range(10_000):
        limiter.take(f"flood{i}", 0.0)
        assert not limiter.take("greedy", 0.0)[0]


# -- the key ------------------------------------------------------------------------------


def incoming(client: tuple[str, int] | None = ("10.0.0.1", 5000), headers: dict[str, str] | None = None, identity: Identity | None = None) -> Incoming:
    ctx = RequestContext() if identity is None else RequestContext().with_identity(identity)
    return Incoming("GET", "/v2/entities", b"", headers or {}, client, ctx, None)  # type: ignore[arg-type]


def test_the_key_is_the_principal_when_known_else_the_address() -> None:
    guard = RateLimit(1)
    assert guard.key(incoming()) == "10.0.0.1"
    assert guard.key(incoming(identity=Identity(user_id="u1", app_id="app"))) == ("user", "u1")
    assert guard.key(incoming(identity=Identity(app_id="app"))) == ("app", "app")
    assert guard.key(incoming(identity=Identity(username="no id"))) == "10.0.0.1"  # anonymous still
    assert guard.key(incoming(client=None)) == ""


def test_x_forwarded_for_counts_only_when_trusted() -> None:
    headers = {"x-forwarded-for": " 203.0.113.7 , 10.0.0.254"}
    assert RateLimit(1).key(incoming(headers=headers)) == "10.0.0.1"
    trusting = RateLimit(1, trust_forwarded=True)
    assert trusting.key(incoming(headers=headers)) == "203.0.113.7"
    assert trusting.key(incoming(headers={"x-forwarded-for": " , x"})) == "10.0.0.1"
    assert trusting.key(incoming()) == "10.0.0.1"


# -- end to end ---------------------------------------------------------------------------


class Clock:
    """The guard's clock, moved by the test."""

    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


def as_client(app: ASGIApp) -> ASGIApp:
    """Takes the client address from the test's ``x-test-client`` header (one test client,
    many callers)."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for name, value in scope["headers"]:
                if name == b"x-test-client":
                    scope = {**scope, "client": (value.decode(), 40000)}
        await app(scope, receive, send)

    return wrapped


async def as_user(request: Incoming) -> Verdict | None:
    """A stand-in for a PEP guard: ``x-user`` becomes the caller's identity."""
    user = request.headers.get("x-user")
    return admit(request.ctx.with_identity(Identity(user_id=user))) if user else None


def frm(address: str, **headers: str) -> dict[str, str]:
    return {"x-test-client": address, **headers}


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def broker(clock: Clock) -> Iterator[TestClient]:
    app = create_broker(BrokerConfig(db_uri="memory://"), guards=[as_user, RateLimit(1, 3, clock=clock)])
    with TestClient(as_client(app)) as client:
        yield client


def test_broker_answers_orions_429_after_the_burst(broker: TestClient, clock: Clock) -> None:
    for _ in range(3):
        assert broker.get("/v2/entities", headers=frm("10.1.1.1")).status_code == 200
    response = broker.get("/v2/entities", headers=frm("10.1.1.1", **{"Fiware-Correlator": "c-429"}))
    assert response.status_code == 429
    assert response.headers["retry-after"] == "1"
    assert response.headers["content-type"] == "application/json"
    assert response.headers["fiware-correlator"] == "c-429"  # the front's headers still come
    body = response.json()
    assert body["error"] == "TooManyRequests" and set(body) == {"error", "description"}
    assert "retry after 1 second" in body["description"]


def test_broker_other_callers_are_unaffected(broker: TestClient, clock: Clock) -> None:
    for _ in range(4):
        broker.get("/v2/entities", headers=frm("10.1.1.1"))
    assert broker.get("/v2/entities", headers=frm("10.1.1.1")).status_code == 429
    for _ in range(3):
        assert broker.get("/v2/entities", headers=frm("10.2.2.2")).status_code == 200
    # a known user is counted as themselves, not as the address they share
    for _ in range(3):
        assert broker.get("/v2/entities", headers=frm("10.1.1.1", **{"x-user": "alice"})).status_code == 200
    assert broker.get("/v2/entities", headers=frm("10.9.9.9", **{"x-user": "alice"})).status_code == 429


def test_broker_lets_a_caller_through_again_after_waiting(broker: TestClient, clock: Clock) -> None:
    for _ in range(3):
        broker.get("/v2/entities", headers=frm("10.1.1.1"))
    assert broker.get("/v2/entities", headers=frm("10.1.1.1")).status_code == 429
    clock.now += 0.5
    assert broker.get("/v2/entities", headers=frm("10.1.1.1")).status_code == 429
    clock.now += 0.5
    assert broker.get("/v2/entities", headers=frm("10.1.1.1")).status_code == 200
    assert broker.get("/v2/entities", headers=frm("10.1.1.1")).status_code == 429
    clock.now += 10  # long idle: a full burst again, not more
    assert [broker.get("/v2/entities", headers=frm("10.1.1.1")).status_code for _ in range(4)] == [200, 200, 200, 429]


def test_broker_version_is_never_limited(broker: TestClient) -> None:
    for _ in range(10):
        assert broker.get("/version", headers=frm("10.1.1.1")).status_code == 200
        assert broker.get("/version/", headers=frm("10.1.1.1")).status_code == 200
    assert broker.get("/v2/entities", headers=frm("10.1.1.1")).status_code == 200


def test_retry_after_counts_the_seconds_to_the_next_token(clock: Clock) -> None:
    app = create_broker(BrokerConfig(db_uri="memory://"), guards=[RateLimit(0.25, 1, clock=clock)])
    with TestClient(app) as client:
        assert client.get("/v2/entities").status_code == 200
        assert client.get("/v2/entities").headers["retry-after"] == "4"
        clock.now += 2.5
        assert client.get("/v2/entities").headers["retry-after"] == "2"  # 1.5 s, rounded up
        clock.now += 1.5
        assert client.get("/v2/entities").status_code == 200


@pytest.fixture
def agent(clock: Clock) -> Iterator[TestClient]:
    app = create_agent(AgentConfig(), registry=MemoryProvisioningStore())
    with TestClient(as_client(GuardLayer(app, [RateLimit(1, 2, style="iota", clock=clock)]))) as client:
        yield client


TENANT = {"fiware-service": "smartgondor", "fiware-servicepath": "/gardens"}


def test_agent_answers_iotagent_429_after_the_burst(agent: TestClient, clock: Clock) -> None:
    for _ in range(2):
        assert agent.get("/iot/devices", headers=frm("10.1.1.1", **TENANT)).status_code == 200
    response = agent.get("/iot/devices", headers=frm("10.1.1.1", **TENANT))
    assert response.status_code == 429
    assert response.headers["retry-after"] == "1"
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    body = response.json()
    assert body["name"] == "TOO_MANY_REQUESTS" and set(body) == {"name", "message"}
    # others unaffected, the about page never limited, and waiting helps
    assert agent.get("/iot/devices", headers=frm("10.2.2.2", **TENANT)).status_code == 200
    assert agent.get("/iot/about", headers=frm("10.1.1.1")).status_code == 200
    clock.now += 1
    assert agent.get("/iot/devices", headers=frm("10.1.1.1", **TENANT)).status_code == 200
    assert agent.get("/iot/devices", headers=frm("10.1.1.1", **TENANT)).status_code == 429


# -- the factories ------------------------------------------------------------------------


def test_factories_admit_everything_when_no_limit_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    assert broker_guard(BrokerConfig()) is admit_all
    monkeypatch.setenv("WAZIUP_RATE_LIMIT", "0")
    assert agent_guard(AgentConfig()) is admit_all
    assert from_environ({"WAZIUP_RATE_LIMIT": ""}, style="orion") is None


def test_factories_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WAZIUP_RATE_LIMIT", "0.01")
    monkeypatch.setenv("WAZIUP_RATE_BURST", "2")
    config = BrokerConfig(db_uri="memory://", guards=("security.ratelimit:broker_guard",))
    with TestClient(create_broker(config)) as client:
        assert [client.get("/v2/entities").status_code for _ in range(3)] == [200, 200, 429]
        assert client.get("/v2/entities").headers["retry-after"] == "100"
        assert client.get("/version").status_code == 200
    guard = agent_guard(AgentConfig())
    assert isinstance(guard, RateLimit) and guard.style == "iota" and guard.limiter.burst == 2


def test_agent_guard_named_as_the_agent_names_guards(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WAZIUP_RATE_LIMIT", "0.01")
    guards = load_guards(["security.ratelimit:agent_guard"], AgentConfig())
    app = GuardLayer(create_agent(AgentConfig(), registry=MemoryProvisioningStore()), guards)
    with TestClient(app) as client:
        codes = [client.get("/iot/devices", headers=TENANT).status_code for _ in range(3)]
    assert codes == [200, 429, 429]  # the default burst, 2x the rate, is never below one request


@pytest.mark.parametrize(
    "environ, expected",
    [
        ({"WAZIUP_RATE_LIMIT": "5"}, (5.0, 10.0, frozenset({"/version", "/version/"}), False)),
        ({"WAZIUP_RATE_LIMIT": "5", "WAZIUP_RATE_BURST": "7", "WAZIUP_RATE_TRUST_FORWARDED": "yes"}, (5.0, 7.0, frozenset({"/version", "/version/"}), True)),
        ({"WAZIUP_RATE_LIMIT": "0.2", "WAZIUP_RATE_EXEMPT": "/health, /v2/"}, (0.2, 1.0, frozenset({"/health", "/health/", "/v2", "/v2/"}), False)),
        ({"WAZIUP_RATE_LIMIT": "5", "WAZIUP_RATE_EXEMPT": ""}, (5.0, 10.0, frozenset(), False)),
    ],
)
def test_environment_settings(environ: dict[str, str], expected: tuple[Any, ...]) -> None:
    guard = from_environ(environ, style="orion")
    assert guard is not None
    assert (guard.limiter.rate, guard.limiter.burst, guard.exempt, guard.trust_forwarded) == expected


@pytest.mark.parametrize(
    "environ, variable",
    [
        ({"WAZIUP_RATE_LIMIT": "fast"}, "WAZIUP_RATE_LIMIT"),
        ({"WAZIUP_RATE_LIMIT": "-1"}, "WAZIUP_RATE_LIMIT"),
        ({"WAZIUP_RATE_LIMIT": "inf"}, "WAZIUP_RATE_LIMIT"),
        ({"WAZIUP_RATE_LIMIT": "5", "WAZIUP_RATE_BURST": "0.5"}, "WAZIUP_RATE_BURST"),
        ({"WAZIUP_RATE_LIMIT": "5", "WAZIUP_RATE_TRUST_FORWARDED": "maybe"}, "WAZIUP_RATE_TRUST_FORWARDED"),
    ],
)
def test_bad_environment_stops_start_up_naming_the_variable(environ: dict[str, str], variable: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        from_environ(environ, style="orion")


def test_unknown_style_is_refused() -> None:
    with pytest.raises(ValueError, match="style"):
        RateLimit(1, style="wilma")  # type: ignore[arg-type]


def test_an_exempt_subtree_is_never_limited_and_nothing_beside_it_is_exempt() -> None:
    """``/prefix/*`` exempts a subtree (the orchestrator's ``/ingress/*``, where the broker's
    notifications to apps come in), not a path that merely starts with the same letters."""
    import asyncio

    guard = RateLimit(1, 1, exempt=["/version", "/ingress/*"])

    def at(path: str) -> Incoming:
        return Incoming("POST", path, b"", {}, ("10.0.0.1", 5000), RequestContext(), None)  # type: ignore[arg-type]

    async def run() -> list[bool]:
        admitted = [await guard(at("/ingress/app/key/notify")) is None for _ in range(5)]
        admitted += [await guard(at("/ingressx")) is None for _ in range(2)]
        return admitted

    assert asyncio.run(run()) == [True] * 5 + [True, False]
