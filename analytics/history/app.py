"""The history service's Starlette app (QuantumLeap-compatible, port 8668).

The store opens in the lifespan (``-dbURI``), and the retention task runs there: it rolls
closed days up into daily rows, and applies the retention policy when one is set. Errors: a ``HistoryError`` answers its status in QuantumLeap's shape; a
failing database answers 503 (the notifier retries; nothing was acknowledged); Starlette's
own 404/405 (no such route, method) are reshaped the same; anything else is a bug, logged,
and answers 500 in that shape too, never a traceback. ``clock`` (seconds since the epoch)
is the only time the app reads: the arrival time of notifications, injected by tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from ngsi.server.guards import Guard

from . import retention
from .config import Config
from .errors import HistoryError
from .routes import ROUTES, json_response
from .seam import SEAM
from .store import HistoryStore, StoreError, open_store

log = logging.getLogger("waziup.history")


async def _history_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HistoryError)
    return json_response(exc.body(), exc.status)


async def _store_error(request: Request, exc: Exception) -> Response:
    log.error("store error method=%s path=%s error=%s", request.method, request.url.path, exc)
    return json_response({"error": "Service Unavailable", "description": "the history database is not available"},
                         503)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    response = json_response({"error": _reason(exc.status_code), "description": str(exc.detail)}, exc.status_code)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


def _reason(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def create_app(
    config: Config | None = None,
    *,
    store: HistoryStore | None = None,
    guards: Sequence[Guard] | None = None,
    clock: Callable[[], float] = time.time,
) -> Starlette:
    """The app; ``store`` replaces the one ``config`` names (opened and closed here either
    way), ``guards`` the ones ``config.guards`` names."""
    config = config or Config()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        the_store = store if store is not None else open_store(config.store_url)
        await the_store.open()
        app.state.store = the_store
        policy = config.policy
        task = asyncio.create_task(retention.run(the_store, policy, config.retention_interval, clock))
        log.info("history service port=%s tls=%s guards=%d store=%s retention=%s", config.port,
                 "on" if config.https else "off", len(guards) if guards is not None else len(config.guards),
                 type(the_store).__name__, "on" if policy.active else "off")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await the_store.close()

    app = SEAM.app(config, guards, routes=ROUTES, lifespan=lifespan,
                   exception_handlers={HistoryError: _history_error, StoreError: _store_error,
                                       HTTPException: _http_error})
    app.state.clock = clock
    return app
