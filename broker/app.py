"""The broker application: the front end, the lifespan and the resources routes share.

HTTP requests go to ``front.serve_http`` (correlator, CORS, request context, guards, URL
check, routing and the last-resort error handler in one pass); Starlette runs the lifespan.
The store and the entity service live in the lifespan and reach routes through
``app.state``; so do the administration API's statistics and log settings
(``routes/admin.py``), whose routes join the front end's table here.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from typing import AsyncIterator, Sequence

from starlette.applications import Starlette
from starlette.types import Receive, Scope, Send

from ngsi.destinations import Gate, Policy, parse_rules
from ngsi.names import forbidden_uri_chars
from ngsi.server.guards import Guard, load_factory, load_guards

from .config import Config, forwarding_ssl_context, mask_url, notification_ssl_context
from .entities import EntityService
from .feed import Feed, feed_credentials, parse_list
from .front import encoded_slash, route, serve_http
from .registrations.forward import Forwarder
from .registrations.registry import RegistrationRegistry
from .routes.admin import PATTERNS, Admin, CountingRegistry, Statistics
from .store import Store, open_store
from .store.base import ChangeCallback
from .subscriptions.registry import SubscriptionRegistry
from .subscriptions.sender import Notifier, Visibility, notification_mode
from .subscriptions.service_token import ServiceToken

log = logging.getLogger("waziup.broker")
EXPIRY_INTERVAL = 5.0  # seconds between purges of expired (transient) entities


class BrokerApp(Starlette):
    """Starlette for the lifespan and ``state``; HTTP requests go straight to the front end
    (``front.serve_http``), without Starlette's middleware stack and router."""

    statistics: Statistics | None = None  # set when -statCounters or -statTiming asks to measure requests

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope["app"] = self
            if self.statistics is None:
                await serve_http(self, scope, receive, send)
            else:
                await _measured(self, self.statistics, scope, receive, send)
            return
        await super().__call__(scope, receive, send)


async def _measured(app: BrokerApp, stats: Statistics, scope: Scope, receive: Receive, send: Send) -> None:
    """The request served, counted (``-statCounters``) and timed (``-statTiming``) for
    ``GET /statistics``: the whole request, guards included, as Orion's ``total``."""
    if stats.counters:
        stats.request(*_request_kind(scope, bool(app.state.config.cors_origin)))
    started = time.perf_counter()
    try:
        await serve_http(app, scope, receive, send)
    finally:
        if stats.timing:
            stats.took(time.perf_counter() - started)


def _request_kind(scope: Scope, cors: bool) -> tuple[str | None, str, str | None, bool]:
    """(URL pattern or None, method, payload kind or None, served) of a request, as
    ``Statistics.request`` counts it; routed as ``serve_http`` routes it."""
    method, path = scope["method"], scope["path"]
    if len(path) > 1 and path[-1] == "/":
        path = path[:-1]
    found = None if forbidden_uri_chars(path) or encoded_slash(scope) else route(path)
    pattern, served = None, False
    if found is not None:
        pattern = PATTERNS.get(found[0])
        served = method in found[0].handlers or (method == "OPTIONS" and cors)
    length, content_type, chunked = b"", b"", False
    for name, value in scope["headers"]:
        if name == b"content-length":
            length = value.strip()
        elif name == b"content-type":
            content_type = value.split(b";")[0].strip().lower()
        elif name == b"transfer-encoding":
            chunked = True
    payload = None
    if chunked or (length and length != b"0"):
        payload = {b"application/json": "json", b"text/plain": "text"}.get(content_type, "other")
    return pattern, method, payload, served


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


