"""The shell of the platform's Starlette services (history, rules, dashboard) and the PEP proxy.

Each was its own copy of the same pieces: the platform's log format, uvicorn started with
the same settings (and ``-https``'s key and certificate), the request seam installed with
the service's own error shape, the head deadline of its protocol, and a last resort that
answers a bug in that shape. Here once; a service states only what is its own (its error
shape, its routes, its lifespan).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, ExceptionHandler, Lifespan, Receive, Scope, Send

from ..errors import NGSIError
from .asgi import ErrorReply, GuardedHttpProtocol, GuardLayer, ResponseWatch, TimeoutReply, context_of
from .guards import Guard, load_guards

__all__ = ["LOG_FORMAT", "LastResort", "Seam", "configure_logging", "request_tenant", "run"]

LOG_FORMAT = "time=%(asctime)s | lvl=%(levelname)s | comp=%(name)s | msg=%(message)s"


def configure_logging(log_level: str) -> None:
    """The root logger at ``-logLevel`` (Orion's names: ``WARN`` is ``WARNING``; an unknown
    one is INFO), in the platform's ``key=value`` line format."""
    level = log_level.upper()
    logging.basicConfig(level=getattr(logging, "WARNING" if level == "WARN" else level, logging.INFO),
                        format=LOG_FORMAT)


def run(app: ASGIApp, *, host: str, port: int, tls: tuple[str, str] | None = None, **options: Any) -> None:
    """Serve ``app`` under uvicorn until stopped: no access log (services log their own
    lines), no ``Server`` header, the lifespan on, no proxy headers (nothing reads the
    client's address through them). ``tls`` is ``-https``'s (key, certificate) files, the
    port then speaking TLS only; ``options`` adds to or overrides uvicorn's settings
    (``http=`` the service's protocol)."""
    settings: dict[str, Any] = {
        "host": host, "port": port, "log_level": "warning", "access_log": False, "server_header": False,
        "lifespan": "on", "proxy_headers": False, **options,
    }
    if tls is not None:
        key, cert = tls
        settings.update(ssl_keyfile=os.path.abspath(key), ssl_certfile=os.path.abspath(cert))
    uvicorn.run(app, **settings)


@dataclass(frozen=True)
class Seam:
    """A service's answers, in its own error shape, for what never reaches a route: a body
    past ``-maxBody`` (413), one slower than ``-reqTimeout`` (408), a bug (500, logged on
    ``log``); and the name of its uvicorn protocol class."""

    too_large: ErrorReply
    timed_out: TimeoutReply
    internal_error: Callable[[], ASGIApp]
    log: logging.Logger
    protocol: str

    def guard_layer(self, config: Any, guards: Sequence[Guard] | None = None) -> Middleware:
        """The request seam's middleware (``GuardLayer``): ``guards`` when given (tests,
        in-process composition), else those ``config.guards`` names; bodies bounded by
        ``config.max_body`` bytes and ``config.req_timeout`` seconds."""
        chosen = list(guards) if guards is not None else load_guards(config.guards, config)
        return Middleware(GuardLayer, guards=chosen, too_large=self.too_large, max_body=config.max_body,
                          timed_out=self.timed_out, body_timeout=float(config.req_timeout))

    def http_protocol(self, config: Any) -> type[GuardedHttpProtocol]:
        """uvicorn's protocol class for the service: the head deadline is ``-reqTimeout``."""
        return type(self.protocol, (GuardedHttpProtocol,), {"head_timeout": float(config.req_timeout)})

    def app(
        self, config: Any, guards: Sequence[Guard] | None, *, routes: Sequence[BaseRoute],
        exception_handlers: Mapping[Any, ExceptionHandler], lifespan: Lifespan[Starlette],
    ) -> Starlette:
        """The service's Starlette app: the last resort outermost, then the request seam,
        then the routes; ``app.state.config`` is ``config``."""
        app = Starlette(
            routes=routes,
            middleware=[Middleware(LastResort, answer=self.internal_error, log=self.log),
                        self.guard_layer(config, guards)],
            exception_handlers=exception_handlers,
            lifespan=lifespan,
        )
        app.state.config = config
        return app


class LastResort:
    """ASGI middleware: a bug is logged on ``log`` and answered by ``answer()`` (the
    service's 500 in its own shape), never a traceback; once the response has begun, all
    it can do is let the error end the connection."""

    def __init__(self, app: ASGIApp, *, answer: Callable[[], ASGIApp], log: logging.Logger) -> None:
        self.app = app
        self.answer = answer
        self.log = log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        watched = ResponseWatch(send)
        try:
            await self.app(scope, receive, watched)
        except Exception:
            self.log.exception("unhandled error method=%s path=%s", scope.get("method"), scope.get("path"))
            if watched.started:
                raise
            await self.answer()(scope, receive, send)


def request_tenant(request: Request, bad_request: Callable[[str], Exception]) -> str:
    """The request's tenant (``Fiware-Service``, as the request seam read it); a name the
    broker would refuse raises the service's ``bad_request`` with the reason."""
    try:
        return context_of(request.scope).checked_tenant()
    except NGSIError as exc:
        raise bad_request(f"Fiware-Service: {exc.description}") from None
