"""The agents' error shape on HTTP, shared by the north app (4041) and the south one (7896).

An ``IoTAError`` answers ``{"name", "message"}`` with its code; anything unexpected is
logged and answers a 500 of the same shape, never a traceback (``LastResort``). Both
ports promise this, so both use these two pieces rather than each its own copy.
"""

from __future__ import annotations

import logging
import time
from dataclasses import KW_ONLY, dataclass

import orjson
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import IoTAError


def error_response(exc: IoTAError) -> Response:
    return Response(orjson.dumps(exc.body()), status_code=exc.code, media_type="application/json; charset=utf-8")


@dataclass(eq=False)
class LastResort:
    """ASGI middleware: a bug still answers in the agents' error shape (500 RUNTIME_ERROR),
    logged on ``log``. With ``processing_time``, every answer carries ``X-Processing-Time``
    (ms), as the UL and JSON agents' south ports do."""

    app: ASGIApp
    _: KW_ONLY
    log: logging.Logger
    processing_time: bool = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        sent = False

        async def tracking_send(message: Message) -> None:
            nonlocal sent
            if message["type"] == "http.response.start":
                sent = True
                if self.processing_time:
                    elapsed = f"{(time.perf_counter() - started) * 1000:.0f}".encode()
                    message = {**message, "headers": [*message.get("headers", []), (b"x-processing-time", elapsed)]}
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            self.log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            if sent:
                raise
            await error_response(IoTAError("internal error"))(scope, receive, tracking_send)
