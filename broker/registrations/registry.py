"""All registrations in memory, per tenant, written through to the store.

Forwarding looks registrations up on every query and update, so they live in memory
(a broker holds few of them); the store is written on create and delete and read once at
start-up.

Each registration also counts its forwardings (``forwardingInformation``: timesSent,
lastForwarding, lastSuccess, lastFailure). Those change on every forwarded request, so
they are kept beside the registrations, shown at once, and written to the store a moment
later and on close (``broker/flushing.py``), as the subscriptions' notification counters are. A
store shared by several workers has no atomic update of a registration, and a write that
raced a delete would bring the registration back: there each worker keeps its own
counters in memory only (docs/broker.md).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from typing import Any

from ngsi.destinations import Gate, Refused
from ngsi.errors import BadRequest, NotFound
from ngsi.servicepath import covers

from ..flushing import DelayedFlush
from ..store import Store
from .model import FORWARDING_INFO, REGISTRATION_NOT_FOUND, Reg

log = logging.getLogger("waziup.registrations")

Scopes = tuple[tuple[str, bool], ...]


def new_id() -> str:
    """24 lowercase hex digits, Orion's (MongoDB ObjectId) format."""
    return secrets.token_hex(12)


class RegistrationRegistry(DelayedFlush):
    def __init__(self, store: Store, *, gate: Gate | None = None) -> None:
        super().__init__()
        self.store = store
        self.gate = gate  # the destination policy, checked on the provider URL at creation
        self._tenants: dict[str, dict[str, Reg]] = {}  # tenant -> id -> reg, creation order
        # (tenant, id) -> {"timesSent", "lastForwarding", "lastSuccess"?, "lastFailure"?}
        self._forwarding: dict[tuple[str, str], dict[str, Any]] = {}
        self._lock = asyncio.Lock()  # a counters write never follows (and undoes) a delete

    async def load(self) -> None:
        self._tenants = {}
        self._forwarding = {}
        for tenant, reg in await self.store.load_docs("registration"):
            self._tenants.setdefault(tenant, {})[reg["id"]] = reg
            if reg.get(FORWARDING_INFO):
                self._forwarding[(tenant, reg["id"])] = dict(reg[FORWARDING_INFO])

    async def reload(self, tenant: str, reg_id: str) -> None:
        """Another worker created or deleted this registration: take the stored state."""
        stored = await self.store.get_doc("registration", tenant, reg_id)
        if stored is None:
            self._tenants.get(tenant, {}).pop(reg_id, None)
            self._forget(tenant, reg_id)
        else:
            self._tenants.setdefault(tenant, {})[reg_id] = stored

    def has_any(self, tenant: str) -> bool:
        """Cheap test that keeps forwarding out of the way of brokers without registrations."""
        return bool(self._tenants.get(tenant))

    def visible(self, tenant: str, scopes: Scopes) -> list[Reg]:
        """The registrations of a tenant whose service path the request's scopes cover."""
        return [r for r in self._tenants.get(tenant, {}).values() if covers(scopes, r["_servicePath"])]

    def active(self, tenant: str, scopes: Scopes, now: float | None = None) -> list[Reg]:
        """What forwarding considers, in creation order: visible, status active, not expired."""
        now = time.time() if now is None else now
        return [
            r for r in self.visible(tenant, scopes)
            if r.get("status", "active") == "active" and (r.get("expires") is None or r["expires"] > now)
        ]

    def get(self, tenant: str, scopes: Scopes, reg_id: str) -> Reg:
        reg = self._tenants.get(tenant, {}).get(reg_id)
        if reg is None or not covers(scopes, reg["_servicePath"]):
            raise NotFound(REGISTRATION_NOT_FOUND)
        return reg

    def forwarding(self, tenant: str, reg_id: str) -> dict[str, Any] | None:
        """The registration's forwarding counters (None: never forwarded to)."""
        info = self._forwarding.get((tenant, reg_id))
        return dict(info) if info else None

    async def add(self, tenant: str, reg: dict[str, Any]) -> Reg:
        if self.gate is not None:
            try:
                await self.gate.refuse_created([str(reg.get("provider", {}).get("http", {}).get("url", ""))])
            except Refused as exc:
                raise BadRequest(exc.reason) from None
        reg = dict(reg)
        reg["id"] = new_id()
        await self.store.save_doc("registration", tenant, reg)
        self._tenants.setdefault(tenant, {})[reg["id"]] = reg
        return reg

    async def delete(self, tenant: str, scopes: Scopes, reg_id: str) -> None:
        self.get(tenant, scopes, reg_id)
        async with self._lock:
            await self.store.delete_doc("registration", tenant, reg_id)
            self._tenants.get(tenant, {}).pop(reg_id, None)
            self._forget(tenant, reg_id)

    def _forget(self, tenant: str, reg_id: str) -> None:
        self._forwarding.pop((tenant, reg_id), None)
        self._dirty.discard((tenant, reg_id))

    # -- forwarding counters ------------------------------------------------------------------

    def record(self, tenant: str, reg_id: str, sent: float, ok: bool, done: float | None = None) -> None:
        """One request forwarded at ``sent`` (epoch seconds) and answered well or not at ``done``.

        Dates are kept to the second, as Orion keeps the subscriptions' ones.
        """
        if reg_id not in self._tenants.get(tenant, {}):
            return  # deleted meanwhile
        info = self._forwarding.setdefault((tenant, reg_id), {"timesSent": 0})
        info["timesSent"] = int(info.get("timesSent", 0)) + 1
        info["lastForwarding"] = float(int(sent))
        info["lastSuccess" if ok else "lastFailure"] = float(int(sent if done is None else done))
        if self.store.shared:
            return
        self._mark(tenant, reg_id)

    async def flush(self) -> None:
        """Persist the counters changed since the last flush (single-process stores only)."""
        async with self._lock:
            dirty, self._dirty = self._dirty, set()
            for tenant, reg_id in dirty:
                reg = self._tenants.get(tenant, {}).get(reg_id)
                info = self._forwarding.get((tenant, reg_id))
                if reg is None or info is None:
                    continue
                doc = dict(reg, **{FORWARDING_INFO: dict(info)})
                try:
                    await self.store.save_doc("registration", tenant, doc)
                except Exception:  # kept in memory; the next forwarding retries
                    log.exception("could not persist the counters of registration %s", reg_id)
                    self._dirty.add((tenant, reg_id))
                    continue
                self._tenants[tenant][reg_id] = doc
