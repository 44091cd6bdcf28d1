"""NGSIClient over its two transports against the real broker: in-process (ASGITransport)
and over the network (http11.HTTPClient, the broker app served by uvicorn in a thread);
then what only loopback servers of our own can show: the query string on the wire,
``send`` to another URL, redirects not followed, timeouts, errors without Orion's body."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import uvicorn

from broker.app import create_app
from broker.config import Config
from ngsi.client import ASGITransport, NGSIClient, NGSIClientError, NGSIConnectionError, Response
from ngsi.client.http11 import HTTPClient, Timeout
from tests.ngsi.test_http11 import Server

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# -- the broker, in-process and served -------------------------------------------------------


@pytest.fixture(scope="module")
def served_broker() -> Iterator[str]:
    """The broker app (memory store) served by uvicorn on a loopback port, in a thread."""
    app = create_app(Config(db_uri="memory://", multiservice=True))
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="on", log_level="warning", loop="asyncio")
    )
    thread = threading.Thread(target=server.run, name="uvicorn-broker", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


@contextlib.asynccontextmanager
async def broker_client(kind: str, url: str | None, **options: Any) -> AsyncIterator[NGSIClient]:
    """A client of a fresh tenant: ``asgi`` (a broker app of its own) or ``http11`` (``url``)."""
    options.setdefault("service", "t" + uuid.uuid4().hex[:12])
    if kind == "asgi":
        app = create_app(Config(db_uri="memory://", multiservice=True))
        async with NGSIClient("http://broker", transport=ASGITransport(app, lifespan=True), **options) as client:
            yield client
    else:
        assert url is not None
        async with NGSIClient(url, **options) as client:
            assert isinstance(client.transport, HTTPClient)
            yield client


@pytest.fixture(params=["asgi", "http11"])
async def ngsi(request: pytest.FixtureRequest, anyio_backend: str) -> AsyncIterator[NGSIClient]:
    url = request.getfixturevalue("served_broker") if request.param == "http11" else None
    async with broker_client(request.param, url) as client:
        yield client


def room(n: int, temperature: float = 20.0) -> dict[str, Any]:
    return {"id": f"Room{n}", "type": "Room", "temperature": {"type": "Number", "value": temperature}}


async def test_entity_lifecycle(ngsi: NGSIClient) -> None:
    assert await ngsi.create_entity(room(1)) == "/v2/entities/Room1?type=Room"
    assert await ngsi.get_entity("Room1", "Room", key_values=True) == {"id": "Room1", "type": "Room", "temperature": 20.0}
    await ngsi.update_attrs("Room1", {"temperature": 21.5, "name": "a b/é"}, key_values=True)
    await ngsi.update_attr("Room1", "temperature", {"type": "Number", "value": 22})
    assert await ngsi.get_entity("Room1", key_values=True, attrs=["temperature", "name"]) == {
        "id": "Room1", "type": "Room", "temperature": 22, "name": "a b/é",
    }
    await ngsi.replace_attrs("Room1", {"humidity": {"type": "Number", "value": 40}})
    assert await ngsi.get_entity("Room1", key_values=True) == {"id": "Room1", "type": "Room", "humidity": 40}
    await ngsi.delete_entity("Room1", "Room")
    with pytest.raises(NGSIClientError) as gone:
        await ngsi.get_entity("Room1")
    assert (gone.value.status, gone.value.error) == (404, "NotFound")
    assert gone.value.description == "The requested entity has not been found. Check type and id"


async def test_ids_that_need_quoting(ngsi: NGSIClient) -> None:
    await ngsi.create_entity({"id": "urn:ngsi-ld:Room:1", "type": "Room", "t": {"type": "Number", "value": 1}})
    assert (await ngsi.get_entity("urn:ngsi-ld:Room:1", key_values=True))["t"] == 1
    await ngsi.delete_entity("urn:ngsi-ld:Room:1")


async def test_query_paging(ngsi: NGSIClient) -> None:
    await ngsi.op_update("append", [room(n, float(n)) for n in range(23)])
    assert [e["id"] for e in await ngsi.query(type="Room", page_size=5)] == [f"Room{n}" for n in range(23)]
    assert len(await ngsi.query(type="Room", limit=9, page_size=4)) == 9
    assert [e["id"] for e in await ngsi.query(type="Room", offset=20, page_size=2)] == ["Room20", "Room21", "Room22"]
    page = await ngsi.query_page(type="Room", limit=3, offset=3, key_values=True, attrs="temperature")
    assert page.total == 23 and [e["temperature"] for e in page.items] == [3.0, 4.0, 5.0]
    warm = await ngsi.query(type="Room", q="temperature>20", key_values=True, order_by="!temperature", page_size=2)
    assert [e["id"] for e in warm] == ["Room22", "Room21"]
    assert await ngsi.count(id_pattern="^Room1") == 11
    found = await ngsi.op_query({"entities": [{"idPattern": "^Room2"}]}, key_values=True, page_size=2)
    assert [e["id"] for e in found] == ["Room2", "Room20", "Room21", "Room22"]


async def test_errors_with_orion_bodies(ngsi: NGSIClient) -> None:
    await ngsi.create_entity(room(1))
    with pytest.raises(NGSIClientError) as dup:
        await ngsi.create_entity(room(1))
    assert (dup.value.status, dup.value.error, dup.value.description) == (422, "Unprocessable", "Already Exists")
    with pytest.raises(NGSIClientError) as bad:
        await ngsi.query(q="temperature>>")
    assert (bad.value.status, bad.value.error) == (400, "BadRequest")


async def test_request_returns_a_response(ngsi: NGSIClient) -> None:
    response = await ngsi.request("POST", "/v2/entities", params={"options": "keyValues"}, json={"id": "E", "type": "T", "a": 1})
    assert isinstance(response, Response)
    assert response.status_code == 201 and response.reason_phrase == "Created"
    assert response.headers.get("Location") == response.headers["location"] == "/v2/entities/E?type=T"
    assert "fiware-correlator" in response.headers and response.content == b"" and response.text == ""
    got = await ngsi.request("GET", "/v2/entities/E", params={"options": "keyValues"})
    assert got.json() == {"id": "E", "type": "T", "a": 1}
    assert got.headers.get("content-type", "").startswith("application/json")
    assert got.text == got.content.decode()


async def test_send_to_the_broker_never_raises(ngsi: NGSIClient) -> None:
    tenant = [("Fiware-Service", str(ngsi.service))]
    created = await ngsi.send(
        "POST", "/v2/op/update?options=keyValues", headers=tenant + [("Content-Type", "application/json")],
        body=b'{"actionType":"append","entities":[{"id":"S1","type":"S","v":1}]}',
    )
    assert created.status_code == 204
    assert (await ngsi.get_entity("S1", key_values=True))["v"] == 1
    missing = await ngsi.send("GET", "/v2/entities/nope", headers=dict(tenant))
    assert missing.status_code == 404 and missing.json()["error"] == "NotFound"
    bad = await ngsi.send("POST", "/v2/entities", headers=tenant, json={"id": "bad id"})
    assert bad.status_code == 400


async def test_http11_client_keeps_one_connection(served_broker: str, anyio_backend: str) -> None:
    async with broker_client("http11", served_broker, max_per_host=4) as ngsi:
        for n in range(20):
            await ngsi.create_entity(room(n))
        await asyncio.gather(*(ngsi.get_entity(f"Room{n}") for n in range(20)))
        transport = ngsi.transport
        assert isinstance(transport, HTTPClient)
        host, port = served_broker.rsplit("/", 1)[1].split(":")
        opened, idle = transport.connections("http", host, int(port))
        assert 1 <= opened <= 4 and idle == opened  # bounded by max_per_host, all kept alive


# -- loopback servers of our own -------------------------------------------------------------


def answer(status: str, body: bytes = b"", *headers: str) -> Any:
    async def respond(request: Any, writer: asyncio.StreamWriter) -> bool:
        head = f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n" + "".join(h + "\r\n" for h in headers)
        writer.write(head.encode() + b"\r\n" + body)
        await writer.drain()
        return True

    return respond


def expected_url(base: str, path: str, params: dict[str, Any]) -> str:
    """What httpx (NGSIClient's former stack) sent for ``params``."""
    import httpx

    return str(httpx.Client(base_url=base).build_request("GET", path, params=params).url)


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/v2/entities", {"type": "Room", "q": "temperature>20;name==a b", "attrs": "a,b", "limit": 7, "offset": 3}),
        ("/v2/entities", {"options": "count,keyValues", "georel": "near;maxDistance:1000", "coords": "40.4,-3.7"}),
        ("/v2/entities", {"mq": "temperature.unit=='C'", "orderBy": "!temperature", "x": True, "y": False, "f": 1.5}),
        ("/v2/entities", {"idPattern": "^Room[0-9]+$", "k": "~*'()!$/:@?&=+#%"}),
        ("/v2/entities", {"l": ["a", "b"], "t": ("c", None), "e": ""}),
        ("/v2/entities/a b\"<>`{}é%20|^[]", {"type": "T"}),
        ("/v2/entities/R#frag", {}),
        ("v2/entities", {"type": "T"}),
        ("/v2/entities", {}),
    ],
)
def test_query_encoding_is_httpx_s(path: str, params: dict[str, Any]) -> None:
    base = "http://127.0.0.1:1026"
    ngsi = NGSIClient(base)
    clean = {k: v for k, v in params.items() if v is not None}
    assert ngsi.url(path, params) == expected_url(base, path, clean)
    assert NGSIClient(base + "/orion/").url(path, params) == expected_url(base + "/orion", path, clean)


