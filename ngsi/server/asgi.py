"""The request seam for services built on Starlette (the IoT agent, and those to come).

``GuardLayer`` wraps the app: it builds the request context (``scope["state"]["ctx"]``,
where handlers take it from), runs the guards, and answers a rejection itself. The
broker's own front end does the same in its single pass (``broker/front.py``).

It also bounds what any request may cost, whoever reads its body (a guard or the app):
with ``too_large`` given, a body over ``max_body`` bytes (declared, or as it arrives) is
answered by ``too_large`` and never held whole in memory; with ``timed_out`` and
``body_timeout`` given, a body that does not arrive within ``body_timeout`` seconds (a
client stalled mid-body) is answered by ``timed_out`` and the connection closed, instead
of holding it, and the worker's memory, for ever.

Before the app, uvicorn itself has no deadline for a request's head: ``GuardedHttpProtocol``
(uvicorn's ``http=`` protocol) adds one, a bound on its size, and answers what llhttp
cannot parse in the service's error shape.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Callable, Sequence

from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http import httptools_impl
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ..context import RequestContext, from_headers
from ..numbers import parse_uint
from .correlator import first_values, new_correlator
from .guards import BodyTimeout, ClientGone, Guard, Incoming, PayloadTooLarge, run_guards, timed
from .reply import RawHeaders, Reply

log = logging.getLogger("waziup.seam")

ContextFactory = Callable[[dict[str, str], str], RequestContext]
ErrorReply = Callable[[PayloadTooLarge], Reply]
TimeoutReply = Callable[[BodyTimeout], Reply]
_CLOSE = (b"connection", b"close")


def context_of(scope: Scope) -> RequestContext:
    """The request's context as the layer left it (a plain one when there is no layer)."""
    state = scope.get("state") or {}
    ctx = state.get("ctx")
    if ctx is None:
        headers = first_values(scope.get("headers") or [])
        ctx = from_headers(headers, headers.get("fiware-correlator") or new_correlator())
    return ctx


def bounded(receive: Receive, limit: int) -> Receive:
    """``receive``, raising PayloadTooLarge as soon as the body passes ``limit`` bytes."""
    size = 0

    async def counting() -> Message:
        nonlocal size
        message = await receive()
        if message["type"] == "http.request":
            size += len(message.get("body", b""))
            if size > limit:
                raise PayloadTooLarge(size, limit)
        return message

    return counting


class ResponseWatch:
    """``send`` that notes whether the response has begun.

    A middleware that answers an error itself may do so only while nothing of the
    response has gone out; after ``http.response.start`` all it can do is let the
    error end the connection. Used by ``GuardLayer`` and the identity manager's
    last-resort handler."""

    __slots__ = ("send", "started")

    def __init__(self, send: Send) -> None:
        self.send = send
        self.started = False

    async def __call__(self, message: Message) -> None:
        self.started = self.started or message["type"] == "http.response.start"
        await self.send(message)


class GuardLayer:
    def __init__(
        self,
        app: ASGIApp,
        guards: Sequence[Guard] = (),
        *,
        context: ContextFactory | None = None,
        too_large: ErrorReply | None = None,
        max_body: int = 1 << 20,
        timed_out: TimeoutReply | None = None,
        body_timeout: float = 0.0,
    ) -> None:
        self.app = app
        self.guards = list(guards)
        self.context = context or (lambda headers, correlator: from_headers(headers, correlator))
        self.too_large = too_large
        self.max_body = max_body
        self.timed_out = timed_out
        self.body_timeout = body_timeout if timed_out is not None else 0.0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = first_values(scope["headers"])
        ctx = self.context(headers, headers.get("fiware-correlator") or new_correlator())
        state = scope.setdefault("state", {})
        state["ctx"] = ctx
        if self.too_large is not None:
            length = headers.get("content-length")
            declared = None if length is None else parse_uint(length, cap=2**64)
            if declared is not None and declared > self.max_body:
                await self.too_large(PayloadTooLarge(declared, self.max_body)).send(send)
                return
            receive = bounded(receive, self.max_body)
        receive = timed(receive, self.body_timeout)
        watched = ResponseWatch(send)
        try:
            await self._guarded(scope, receive, watched, headers, ctx)
        except (PayloadTooLarge, BodyTimeout) as exc:
            reply = self._refusal(exc)
            if reply is None or watched.started:
                raise
            await reply.send(send, [_CLOSE] if isinstance(exc, BodyTimeout) else None)

    def _refusal(self, exc: Exception) -> Reply | None:
        if isinstance(exc, PayloadTooLarge):
            return None if self.too_large is None else self.too_large(exc)
        assert isinstance(exc, BodyTimeout)
        return None if self.timed_out is None else self.timed_out(exc)

    async def _guarded(
        self, scope: Scope, receive: Receive, send: Send, headers: dict[str, str], ctx: RequestContext
    ) -> None:
        state = scope["state"]
        if not self.guards:
            await self.app(scope, receive, send)
            return
        incoming = Incoming(
            scope["method"], scope["path"], scope.get("query_string", b""), headers, scope.get("client"), ctx, receive,
            self.max_body,
        )
        try:
            rejection, extra = await run_guards(self.guards, incoming)
        except ClientGone:
            return
        if rejection is not None:
            await rejection.send(send, extra)
            return
        state["ctx"] = incoming.ctx
        await self.app(scope, incoming.receive(), _adding(send, extra) if extra else send)


