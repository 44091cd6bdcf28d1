"""CORS as Orion does it (-corsOrigin, -corsMaxAge): headers on responses to requests with an Origin.

Preflight (OPTIONS) answers come from the resources themselves, which know their methods.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

EXPOSED = b"Fiware-Correlator, Fiware-Total-Count, Location"
ALLOWED_HEADERS = (
    "Content-Type, Fiware-Service, Fiware-Servicepath, Ngsiv2-AttrsFormat, Fiware-Correlator, "
    "X-Forwarded-For, X-Real-IP, X-Auth-Token, Authorization"
)


def allowed_origin(configured: str | None, origin: str | None) -> str | None:
    """The Access-Control-Allow-Origin value for a request, None when CORS does not apply."""
    if not configured or origin is None:
        return None
    if configured == "__ALL":
        return "*"
    return configured if origin == configured else None


class CORSMiddleware:
    def __init__(self, app: ASGIApp, origin: str | None) -> None:
        self.app = app
        self.origin = origin

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.origin or scope["method"] == "OPTIONS":
            await self.app(scope, receive, send)
            return
        request_origin = None
        for name, value in scope["headers"]:
            if name == b"origin":
                request_origin = value.decode("latin-1")
                break
        allow = allowed_origin(self.origin, request_origin)
        if allow is None:
            await self.app(scope, receive, send)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + [
                    (b"access-control-allow-origin", allow.encode()),
                    (b"access-control-expose-headers", EXPOSED),
                ]
            await send(message)

        await self.app(scope, receive, send_with_cors)
