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
  with the caller's tenant, service path and token headers, answered as it answered;
* with sign-in (``-idmURL``, ``signin.py``): ``/auth/login``, ``/auth/callback``,
  ``/auth/me``, ``/auth/logout``. The page, ``/api/...`` and the live feed then need a
  session (or a token of the caller's own in ``Authorization`` / ``X-Auth-Token``): the
  page without one goes to sign in, the API answers 401. The session's token goes to the
  services as the caller's.

The HTTP client and the hub live in the lifespan; ``client`` replaces the network one
(tests).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from urllib.parse import quote

import orjson
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import (
    FileResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response, StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ngsi.client import HTTPClient
from ngsi.server.asgi import GuardLayer
from ngsi.server.guards import Guard, load_guards
from ngsi.tls import trust_context

from .config import DEFAULT_EXPECTED, Config
from .forward import SERVICES, forward
from .live import Hub
from .signin import STATE_COOKIE, SignIn, SignInConfig, SignInError, local_path, session_of, set_cookie

log = logging.getLogger("waziup.dashboard")
STATIC = Path(__file__).parent / "static"


def _hub(request: Request) -> Hub:
    hub: Hub = request.app.state.hub
    return hub


def _token(request: Request) -> str:
    auth = request.headers.get("authorization", "")
    return request.headers.get("x-auth-token") or (auth[7:] if auth.lower().startswith("bearer ") else "")


def _signin(request: Request) -> SignIn | None:
    signin: SignIn | None = request.app.state.signin
    return signin


def _viewer_of(token: str) -> str:
    """The live-feed viewer of a caller known only by its own token (a script): the token's
    digest, so that the token itself never appears in a notification URL."""
    return hashlib.sha256(token.encode()).hexdigest()[:16]


async def _caller(request: Request) -> tuple[str, str]:
    """(token, viewer) of the request: the caller's own token when it sends one, else its
    session's; the viewer names whose live feed it gets (``live.py``)."""
    own = _token(request)
    if own:
        return own, _viewer_of(own)
    signin = _signin(request)
    if signin is None:
        return "", ""
    session_id = session_of(request.headers.get("cookie", ""))
    token = await signin.token(session_id)
    session = signin.sessions.get(session_id)
    return token, (str(session.user.get("id") or "") if token and session else "")


def _sign_in_first() -> Response:
    return JSONResponse({"error": "Unauthorized", "description": "sign in first: /auth/login"}, 401,
                        headers={"cache-control": "no-store"})


async def index(request: Request) -> Response:
    signin = _signin(request)
    if signin is not None and not (await _caller(request))[0]:
        return RedirectResponse("/auth/login?next=" + quote(request.url.path + (
            f"?{request.url.query}" if request.url.query else ""), safe=""), 303)
    return FileResponse(STATIC / "index.html", headers={"cache-control": "no-cache"})


async def login(request: Request) -> Response:
    signin = _signin(request)
    assert signin is not None
    url, state = signin.begin(request.query_params.get("next"))
    response = RedirectResponse(url, 303, headers={"cache-control": "no-store"})
    response.headers.append("set-cookie", set_cookie(state, secure=signin.config.secure_cookie, max_age=600,
                                                     name=STATE_COOKIE, path="/auth"))
    return response


async def callback(request: Request) -> Response:
    signin = _signin(request)
    assert signin is not None
    params = request.query_params
    if "error" in params:  # RFC 6749 §4.1.2.1: the user denied, or the request was refused
        signin.pending.pop(params.get("state", ""), None)
        reason = params.get("error_description") or params["error"]
        return PlainTextResponse(f"Sign-in refused: {reason}. Sign in again at /auth/login", 403)
    try:
        session_id, next_url = await signin.finish(params.get("code", ""), params.get("state", ""),
                                                   session_of(request.headers.get("cookie", ""), STATE_COOKIE))
    except SignInError as exc:
        return PlainTextResponse(f"Sign-in failed: {exc}", 400)
    response = RedirectResponse(local_path(next_url), 303, headers={"cache-control": "no-store"})
    response.headers.append("set-cookie", set_cookie(session_id, secure=signin.config.secure_cookie))
    response.headers.append("set-cookie", set_cookie("", secure=signin.config.secure_cookie, max_age=0,
                                                     name=STATE_COOKIE, path="/auth"))
    return response


async def me(request: Request) -> Response:
    signin = _signin(request)
    assert signin is not None
    found = await signin.me(session_of(request.headers.get("cookie", "")))
    return JSONResponse(found, headers={"cache-control": "no-store"}) if found else _sign_in_first()


async def logout(request: Request) -> Response:
    signin = _signin(request)
    assert signin is not None
    await signin.end(session_of(request.headers.get("cookie", "")))
    response = Response(status_code=204)
    response.headers.append("set-cookie", set_cookie("", secure=signin.config.secure_cookie, max_age=0))
    return response


async def api_config(request: Request) -> Response:
    config: Config = request.app.state.config
    urls = {"broker": config.broker_url, "history": config.history_url, "agent": config.agent_url,
            "rules": config.rules_url}
    intervals = config.expected_intervals
    return JSONResponse({
        "services": {name: bool(url) for name, url in urls.items()},
        "expected": {name: seconds for name, seconds in intervals.items() if name != "*"},
        "defaultExpected": intervals.get("*", DEFAULT_EXPECTED),
        "auth": {"signIn": "/auth/login", "me": "/auth/me", "signOut": "/auth/logout"}
        if config.idm_url else None,
    })


async def events(request: Request) -> Response:
    tenant = request.query_params.get("service", "").strip().lower()
    path = request.query_params.get("servicepath", "/") or "/"
    token, viewer = await _caller(request)
    if not token and request.query_params.get("token"):  # an EventSource cannot send headers
        token = request.query_params["token"]
        viewer = _viewer_of(token)
    if _signin(request) is not None and not token:
        return _sign_in_first()
    stream = _hub(request).listen(tenant, path, token, viewer)
    return StreamingResponse(stream, media_type="text/event-stream",
                             headers={"cache-control": "no-cache", "x-accel-buffering": "no"})


async def notify(request: Request) -> Response:
    secret, feed = request.path_params["secret"], request.path_params["feed"]
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
    known = _hub(request).notified(secret, feed, body if isinstance(body, dict) else {}, paths)
    return PlainTextResponse("ok" if known else "unknown feed", 200 if known else 404)


async def proxy(request: Request) -> Response:
    config: Config = request.app.state.config
    token = ""
    if _signin(request) is not None and not _token(request):
        token = (await _caller(request))[0]
        if not token:
            return _sign_in_first()
    return await forward(request, request.app.state.client, request.app.state.upstreams, config.req_timeout,
                         config.max_body, token)


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
        app.state.signin = SignIn(SignInConfig(
            idm_url=config.idm_url, idm_public_url=config.idm_public_url or config.idm_url,
            client_id=config.client_id, client_secret=config.client_secret,
            callback_url=config.page_url + "/auth/callback", secure_cookie=config.page_url.startswith("https:"),
            tenants=config.tenants,
        ), the_client, config.broker_url, timeout=float(config.req_timeout)) if config.idm_url else None
        log.info("dashboard port=%s broker=%s history=%s agent=%s rules=%s sign-in=%s", config.port,
                 config.broker_url, config.history_url or "-", config.agent_url or "-", config.rules_url or "-",
                 config.idm_url or "-")
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
        Route("/notify/{secret}/{feed}", notify, methods=["POST"]),
        Route("/api/{service:str}/{path:path}", proxy,
              methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    if config.idm_url:
        routes += [Route("/auth/login", login), Route("/auth/callback", callback), Route("/auth/me", me),
                   Route("/auth/logout", logout, methods=["POST"])]
    app = Starlette(routes=routes, middleware=[Middleware(GuardLayer, guards=chosen)] if chosen else [],
                    lifespan=lifespan)
    app.state.config = config
    app.state.signin = None  # the lifespan makes it, with the HTTP client
    app.state.upstreams = {name: url.rstrip("/") for name, url in
                           zip(SERVICES, (config.broker_url, config.history_url, config.agent_url, config.rules_url))
                           if url}
    return app
