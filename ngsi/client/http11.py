"""A lean asyncio HTTP/1.1 client for many small requests to few destinations.

Why not httpx: the broker sends thousands of notifications a second from one event loop,
and httpx spends most of that CPU on generic machinery (pool bookkeeping, backend
detection on every lock, response objects). This client does only what a notifier or
a device gateway needs: one request, one response, keep-alive connections reused.

Interface::

    client = HTTPClient(max_per_host=16)
    response = await client.request("POST", "http://host:1028/notify",
                                    [("Content-Type", "application/json")], b"{...}", timeout=5.0)
    response.status, response.headers, response.body, response.header("content-type")
    await client.aclose()

It is the default transport of ``NGSIClient`` (see ``transport.Transport``); its responses
are ``response.Response`` (also ``status_code``, ``content``, ``json()``, ``headers.get()``).

* One pool per (scheme, host, port), at most ``max_per_host`` connections each, opened at
  most ``max_connecting`` at a time (a burst must not overflow a small server's listen
  backlog, which costs a 1 s SYN retry); a request waits for a free connection when all
  are busy (the wait counts in its timeout).
* ``timeout`` bounds the whole request (connect, send, response), as libcurl's
  CURLOPT_TIMEOUT does for Orion; it closes the connection when it fires. ``None``: no
  bound.
* Responses with Content-Length, chunked, or delimited by the end of the connection;
  ``1xx`` interim answers are skipped; ``Connection: close`` and HTTP/1.0 close after use.
* https through an ``ssl.SSLContext``: the system's CAs and the host name are checked
  by default, ``ssl_context=`` brings other CAs, ``verify=False`` checks nothing (Orion's
  ``-insecureNotif``). IPv6 literals as in ``http://[::1]:1026/``.
* Redirects are never followed: a 3xx is an answer like any other.
* A keep-alive connection the server closed while idle is detected; a request that finds
  its reused connection closed before any byte of answer is retried once on a new one.
* Failures raise :class:`HTTPError` subclasses whose ``reason`` is libcurl's text, which
  Orion reports as a subscription's ``lastFailureReason`` ("Could not connect to server",
  "Could not resolve hostname", "Timeout was reached", ...).

Header names and values are sent as given (UTF-8; a pair or a mapping), but a CR or LF in
one fails the request (:class:`BadHeader`) rather than smuggling a header or a request in;
``Host`` and ``Content-Length`` are added unless given. Spaces, control characters and
non-ASCII characters of the URL's path and query are percent-encoded (UTF-8), the rest is
sent as given. Response header names are lowercased.
"""

from __future__ import annotations

import asyncio
import re
import socket
import ssl
from collections import deque
from dataclasses import dataclass
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar
from urllib.parse import urlsplit

from ..destinations import Gate, Refused
from .response import Headers, Response

__all__ = [
    "HTTPClient",
    "HTTPError",
    "ConnectError",
    "ResolveError",
    "Timeout",
    "ProtocolError",
    "Response",
    "Headers",
    "UnsupportedProtocol",
    "BadURL",
    "BadHeader",
    "SSLFailure",
    "CertificateError",
    "EmptyReply",
    "ReceiveError",
    "parse_url",
]

MAX_HEAD = 64 * 1024  # bytes of status line and headers accepted in a response
DEFAULT_PORTS = {"http": 80, "https": 443}
MEMO_SIZE = 4096  # entries of a memo (``remember``) before it is emptied

_K = TypeVar("_K")
_V = TypeVar("_V")


def remember(memo: dict[_K, _V], key: _K, value: _V) -> _V:
    """Put ``value`` in ``memo`` and return it; a full memo is emptied first.

    For what is worked out again and again for the same few keys (a notifier's URLs, a
    client's query pairs): the lookup stays a plain ``dict.get`` at the call site, and
    emptying at ``MEMO_SIZE`` bounds the memory with no LRU bookkeeping per hit."""
    if len(memo) >= MEMO_SIZE:
        memo.clear()
    memo[key] = value
    return value


