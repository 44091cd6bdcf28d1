"""ngsi.client.http11 against real asyncio servers on loopback: framing (Content-Length,
chunked, end of connection), keep-alive reuse, servers that close, timeouts, failures,
IPv6 literals, https with certificate checks, request heads that cannot be smuggled."""

from __future__ import annotations

import asyncio
import shutil
import socket
import ssl
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from ngsi.client.http11 import (
    BadHeader,
    BadURL,
    CertificateError,
    ConnectError,
    EmptyReply,
    HTTPClient,
    ResolveError,
    Response,
    Timeout,
    UnsupportedProtocol,
    parse_url,
)

pytestmark = pytest.mark.anyio  # each test on a fresh event loop, as asyncio.run gives

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


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

    def __init__(
        self, answer: Callable[..., Awaitable[bool]], host: str = "127.0.0.1", tls: ssl.SSLContext | None = None
    ) -> None:
        self.answer = answer
        self.host = host
        self.tls = tls
        self.connections = 0
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> Server:
        self.server = await asyncio.start_server(self._serve, self.host, 0, ssl=self.tls)
        self.port = self.server.sockets[0].getsockname()[1]
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.url = f"{'https' if self.tls else 'http'}://{host}:{self.port}"
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


Answer = Callable[[tuple[str, dict[str, str], bytes], asyncio.StreamWriter], Awaitable[bool]]


def fixed(response: bytes, keep_alive: bool = True) -> Answer:
    """An ``answer`` writing the same bytes to every request; ``keep_alive=False`` closes
    the connection after them."""

    async def write(request: object, writer: asyncio.StreamWriter) -> bool:
        writer.write(response)
        await writer.drain()
        return keep_alive

    return write


def late(seconds: float, body: bytes | None = None) -> Answer:
    """``ok``, ``seconds`` late (only to requests whose body is ``body``, when given)."""

    async def answer(request: tuple[str, dict[str, str], bytes], writer: asyncio.StreamWriter) -> bool:
        if body is None or request[2] == body:
            await asyncio.sleep(seconds)
        return await ok(request, writer)

    return answer


async def test_content_length_and_keep_alive_reuse() -> None:
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