async def test_query_string_on_the_wire(anyio_backend: str) -> None:
    async with Server(answer("200 OK", b"[]", "Fiware-Total-Count: 0", "Content-Type: application/json")) as server:
        async with NGSIClient(server.url, service="s", service_path="/p", headers={"X-Auth-Token": "tok"}) as ngsi:
            assert await ngsi.query(type="Room", q="temperature>20;name==a b", attrs=["a", "b"], order_by="!t", key_values=True) == []
            await ngsi.request("POST", "/v2/op/update", params={"options": "upsert,flowControl"}, json={"é": [1.5, None, True]})
    (line, headers, _), (line2, headers2, body2) = server.requests
    params = {"type": "Room", "q": "temperature>20;name==a b", "attrs": "a,b", "orderBy": "!t", "limit": 1000, "options": "count,keyValues"}
    assert line == "GET " + expected_url(server.url, "/v2/entities", params)[len(server.url):] + " HTTP/1.1"
    assert line2 == "POST /v2/op/update?options=upsert%2CflowControl HTTP/1.1"
    assert (headers["fiware-service"], headers["fiware-servicepath"], headers["x-auth-token"]) == ("s", "/p", "tok")
    assert headers["host"] == server.url.split("//")[1] and "content-length" not in headers
    assert headers2["content-type"] == "application/json" and body2 == '{"é":[1.5,null,true]}'.encode()


