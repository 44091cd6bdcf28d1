"""The dashboard's backend without a browser: options, forwarding, the live feed's hub."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from starlette.testclient import TestClient

from analytics.dashboard.app import create_app
from analytics.dashboard.config import Config, ConfigError, parse
from analytics.dashboard.live import QUEUE_SIZE, Hub, covers
from ngsi.client import Response
from orchestrator import cli


class FakeClient:
    """Records each request; answers 201 with a Location to subscriptions, else 200 ``[]``."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict[str, str], bytes]] = []

    async def request(self, method: str, url: str, headers: Any = (), body: bytes = b"",
                      timeout: float | None = 5.0) -> Response:
        self.calls.append((method, url, dict(headers), body))
        if method == "POST" and url.endswith("/v2/subscriptions"):
            return Response(201, [("Location", "/v2/subscriptions/sub1")], b"")
        if method == "GET" and "refuse" in url:
            return Response(403, [], b"")
        return Response(200, [("Content-Type", "application/json"), ("Fiware-Total-Count", "0"),
                              ("Set-Cookie", "x=1")], b"[]")

    async def aclose(self) -> None:
        pass


@pytest.mark.parametrize(("wanted", "path", "seen"), [
    ("/", "/a/b", True), ("/#", "/a", True), ("/a", "/a", True), ("/a", "/a/b", False),
    ("/a/#", "/a/b", True), ("/a/#", "/a", True), ("/a/#", "/ab", False), ("/b", "/a", False),
])
def test_service_path_coverage(wanted: str, path: str, seen: bool) -> None:
    assert covers(wanted, path) is seen


def test_options() -> None:
    config = parse(["-port", "3001", "-expect", "Room=60", "-expect", "*=120", "-historyURL", ""], {})
    assert config.expected_intervals == {"Room": 60, "*": 120}
    assert config.history_url == ""
    assert config.notify_base == "http://127.0.0.1:3001"
    with pytest.raises(ConfigError, match="TYPE=SECONDS"):
        parse(["-expect", "Room"], {})
    with pytest.raises(ConfigError, match="http"):
        parse(["-brokerURL", "ftp://x"], {})


def test_command_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        cli.main(["dashboard", "--help"])
    assert caught.value.code == 0
    assert capsys.readouterr().out.startswith("usage: waziup dashboard ")


def test_forwarding_keeps_the_callers_headers_only() -> None:
    client = FakeClient()
    app = create_app(Config(broker_url="http://broker:1026", rules_url=""), client=client)  # type: ignore[arg-type]
    with TestClient(app) as http:
        answer = http.get("/api/broker/v2/entities?limit=5&type=Room", headers={
            "Fiware-Service": "farm", "Fiware-ServicePath": "/a", "Authorization": "Bearer t", "Cookie": "s=1"})
        assert answer.status_code == 200
        assert answer.headers["fiware-total-count"] == "0"
        assert "set-cookie" not in answer.headers
        method, url, headers, _ = client.calls[-1]
        assert (method, url) == ("GET", "http://broker:1026/v2/entities?limit=5&type=Room")
        assert headers["fiware-service"] == "farm" and headers["fiware-servicepath"] == "/a"
        assert headers["authorization"] == "Bearer t" and "cookie" not in headers
        assert http.get("/api/rules/rules").status_code == 404  # no rules service configured
        assert http.post("/api/broker/v2/entities", content=b"x" * (2 << 20)).status_code == 413
        config = http.get("/api/config").json()
        assert config["services"] == {"broker": True, "history": True, "agent": True, "rules": False}
        assert http.post("/notify/wrong/farm", json={"data": []}).status_code == 404
        assert http.get("/").headers["content-type"].startswith("text/html")
        assert http.get("/static/vendor/leaflet/LICENSE").status_code == 200


def test_hub_subscribes_once_and_fans_out_by_tenant_and_path() -> None:
    async def scenario() -> None:
        client = FakeClient()
        hub = Hub(client, "http://broker:1026", "http://dash:3000")  # type: ignore[arg-type]
        farm_a = hub.listen("farm", "/a/#")
        farm_b = hub.listen("farm", "/b")
        other = hub.listen("other", "/")
        for stream in (farm_a, farm_b, other):
            assert await anext(stream) == b"event: ready\ndata: {}\n\n"
        checks = [call for call in client.calls if "/v2/entities?limit=1" in call[1]]
        assert [(c[2].get("fiware-service"), c[2]["fiware-servicepath"]) for c in checks] == [
            ("farm", "/a/#"), ("farm", "/b"), ("other", "/")]  # each page's caller, asked with its own headers
        posts = [call for call in client.calls if call[0] == "POST"]
        assert len(posts) == 2  # one subscription per tenant
        body = orjson.loads(posts[0][3])
        assert body["subject"]["entities"] == [{"idPattern": ".*"}]
        assert body["notification"]["http"]["url"] == f"http://dash:3000/notify/{hub.secret}/farm"
        assert posts[0][2]["fiware-servicepath"] == "/#"
        assert not hub.notified("nope", "farm", {"data": [{"id": "x", "type": "T"}]}, ["/a"])
        assert hub.notified(hub.secret, "farm", {"data": [{"id": "E1", "type": "T"}, {"id": "E2", "type": "T"}]},
                            ["/a/x", "/b"])
        first = await anext(farm_a)
        assert b'"id":"E1"' in first and b'"servicePath":"/a/x"' in first
        assert b'"id":"E2"' in await anext(farm_b)
        waiting = asyncio.ensure_future(anext(other))
        await asyncio.sleep(0.05)
        assert not waiting.done()  # another tenant's listener saw nothing
        waiting.cancel()
        await hub.close()
        deletes = [call for call in client.calls if call[0] == "DELETE"]
        assert {url for _, url, _, _ in deletes} == {"http://broker:1026/v2/subscriptions/sub1"}

    asyncio.run(scenario())


