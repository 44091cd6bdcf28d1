"""Every subscription of every tenant, in memory, written through to the store.

Subscriptions are few and read on every entity write (to find those that fire), so the
registry keeps them all in memory and the store is only their durable copy: loaded at
start-up, written on each create/update/delete. Notification counters change on every
notification, so those writes are batched: the dict changes at once (GET shows it) and
a flusher persists the changed subscriptions a moment later, and on close.

The dicts handed out (``for_tenant``, ``get``) are the live canonical subscriptions
(see ``model.py``): read them, never change them; change them through the methods.

Several workers on one database (a ``shared`` store): each keeps its own copy, and the
database is the truth. A worker learns of another's changes through the store's change
notifications (``reload``). Counters must add up, so a worker does not write its copy
back: it keeps the notification outcomes it saw as events (``_events``) and the flush
replays them on the stored subscription under a row lock (``modify_subscription``); its
copy is then the stored subscription with the events not flushed yet replayed on it. A
throttled or oneshot subscription fires once across workers: its trigger is only
optimistic until the notifier ``claim``s it, which checks and records lastNotification
(and the oneshot status) in the database before the notification is sent.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from typing import Any, Awaitable, Callable

from ngsi.destinations import Gate, Refused
from ngsi.errors import BadRequest, NotFound

from ..flushing import DelayedFlush
from ..store import Store
from .matcher import is_active, throttled
from .model import SUBSCRIPTION_NOT_FOUND, Sub, apply_update, destination_urls

log = logging.getLogger("waziup.subscriptions")

# (tenant, "create" | "update" | "delete", subscription)
SubListener = Callable[[str, str, Sub], Awaitable[None] | None]
# A notification outcome: ("sent", when) | ("success", when, code) | ("failure", when, reason) | ("status", status)
Event = tuple[Any, ...]

_counter = int.from_bytes(os.urandom(3), "big")


def new_sub_id(now: float | None = None) -> str:
    """24 lowercase hex digits laid out as a MongoDB ObjectId (time, random, counter),
    so that ids sort in creation order as Orion's do."""
    global _counter
    _counter = (_counter + 1) & 0xFFFFFF
    seconds = int(time.time() if now is None else now) & 0xFFFFFFFF
    return f"{seconds:08x}{os.urandom(5).hex()}{_counter:06x}"