def create_app(
    config: Config, store: Store | None = None, *, guards: Sequence[Guard] | None = None,
    visibility: Visibility | None = None,
) -> Starlette:
    """The broker as an ASGI app; ``store`` overrides the one ``config`` names (tests).

    ``guards`` is the request seam's list (ngsi/server/guards.py), in order; when not
    given, the guards ``config.guards`` names are loaded (worker processes get them so).
    """

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        the_store = store if store is not None else open_store(config.store_url)
        await the_store.open()
        service = EntityService(the_store)
        app.state.store = the_store
        app.state.entities = service
        # Every URL the broker calls for a user passes the destination policy (-notifAllowedHosts).
        gate = Gate(Policy(parse_rules(",".join(config.notif_allowed_hosts)), setting="-notifAllowedHosts"))
        registry = SubscriptionRegistry(the_store, gate=gate)
        admin: Admin = app.state.admin
        registry.listeners.append(admin.cache.listener)
        registrations_ = RegistrationRegistry(the_store, gate=gate)
        loaded = asyncio.Event()
        if the_store.shared:  # before loading: no change made meanwhile by another worker is missed
            await the_store.listen(_follow_changes(registry, registrations_, loaded))
        await registry.load()
        app.state.subscriptions = registry
        await registrations_.load()
        app.state.registrations = registrations_
        loaded.set()
        app.state.forwarder = Forwarder(
            registrations_, service, timeout=config.http_timeout / 1000.0 if config.http_timeout else None,
            ssl_context=forwarding_ssl_context(config),
            gate=gate,
        )
        # the broker's own account (-feedTokenURL): for the feed, and -notifTokenFor's notifications
        account = feed_credentials(
            config.feed_token_url, config.feed_client_id, config.feed_client_secret,
            user=config.feed_user, password=config.feed_password, ssl_context=forwarding_ssl_context(config),
        )
        notifier = Notifier(
            CountingRegistry(registry, admin.stats) if admin.stats.watching_notifications else registry,
            http_timeout=config.http_timeout / 1000.0 if config.http_timeout else None,
            mqtt_max_age=config.mqtt_max_age * 60.0,
            custom_enabled=not config.disable_custom_notifications,
            insecure=config.insecure_notif,
            ssl_context=notification_ssl_context(config),
            gate=gate,
            visibility=visibility if visibility is not None else (
                load_factory(config.notif_filter, config) if config.notif_filter else None
            ),
            service_token=ServiceToken(config.notif_token_for, account)
            if account is not None and config.notif_token_for else None,
            **notification_mode(config.notification_mode),
        )
        await notifier.start()
        feed = None
        if config.feed_url:  # the operator's URL (the history service): not a user's, no destination policy
            # -notifCaFile is trusted, -insecureNotif is not followed: the feed is the platform's own link
            trust = forwarding_ssl_context(config)
            feed = Feed(
                the_store, config.feed_url,
                tenants=[t for item in config.feed_tenants for t in parse_list(item)],
                types=[t for item in config.feed_types for t in parse_list(item)],
                skip_tenants=[t for item in config.feed_skip_tenants for t in parse_list(item)],
                ssl_context=trust,
                credentials=account,
            )
            service.listeners.append(feed.listener)  # committed to the outbox before the answer
            await feed.start()
        service.listeners.append(notifier.listener)
        admin.watch_deprecations(service.listeners)
        app.state.notifier = notifier
        app.state.feed = feed
        purger = asyncio.create_task(_purge_loop(service))
        # What start-up made (modules, the subscriptions, a guard's libraries) lives as long as
        # the process: out of the collector's sight, a full collection does not walk it again.
        gc.freeze()
        log.info("broker ready on port %s, store %s", config.port, mask_url(config.store_url))
        try:
            yield
        finally:
            purger.cancel()
            if feed is not None:
                await feed.stop()
            await notifier.stop()
            await app.state.forwarder.close()
            await registry.close()
            await the_store.close()

    app = BrokerApp(lifespan=lifespan)
    app.state.config = config
    app.state.admin = Admin(config)
    if app.state.admin.stats.measuring:
        app.statistics = app.state.admin.stats
    app.state.guards = list(guards) if guards is not None else load_guards(config.guards, config)
    return app