def test_a_slow_page_is_told_to_reload() -> None:
    async def scenario() -> None:
        hub = Hub(FakeClient(), "http://broker:1026", "http://dash:3000")  # type: ignore[arg-type]
        stream = hub.listen("farm", "/")
        await anext(stream)
        entities = [{"id": f"E{i}", "type": "T"} for i in range(QUEUE_SIZE + 5)]
        hub.notified(hub.secret, "farm", {"data": entities}, ["/"])
        first = await anext(stream)
        assert first.startswith(b"event: overflow"), first[:40]
        await stream.aclose()

    asyncio.run(scenario())


def test_hub_refuses_a_page_the_broker_refuses() -> None:
    async def scenario() -> None:
        client = FakeClient()
        hub = Hub(client, "http://refuse:1026", "http://dash:3000")  # type: ignore[arg-type]
        events = [event async for event in hub.listen("farm", "/", "token")]
        assert len(events) == 1 and events[0].startswith(b"event: unavailable")
        assert not any(call[0] == "POST" for call in client.calls)  # no subscription made for it
        assert client.calls[0][2]["x-auth-token"] == "token"

    asyncio.run(scenario())


def test_each_viewer_has_a_feed_of_their_own() -> None:
    """With sign-in, a user's page gets only what that user's subscription (made with their
    token, so filtered by the broker for them) was notified, never another user's."""
    async def scenario() -> None:
        client = FakeClient()
        hub = Hub(client, "http://broker:1026", "http://dash:3000")  # type: ignore[arg-type]
        alice = hub.listen("farm", "/", "token-a", "alice")
        bob = hub.listen("farm", "/", "token-b", "bob")
        assert await anext(alice) == await anext(bob) == b"event: ready\ndata: {}\n\n"
        posts = [call for call in client.calls if call[0] == "POST"]
        assert [p[2]["x-auth-token"] for p in posts] == ["token-a", "token-b"]
        urls = [orjson.loads(p[3])["notification"]["http"]["url"] for p in posts]
        assert urls == [f"http://dash:3000/notify/{hub.secret}/farm~alice", f"http://dash:3000/notify/{hub.secret}/farm~bob"]
        assert hub.notified(hub.secret, "farm~bob", {"data": [{"id": "B1", "type": "T"}]}, ["/"])
        assert b'"id":"B1"' in await anext(bob)
        waiting = asyncio.ensure_future(anext(alice))
        await asyncio.sleep(0.05)
        assert not waiting.done()  # bob's notification never reaches alice's page
        waiting.cancel()
        assert not hub.notified("é" * 22, "farm", {"data": []}, ["/"])  # a foreign secret, even non-ASCII
        await hub.close()

    asyncio.run(scenario())


def test_with_sign_in_nothing_is_served_without_a_session() -> None:
    config = Config(broker_url="http://broker:1026", idm_url="http://idm:3005", client_id="app", client_secret="s")
    with TestClient(create_app(config, client=FakeClient())) as http:  # type: ignore[arg-type]
        page = http.get("/?service=farm", follow_redirects=False)
        assert page.status_code == 303 and page.headers["location"] == "/auth/login?next=%2F%3Fservice%3Dfarm"
        login = http.get("/auth/login?next=/x", follow_redirects=False)
        assert login.status_code == 303 and login.headers["location"].startswith("http://idm:3005/oauth2/authorize?")
        assert "waziup_signin=" in login.headers["set-cookie"] and "Path=/auth" in login.headers["set-cookie"]
        assert http.get("/api/broker/v2/entities").status_code == 401
        assert http.get("/api/events?service=farm").status_code == 401
        assert http.get("/auth/me").status_code == 401
        assert http.get("/api/config").json()["auth"]["signIn"] == "/auth/login"
        refused = http.get("/auth/callback?error=access_denied&state=x")
        assert refused.status_code == 403 and "access_denied" in refused.text
        assert http.get("/auth/callback?code=c&state=forged").status_code == 400
        # a caller with a token of its own (a script) is served as before
        assert http.get("/api/broker/v2/entities", headers={"X-Auth-Token": "t"}).status_code == 200
