"""The request seam for services built on Starlette (the IoT agent, and those to come).

``GuardLayer`` wraps the app: it builds the request context (``scope["state"]["ctx"]``,
where handlers take it from), runs the guards, and answers a rejection itself. The
broker's own front end does the same in its single pass (``broker/front.py``).
"""

from __future__ import annotations

import logging
from typing import Callable, Sequence

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..context import RequestContext, from_headers
from .correlator import first_values, new_correlator
from .guards import ClientGone, Guard, Incoming, PayloadTooLarge, run_guards
from .reply import RawHeaders, Reply

log = logging.getLogger("waziup.seam")

ContextFactory = Callable[[dict[str, str], str], RequestContext]
ErrorReply = Callable[[PayloadTooLarge], Reply]


def context_of(scope: Scope) -> RequestContext:
    """The request's context as the layer left it (a plain one when there is no layer)."""
    state = scope.get("state") or {}
    ctx = state.get("ctx")
    if ctx is None:
        headers = first_values(scope.get("headers") or [])
        ctx = from_headers(headers, headers.get("fiware-correlator") or new_correlator())
    return ctx


class GuardLayer:
    def __init__(
        self,
        app: ASGIApp,
        guards: Sequence[Guard] = (),
        *,
        context: ContextFactory | None = None,
        too_large: ErrorReply | None = None,
        max_body: int = 1 << 20,
    ) -> None:
        self.app = app
        self.guards = list(guards)
        self.context = context or (lambda headers, correlator: from_headers(headers, correlator))
        self.too_large = too_large
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = first_values(scope["headers"])
        ctx = self.context(headers, headers.get("fiware-correlator") or new_correlator())
        state = scope.setdefault("state", {})
        state["ctx"] = ctx
        if not self.guards:
            await self.app(scope, receive, send)
            return
        incoming = Incoming(
            scope["method"], scope["path"], scope.get("query_string", b""), headers, scope.get("client"), ctx, receive,
            self.max_body,
        )
        try:
            rejection, extra = await run_guards(self.guards, incoming)
        except PayloadTooLarge as exc:
            if self.too_large is None:
                raise
            rejection, extra = self.too_large(exc), []
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
