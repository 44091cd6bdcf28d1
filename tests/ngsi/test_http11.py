"""ngsi.client.http11 against real asyncio servers on loopback: framing (Content-Length,
chunked, end of connection), keep-alive reuse, servers that close, timeouts, failures."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable

import pytest

from ngsi.client.http11 import (
    ConnectError,
    EmptyReply,
    HTTPClient,
    ResolveError,
    Timeout,
    UnsupportedProtocol,
)

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def read_request(reader: asyncio.StreamReader) -> tuple[str, dict[str, str], bytes] | None:
    """One request from the client: (request line, lowercase headers, body); None at EOF."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    lines = head.decode().split("\r\n")
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", 0)))
    return lines[0], headers, body


class Server:
    """A loopback server running ``answer(request, writer)`` for every request of every connection."""

    def __init__(self, answer: Callable[..., Awaitable[bool]]) -> None:
        self.answer = answer
        self.connections = 0
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> Server:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while (request := await read_request(reader)) is not None:
                self.requests.append(request)
                if not await self.answer(request, writer):
                    break
        finally:
            writer.close()


async def ok(request: tuple[str, dict[str, str], bytes], writer: asyncio.StreamWriter) -> bool:
    body = b"echo:" + request[2]
    writer.write(b"HTTP/1.1 201 Created\r\nContent-Length: %d\r\nX-A: 1\r\n\r\n%s" % (len(body), body))
    await writer.drain()
    return True


def run(coro: Awaitable[None]) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


def test_content_length_and_keep_alive_reuse() -> None:
    async def scenario() -> None:
        async with Server(ok) as server:
            client = HTTPClient()
            for i in range(5):
                response = await client.request(
                    "POST", server.url + "/notify?x=1", [("Content-Type", "text/plain"), ("Fiware-Service", "t")],
                    b"hello %d" % i,
                )
                assert response.status == 201
                assert response.body == b"echo:hello %d" % i
                assert response.header("x-a") == "1"
            assert server.connections == 1  # one keep-alive connection for all five
            line, headers, _ = server.requests[0]
            assert line == "POST /notify?x=1 HTTP/1.1"
            assert headers["host"] == f"127.0.0.1:{server.port}"
            assert headers["fiware-service"] == "t" and headers["content-length"] == "7"
            assert client.connections("http", "127.0.0.1", server.port) == (1, 1)
            await client.aclose()

    run(scenario())


def test_chunked_response_and_interim_100() -> None:
    async def chunked(request: object, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n")
        await writer.drain()
        await asyncio.sleep(0.01)  # the rest in another segment
        writer.write(b"7\r\n, world\r\n0\r\nX-Trailer: t\r\n\r\n")
        await writer.drain()
        return True

    async def scenario() -> None:
        async with Server(chunked) as server:
            client = HTTPClient()
            first = await client.request("GET", server.url + "/")
            second = await client.request("GET", server.url + "/")
            assert first.status == second.status == 200
            assert first.body == second.body == b"hello, world"
            assert server.connections == 1
            await client.aclose()

    run(scenario())


def test_body_until_close_and_connection_close() -> None:
    async def until_close(request: object, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.0 200 OK\r\n\r\nall of it")
        await writer.drain()
        return False

    async def scenario() -> None:
        async with Server(until_close) as server:
            client = HTTPClient()
            for _ in range(2):
                response = await client.request("GET", server.url + "/")
                assert response.body == b"all of it"
            assert server.connections == 2  # no keep-alive without a length
            assert client.connections("http", "127.0.0.1", server.port) == (0, 0)
            await client.aclose()

    run(scenario())


def test_server_closing_idle_connection_is_retried_on_a_new_one() -> None:
    async def once(request: object, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        return False  # closes after one answer although it announced keep-alive

    async def scenario() -> None:
        async with Server(once) as server:
            client = HTTPClient()
            assert (await client.request("POST", server.url + "/", body=b"1")).body == b"ok"
            await asyncio.sleep(0.05)  # the close reaches the client while the connection is idle
            assert (await client.request("POST", server.url + "/", body=b"2")).body == b"ok"
            assert [r[2] for r in server.requests] == [b"1", b"2"]  # each sent once
            await client.aclose()

    run(scenario())


def test_server_closing_without_answer_is_an_empty_reply() -> None:
    async def hang_up(request: object, writer: asyncio.StreamWriter) -> bool:
        return False

    async def scenario() -> None:
        async with Server(hang_up) as server:
            client = HTTPClient()
            with pytest.raises(EmptyReply) as caught:
                await client.request("POST", server.url + "/", body=b"x")
            assert caught.value.reason == "Server returned nothing (no headers, no data)"
            assert len(server.requests) == 1  # a fresh connection is not retried
            await client.aclose()

    run(scenario())


def test_timeout_closes_the_connection_and_frees_the_slot() -> None:
    async def slow(request: tuple[str, dict[str, str], bytes], writer: asyncio.StreamWriter) -> bool:
        if request[2] == b"slow":
            await asyncio.sleep(1.0)
        return await ok(request, writer)

    async def scenario() -> None:
        async with Server(slow) as server:
            client = HTTPClient(max_per_host=1)
            loop = asyncio.get_running_loop()
            began = loop.time()
            with pytest.raises(Timeout) as caught:
                await client.request("POST", server.url + "/", body=b"slow", timeout=0.2)
            assert caught.value.reason == "Timeout was reached"
            assert loop.time() - began < 0.8
            # the only slot is free again: the next request opens a new connection
            response = await client.request("POST", server.url + "/", body=b"fast", timeout=2.0)
            assert response.body == b"echo:fast"
            assert server.connections == 2
            await client.aclose()

    run(scenario())


def test_requests_beyond_the_limit_wait_for_a_connection() -> None:
    async def slowish(request: tuple[str, dict[str, str], bytes], writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(0.02)
        return await ok(request, writer)

    async def scenario() -> None:
        async with Server(slowish) as server:
            client = HTTPClient(max_per_host=3)
            bodies = [b"%d" % i for i in range(12)]
            responses = await asyncio.gather(*(client.request("POST", server.url + "/", body=b) for b in bodies))
            assert [r.body for r in responses] == [b"echo:" + b for b in bodies]
            assert server.connections == 3
            await client.aclose()

    run(scenario())


def test_connection_refused_and_unknown_host_and_bad_scheme() -> None:
    async def scenario() -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]  # nobody listens there
        client = HTTPClient()
        with pytest.raises(ConnectError) as refused:
            await client.request("POST", f"http://127.0.0.1:{port}/", body=b"x")
        assert refused.value.reason == "Could not connect to server"
        with pytest.raises(ResolveError) as unknown:
            await client.request("POST", "http://no-such-host.invalid/", body=b"x")
        assert unknown.value.reason == "Could not resolve hostname"
        with pytest.raises(UnsupportedProtocol):
            await client.request("POST", "ftp://127.0.0.1/", body=b"x")
        await client.aclose()

    run(scenario())