class SubscriptionRegistry(DelayedFlush):
    def __init__(self, store: Store, *, gate: Gate | None = None) -> None:
        super().__init__()
        self.store = store
        self.gate = gate  # the destination policy, checked on the URLs of what clients write
        self._tenants: dict[str, dict[str, Sub]] = {}
        self.listeners: list[SubListener] = []
        self.shared = bool(getattr(store, "shared", False))
        self._events: dict[tuple[str, str], list[Event]] = {}  # shared store: not flushed yet
        self._unclaimed: dict[tuple[str, str], deque[float]] = {}  # shared store: triggers to claim

    # ------------------------------------------------------------------ life cycle

    async def load(self) -> None:
        """Read every stored subscription (in creation order) into memory."""
        loaded = await self.store.load_docs("subscription")
        self._tenants = {}
        for tenant, sub in loaded:
            self._refresh(tenant, sub)

    async def reload(self, tenant: str, sub_id: str) -> None:
        """Another worker changed (or deleted) this subscription: take the stored one."""
        stored = await self.store.get_doc("subscription", tenant, sub_id)
        known = self.get(tenant, sub_id)
        if stored is None:
            if known is not None:
                del self._tenants[tenant][sub_id]
                self._forget(tenant, sub_id)
                await self._emit(tenant, "delete", known)
            return
        sub = self._refresh(tenant, stored)
        await self._emit(tenant, "create" if known is None else "update", sub)

    def _refresh(self, tenant: str, stored: Sub) -> Sub:
        """This worker's copy: the stored subscription and the outcomes not flushed yet."""
        stored["_tenant"] = tenant
        key = (tenant, stored["id"])
        _replay(stored, self._events.get(key, ()))
        for when in self._unclaimed.get(key, ()):
            _apply(stored, ("sent", when))
        self._tenants.setdefault(tenant, {})[stored["id"]] = stored
        return stored

    def _forget(self, tenant: str, sub_id: str) -> None:
        self._dirty.discard((tenant, sub_id))
        self._events.pop((tenant, sub_id), None)
        self._unclaimed.pop((tenant, sub_id), None)

    async def flush(self) -> None:
        """Persist the subscriptions whose counters changed since the last flush."""
        dirty, self._dirty = self._dirty, set()
        for tenant, sub_id in dirty:
            if self.shared:
                await self._flush_events(tenant, sub_id)
                continue
            sub = self._tenants.get(tenant, {}).get(sub_id)
            if sub is not None:
                try:
                    await self.store.save_doc("subscription", tenant, sub)
                except Exception:  # the counters are kept in memory; a later change retries
                    log.exception("could not persist subscription %s", sub_id)
                    self._dirty.add((tenant, sub_id))

    async def _flush_events(self, tenant: str, sub_id: str) -> None:
        """Shared store: replay this worker's outcomes on the stored subscription, atomically."""
        events = self._events.pop((tenant, sub_id), [])
        if not events:
            return
        try:
            stored = await self.store.modify_subscription(tenant, sub_id, lambda doc: _replay(doc, events))
        except Exception:  # kept for the next flush
            log.exception("could not persist subscription %s", sub_id)
            self._events.setdefault((tenant, sub_id), [])[:0] = events
            self._dirty.add((tenant, sub_id))
            return
        if stored is not None and self.get(tenant, sub_id) is not None:
            self._refresh(tenant, stored)

    async def claim(self, tenant: str, sub_id: str) -> bool:
        """May the oldest trigger of this subscription be sent? Always, unless the store is
        shared and the subscription throttled or oneshot: then the database decides, so that
        only one worker notifies within a throttling period, or at all for a oneshot."""
        key = (tenant, sub_id)
        waiting = self._unclaimed.get(key)
        if not waiting:
            return True
        when = waiting.popleft()
        events = self._events.pop(key, [])
        granted = False

        def decide(doc: Sub) -> Sub:
            nonlocal granted
            _replay(doc, events)
            granted = is_active(doc, when) and not throttled(doc, when)
            if granted:
                _apply(doc, ("sent", when))
            return doc

        try:
            stored = await self.store.modify_subscription(tenant, sub_id, decide)
        except Exception:  # the database is away: deliver rather than lose the notification
            log.exception("could not claim a notification of subscription %s", sub_id)
            self._events.setdefault(key, [])[:0] = [*events, ("sent", when)]
            self._mark(tenant, sub_id)
            return True
        if stored is None:
            return False
        if self.get(tenant, sub_id) is not None:
            self._refresh(tenant, stored)
        return granted

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

    async def _check_destinations(self, doc: Sub) -> None:
        if self.gate is None:
            return
        try:
            await self.gate.refuse_created(destination_urls(doc))
        except Refused as exc:
            raise BadRequest(exc.reason) from None

    async def create(self, tenant: str, service_path: str, parsed: Sub) -> Sub:
        await self._check_destinations(parsed)
        sub: Sub = {"id": new_sub_id(), **parsed, "_servicePath": service_path, "_tenant": tenant}
        await self.store.save_doc("subscription", tenant, sub)
        self._tenants.setdefault(tenant, {})[sub["id"]] = sub
        await self._emit(tenant, "create", sub)
        return sub

    async def update(self, tenant: str, sub_id: str, patch: Sub, service_path: str) -> Sub:
        """Apply a parsed PATCH; the subscription moves to the request's service path (1693)."""
        stored = self.find(tenant, sub_id)
        await self._check_destinations(patch)
        if self.shared:  # on the stored version: counters other workers wrote stay
            # Outcomes seen before the PATCH go first: replayed after it, past failures
            # would turn a subscription the PATCH re-activates inactive again (maxFailsLimit).
            await self._flush_events(tenant, sub_id)

            def patched(doc: Sub) -> Sub:
                new = apply_update(doc, patch)
                new["_servicePath"] = service_path
                return new

            written = await self.store.modify_subscription(tenant, sub_id, patched)
            if written is None:  # deleted by another worker meanwhile
                self._tenants.get(tenant, {}).pop(sub_id, None)
                self._forget(tenant, sub_id)
                raise NotFound(SUBSCRIPTION_NOT_FOUND)
            sub = self._refresh(tenant, written)
            await self._emit(tenant, "update", sub)
            return sub
        sub = apply_update(stored, patch)
        sub["_servicePath"] = service_path
        await self.store.save_doc("subscription", tenant, sub)
        self._tenants[tenant][sub_id] = sub
        self._dirty.discard((tenant, sub_id))
        await self._emit(tenant, "update", sub)
        return sub

    async def delete(self, tenant: str, sub_id: str) -> Sub:
        sub = self.find(tenant, sub_id)
        await self.store.delete_doc("subscription", tenant, sub_id)
        del self._tenants[tenant][sub_id]
        self._forget(tenant, sub_id)
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
        if self.shared and (sub.get("throttling") or sub.get("status") == "oneshot"):
            self._unclaimed.setdefault((tenant, sub_id), deque()).append(when)
            _apply(sub, ("sent", when))  # optimistic until claimed
            return
        self._record(tenant, sub, ("sent", when))

    def record_success(self, tenant: str, sub_id: str, when: float, code: int | None) -> None:
        """A notification got an HTTP answer with status ``code`` (None: published over MQTT)."""
        sub = self.get(tenant, sub_id)
        if sub is not None:
            self._record(tenant, sub, ("success", when, code))

    def record_failure(self, tenant: str, sub_id: str, when: float, reason: str) -> None:
        """A notification failed; past ``maxFailsLimit`` failures in a row the subscription
        becomes inactive (3541: with a limit of 3 the 4th failure disables it)."""
        sub = self.get(tenant, sub_id)
        if sub is not None:
            self._record(tenant, sub, ("failure", when, reason))

    def set_status(self, tenant: str, sub_id: str, status: str) -> None:
        """Status changes made by the notifier (a oneshot subscription that fired)."""
        sub = self.get(tenant, sub_id)
        if sub is not None:
            self._record(tenant, sub, ("status", status))

    def _record(self, tenant: str, sub: Sub, event: Event) -> None:
        sub_id = sub["id"]
        was = sub.get("status")
        _apply(sub, event)
        if event[0] == "failure" and was != "inactive" and sub.get("status") == "inactive":
            # orion-api.md, `subscription.notification` > maxFailsLimit: Orion's WARN trace
            notification = sub.get("notification") or {}
            log.warning("Subscription %s automatically disabled due to failsCounter (%s) overpasses "
                        "maxFailsLimit (%s)", sub_id, notification.get("failsCounter"),
                        notification.get("maxFailsLimit"))
        if self.shared:
            self._events.setdefault((tenant, sub_id), []).append(event)
        self._mark(tenant, sub_id)


def _apply(sub: Sub, event: Event) -> None:
    """One notification outcome on a subscription (Orion's counters and status rules)."""
    kind = event[0]
    if kind == "status":
        sub["status"] = event[1]
        return
    notification: dict[str, Any] = sub.setdefault("notification", {})
    when = float(int(event[1]))
    if kind == "sent":
        notification["timesSent"] = int(notification.get("timesSent", 0)) + 1
        notification["lastNotification"] = when
        if sub.get("status") == "oneshot":
            sub["status"] = "inactive"
    elif kind == "success":
        notification["lastSuccess"] = when
        if event[2] is None:  # MQTT: no status code, Orion shows none
            notification.pop("lastSuccessCode", None)
        else:
            notification["lastSuccessCode"] = int(event[2])
        notification.pop("failsCounter", None)
    else:
        notification["lastFailure"] = when
        notification["lastFailureReason"] = event[2]
        fails = int(notification.get("failsCounter", 0)) + 1
        notification["failsCounter"] = fails
        limit = notification.get("maxFailsLimit")
        if limit and fails > limit:
            sub["status"] = "inactive"


def _replay(sub: Sub, events: Any) -> Sub:
    for event in events:
        _apply(sub, event)
    return sub
