"""The live feed: one broker subscription per tenant and viewer, fanned out to the pages as
server-sent events.

The first page that listens to a tenant makes the hub subscribe to every entity of that
tenant (service path ``/#``), notifying ``<notify base>/notify/<secret>/<feed>``; the
secret is drawn at start-up, so only the broker this hub subscribed to can feed it. Each
notification's entities go to the listeners of that feed whose service path covers the
entity's (the broker says which in ``Fiware-ServicePath``, one per entity). The hub never
polls: a page sees a change as soon as the broker notifies it.

With sign-in (``-auth``) each signed-in user (the *viewer*) has feeds of their own: the
subscription is made with the user's token, so the broker's notification filter gives it
exactly what that user may read (entities, attributes: the policies' projections), and no
page is sent what another user's subscription received. Without sign-in there is one
viewer, ``""``. The feed's name in the URL is the tenant (``-`` for the default one),
then ``~`` and the viewer when there is one.

Before a page listens, the broker is asked, with the page's own headers and token, for one
entity of the tenant and path: a page whose caller may not read them gets no feed.

Subscriptions a previous run of the dashboard left (same notify base, another secret) are
deleted when a feed is subscribed again; the hub deletes its own at shutdown.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote

import orjson

from ngsi.client import HTTPClient, HTTPError

log = logging.getLogger("waziup.dashboard")

DESCRIPTION = "waziup dashboard live feed"
QUEUE_SIZE = 1000  # events a slow page may lag behind before it is told to reload
HEARTBEAT = 15.0  # seconds between two comments on an idle stream (proxies close silent ones)


def covers(wanted: str, path: str) -> bool:
    """Whether a page listening to service path ``wanted`` (``/a``, ``/a/#``, ``/``) sees
    an entity in ``path``. ``/`` and ``/#`` see everything, as the pages' picker offers."""
    wanted = wanted or "/"
    if wanted in ("/", "/#"):
        return True
    if wanted.endswith("/#"):
        base = wanted[:-2]
        return path == base or path.startswith(base + "/")
    return path == wanted


def feed_name(tenant: str, viewer: str) -> str:
    """The feed's part of the notification URL (tenants are ``[A-Za-z0-9_]``, so ``~`` is free)."""
    return quote(tenant or "-", safe="") + (f"~{quote(viewer, safe='')}" if viewer else "")


def parse_feed(name: str) -> tuple[str, str]:
    """(tenant, viewer) of a feed's name, as :func:`feed_name` wrote it."""
    tenant, _, viewer = unquote(name).partition("~")
    return ("" if tenant == "-" else tenant), viewer


@dataclass(eq=False)
class Listener:
    tenant: str
    service_path: str
    viewer: str = ""
    queue: asyncio.Queue[bytes | None] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))