async def test_per_call_headers_override_the_client_s(anyio_backend: str) -> None:
    async with Server(answer("204 No Content")) as server:
        async with NGSIClient(server.url, service="s", headers={"X-Auth-Token": "client", "X-A": "1"}) as ngsi:
            await ngsi.request("DELETE", "/v2/entities/E", headers={"x-auth-token": "call", "Fiware-Service": "other"})
    _, headers, _ = server.requests[0]
    assert (headers["x-auth-token"], headers["fiware-service"], headers["x-a"]) == ("call", "other", "1")


async def test_send_to_a_provider_returns_every_answer(anyio_backend: str) -> None:
    """Registration forwarding: another URL, extra headers, 4xx/5xx handed back."""
    body = b'{"error":"NotFound","description":"no such entity"}'
    async with Server(answer("404 Not Found", body, "Content-Type: application/json")) as provider:
        async with NGSIClient("http://127.0.0.1:9", service="smart", headers={"X-Auth-Token": "broker-secret"}) as ngsi:
            forwarded = {
                "Fiware-Service": "smart", "Fiware-ServicePath": "/", "X-Auth-Token": "user-token",
                "User-Agent": "orion/4.1.0", "Accept": "application/json",
                "Content-Type": "application/json; charset=utf-8", "Fiware-Correlator": "c-1; cbfwd=1",
            }
            url = provider.url + "/v2/op/query?limit=20&offset=0&options=count"
            response = await ngsi.send("POST", url, headers=forwarded, body=b'{"entities":[{"id":"E"}]}', timeout=5)
            assert response.status_code == 404 and response.json()["description"] == "no such entity"
            second = await ngsi.send("POST", provider.url + "/v2/op/update", headers=list(forwarded.items()), json={"a": 1})
            assert second.status_code == 404
    (line, headers, sent), (line2, headers2, sent2) = provider.requests
    assert line == "POST /v2/op/query?limit=20&offset=0&options=count HTTP/1.1"
    assert headers == {k.lower(): v for k, v in forwarded.items()} | {"host": provider.url.split("//")[1], "content-length": str(len(sent))}
    assert sent == b'{"entities":[{"id":"E"}]}'
    assert line2 == "POST /v2/op/update HTTP/1.1" and sent2 == b'{"a":1}'
    assert headers2["content-type"] == "application/json; charset=utf-8"  # the caller's, not replaced
    assert provider.connections == 1


async def test_send_5xx_and_relative_urls_get_the_client_headers(anyio_backend: str) -> None:
    async with Server(answer("503 Service Unavailable", b"busy", "Content-Type: text/plain")) as server:
        async with NGSIClient(server.url, service="s", headers={"X-Auth-Token": "broker-secret"}) as ngsi:
            response = await ngsi.send("PUT", "/v2/op/update", headers={"Fiware-Service": "s"}, body="é")
            assert (response.status_code, response.text, response.reason_phrase) == (503, "busy", "Service Unavailable")
            await ngsi.send("GET", server.url + "/absolute")  # the same host, but absolute: no client headers
            with pytest.raises(NGSIClientError) as failed:
                await ngsi.request("GET", "/v2/version")
            assert (failed.value.status, failed.value.error, failed.value.description) == (503, "Service Unavailable", "busy")
    (_, headers, body), (_, plain, _), _ = server.requests
    assert headers["x-auth-token"] == "broker-secret" and headers["fiware-service"] == "s" and body == "é".encode()
    assert "x-auth-token" not in plain and "fiware-service" not in plain


