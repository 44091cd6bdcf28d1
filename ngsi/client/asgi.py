"""An in-process transport: requests go straight to an ASGI app, no socket.

    transport = ASGITransport(broker_app, lifespan=True)
    async with NGSIClient("http://broker", transport=transport) as ngsi:
        await ngsi.create_entity({...})

* The request body goes to the app as one ``http.request`` message (``more_body``
  false); a later ``receive()`` waits until the response is complete and then answers
  ``http.disconnect``. ``http.response.start`` and ``http.response.body`` messages make
  the :class:`~ngsi.client.response.Response` (the same type ``http11`` returns; body
  ignored for ``HEAD`` as a network client would).
* The URL is parsed as ``http11`` parses it (same errors, same percent-encoding of spaces
  and non-ASCII characters); ``Host`` and ``Content-Length`` are added unless given, and a
  header with CR or LF fails with ``http11.BadHeader`` as on the network.
* The app's lifespan runs only with ``lifespan=True``: started by ``start()`` (or
  ``async with``), else by the first request; shut down by ``aclose()``. A lifespan that
  fails raises :class:`LifespanError`. The state the lifespan put in its scope's
  ``"state"`` reaches every request scope (shallow copy), as uvicorn does. Without
  ``lifespan=True`` the caller runs it (e.g. ``app.router.lifespan_context(app)``).
* ``timeout`` bounds the app's handling of the request (``http11.Timeout`` when it
  fires: the app's task is cancelled, as a dropped connection would); ``None``: none.
* An exception of the app propagates (``raise_app_exceptions=True``, httpx's default);
  with ``False`` the answer is what the app had sent, or a 500 if it had sent nothing.
* After ``aclose()`` requests fail with ``http11.ConnectError``, as ``HTTPClient``'s do.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any
from urllib.parse import unquote

from .http11 import BadHeader, ConnectError, EmptyReply, Timeout, parse_url, remember
from .response import Headers, Response

__all__ = ["ASGITransport", "LifespanError"]

ASGIApp = Callable[[dict[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]

_ASGI = {"version": "3.0", "spec_version": "2.3"}
_BODY_METHODS = frozenset(("POST", "PUT", "PATCH"))


class LifespanError(RuntimeError):
    """The app's lifespan startup or shutdown failed (``lifespan.*.failed`` or an exception)."""


class _Target:
    __slots__ = ("scheme", "server", "host", "path", "raw_path", "query")

    def __init__(self, url: str) -> None:
        target = parse_url(url)
        scheme, host, port = target.key
        raw, _, query = target.path.partition("?")
        self.scheme = scheme
        self.server = (host, port)
        self.host = target.host_header.encode("utf-8")
        self.path = unquote(raw)
        self.raw_path = raw.encode("ascii")
        self.query = query.encode("ascii")