class Hub:
    """Tenants' subscriptions and the pages listening to them (``listen``, ``notified``)."""

    def __init__(self, client: HTTPClient, broker_url: str, notify_base: str, *, timeout: float = 10.0) -> None:
        self.client = client
        self.broker_url = broker_url.rstrip("/")
        self.notify_base = notify_base.rstrip("/")
        self.secret = secrets.token_urlsafe(16)
        self.timeout = timeout
        self.listeners: set[Listener] = set()
        self.subscriptions: dict[tuple[str, str], str] = {}  # (tenant, viewer) -> subscription id
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}

    def _headers(self, tenant: str, token: str = "") -> list[tuple[str, str]]:
        headers = [("fiware-servicepath", "/#")]
        if tenant:
            headers.append(("fiware-service", tenant))
        if token:
            headers.append(("x-auth-token", token))
        return headers

    async def ensure(self, tenant: str, token: str = "", viewer: str = "") -> None:
        """Subscribe ``viewer`` to ``tenant`` (with their token) unless done; stale
        subscriptions of earlier runs go."""
        key = (tenant, viewer)
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            if key in self.subscriptions:
                return
            mine = f"{self.notify_base}/notify/{self.secret}/{feed_name(tenant, viewer)}"
            await self._drop_stale(tenant, token)
            body = {
                "description": DESCRIPTION,
                "subject": {"entities": [{"idPattern": ".*"}]},
                "notification": {"http": {"url": mine}, "attrsFormat": "normalized"},
            }
            response = await self.client.request(
                "POST", self.broker_url + "/v2/subscriptions",
                [*self._headers(tenant, token), ("content-type", "application/json")], orjson.dumps(body),
                timeout=self.timeout)
            if response.status != 201:
                raise RuntimeError(f"the broker refused the live feed's subscription: {response.status} "
                                   f"{response.body[:200].decode(errors='replace')}")
            location = response.header("location") or ""
            self.subscriptions[key] = location.rsplit("/", 1)[-1]
            log.info("live feed subscribed tenant=%r subscription=%s", tenant, self.subscriptions[key])

    async def may_read(self, tenant: str, service_path: str, token: str) -> None:
        """The broker decides whether the page's caller may read the tenant and path (its PEP,
        with ``-auth``): one entity asked for with the caller's headers; RuntimeError if not."""
        headers = [("fiware-servicepath", service_path or "/")]
        if tenant:
            headers.append(("fiware-service", tenant))
        if token:
            headers.append(("x-auth-token", token))
        response = await self.client.request("GET", self.broker_url + "/v2/entities?limit=1&attrs=id", headers,
                                             timeout=self.timeout)
        if response.status != 200:
            raise RuntimeError(f"the broker refused to show this tenant and path: {response.status}")

    async def _drop_stale(self, tenant: str, token: str) -> None:
        response = await self.client.request("GET", self.broker_url + "/v2/subscriptions?limit=1000",
                                             self._headers(tenant, token), timeout=self.timeout)
        if response.status != 200:
            return
        prefix, ours = f"{self.notify_base}/notify/", f"{self.notify_base}/notify/{self.secret}/"
        for sub in orjson.loads(response.body):
            url = sub.get("notification", {}).get("http", {}).get("url", "")
            if sub.get("description") == DESCRIPTION and url.startswith(prefix) and not url.startswith(ours):
                await self.client.request("DELETE", f"{self.broker_url}/v2/subscriptions/{sub['id']}",
                                          self._headers(tenant, token), timeout=self.timeout)

    async def close(self) -> None:
        """Delete this run's subscriptions (best effort: the next run drops what is left)."""
        for (tenant, _), sub in list(self.subscriptions.items()):
            try:
                await self.client.request("DELETE", f"{self.broker_url}/v2/subscriptions/{sub}",
                                          self._headers(tenant), timeout=2)
            except HTTPError:
                pass
        self.subscriptions.clear()
        for listener in self.listeners:
            listener.queue.put_nowait(None)

    def notified(self, secret: str, feed: str, body: dict[str, Any], paths: Sequence[str]) -> bool:
        """A notification of the broker to ``feed`` (its name in the URL): each entity to the
        pages of that feed that see it. False for a foreign secret (nothing is sent)."""
        if not secrets.compare_digest(secret.encode("utf-8", "replace"), self.secret.encode()):
            return False
        tenant, viewer = parse_feed(feed)
        entities = body.get("data") or []
        for index, entity in enumerate(entities):
            path = paths[index] if index < len(paths) else (paths[-1] if paths else "/")
            event = b"event: entity\ndata: " + orjson.dumps({"servicePath": path, "entity": entity}) + b"\n\n"
            for listener in list(self.listeners):
                if listener.tenant == tenant and listener.viewer == viewer and covers(listener.service_path, path):
                    try:
                        listener.queue.put_nowait(event)
                    except asyncio.QueueFull:  # a page too slow: what it missed is dropped, it reloads
                        while not listener.queue.empty():
                            listener.queue.get_nowait()
                        listener.queue.put_nowait(b"event: overflow\ndata: {}\n\n")
        return True

    async def listen(self, tenant: str, service_path: str, token: str = "", viewer: str = "") -> AsyncIterator[bytes]:
        """The event stream of one page: ``ready`` once subscribed, then entities."""
        listener = Listener(tenant, service_path, viewer)
        self.listeners.add(listener)
        try:
            try:
                await self.may_read(tenant, service_path, token)
                await self.ensure(tenant, token, viewer)
                yield b"event: ready\ndata: {}\n\n"
            except (HTTPError, RuntimeError) as exc:
                log.warning("live feed unavailable tenant=%r: %s", tenant, exc)
                yield b"event: unavailable\ndata: " + orjson.dumps({"reason": str(exc)}) + b"\n\n"
                return
            while True:
                try:
                    event = await asyncio.wait_for(listener.queue.get(), HEARTBEAT)
                except TimeoutError:
                    yield b": keep-alive\n\n"
                    continue
                if event is None:
                    return
                yield event
        finally:
            self.listeners.discard(listener)