async def test_chunked_response_and_interim_100() -> None:
    async def chunked(request: object, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n")
        await writer.drain()
        await asyncio.sleep(0.01)  # the rest in another segment
        writer.write(b"7\r\n, world\r\n0\r\nX-Trailer: t\r\n\r\n")
        await writer.drain()
        return True

    async with Server(chunked) as server:
        client = HTTPClient()
        first = await client.request("GET", server.url + "/")
        second = await client.request("GET", server.url + "/")
        assert first.status == second.status == 200
        assert first.body == second.body == b"hello, world"
        assert server.connections == 1
        await client.aclose()


async def test_body_until_close_and_connection_close() -> None:
    async with Server(fixed(b"HTTP/1.0 200 OK\r\n\r\nall of it", keep_alive=False)) as server:
        client = HTTPClient()
        for _ in range(2):
            response = await client.request("GET", server.url + "/")
            assert response.body == b"all of it"
        assert server.connections == 2  # no keep-alive without a length
        assert client.connections("http", "127.0.0.1", server.port) == (0, 0)
        await client.aclose()


async def test_server_closing_idle_connection_is_retried_on_a_new_one() -> None:
    # closes after one answer although it announced keep-alive
    async with Server(fixed(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", keep_alive=False)) as server:
        client = HTTPClient()
        assert (await client.request("POST", server.url + "/", body=b"1")).body == b"ok"
        await asyncio.sleep(0.05)  # the close reaches the client while the connection is idle
        assert (await client.request("POST", server.url + "/", body=b"2")).body == b"ok"
        assert [r[2] for r in server.requests] == [b"1", b"2"]  # each sent once
        await client.aclose()


async def test_server_closing_without_answer_is_an_empty_reply() -> None:
    async def hang_up(request: object, writer: asyncio.StreamWriter) -> bool:
        return False

    async with Server(hang_up) as server:
        client = HTTPClient()
        with pytest.raises(EmptyReply) as caught:
            await client.request("POST", server.url + "/", body=b"x")
        assert caught.value.reason == "Server returned nothing (no headers, no data)"
        assert len(server.requests) == 1  # a fresh connection is not retried
        await client.aclose()


async def test_timeout_closes_the_connection_and_frees_the_slot() -> None:
    async with Server(late(1.0, body=b"slow")) as server:
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


async def test_requests_beyond_the_limit_wait_for_a_connection() -> None:
    async with Server(late(0.02)) as server:
        client = HTTPClient(max_per_host=3)
        bodies = [b"%d" % i for i in range(12)]
        responses = await asyncio.gather(*(client.request("POST", server.url + "/", body=b) for b in bodies))
        assert [r.body for r in responses] == [b"echo:" + b for b in bodies]
        assert server.connections == 3
        await client.aclose()


async def test_connection_refused_and_unknown_host_and_bad_scheme() -> None:
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


async def test_no_timeout_and_mapping_headers() -> None:
    async with Server(late(0.05)) as server:
        async with HTTPClient() as client:
            response = await client.request("PUT", server.url + "/a", {"X-Map": "m", "Host": "virtual"}, b"b", timeout=None)
            assert response.body == b"echo:b"
            empty = await client.request("POST", server.url + "/a", timeout=None)
            assert empty.status == 201
    (_, headers, _), (_, posted, _) = server.requests
    assert headers["x-map"] == "m" and headers["host"] == "virtual"  # a given Host is not doubled
    assert posted["content-length"] == "0"


async def test_response_has_the_httpx_names() -> None:
    body = '{"a":"é"}'.encode()
    json_answer = fixed(b"HTTP/1.1 404 Whatever\r\nContent-Type: application/json\r\nX-Twice: 1\r\nX-Twice: 2\r\n"
                        b"Content-Length: %d\r\n\r\n%s" % (len(body), body))

    async with Server(json_answer) as server:
        async with HTTPClient() as client:
            response = await client.request("GET", server.url + "/")
    assert isinstance(response, Response)
    assert (response.status_code, response.reason_phrase, response.content) == (404, "Not Found", '{"a":"é"}'.encode())
    assert response.json() == {"a": "é"} and response.text == '{"a":"é"}' and not response.is_success
    assert response.headers.get("Content-Type") == response.headers["CONTENT-TYPE"] == "application/json"
    assert "x-twice" in response.headers and response.headers.get_list("X-Twice") == ["1", "2"]
    assert response.headers.get("missing", "d") == "d" and response.headers[0] == ("content-type", "application/json")
    with pytest.raises(KeyError):
        response.headers["missing"]
    with pytest.raises(ValueError):
        Response(200, [("Content-Type", "text/plain")], b"not json").json()
    assert Response(200, [("Content-Type", "text/plain; charset=latin-1")], "é".encode("latin-1")).text == "é"


async def test_redirects_are_answers() -> None:
    redirect = b"HTTP/1.1 301 Moved Permanently\r\nLocation: http://127.0.0.1:1/\r\nContent-Length: 0\r\n\r\n"
    async with Server(fixed(redirect)) as server:
        async with HTTPClient() as client:
            response = await client.request("POST", server.url + "/", body=b"x")
    assert response.status == 301 and response.header("location") == "http://127.0.0.1:1/"
    assert len(server.requests) == 1


async def test_header_injection_is_refused_before_sending() -> None:
    async with Server(ok) as server:
        async with HTTPClient() as client:
            for headers in (
                [("X-A", "1\r\nX-Injected: yes")],
                [("X-A", "1\nX-Injected: yes")],
                [("X-A", "1\r")],
                [("X-A\r\nX-B", "1")],
                {"X-A": "\r\n\r\nGET /smuggled HTTP/1.1"},
            ):
                with pytest.raises(BadHeader) as caught:
                    await client.request("POST", server.url + "/", headers, b"x")
                assert caught.value.reason == "Bad request header"
            with pytest.raises(BadHeader):
                await client.request("GET / HTTP/1.1\r\nX:", server.url + "/")
            assert (await client.request("POST", server.url + "/", [("X-A", "fine: é")], b"x")).status == 201
    assert server.connections == 1 and len(server.requests) == 1
    assert server.requests[0][1]["x-a"] == "fine: é"  # sent as UTF-8 (the test server decodes UTF-8)


async def test_url_is_made_a_valid_request_target() -> None:
    async with Server(ok) as server:
        async with HTTPClient() as client:
            await client.request("GET", server.url + "/a b/é?q=x y&r=%20#fragment")
            await client.request("GET", server.url + "?only=query")
            await client.request("GET", "HTTP://user:pw@127.0.0.1:%d" % server.port)
            with pytest.raises(BadURL):
                await client.request("GET", "http://127.0.0.1:99999/")
            with pytest.raises(BadURL):
                await client.request("GET", "http:///path")
    lines = [line for line, _, _ in server.requests]
    assert lines == ["GET /a%20b/%C3%A9?q=x%20y&r=%20 HTTP/1.1", "GET /?only=query HTTP/1.1", "GET / HTTP/1.1"]
    assert server.requests[2][1]["host"] == f"127.0.0.1:{server.port}"  # no credentials in Host


def _ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback on this machine")
async def test_ipv6_literal() -> None:
    async with Server(ok, host="::1") as server:
        assert server.url.startswith("http://[::1]:")
        async with HTTPClient() as client:
            for i in range(3):
                response = await client.request("POST", server.url + "/v2/notify?x=1", [], b"%d" % i)
                assert response.body == b"echo:%d" % i
            assert client.connections("http", "::1", server.port) == (1, 1)
    line, headers, _ = server.requests[0]
    assert line == "POST /v2/notify?x=1 HTTP/1.1" and headers["host"] == f"[::1]:{server.port}"
    assert server.connections == 1
    default_port = parse_url("https://[::1]/v2")
    assert (default_port.key, default_port.host_header, default_port.path) == (("https", "::1", 443), "[::1]", "/v2")


# -- https ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A test CA and two server certificates it signed: one for localhost and 127.0.0.1
    (and ::1), one for another name only. Made with the openssl command."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is not installed")
    d = tmp_path_factory.mktemp("tls")

    def run_openssl(*args: str) -> None:
        subprocess.run([openssl, *args], cwd=d, check=True, capture_output=True)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run_openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=waziup test CA",
                "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    for name, san in (("server", "DNS:localhost,IP:127.0.0.1,IP:::1"), ("other", "DNS:other.example")):
        (d / f"{name}.ext").write_text(
            f"subjectAltName={san}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n"
        )
        run_openssl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}")
        run_openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                    "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext")
    return {"ca": d / "ca.pem", "server": d / "server.pem", "server_key": d / "server.key",
            "other": d / "other.pem", "other_key": d / "other.key"}


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


