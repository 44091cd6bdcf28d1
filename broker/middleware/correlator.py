"""Fiware-Correlator on every response, and the last line of defence against 500s.

Orion answers every request with a correlator: the request's own, or a new UUID. The
same value travels with the notifications the request causes, so it is kept in the
ASGI scope for the handlers.
"""

from __future__ import annotations

import logging
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ngsi.errors import InternalError

from .. import jsonio

log = logging.getLogger("waziup.broker")


class CorrelatorMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        correlator = None
        for name, value in scope["headers"]:
            if name == b"fiware-correlator":
                correlator = value
                break
        if correlator is None:
            correlator = str(uuid.uuid4()).encode()
        scope.setdefault("state", {})["correlator"] = correlator.decode("latin-1")
        started = False

        async def send_with_correlator(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = list(message.get("headers", [])) + [(b"fiware-correlator", correlator)]
            await send(message)

        try:
            await self.app(scope, receive, send_with_correlator)
        except Exception:
            log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            if started:
                raise
            body = jsonio.dumps(InternalError("internal error").body())
            await send_with_correlator(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
                }
            )
            await send({"type": "http.response.body", "body": body})
