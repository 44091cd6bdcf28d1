"""Every subscription of every tenant, in memory, written through to the store.

Subscriptions are few and read on every entity write (to find those that fire), so the
registry keeps them all in memory and the store is only their durable copy: loaded at
start-up, written on each create/update/delete. Notification counters change on every
notification, so those writes are batched: the dict changes at once (GET shows it) and
a flusher persists the changed subscriptions a moment later, and on close.

The dicts handed out (``for_tenant``, ``get``) are the live canonical subscriptions
(see ``model.py``): read them, never change them; change them through the methods.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from typing import Any, Awaitable, Callable

from ngsi.errors import NotFound

from ..store import Store
from .model import SUBSCRIPTION_NOT_FOUND, Sub, apply_update

log = logging.getLogger("waziup.subscriptions")

FLUSH_DELAY = 0.5  # seconds between a counter change and its write to the store
# (tenant, "create" | "update" | "delete", subscription)
SubListener = Callable[[str, str, Sub], Awaitable[None] | None]

_counter = int.from_bytes(os.urandom(3), "big")


def new_sub_id(now: float | None = None) -> str:
    """24 lowercase hex digits laid out as a MongoDB ObjectId (time, random, counter),
    so that ids sort in creation order as Orion's do."""
    global _counter
    _counter = (_counter + 1) & 0xFFFFFF
    seconds = int(time.time() if now is None else now) & 0xFFFFFFFF
    return f"{seconds:08x}{os.urandom(5).hex()}{_counter:06x}"