async def test_https_checks_the_certificate(certificates: dict[str, Path]) -> None:
    trusting = ssl.create_default_context(cafile=str(certificates["ca"]))

    tls = server_context(certificates["server"], certificates["server_key"])
    async with Server(ok, tls=tls) as server:
        async with HTTPClient(ssl_context=trusting) as client:
            for host in ("127.0.0.1", "localhost"):
                response = await client.request("POST", f"https://{host}:{server.port}/n", [], b"tls")
                assert response.status == 201 and response.body == b"echo:tls"
            again = await client.request("POST", f"https://127.0.0.1:{server.port}/n", [], b"again")
            assert again.body == b"echo:again"
            assert client.connections("https", "127.0.0.1", server.port) == (1, 1)  # kept alive
        async with HTTPClient() as system_cas:  # the system's CAs do not know the test CA
            with pytest.raises(CertificateError) as untrusted:
                await system_cas.request("GET", server.url + "/")
            assert untrusted.value.reason == "SSL peer certificate or SSH remote key was not OK"
            assert isinstance(untrusted.value, ConnectError)
        async with HTTPClient(verify=False) as insecure:  # Orion's -insecureNotif
            assert (await insecure.request("POST", server.url + "/", [], b"x")).body == b"echo:x"
        async with HTTPClient() as plain:
            with pytest.raises((EmptyReply, ConnectError)):  # http to a TLS port: no HTTP answer
                await plain.request("GET", f"http://127.0.0.1:{server.port}/", timeout=2)
    assert server.requests[0][1]["host"] == f"127.0.0.1:{server.port}"

    wrong = server_context(certificates["other"], certificates["other_key"])
    async with Server(ok, tls=wrong) as server:
        async with HTTPClient(ssl_context=trusting) as client:
            with pytest.raises(CertificateError) as mismatch:  # trusted CA, another host's certificate
                await client.request("GET", server.url + "/")
            assert "match" in str(mismatch.value) or "mismatch" in str(mismatch.value)


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback on this machine")
async def test_https_to_an_ipv6_literal(certificates: dict[str, Path]) -> None:
    tls = server_context(certificates["server"], certificates["server_key"])
    async with Server(ok, host="::1", tls=tls) as server:
        async with HTTPClient(ssl_context=ssl.create_default_context(cafile=str(certificates["ca"]))) as client:
            assert (await client.request("POST", server.url + "/", [], b"6")).body == b"echo:6"