class HTTPError(Exception):
    """A request that got no HTTP answer; ``reason`` is libcurl's text for it.

    Each kind of failure is a subclass naming its libcurl text as a class keyword, so
    that the text a subscription's ``lastFailureReason`` shows is where the kind is."""

    reason = "Could not connect to server"

    def __init_subclass__(cls, *, reason: str = "", **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if reason:
            cls.reason = reason

    def __init__(self, detail: str = "") -> None:
        super().__init__(f"{self.reason}: {detail}" if detail else self.reason)
        self.detail = detail


class ConnectError(HTTPError, reason="Could not connect to server"):
    """No connection: refused, unreachable, or the client is closed."""


class DestinationRefused(ConnectError):
    """The destination policy refused the address (ngsi/destinations.py); the detail is its
    reason, which is what a subscription's lastFailureReason shows."""

    def __init__(self, detail: str = "") -> None:
        super().__init__(detail)
        self.reason = detail or "destination refused by the platform's destination policy"


class ResolveError(ConnectError, reason="Could not resolve hostname"):
    """The host name does not resolve."""


class Timeout(HTTPError, reason="Timeout was reached"):
    """The request's ``timeout`` ran out (waiting for a connection, connecting, or the answer)."""


class UnsupportedProtocol(HTTPError, reason="Unsupported protocol"):
    """A URL whose scheme is neither http nor https."""


class BadURL(UnsupportedProtocol, reason="URL using bad/illegal format or missing URL"):
    """A URL that does not parse, has no host, or has a host with unsafe characters."""


class BadHeader(HTTPError, reason="Bad request header"):
    """A request header name or value with CR or LF (or a name that is not a token)."""


class SSLFailure(ConnectError, reason="SSL connect error"):
    """The TLS handshake failed."""


class CertificateError(SSLFailure, reason="SSL peer certificate or SSH remote key was not OK"):
    """The server's certificate is not trusted or not for that host."""


class ProtocolError(HTTPError, reason="Weird server reply"):
    """The server answered something that is not HTTP/1.x."""


class EmptyReply(ProtocolError, reason="Server returned nothing (no headers, no data)"):
    """The connection ended before any byte of the answer."""


class ReceiveError(ProtocolError, reason="Failure when receiving data from the peer"):
    """The connection ended in the middle of the answer."""


@dataclass(slots=True, frozen=True)
class _Target:
    key: tuple[str, str, int]  # scheme, host, port: the pool
    host_header: str
    path: str  # path and query


def parse_url(url: str) -> _Target:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise BadURL(str(exc)) from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise UnsupportedProtocol(f"scheme {parts.scheme!r}")
    host = parts.hostname
    if not host:
        raise BadURL(url)
    if port is None:
        port = DEFAULT_PORTS[scheme]
    netloc = parts.netloc.rpartition("@")[2]
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    if _UNSAFE_TARGET.search(path) is not None:
        path = "".join(c if "!" <= c <= "~" else "".join(f"%{b:02X}" for b in c.encode()) for c in path)
    if _UNSAFE_TARGET.search(netloc) is not None:
        raise BadURL(url)
    return _Target((scheme, host, port), netloc, path)


_UNSAFE_TARGET = re.compile(r"[^!-~]")  # anything but printable ASCII: space, controls, non-ASCII


# -- one connection ---------------------------------------------------------------------------


class _Closed(Exception):
    """The connection ended before the response was complete; ``started``: bytes had come."""

    def __init__(self, started: bool, exc: BaseException | None) -> None:
        super().__init__(str(exc) if exc else "connection closed")
        self.started = started


class _Connection(asyncio.Protocol):
    """One keep-alive connection: a response parser fed by ``data_received``."""

    def __init__(self, key: tuple[str, str, int]) -> None:
        self.key = key
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.buf = bytearray()
        self.waiter: asyncio.Future[Response] | None = None
        self.head_request = False
        self.started = False
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.headers: Headers = Headers()
        self.mode = ""  # "" (head not read) | "length" | "chunked" | "close"
        self.remaining = 0  # body bytes (length) or bytes of the current chunk (chunked)
        self.chunk_state = 0  # 0: size line, 1: data, 2: CRLF after data, 3: trailers
        self.body = bytearray()
        self.keep_alive = True

    # asyncio callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        waiter = self.waiter
        if waiter is None or waiter.done():  # unsolicited bytes: the connection is unusable
            self.close()
            return
        self.started = True
        self.buf += data
        try:
            response = self._parse()
        except ProtocolError as exc:
            self.close()
            waiter.set_exception(exc)
            return
        if response is not None:
            self.waiter = None
            waiter.set_result(response)

    def eof_received(self) -> bool:
        return False  # close the transport; connection_lost settles the waiter

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter, self.waiter = self.waiter, None
        if waiter is None or waiter.done():
            return
        if self.mode == "close":  # body delimited by the end of the connection
            self.keep_alive = False
            waiter.set_result(Response(self.status, self.headers, bytes(self.body) + bytes(self.buf)))
            return
        waiter.set_exception(_Closed(self.started, exc))

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    # one exchange
    def send(self, data: bytes, head_request: bool) -> asyncio.Future[Response]:
        assert self.transport is not None
        waiter: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        self.waiter = waiter
        self.head_request = head_request
        self.started = False
        self._reset()
        self.buf.clear()
        self.transport.write(data)
        return waiter

    # parsing
    def _parse(self) -> Response | None:
        buf = self.buf
        while not self.mode:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_HEAD:
                    raise ProtocolError("response head too long")
                return None
            head = bytes(buf[:end])
            del buf[: end + 4]
            self._read_head(head)
        if self.mode == "length":
            if len(buf) < self.remaining:
                return None
            n = self.remaining
            body = bytes(buf[:n])
            del buf[:n]
            return Response(self.status, self.headers, body)
        if self.mode == "chunked":
            return self._read_chunks()
        self.body += buf  # "close": everything until the end of the connection
        buf.clear()
        return None

    def _read_head(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        status_line = lines[0].split(b" ", 2)
        if len(status_line) < 2 or not status_line[0].startswith(b"HTTP/1."):
            raise ProtocolError(repr(lines[0][:80]))
        try:
            status = int(status_line[1])
        except ValueError:
            raise ProtocolError(repr(lines[0][:80])) from None
        if 100 <= status < 200:  # 100 Continue and friends: the real answer follows
            return
        headers = Headers()
        length: int | None = None
        chunked = False
        connection = ""
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep:
                continue
            key = name.strip().lower().decode("latin-1")
            text = value.strip().decode("latin-1")
            headers.append((key, text))
            if key == "content-length":
                try:
                    length = int(text)
                except ValueError:
                    raise ProtocolError(f"Content-Length {text!r}") from None
            elif key == "transfer-encoding":
                chunked = "chunked" in text.lower()
            elif key == "connection":
                connection = text.lower()
        self.status = status
        self.headers = headers
        if status_line[0] == b"HTTP/1.0":
            self.keep_alive = "keep-alive" in connection
        else:
            self.keep_alive = "close" not in connection
        if self.head_request or status in (204, 304):
            self.mode, self.remaining = "length", 0
        elif chunked:
            self.mode, self.chunk_state = "chunked", 0
        elif length is not None:
            self.mode, self.remaining = "length", length
        else:
            self.mode, self.keep_alive = "close", False

    def _read_chunks(self) -> Response | None:
        buf = self.buf
        while True:
            state = self.chunk_state
            if state == 0:
                end = buf.find(b"\r\n")
                if end < 0:
                    return None
                size_text = bytes(buf[:end]).split(b";", 1)[0].strip()
                del buf[: end + 2]
                try:
                    size = int(size_text, 16)
                except ValueError:
                    raise ProtocolError(f"chunk size {size_text!r}") from None
                if size == 0:
                    self.chunk_state = 3
                else:
                    self.remaining, self.chunk_state = size, 1
            elif state == 1:
                if not buf:
                    return None
                take = min(len(buf), self.remaining)
                self.body += buf[:take]
                del buf[:take]
                self.remaining -= take
                if self.remaining == 0:
                    self.chunk_state = 2
            elif state == 2:
                if len(buf) < 2:
                    return None
                del buf[:2]
                self.chunk_state = 0
            else:  # trailers: lines up to an empty one
                if buf.startswith(b"\r\n"):
                    del buf[:2]
                    return Response(self.status, self.headers, bytes(self.body))
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    return None
                del buf[: end + 4]
                return Response(self.status, self.headers, bytes(self.body))


# -- the client -------------------------------------------------------------------------------


class _Pool:
    __slots__ = ("idle", "count", "connecting", "waiters")

    def __init__(self) -> None:
        self.idle: list[_Connection] = []
        self.count = 0  # open or opening connections
        self.connecting = 0  # being opened
        self.waiters: deque[asyncio.Future[_Connection | None]] = deque()


class HTTPClient:
    """Keep-alive pools per destination; ``request`` is the one call (see the module text)."""

    def __init__(
        self,
        *,
        max_per_host: int = 16,
        verify: bool = True,
        ssl_context: ssl.SSLContext | None = None,
        max_idle: int | None = None,
        max_connecting: int = 2,
        gate: Gate | None = None,
    ) -> None:
        self.max_per_host = max_per_host
        # The destination policy's connection hook (ngsi/destinations.py Gate.connect_to): the
        # addresses a new connection may use, checked when it is opened; refusals raise Refused.
        self.gate = gate
        self.max_connecting = max_connecting
        self.max_idle = max_per_host if max_idle is None else max_idle
        self._verify = verify
        self._ssl = ssl_context
        self._pools: dict[tuple[str, str, int], _Pool] = {}
        self._targets: dict[str, _Target] = {}
        self._closed = False

    # -- public -----------------------------------------------------------------------------

    async def request(
        self,
        method: str,
        url: str,
        headers: Iterable[tuple[str, str]] | Mapping[str, str] = (),
        body: bytes = b"",
        timeout: float | None = 5.0,
        on_sent: Callable[[], None] | None = None,
    ) -> Response:
        """One request and its answer, whatever the status; :class:`HTTPError` when there is none.

        ``on_sent`` is called once the request's bytes are handed to the connection (before
        the answer), for callers that must know a request is on the wire (the notifier)."""
        if self._closed:
            raise ConnectError("client closed")
        target = self._targets.get(url)
        if target is None:
            target = remember(self._targets, url, parse_url(url))
        data = _request_bytes(method, target, headers, body)
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        head_request = method == "HEAD"
        for attempt in (0, 1):
            conn, reused = await self._acquire(target.key, deadline, loop)
            try:
                response = await self._exchange(conn, data, head_request, deadline, loop, on_sent)
            except _Closed as exc:
                self._discard(conn)
                if reused and not exc.started and attempt == 0:
                    continue  # the server closed an idle keep-alive connection: once more, new
                if exc.started:
                    raise ReceiveError(str(exc)) from None
                raise EmptyReply(str(exc)) from None
            except BaseException:
                self._discard(conn)
                raise
            if conn.keep_alive and not conn.closed:
                self._release(conn)
            else:
                self._discard(conn)
            return response
        raise EmptyReply()  # pragma: no cover - the loop returns or raises

    async def __aenter__(self) -> HTTPClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close every connection; waiting requests fail with ConnectError."""
        self._closed = True
        for pool in self._pools.values():
            for conn in pool.idle:
                conn.close()
            pool.idle.clear()
            while pool.waiters:
                waiter = pool.waiters.popleft()
                if not waiter.done():
                    waiter.set_result(None)
        self._pools.clear()

    def connections(self, scheme: str, host: str, port: int) -> tuple[int, int]:
        """(open, idle) connections to a destination (tests, statistics)."""
        pool = self._pools.get((scheme, host, port))
        return (pool.count, len(pool.idle)) if pool else (0, 0)

    # -- connections ------------------------------------------------------------------------

    async def _acquire(
        self, key: tuple[str, str, int], deadline: float | None, loop: asyncio.AbstractEventLoop
    ) -> tuple[_Connection, bool]:
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools[key] = _Pool()
        idle = pool.idle
        while idle:
            conn = idle.pop()
            if not conn.closed:
                return conn, True
            pool.count -= 1
        if pool.count < self.max_per_host and pool.connecting < self.max_connecting:
            pool.count += 1
            pool.connecting += 1
            try:
                return await self._connect(key, deadline, loop), False
            except BaseException:
                pool.count -= 1
                raise
            finally:
                pool.connecting -= 1
                self._wake(pool)  # the next waiter may open a connection of its own now
        waiter: asyncio.Future[_Connection | None] = loop.create_future()
        pool.waiters.append(waiter)
        timer = None if deadline is None else loop.call_at(deadline, _expire, waiter)
        try:
            handed = await waiter
        except BaseException:  # timed out or cancelled: pass on what was handed over meanwhile
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                given = waiter.result()
                if given is not None:
                    self._release(given)
                else:
                    self._wake(pool)
            raise
        finally:
            if timer is not None:
                timer.cancel()
        if handed is None:  # a slot freed up (a connection was discarded) or the client closed
            if self._closed:
                raise ConnectError("client closed")
            return await self._acquire(key, deadline, loop)
        if handed.closed:
            pool.count -= 1
            return await self._acquire(key, deadline, loop)
        return handed, True

    async def _connect(
        self, key: tuple[str, str, int], deadline: float | None, loop: asyncio.AbstractEventLoop
    ) -> _Connection:
        scheme, host, port = key
        context = None
        if scheme == "https":
            context = self._ssl or _default_context(self._verify)
        remaining = None if deadline is None else deadline - loop.time()
        if remaining is not None and remaining <= 0:
            raise Timeout("before connecting")
        address = host
        if self.gate is not None:
            try:
                address = (await self.gate.connect_to(scheme, host, port))[0]
            except Refused as exc:
                if exc.kind == "unresolved":  # a name that does not resolve: curl's text, as Orion shows it
                    raise ResolveError(exc.reason) from None
                raise DestinationRefused(exc.reason) from None
            remaining = None if deadline is None else deadline - loop.time()
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(
                    lambda: _Connection(key), address, port, ssl=context, server_hostname=host if context else None
                ),
                remaining,
            )
        except asyncio.TimeoutError:
            raise Timeout(f"connecting to {host}:{port}") from None
        except socket.gaierror as exc:
            raise ResolveError(f"{host}: {exc}") from None
        except ssl.SSLCertVerificationError as exc:
            raise CertificateError(str(exc)) from None
        except (ssl.SSLError, ssl.CertificateError) as exc:
            raise SSLFailure(str(exc)) from None
        except OSError as exc:
            raise ConnectError(f"{host}:{port}: {exc}") from None
        return conn

    def _release(self, conn: _Connection) -> None:
        pool = self._pools.get(conn.key)
        if pool is None or self._closed:
            conn.close()
            return
        while pool.waiters:
            waiter = pool.waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        if len(pool.idle) >= self.max_idle:
            conn.close()
            pool.count -= 1
            return
        pool.idle.append(conn)

    def _discard(self, conn: _Connection) -> None:
        conn.close()
        pool = self._pools.get(conn.key)
        if pool is not None:
            pool.count -= 1
            self._wake(pool)

    @staticmethod
    def _wake(pool: _Pool) -> None:
        """A connection slot freed up: the first waiter opens its own connection."""
        while pool.waiters:
            waiter = pool.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def _exchange(
        self, conn: _Connection, data: bytes, head_request: bool, deadline: float | None, loop: asyncio.AbstractEventLoop,
        on_sent: Callable[[], None] | None = None,
    ) -> Response:
        if conn.closed:
            raise _Closed(False, None)
        waiter = conn.send(data, head_request)
        if on_sent is not None:
            on_sent()
        if deadline is None:
            return await waiter
        timer = loop.call_at(deadline, _expire, waiter)
        try:
            return await waiter
        finally:
            timer.cancel()


def _expire(waiter: asyncio.Future[Any]) -> None:
    if not waiter.done():
        waiter.set_exception(Timeout())


_CONTEXTS: dict[bool, ssl.SSLContext] = {}


def _default_context(verify: bool) -> ssl.SSLContext:
    context = _CONTEXTS.get(verify)
    if context is None:
        context = ssl.create_default_context()
        if not verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        _CONTEXTS[verify] = context
    return context


def _request_bytes(
    method: str, target: _Target, headers: Iterable[tuple[str, str]] | Mapping[str, str], body: bytes
) -> bytes:
    lines = [f"{method} {target.path} HTTP/1.1\r\n"]
    has_host = has_length = False
    if isinstance(headers, Mapping):
        headers = headers.items()
    for name, value in headers:
        lower = name.lower()
        if lower == "host":
            has_host = True
        elif lower == "content-length":
            has_length = True
        lines.append(f"{name}: {value}\r\n")
    if not has_host:
        lines.insert(1, f"Host: {target.host_header}\r\n")
    if not has_length and (body or method in ("POST", "PUT", "PATCH")):
        lines.append(f"Content-Length: {len(body)}\r\n")
    lines.append("\r\n")
    head = "".join(lines)
    # Each line ends with the one CRLF put there: any other CR or LF came in a name or a
    # value (or the method) and would split the head. Two C-speed counts, no per-header check.
    n = len(lines)
    if head.count("\n") != n or head.count("\r") != n or " " in method or ":" in method:
        raise BadHeader(_bad_header(method, headers))
    return head.encode("utf-8") + body


def _bad_header(method: str, headers: Iterable[tuple[str, str]]) -> str:
    if any(c in method for c in " :\r\n"):
        return f"method {method!r}"
    for name, value in headers:
        if any(c in name or c in value for c in "\r\n"):
            return f"{name!r}"
    return "CR or LF in a header"
