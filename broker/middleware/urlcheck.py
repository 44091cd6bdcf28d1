"""Orion's URL check: a path with a forbidden character is refused before any routing.

Orion sees the percent-decoded path (``/v2/ent=ities`` and ``/v2/ent%3Dities`` alike) and
answers 400 "invalid character in URI" whatever the resource, even one that does not exist.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from ngsi.errors import BadRequest
from ngsi.names import forbidden_uri_chars


class URLCheckMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and forbidden_uri_chars(scope["path"]):
            from ..http import error_response

            accept = None
            for name, value in scope["headers"]:
                if name == b"accept":
                    accept = value.decode("latin-1")
                    break
            await error_response(BadRequest("invalid character in URI"), accept=accept)(scope, receive, send)
            return
        path = scope.get("path", "")
        if scope["type"] == "http" and len(path) > 1 and path.endswith("/"):
            # Orion ignores one trailing slash: GET /v2/entities/ is GET /v2/entities (3867).
            scope = dict(scope, path=path[:-1])
        await self.app(scope, receive, send)
