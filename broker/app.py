"""The broker application: middleware stack, routes and the resources they share.

Stack, outermost first: correlator and last-resort error handler, CORS, then the router.
The store and the entity service live in the lifespan and reach routes through
``app.state``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import AsyncIterator

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from ngsi.errors import BadRequest

from .config import Config, mask_url
from .entities import EntityService
from .http import error_response
from .middleware.correlator import CorrelatorMiddleware
from .middleware.cors import CORSMiddleware
from .routes import batch, entities, types, version
from .store import Store, open_store

log = logging.getLogger("waziup.broker")
EXPIRY_INTERVAL = 5.0  # seconds between purges of expired (transient) entities

ROUTES = [
    Route("/version", version.VERSION),
    Route("/v2", version.ENTRY_POINTS),
    Route("/v2/entities", entities.ENTITIES),
    Route("/v2/entities/{id}", entities.ENTITY),
    Route("/v2/entities/{id}/attrs", entities.ATTRS),
    Route("/v2/entities/{id}/attrs/{name}", entities.ATTR),
    Route("/v2/entities/{id}/attrs/{name}/value", entities.ATTR_VALUE),
    Route("/v2/types", types.TYPES),
    Route("/v2/types/{type}", types.TYPE),
    Route("/v2/op/update", batch.OP_UPDATE),
    Route("/v2/op/query", batch.OP_QUERY),
]


async def _not_found(scope: Scope, receive: Receive, send: Send) -> None:
    exc = BadRequest("Service not found. Check your URL as probably it is wrong.")
    await error_response(exc)(scope, receive, send)


async def _purge_loop(service: EntityService) -> None:
    while True:
        await asyncio.sleep(EXPIRY_INTERVAL)
        try:
            await service.purge_expired()
        except Exception:  # keep purging on the next round; the error is logged
            log.exception("purge of expired entities failed")


def create_app(config: Config, store: Store | None = None) -> Starlette:
    """The broker as an ASGI app; ``store`` overrides the one ``config`` names (tests)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        the_store = store if store is not None else open_store(config.store_url)
        await the_store.open()
        service = EntityService(the_store)
        app.state.store = the_store
        app.state.entities = service
        purger = asyncio.create_task(_purge_loop(service))
        log.info("broker ready on port %s, store %s", config.port, mask_url(config.store_url))
        try:
            yield
        finally:
            purger.cancel()
            await the_store.close()

    app = Starlette(
        routes=ROUTES,
        middleware=[
            Middleware(CorrelatorMiddleware),
            Middleware(CORSMiddleware, origin=config.cors_origin),
        ],
        lifespan=lifespan,
    )
    app.router.default = _not_found
    app.state.config = config
    return app
