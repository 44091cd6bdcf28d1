"""The request seam: an ordered list of guards every HTTP service runs before routing.

Cross-cutting concerns (authentication and authorization, rate limits, audit, privacy
decisions) plug in here, configured at start-up, and nowhere else: a service's front end
builds the request's :class:`~ngsi.context.RequestContext`, then calls
:func:`run_guards`, then routes with the context the guards left. A guard may

* reject the request: its :class:`Verdict` carries the whole reply (status, headers and a
  body in the shape the guard's clients expect, e.g. Wilma's or Orion's);
* replace the context, e.g. with the caller's identity (``ctx.with_identity``);
* add headers to the response, whatever the route answers.

A guard is any ``async (Incoming) -> Verdict | None`` callable; ``None`` lets the request
through unchanged. With no guards configured the front end skips all of this (one truth
test per request).

Guards see the request through :class:`Incoming`: method, path, raw query, headers
(lowercase names, first value), client address and the context. ``await
incoming.body()`` reads the body (at most ``max_body`` bytes, within ``body_timeout``
seconds) for guards that need it, such as Keyrock's payload-level authorization; the
service then gets the same bytes. ``timed`` gives any reader of a body the same deadline.
"""

from __future__ import annotations

import asyncio
import importlib
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Iterable, Sequence

from starlette.types import Message, Receive

from ..context import RequestContext
from ..numbers import parse_uint
from .reply import RawHeaders, Reply


class PayloadTooLarge(Exception):
    """A guard asked for a body larger than the service accepts."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"payload size: {size}, max size supported: {limit}")
        self.size = size
        self.limit = limit


class ClientGone(Exception):
    """The client disconnected while its body was being read."""


class BodyTimeout(Exception):
    """The client did not send its whole body in the time the service allows: a client
    that stalls mid-body (``Content-Length: 1000``, 10 bytes, then nothing) would
    otherwise hold its connection, and what it sent, for ever."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"request body not received within {seconds:g} s")
        self.seconds = seconds


def timed(receive: Receive, seconds: float) -> Receive:
    """``receive`` with a deadline for the request body: ``seconds`` from its first call
    until the last body message (``more_body`` false), after which it passes through
    untimed (a later call waits for the disconnect, which has no deadline). BodyTimeout
    when the deadline passes; ``seconds`` <= 0: no deadline."""
    if seconds <= 0:
        return receive
    deadline: float | None = None
    done = False

    async def within() -> Message:
        nonlocal deadline, done
        if done:
            return await receive()
        if deadline is None:
            deadline = asyncio.get_running_loop().time() + seconds
        try:
            async with asyncio.timeout_at(deadline):
                message = await receive()
        except TimeoutError:
            raise BodyTimeout(seconds) from None
        if message["type"] != "http.request" or not message.get("more_body", False):
            done = True
        return message

    return within


@dataclass(slots=True, eq=False, repr=False)  # repr=False: no credentials of the headers in a log line
class Incoming:
    """One request as guards see it (the body is read only if a guard asks for it).

    Front ends build it positionally: ``Incoming(method, path, query_string, headers,
    client, ctx, receive, max_body, body_timeout)``; the ASGI ``receive`` is kept private, since what the
    service reads from is ``receive()``, a replay once a guard has read the body."""

    method: str
    path: str
    query_string: bytes
    headers: dict[str, str]
    client: tuple[str, int] | None
    ctx: RequestContext
    _receive: Receive
    max_body: int = 1 << 20
    body_timeout: float = 0.0  # seconds the whole body may take to arrive (0: no limit)
    _body: bytes | None = field(default=None, init=False)

    @property
    def body_read(self) -> bool:
        return self._body is not None

    async def body(self) -> bytes:
        """The whole request body, read once (PayloadTooLarge past ``max_body``,
        BodyTimeout past ``body_timeout`` seconds, ClientGone on a disconnect)."""
        if self._body is not None:
            return self._body
        length = self.headers.get("content-length")
        declared = None if length is None else parse_uint(length, cap=2**64)
        if declared is not None and declared > self.max_body:
            raise PayloadTooLarge(declared, self.max_body)
        chunks: list[bytes] = []
        size = 0
        receive = timed(self._receive, self.body_timeout)
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientGone()
            chunk = message.get("body", b"")
            if chunk:
                size += len(chunk)
                if size > self.max_body:
                    raise PayloadTooLarge(size, self.max_body)
                chunks.append(chunk)
            if not message.get("more_body", False):
                break
        self._body = b"".join(chunks)
        return self._body

    def receive(self) -> Receive:
        """What the service reads the body from: the original stream, or a replay of what
        a guard already read."""
        if self._body is None:
            return self._receive
        return replay(self._body, self._receive)


def replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def again() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # after the body: disconnect, as the server reports it

    return again


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a guard decided: ``reply`` rejects; ``ctx`` replaces the context; ``headers``
    go on the response."""

    reply: Reply | None = None
    ctx: RequestContext | None = None
    headers: tuple[tuple[bytes, bytes], ...] = ()


Guard = Callable[[Incoming], Awaitable[Verdict | None]]


def reject(reply: Reply) -> Verdict:
    return Verdict(reply=reply)


def admit(ctx: RequestContext | None = None, headers: Iterable[tuple[bytes, bytes]] = ()) -> Verdict:
    return Verdict(ctx=ctx, headers=tuple(headers))


async def run_guards(guards: Sequence[Guard], incoming: Incoming) -> tuple[Reply | None, RawHeaders]:
    """Run the guards in order; the first rejection wins. ``incoming.ctx`` ends as the
    context the last guard left. Returns (rejection or None, headers for the response)."""
    extra: RawHeaders = []
    for guard in guards:
        verdict = await guard(incoming)
        if verdict is None:
            continue
        if verdict.headers:
            extra.extend(verdict.headers)
        if verdict.reply is not None:
            return verdict.reply, extra
        if verdict.ctx is not None:
            incoming.ctx = verdict.ctx
    return None, extra


def load_guards(specs: Iterable[str], config: Any) -> list[Guard]:
    """Guards named ``module:factory`` (how the orchestrator names them to worker
    processes, which import the service by name); each factory takes the service's
    config and returns a guard."""
    return [load_factory(spec, config) for spec in specs]


def load_factory(spec: str, config: Any) -> Any:
    """What the factory named ``module:factory`` makes of the service's config: how the
    orchestrator plugs a guard, or another hook, into a service it starts by name."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ValueError(f"{spec!r}: expected module:factory")
    return getattr(importlib.import_module(module_name), attr)(config)
