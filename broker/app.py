"""The broker application: middleware stack, routes and the resources they share.

Stack, outermost first: correlator and last-resort error handler, CORS, Orion's URL check,
then the router.
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
from starlette.convertors import Convertor, register_url_convertor
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from ngsi.errors import BadRequest

from .config import Config, mask_url
from .entities import EntityService
from .http import error_response
from .middleware.correlator import CorrelatorMiddleware
from .middleware.cors import CORSMiddleware
from .middleware.urlcheck import URLCheckMiddleware
from .registrations.forward import Forwarder
from .registrations.registry import RegistrationRegistry
from .routes import batch, entities, notify, registrations, subscriptions, types, version
from .store import Store, open_store
from .store.base import ChangeCallback
from .subscriptions.registry import SubscriptionRegistry
from .subscriptions.sender import Notifier

log = logging.getLogger("waziup.broker")
EXPIRY_INTERVAL = 5.0  # seconds between purges of expired (transient) entities

class _Segment(Convertor[str]):
    """A path segment that may be empty: Orion answers ``/v2/entities//`` about an empty id
    ("entity id length: 0"), not with "service not found"."""

    regex = "[^/]*"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("segment", _Segment())

ROUTES = [
    Route("/version", version.VERSION),
    Route("/v2", version.ENTRY_POINTS),
    Route("/v2/entities", entities.ENTITIES),
    Route("/v2/entities/{id:segment}", entities.ENTITY),
    Route("/v2/entities/{id}/attrs", entities.ATTRS),
    Route("/v2/entities/{id}/attrs/{name:segment}", entities.ATTR),
    Route("/v2/entities/{id}/attrs/{name}/value", entities.ATTR_VALUE),
    Route("/v2/types", types.TYPES),
    Route("/v2/types/{type:segment}", types.TYPE),
    Route("/v2/op/update", batch.OP_UPDATE),
    Route("/v2/op/query", batch.OP_QUERY),
    Route("/v2/op/notify", notify.OP_NOTIFY),
    Route("/v2/subscriptions", subscriptions.SUBSCRIPTIONS),
    Route("/v2/subscriptions/{id:segment}", subscriptions.SUBSCRIPTION),
    Route("/v2/registrations", registrations.REGISTRATIONS),
    Route("/v2/registrations/{id}", registrations.REGISTRATION),
]


async def _not_found(scope: Scope, receive: Receive, send: Send) -> None:
    exc = BadRequest("Service not found. Check your URL as probably it is wrong.")
    accept = dict(scope["headers"]).get(b"accept")
    await error_response(exc, accept=accept.decode("latin-1") if accept else None)(scope, receive, send)


async def _purge_loop(service: EntityService) -> None:
    while True:
        await asyncio.sleep(EXPIRY_INTERVAL)
        try:
            await service.purge_expired()
        except Exception:  # keep purging on the next round; the error is logged
            log.exception("purge of expired entities failed")


def _follow_changes(
    subscriptions_: SubscriptionRegistry, registrations_: RegistrationRegistry, loaded: asyncio.Event
) -> ChangeCallback:
    """Workers sharing a database: reload what another worker changed (see PostgresStore)."""

    async def on_change(kind: str, tenant: str, doc_id: str) -> None:
        await loaded.wait()  # changes seen during the start-up load are applied after it
        if kind == "subscription":
            await subscriptions_.reload(tenant, doc_id)
        elif kind == "registration":
            await registrations_.reload(tenant, doc_id)
        else:  # notifications may have been lost
            await subscriptions_.load()
            await registrations_.load()

    return on_change


def create_app(config: Config, store: Store | None = None) -> Starlette:
    """The broker as an ASGI app; ``store`` overrides the one ``config`` names (tests)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        the_store = store if store is not None else open_store(config.store_url)
        await the_store.open()
        service = EntityService(the_store)
        app.state.store = the_store
        app.state.entities = service
        registry = SubscriptionRegistry(the_store)
        registrations_ = RegistrationRegistry(the_store)
        loaded = asyncio.Event()
        if the_store.shared:  # before loading: no change made meanwhile by another worker is missed
            await the_store.listen(_follow_changes(registry, registrations_, loaded))
        await registry.load()
        app.state.subscriptions = registry
        await registrations_.load()
        app.state.registrations = registrations_
        loaded.set()
        app.state.forwarder = Forwarder(registrations_, timeout=config.http_timeout / 1000.0 if config.http_timeout else None)
        notifier = Notifier(
            registry,
            multiservice=config.multiservice,
            http_timeout=config.http_timeout / 1000.0 if config.http_timeout else None,
            custom_enabled=not config.disable_custom_notifications,
        )
        await notifier.start()
        service.listeners.append(notifier.listener)
        app.state.notifier = notifier
        purger = asyncio.create_task(_purge_loop(service))
        log.info("broker ready on port %s, store %s", config.port, mask_url(config.store_url))
        try:
            yield
        finally:
            purger.cancel()
            await notifier.stop()
            await app.state.forwarder.close()
            await registry.close()
            await the_store.close()

    app = Starlette(
        routes=ROUTES,
        middleware=[
            Middleware(CorrelatorMiddleware),
            Middleware(CORSMiddleware, origin=config.cors_origin),
            Middleware(URLCheckMiddleware),
        ],
        lifespan=lifespan,
    )
    app.router.default = _not_found
    app.router.redirect_slashes = False  # Orion never redirects; one trailing slash is dropped in urlcheck
    app.state.config = config
    return app
