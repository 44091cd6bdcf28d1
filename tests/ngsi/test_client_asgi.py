"""ngsi.client.asgi.ASGITransport with small ASGI apps that record what they are given:
the scope, the body in one message, disconnect after the response, the lifespan only when
asked (and its state), app failures, timeouts; then Starlette's own lifespan handling."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from ngsi.client import ASGITransport, LifespanError, NGSIClient, NGSIConnectionError
from ngsi.client.http11 import BadHeader, BadURL, ConnectError, EmptyReply, Timeout, UnsupportedProtocol

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Recorder:
    """An ASGI app answering 200 ``echo:<body>``, recording scopes, messages and lifespan events."""

    def __init__(self, *, lifespan_fails: bool = False) -> None:
        self.scopes: list[dict[str, Any]] = []
        self.received: list[dict[str, Any]] = []
        self.events: list[str] = []
        self.lifespan_fails = lifespan_fails

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                self.events.append(message["type"])
                if message["type"] == "lifespan.startup":
                    if self.lifespan_fails:
                        await send({"type": "lifespan.startup.failed", "message": "no database"})
                        return
                    scope["state"]["db"] = "open"
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        self.scopes.append(scope)
        message = await receive()
        self.received.append(message)
        body = b"echo:" + message["body"]
        await send({"type": "http.response.start", "status": 200, "headers": [(b"X-Echo", b"1"), (b"content-type", b"text/plain; charset=latin-1")]})
        await send({"type": "http.response.body", "body": body})


async def test_scope_and_body() -> None:
    app = Recorder()
    transport = ASGITransport(app)
    response = await transport.request(
        "POST", "http://broker:1026/v2/entities/a%2Fb c?options=upsert&x=%C3%A9", [("Fiware-Service", "s"), ("X-Auth-Token", "é")], b"{}"
    )
    assert (response.status, response.status_code, response.body) == (200, 200, b"echo:{}")
    assert response.headers == [("x-echo", "1"), ("content-type", "text/plain; charset=latin-1")]
    assert response.headers.get("X-ECHO") == "1" and response.header("x-echo") == "1"
    scope = app.scopes[0]
    assert {k: scope[k] for k in ("type", "http_version", "method", "scheme", "path", "raw_path", "query_string", "root_path", "server")} == {
        "type": "http", "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": "/v2/entities/a/b c", "raw_path": b"/v2/entities/a%2Fb%20c",
        "query_string": b"options=upsert&x=%C3%A9", "root_path": "", "server": ("broker", 1026),
    }
    assert scope["headers"] == [
        (b"host", b"broker:1026"), (b"fiware-service", b"s"), (b"x-auth-token", "é".encode()), (b"content-length", b"2"),
    ]
    assert "state" not in scope  # no lifespan of ours: no state to pass on
    assert app.received == [{"type": "http.request", "body": b"{}", "more_body": False}]
    assert app.events == []  # the lifespan is not run unless asked
    got = await transport.request("GET", "https://[::1]/", {"Host": "h", "Content-Length": "0"}, b"")
    assert got.status == 200 and app.scopes[1]["scheme"] == "https" and app.scopes[1]["server"] == ("::1", 443)
    assert app.scopes[1]["headers"] == [(b"host", b"h"), (b"content-length", b"0")]
    await transport.aclose()
    with pytest.raises(ConnectError):
        await transport.request("GET", "http://broker/", (), b"")


async def test_bad_requests_fail_as_on_the_network() -> None:
    transport = ASGITransport(Recorder())
    with pytest.raises(BadHeader):
        await transport.request("GET", "http://broker/", [("X-A", "1\r\nX-Injected: 1")], b"")
    with pytest.raises(UnsupportedProtocol):
        await transport.request("GET", "ftp://broker/", (), b"")
    with pytest.raises(BadURL):
        await transport.request("GET", "http://[::1/", (), b"")


async def test_lifespan_when_asked_with_state() -> None:
    app = Recorder()
    transport = ASGITransport(app, lifespan=True)
    assert app.events == []
    await transport.request("GET", "http://broker/", (), b"")  # the first request starts it
    assert app.events == ["lifespan.startup"] and app.scopes[0]["state"] == {"db": "open"}
    app.scopes[0]["state"]["per-request"] = 1  # a request's state is its own copy
    await transport.request("GET", "http://broker/", (), b"")
    assert app.scopes[1]["state"] == {"db": "open"}
    await transport.aclose()
    assert app.events == ["lifespan.startup", "lifespan.shutdown"]
    await transport.aclose()  # once only
    assert app.events == ["lifespan.startup", "lifespan.shutdown"]

    again = Recorder()
    async with ASGITransport(again, lifespan=True):  # explicit start, before any request
        assert again.events == ["lifespan.startup"]
    assert again.events == ["lifespan.startup", "lifespan.shutdown"]


async def test_lifespan_failures() -> None:
    transport = ASGITransport(Recorder(lifespan_fails=True), lifespan=True)
    with pytest.raises(LifespanError, match="no database"):
        await transport.request("GET", "http://broker/", (), b"")
    with pytest.raises(ConnectError):
        await transport.request("GET", "http://broker/", (), b"")

    @contextlib.asynccontextmanager
    async def broken(app: Starlette) -> AsyncIterator[None]:
        raise OSError("disk full")
        yield

    async with NGSIClient("http://app", transport=ASGITransport(Starlette(lifespan=broken), lifespan=True)) as ngsi:
        with pytest.raises(LifespanError, match="disk full"):
            await ngsi.version()

    async def no_lifespan(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            raise ValueError(f"unsupported scope {scope['type']}")
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    with pytest.raises(LifespanError, match="unsupported scope"):
        await ASGITransport(no_lifespan, lifespan=True).start()
    plain = ASGITransport(no_lifespan)  # an app without lifespan is fine when none is asked
    assert (await plain.request("DELETE", "http://x/", (), b"")).status == 204


async def test_disconnect_comes_after_the_response() -> None:
    order: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert (await receive())["type"] == "http.request"

        async def watch() -> None:
            message = await receive()
            order.append(message["type"])

        watcher = asyncio.create_task(watch())
        await asyncio.sleep(0.01)
        order.append("start")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"a", "more_body": True})
        await asyncio.sleep(0.01)
        order.append("more")
        await send({"type": "http.response.body", "body": b"b", "more_body": False})
        await watcher

    response = await ASGITransport(app).request("GET", "http://x/", (), b"")
    assert response.body == b"ab" and order == ["start", "more", "http.disconnect"]


async def test_streaming_and_head() -> None:
    async def stream(request: Request) -> StreamingResponse:
        async def parts() -> AsyncIterator[bytes]:
            for part in (b"one,", b"two,", b"three"):
                yield part

        return StreamingResponse(parts(), media_type="text/plain")

    async def echo(request: Request) -> JSONResponse:
        return JSONResponse({"body": (await request.body()).decode(), "q": dict(request.query_params)})

    app = Starlette(routes=[Route("/stream", stream), Route("/echo", echo, methods=["GET", "HEAD", "POST"])])
    async with NGSIClient("http://app", transport=ASGITransport(app)) as ngsi:
        assert (await ngsi.send("GET", "/stream")).content == b"one,two,three"
        echoed = await ngsi.request("POST", "/echo", params={"a": "x y", "b": [1, 2]}, content="é")
        assert echoed.json() == {"body": "é", "q": {"a": "x y", "b": "2"}}
        head = await ngsi.send("HEAD", "/echo")
        assert head.status_code == 200 and head.content == b"" and int(head.headers["content-length"]) > 0


async def test_app_failures() -> None:
    async def crash(scope: dict[str, Any], receive: Any, send: Any) -> None:
        raise KeyError("bug")

    with pytest.raises(KeyError):
        await ASGITransport(crash).request("GET", "http://x/", (), b"")
    lenient = await ASGITransport(crash, raise_app_exceptions=False).request("GET", "http://x/", (), b"")
    assert lenient.status == 500

    async def crash_midway(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"part", "more_body": True})
        raise KeyError("bug")

    partial = await ASGITransport(crash_midway, raise_app_exceptions=False).request("GET", "http://x/", (), b"")
    assert (partial.status, partial.body) == (200, b"part")

    async def silent(scope: dict[str, Any], receive: Any, send: Any) -> None:
        return

    with pytest.raises(EmptyReply):
        await ASGITransport(silent).request("GET", "http://x/", (), b"")
    async with NGSIClient("http://x", transport=ASGITransport(silent)) as ngsi:
        with pytest.raises(NGSIConnectionError) as nothing:
            await ngsi.version()
    assert nothing.value.reason == "Server returned nothing (no headers, no data)"


async def test_timeout_cancels_the_app() -> None:
    cancelled = asyncio.Event()

    async def slow(scope: dict[str, Any], receive: Any, send: Any) -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    with pytest.raises(Timeout):
        await ASGITransport(slow).request("GET", "http://x/", (), b"", timeout=0.05)
    assert cancelled.is_set()

    async def own_timeout(scope: dict[str, Any], receive: Any, send: Any) -> None:
        raise TimeoutError("the app's own")  # not the transport's timeout: the app's error

    with pytest.raises(TimeoutError, match="the app's own"):
        await ASGITransport(own_timeout).request("GET", "http://x/", (), b"", timeout=5)


async def test_start_cancelled_stops_the_lifespan() -> None:
    stopped = asyncio.Event()

    async def slow_start(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        try:
            await asyncio.sleep(10)
        finally:
            stopped.set()

    transport = ASGITransport(slow_start, lifespan=True)
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(transport.start(), 0.05)
    await asyncio.wait_for(stopped.wait(), 2)
    with pytest.raises(ConnectError):
        await transport.request("GET", "http://x/", (), b"")
    await transport.aclose()
