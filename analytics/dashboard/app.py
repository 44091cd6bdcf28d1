"""The dashboard's Starlette app (port 3000): the page, its live feed, and its calls to the platform.

Routes:

* ``/`` and ``/static/...``: the page (``static/``, plain JavaScript modules, vendored
  libraries under ``static/vendor/``, no build step);
* ``GET /api/config``: which services the page may use, the expected reporting intervals
  (``-expect``);
* ``GET /api/events?service=T&servicepath=/p``: the live feed of a tenant, server-sent
  events (``live.Hub``);
* ``POST /notify/{secret}/{tenant}``: the broker's notifications for that feed;
* ``/api/{broker,history,agent,rules}/{path}``: forwarded to that service (``forward.py``)
  with the caller's tenant, service path and token headers, answered as it answered.

The HTTP client and the hub live in the lifespan; ``client`` replaces the network one
(tests).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from urllib.parse import unquote

import orjson
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ngsi.client import HTTPClient
from ngsi.server.asgi import GuardLayer
from ngsi.server.guards import Guard, load_guards
from ngsi.tls import trust_context

from .config import DEFAULT_EXPECTED, Config
from .forward import SERVICES, forward
from .live import Hub

log = logging.getLogger("waziup.dashboard")
STATIC = Path(__file__).parent / "static"


def _hub(request: Request) -> Hub:
    hub: Hub = request.app.state.hub
    return hub


def _token(request: Request) -> str:
    auth = request.headers.get("authorization", "")
    return request.headers.get("x-auth-token") or (auth[7:] if auth.lower().startswith("bearer ") else "")


async def index(request: Request) -> Response:
    return FileResponse(STATIC / "index.html", headers={"cache-control": "no-cache"})


async def api_config(request: Request) -> Response:
    config: Config = request.app.state.config
    urls = {"broker": config.broker_url, "history": config.history_url, "agent": config.agent_url,
            "rules": config.rules_url}
    intervals = config.expected_intervals
    return JSONResponse({
        "services": {name: bool(url) for name, url in urls.items()},
        "expected": {name: seconds for name, seconds in intervals.items() if name != "*"},
        "defaultExpected": intervals.get("*", DEFAULT_EXPECTED),
        "auth": None,
    })


async def events(request: Request) -> Response:
    tenant = request.query_params.get("service", "").strip().lower()
    path = request.query_params.get("servicepath", "/") or "/"
    # an EventSource cannot send headers: the page passes its token in the query
    token = _token(request) or request.query_params.get("token", "")
    stream = _hub(request).listen(tenant, path, token)
    return StreamingResponse(stream, media_type="text/event-stream",
                             headers={"cache-control": "no-cache", "x-accel-buffering": "no"})


async def notify(request: Request) -> Response:
    secret, tenant = request.path_params["secret"], unquote(request.path_params["tenant"])
    config: Config = request.app.state.config
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > config.max_notification:
            return PlainTextResponse("notification too large", 413)
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return PlainTextResponse("not JSON", 400)
    paths = [p.strip() for p in request.headers.get("fiware-servicepath", "/").split(",")]
    known = _hub(request).notified(secret, "" if tenant == "-" else tenant, body if isinstance(body, dict) else {},
                                   paths)
    return PlainTextResponse("ok" if known else "unknown feed", 200 if known else 404)


async def proxy(request: Request) -> Response:
    config: Config = request.app.state.config
    return await forward(request, request.app.state.client, request.app.state.upstreams, config.req_timeout,
                         config.max_body)


def create_app(
    config: Config | None = None, *, client: HTTPClient | None = None, guards: Sequence[Guard] | None = None,
) -> Starlette:
    config = config or Config()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        the_client = client or HTTPClient(
            ssl_context=trust_context("-caFile", config.ca_file) if config.ca_file else None)
        app.state.client = the_client
        app.state.hub = Hub(the_client, config.broker_url, config.notify_base)
        log.info("dashboard port=%s broker=%s history=%s agent=%s rules=%s", config.port, config.broker_url,
                 config.history_url or "-", config.agent_url or "-", config.rules_url or "-")
        try:
            yield
        finally:
            await app.state.hub.close()
            if client is None:
                await the_client.aclose()

    chosen = list(guards) if guards is not None else load_guards(config.guards, config)
    routes = [
        Route("/", index),
        Route("/api/config", api_config),
        Route("/api/events", events),
        Route("/notify/{secret}/{tenant}", notify, methods=["POST"]),
        Route("/api/{service:str}/{path:path}", proxy,
              methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes, middleware=[Middleware(GuardLayer, guards=chosen)] if chosen else [],
                    lifespan=lifespan)
    app.state.config = config
    app.state.upstreams = {name: url.rstrip("/") for name, url in
                           zip(SERVICES, (config.broker_url, config.history_url, config.agent_url, config.rules_url))
                           if url}
    return app