class SubscriptionRegistry:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._tenants: dict[str, dict[str, Sub]] = {}
        self._dirty: set[tuple[str, str]] = set()
        self._flusher: asyncio.Task[None] | None = None
        self.listeners: list[SubListener] = []

    # ------------------------------------------------------------------ life cycle

    async def load(self) -> None:
        """Read every stored subscription (in creation order) into memory."""
        self._tenants.clear()
        for tenant, sub in await self.store.load_subscriptions():
            sub["_tenant"] = tenant
            self._tenants.setdefault(tenant, {})[sub["id"]] = sub

    async def close(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None
        await self.flush()

    async def flush(self) -> None:
        """Persist the subscriptions whose counters changed since the last flush."""
        dirty, self._dirty = self._dirty, set()
        for tenant, sub_id in dirty:
            sub = self._tenants.get(tenant, {}).get(sub_id)
            if sub is not None:
                try:
                    await self.store.save_subscription(tenant, sub)
                except Exception:  # the counters are kept in memory; a later change retries
                    log.exception("could not persist subscription %s", sub_id)
                    self._dirty.add((tenant, sub_id))

    # ------------------------------------------------------------------ reads

    def for_tenant(self, tenant: str) -> list[Sub]:
        """The subscriptions of a tenant, in creation order."""
        return list(self._tenants.get(tenant, {}).values())

    def get(self, tenant: str, sub_id: str) -> Sub | None:
        return self._tenants.get(tenant, {}).get(sub_id)

    def find(self, tenant: str, sub_id: str, service_path: str | None = None) -> Sub:
        """The subscription or Orion's 404; with ``service_path``, only one created there (3945)."""
        sub = self.get(tenant, sub_id)
        if sub is None or (service_path is not None and sub.get("_servicePath") != service_path):
            raise NotFound(SUBSCRIPTION_NOT_FOUND)
        return sub

    def select(self, tenant: str, service_path: str | None = None) -> list[Sub]:
        subs = self.for_tenant(tenant)
        if service_path is None:
            return subs
        return [s for s in subs if s.get("_servicePath") == service_path]

    # ------------------------------------------------------------------ writes

    async def create(self, tenant: str, service_path: str, parsed: Sub) -> Sub:
        sub: Sub = {"id": new_sub_id(), **parsed, "_servicePath": service_path, "_tenant": tenant}
        await self.store.save_subscription(tenant, sub)
        self._tenants.setdefault(tenant, {})[sub["id"]] = sub
        await self._emit(tenant, "create", sub)
        return sub

    async def update(self, tenant: str, sub_id: str, patch: Sub, service_path: str) -> Sub:
        """Apply a parsed PATCH; the subscription moves to the request's service path (1693)."""
        stored = self.find(tenant, sub_id)
        sub = apply_update(stored, patch)
        sub["_servicePath"] = service_path
        await self.store.save_subscription(tenant, sub)
        self._tenants[tenant][sub_id] = sub
        self._dirty.discard((tenant, sub_id))
        await self._emit(tenant, "update", sub)
        return sub

    async def delete(self, tenant: str, sub_id: str) -> Sub:
        sub = self.find(tenant, sub_id)
        await self.store.delete_subscription(tenant, sub_id)
        del self._tenants[tenant][sub_id]
        self._dirty.discard((tenant, sub_id))
        await self._emit(tenant, "delete", sub)
        return sub

    async def _emit(self, tenant: str, action: str, sub: Sub) -> None:
        for listener in self.listeners:
            try:
                result = listener(tenant, action, sub)
                if result is not None:
                    await result
            except Exception:  # a listener's failure must not fail the request
                log.exception("subscription listener failed")

    # ------------------------------------------------------------------ notification outcomes

    def record_sent(self, tenant: str, sub_id: str, when: float) -> None:
        """A notification was triggered: Orion counts it (timesSent, lastNotification) at
        that moment, whatever its outcome, and a oneshot subscription turns inactive."""
        sub = self.get(tenant, sub_id)
        if sub is None:  # deleted meanwhile
            return
        notification: dict[str, Any] = sub.setdefault("notification", {})
        notification["timesSent"] = int(notification.get("timesSent", 0)) + 1
        notification["lastNotification"] = float(int(when))
        if sub.get("status") == "oneshot":
            sub["status"] = "inactive"
        self._mark(tenant, sub_id)

    def record_success(self, tenant: str, sub_id: str, when: float, code: int) -> None:
        """A notification got an HTTP answer with status ``code``."""
        sub = self.get(tenant, sub_id)
        if sub is None:
            return
        notification: dict[str, Any] = sub.setdefault("notification", {})
        notification["lastSuccess"] = float(int(when))
        notification["lastSuccessCode"] = int(code)
        notification.pop("failsCounter", None)
        self._mark(tenant, sub_id)

    def record_failure(self, tenant: str, sub_id: str, when: float, reason: str) -> None:
        """A notification failed; past ``maxFailsLimit`` failures in a row the subscription
        becomes inactive (3541: with a limit of 3 the 4th failure disables it)."""
        sub = self.get(tenant, sub_id)
        if sub is None:
            return
        notification: dict[str, Any] = sub.setdefault("notification", {})
        notification["lastFailure"] = float(int(when))
        notification["lastFailureReason"] = reason
        fails = int(notification.get("failsCounter", 0)) + 1
        notification["failsCounter"] = fails
        limit = notification.get("maxFailsLimit")
        if limit and fails > limit:
            sub["status"] = "inactive"
        self._mark(tenant, sub_id)

    def set_status(self, tenant: str, sub_id: str, status: str) -> None:
        """Status changes made by the notifier (a oneshot subscription that fired)."""
        sub = self.get(tenant, sub_id)
        if sub is None:
            return
        sub["status"] = status
        self._mark(tenant, sub_id)

    def _mark(self, tenant: str, sub_id: str) -> None:
        self._dirty.add((tenant, sub_id))
        if self._flusher is None or self._flusher.done():
            try:
                self._flusher = asyncio.get_running_loop().create_task(self._flush_later())
            except RuntimeError:  # no loop (pure tests): flush() persists on demand
                self._flusher = None

    async def _flush_later(self) -> None:
        while self._dirty:
            await asyncio.sleep(FLUSH_DELAY)
            await self.flush()