async def test_redirects_are_not_followed(anyio_backend: str) -> None:
    async with Server(answer("200 OK", b"{}")) as target:
        location = f"Location: {target.url}/v2/entities"
        async with Server(answer("302 Found", b"", location)) as redirecting:
            async with NGSIClient(redirecting.url) as ngsi:
                response = await ngsi.request("GET", "/v2/entities")
                assert response.status_code == 302 and response.headers.get("location") == target.url + "/v2/entities"
                sent = await ngsi.send("POST", redirecting.url + "/notify", body=b"{}")
                assert sent.status_code == 302
        async with Server(answer("307 Temporary Redirect", b"", location)) as temporary:
            async with NGSIClient(temporary.url) as ngsi:
                assert (await ngsi.send("POST", temporary.url + "/", json={"a": 1})).status_code == 307
    assert target.requests == [] and len(redirecting.requests) == 2


async def test_redirect_in_process_is_not_followed(anyio_backend: str) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        await send({"type": "http.response.start", "status": 301, "headers": [(b"location", b"/elsewhere")]})
        await send({"type": "http.response.body", "body": b""})

    async with NGSIClient("http://app", transport=ASGITransport(app)) as ngsi:
        assert (await ngsi.send("GET", "/x")).headers["Location"] == "/elsewhere"


async def test_timeouts(anyio_backend: str) -> None:
    release = asyncio.Event()

    async def never(request: Any, writer: asyncio.StreamWriter) -> bool:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(release.wait(), 10)
        return False

    loop = asyncio.get_running_loop()
    async with Server(never) as server:
        async with NGSIClient(server.url, timeout=0.2) as ngsi:
            began = loop.time()
            with pytest.raises(NGSIConnectionError) as client_timeout:
                await ngsi.get_entity("E")
            assert 0.15 < loop.time() - began < 2
            assert client_timeout.value.reason == "Timeout was reached"
            assert isinstance(client_timeout.value.__cause__, Timeout)
            began = loop.time()
            with pytest.raises(NGSIConnectionError) as call_timeout:
                await ngsi.send("POST", server.url + "/notify", body=b"x", timeout=0.05)
            assert loop.time() - began < 1 and call_timeout.value.reason == "Timeout was reached"
        release.set()

    async def slow_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await asyncio.sleep(10)

    async with NGSIClient("http://app", transport=ASGITransport(slow_app), timeout=0.1) as ngsi:
        began = loop.time()
        with pytest.raises(NGSIConnectionError) as in_process:
            await ngsi.version()
        assert loop.time() - began < 2 and in_process.value.reason == "Timeout was reached"


async def test_no_timeout(anyio_backend: str) -> None:
    async def late(request: Any, writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(0.1)
        return await answer("200 OK", b'{"orion":{}}')(request, writer)

    async with Server(late) as server:
        async with NGSIClient(server.url, timeout=None) as ngsi:
            assert await ngsi.version() == {"orion": {}}
            assert (await ngsi.send("GET", server.url + "/version", timeout=None)).status_code == 200


async def test_connection_failures(anyio_backend: str) -> None:
    from tests.conftest import free_port

    port = free_port()
    async with NGSIClient("http://127.0.0.1:9") as ngsi:
        with pytest.raises(NGSIConnectionError) as refused:
            await ngsi.send("POST", f"http://127.0.0.1:{port}/v2/op/query", body=b"{}")
        assert refused.value.status == 0 and refused.value.reason == "Could not connect to server"
        with pytest.raises(NGSIConnectionError) as bad_scheme:
            await ngsi.send("GET", "ftp://127.0.0.1/")
        assert bad_scheme.value.reason == "Unsupported protocol"
    async with NGSIClient(f"http://127.0.0.1:{port}") as ngsi:
        with pytest.raises(NGSIClientError) as down:  # callers catching NGSIClientError see it too
            await ngsi.op_update("append", [room(1)])
        assert down.value.status == 0
    closed = NGSIClient(f"http://127.0.0.1:{port}")
    await closed.aclose()
    with pytest.raises(NGSIConnectionError):
        await closed.version()


async def test_error_without_orion_body(anyio_backend: str) -> None:
    async with Server(answer("500 Internal Server Error", b"<html>boom</html>", "Content-Type: text/html")) as server:
        async with NGSIClient(server.url) as ngsi:
            with pytest.raises(NGSIClientError) as failed:
                await ngsi.get_entity("E")
    assert (failed.value.status, failed.value.error, failed.value.description) == (500, "Internal Server Error", "<html>boom</html>")
