"""All registrations in memory, per tenant, written through to the store.

Forwarding looks registrations up on every query and update, so they live in memory
(a broker holds few of them); the store is only written on create and delete and read
once at start-up.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from ngsi.destinations import Gate, Refused
from ngsi.errors import BadRequest, NotFound
from ngsi.servicepath import covers

from ..store import Store
from .model import REGISTRATION_NOT_FOUND, Reg

Scopes = tuple[tuple[str, bool], ...]


def new_id() -> str:
    """24 lowercase hex digits, Orion's (MongoDB ObjectId) format."""
    return secrets.token_hex(12)


class RegistrationRegistry:
    def __init__(self, store: Store, *, gate: Gate | None = None) -> None:
        self.store = store
        self.gate = gate  # the destination policy, checked on the provider URL at creation
        self._tenants: dict[str, dict[str, Reg]] = {}  # tenant -> id -> reg, creation order

    async def load(self) -> None:
        self._tenants = {}
        for tenant, reg in await self.store.load_docs("registration"):
            self._tenants.setdefault(tenant, {})[reg["id"]] = reg

    async def reload(self, tenant: str, reg_id: str) -> None:
        """Another worker created or deleted this registration: take the stored state."""
        stored = await self.store.get_doc("registration", tenant, reg_id)
        if stored is None:
            self._tenants.get(tenant, {}).pop(reg_id, None)
        else:
            self._tenants.setdefault(tenant, {})[reg_id] = stored

    def has_any(self, tenant: str) -> bool:
        """Cheap test that keeps forwarding out of the way of brokers without registrations."""
        return bool(self._tenants.get(tenant))

    def visible(self, tenant: str, scopes: Scopes) -> list[Reg]:
        """The registrations of a tenant whose service path the request's scopes cover."""
        return [r for r in self._tenants.get(tenant, {}).values() if covers(scopes, r["_servicePath"])]

    def active(self, tenant: str, scopes: Scopes, now: float | None = None) -> list[Reg]:
        """What forwarding considers: visible, status active, not expired."""
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
        await self.store.delete_doc("registration", tenant, reg_id)
        del self._tenants[tenant][reg_id]