def _adding(send: Send, extra: RawHeaders) -> Send:
    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = dict(message)
            message["headers"] = list(message.get("headers") or []) + extra
        await send(message)

    return sending


# -- below the app: uvicorn's protocol ---------------------------------------------------------


def raw_response(status: int, body: bytes, headers: Sequence[tuple[bytes, bytes]] = ()) -> bytes:
    """A whole JSON HTTP/1.1 response that closes the connection, for the protocol to write
    itself (no app involved); the status line is uvicorn's (a service may have set its own
    reason phrases there)."""
    lines = [httptools_impl.STATUS_LINE[status], b"content-type: application/json\r\n",
             b"content-length: " + str(len(body)).encode() + b"\r\n"]
    lines.extend(name + b": " + value + b"\r\n" for name, value in headers)
    lines.append(b"connection: close\r\n\r\n")
    return b"".join(lines) + body


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, bounded before the app sees a request.

    uvicorn times out nothing before a request's head is complete: a connection that sends
    nothing, or half a header line and then a byte now and then (slowloris), holds a
    connection and its buffers for ever, and a header line that never ends grows without
    limit. Here a client has ``head_timeout`` seconds from the connection, or from the end
    of the previous response, to send a complete head: past it an idle connection is
    closed, a partial head gets 408 and a close. A head past ``head_limit`` bytes gets 431
    and a close. What llhttp cannot parse gets 400 and a close, as in uvicorn, but in the
    service's shape (``refusal``; uvicorn's is ``text/plain``). The body has its own
    deadline, in the app (``GuardLayer``, or the service's front end).

    Settings are class attributes: uvicorn builds one protocol per connection from the
    class, so a service sets them once at start-up (or subclasses).
    """

    head_timeout: float = 0.0  # seconds; 0: no deadline
    head_limit: int = 64 * 1024  # bytes of request line and headers (Orion's -connectionMemory default)
    _at_message_start = True
    _in_head = False  # from a request's first byte to the end of its headers
    _head_size = 0
    _head_too_large = False
    _head_timer: asyncio.TimerHandle | None = None

    def refusal(self, status: int, description: str) -> bytes:
        """The whole response for a request refused here (400, 408, 431); services override
        it for their error shape."""
        body = json.dumps({"error": httptools_impl.STATUS_LINE[status][13:-2].decode(), "description": description})
        return raw_response(status, body.encode())

    def _refuse(self, status: int, description: str) -> None:
        self._cancel_head_timer()
        self.transport.write(self.refusal(status, description))
        self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        was_in_head = self._in_head
        super().data_received(data)
        if self._in_head and self.parser is not None and not self.transport.is_closing():
            # The chunk in which a head starts is not counted (part of it may be the end
            # of the previous body): a head holds at most the limit plus one chunk.
            self._head_size = self._head_size + len(data) if was_in_head else 0
            if self._head_size > self.head_limit:
                self._refuse(431, f"request head larger than {self.head_limit} bytes")

    def send_400_response(self, msg: str) -> None:
        if self._head_too_large:
            self._refuse(431, f"request head larger than {self.head_limit} bytes")
        else:
            self._refuse(400, msg)

    def on_message_begin(self) -> None:
        self._at_message_start = False
        self._in_head = True
        self._head_size = 0
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._cancel_head_timer()
        # A head that came whole in the chunk it started in escaped data_received's count:
        # measured here from what was parsed. Raising stops the parser; uvicorn then calls
        # send_400_response, which answers 431 for this reason.
        if len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers) > self.head_limit:
            self._head_too_large = True
            raise ValueError("request head too large")
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._at_message_start = True
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm_head_timer()  # the next request's head: the same deadline as the first's

    def _arm_head_timer(self) -> None:
        if self.head_timeout > 0 and self._head_timer is None:
            self._head_timer = self.loop.call_later(self.head_timeout, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if (cycle is not None and not cycle.response_complete) or self.pipeline:
            return  # a request is being served: its response arms the timer again
        if self._in_head:
            self._refuse(408, f"request head not received within {self.head_timeout:g} seconds")
        else:  # idle, or the rest of a body the app did not read: nothing to answer
            self.transport.close()