class ASGITransport:
    """A ``transport.Transport`` calling ``app`` in-process (see the module text)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        lifespan: bool = False,
        root_path: str = "",
        client: tuple[str, int] = ("127.0.0.1", 123),
        raise_app_exceptions: bool = True,
    ) -> None:
        self.app = app
        self.lifespan = lifespan
        self.root_path = root_path
        self.client = client
        self.raise_app_exceptions = raise_app_exceptions
        self.state: dict[str, Any] = {}  # the lifespan's state, copied into each request scope
        self._targets: dict[str, _Target] = {}
        self._pending = lifespan  # lifespan not started yet
        self._lock: asyncio.Lock | None = None
        self._task: asyncio.Task[None] | None = None
        self._messages: asyncio.Queue[dict[str, Any]] | None = None
        self._startup: asyncio.Future[str | None] | None = None
        self._shutdown: asyncio.Future[str | None] | None = None
        self._closed = False

    async def __aenter__(self) -> ASGITransport:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- lifespan ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Run the app's lifespan startup (``lifespan=True``; once; no-op otherwise)."""
        if not self._pending:
            return
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if not self._pending:
                return
            if self._closed:
                raise ConnectError("transport closed")
            loop = asyncio.get_running_loop()
            self._messages = asyncio.Queue()
            self._startup = loop.create_future()
            self._shutdown = loop.create_future()
            self._messages.put_nowait({"type": "lifespan.startup"})
            self._task = task = loop.create_task(self._run_lifespan())
            try:
                error = await asyncio.shield(self._startup)
            except BaseException:  # cancelled while the app starts: stop it, this transport is done
                self._pending, self._closed, self._task = False, True, None
                task.cancel()
                raise
            self._pending = False
            if error is not None:
                self._closed = True
                raise LifespanError(f"startup failed: {error}")

    async def _run_lifespan(self) -> None:
        assert self._messages is not None and self._startup is not None and self._shutdown is not None
        messages, startup, shutdown = self._messages, self._startup, self._shutdown

        async def receive() -> dict[str, Any]:
            return await messages.get()

        async def send(message: Mapping[str, Any]) -> None:
            kind = message["type"]
            if kind == "lifespan.startup.complete":
                _settle(startup, None)
            elif kind == "lifespan.startup.failed":
                _settle(startup, str(message.get("message", "")) or "lifespan.startup.failed")
            elif kind == "lifespan.shutdown.complete":
                _settle(shutdown, None)
            elif kind == "lifespan.shutdown.failed":
                _settle(shutdown, str(message.get("message", "")) or "lifespan.shutdown.failed")

        scope = {"type": "lifespan", "asgi": _ASGI, "state": self.state}
        try:
            await self.app(scope, receive, send)
        except asyncio.CancelledError:
            _settle(startup, "cancelled")
            _settle(shutdown, "cancelled")
            raise
        except BaseException as exc:  # noqa: BLE001 - reported through start()/aclose()
            _settle(startup, repr(exc))
            _settle(shutdown, repr(exc))
        else:  # the app returned: it does not speak the lifespan protocol, or it is done
            _settle(startup, None)
            _settle(shutdown, None)

    async def aclose(self) -> None:
        """Shut the lifespan down (if this transport started it); later requests fail."""
        if self._closed:
            return
        self._closed = True
        task, self._task = self._task, None
        if task is None:
            return
        assert self._messages is not None and self._shutdown is not None
        if not task.done():
            self._messages.put_nowait({"type": "lifespan.shutdown"})
        error = await self._shutdown
        await task
        if error is not None:
            raise LifespanError(f"shutdown failed: {error}")

    # -- requests ---------------------------------------------------------------------------

    async def request(
        self,
        method: str,
        url: str,
        headers: Iterable[tuple[str, str]] | Mapping[str, str] = (),
        body: bytes = b"",
        timeout: float | None = None,
    ) -> Response:
        if self._pending:
            await self.start()
        if self._closed:
            raise ConnectError("transport closed")
        target = self._targets.get(url)
        if target is None:
            target = remember(self._targets, url, _Target(url))

        raw_headers: list[tuple[bytes, bytes]] = []
        has_host = has_length = False
        if isinstance(headers, Mapping):
            headers = headers.items()
        for name, value in headers:
            if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
                raise BadHeader(repr(name))
            key = name.lower()
            if key == "host":
                has_host = True
            elif key == "content-length":
                has_length = True
            raw_headers.append((key.encode("utf-8"), value.encode("utf-8")))
        if not has_host:
            raw_headers.insert(0, (b"host", target.host))
        if not has_length and (body or method in _BODY_METHODS):
            raw_headers.append((b"content-length", str(len(body)).encode("ascii")))

        scope: dict[str, Any] = {
            "type": "http",
            "asgi": _ASGI,
            "http_version": "1.1",
            "method": method,
            "scheme": target.scheme,
            "path": target.path,
            "raw_path": target.raw_path,
            "query_string": target.query,
            "root_path": self.root_path,
            "headers": raw_headers,
            "client": self.client,
            "server": target.server,
        }
        if self.lifespan:
            scope["state"] = dict(self.state)
        exchange = _Exchange(body, method == "HEAD")
        try:
            if timeout is None:
                await self.app(scope, exchange.receive, exchange.send)
            else:
                async with asyncio.timeout(timeout) as deadline:
                    await self.app(scope, exchange.receive, exchange.send)
        except Exception as exc:
            exchange.finish()
            if timeout is not None and isinstance(exc, TimeoutError) and deadline.expired():
                raise Timeout(f"{method} {url}: the app did not answer within {timeout:g} s") from None
            if self.raise_app_exceptions:
                raise
            if not exchange.status:  # the app failed before answering
                return Response(500, Headers(), b"")
            return Response(exchange.status, exchange.headers, b"".join(exchange.chunks))
        exchange.finish()
        if exchange.status == 0:
            raise EmptyReply(f"{method} {url}: the app sent no response")
        return Response(exchange.status, exchange.headers, b"".join(exchange.chunks))


class _Exchange:
    """One request's ``receive``/``send`` pair and what the app answered."""

    __slots__ = ("body", "head", "sent", "status", "headers", "chunks", "complete", "waiter")

    def __init__(self, body: bytes, head: bool) -> None:
        self.body = body
        self.head = head
        self.sent = False
        self.status = 0
        self.headers = Headers()
        self.chunks: list[bytes] = []
        self.complete = False
        self.waiter: asyncio.Future[None] | None = None

    async def receive(self) -> dict[str, Any]:
        if not self.sent:
            self.sent = True
            return {"type": "http.request", "body": self.body, "more_body": False}
        if not self.complete:  # the app listens for a disconnect: it comes with the response's end
            if self.waiter is None:
                self.waiter = asyncio.get_running_loop().create_future()
            await asyncio.shield(self.waiter)
        return {"type": "http.disconnect"}

    async def send(self, message: Mapping[str, Any]) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            if self.status:
                raise RuntimeError("http.response.start sent twice")
            self.status = int(message["status"])
            headers = self.headers
            for name, value in message.get("headers") or ():
                headers.append((bytes(name).decode("latin-1").lower(), bytes(value).decode("latin-1")))
        elif kind == "http.response.body":
            if not self.status:
                raise RuntimeError("http.response.body before http.response.start")
            if self.complete:
                return
            body = message.get("body", b"")
            if body and not self.head:
                self.chunks.append(bytes(body))
            if not message.get("more_body", False):
                self.finish()

    def finish(self) -> None:
        self.complete = True
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


def _settle(future: asyncio.Future[str | None], value: str | None) -> None:
    if not future.done():
        future.set_result(value)
