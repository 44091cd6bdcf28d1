"""In-memory store: the contract over dicts, for tests and throw-away brokers."""

from __future__ import annotations

import copy
from typing import Any

from .base import AlreadyExists, Entity, Selector, Store, entity_key


class MemoryStore(Store):
    def __init__(self, url: str = "memory://") -> None:
        self._tenants: dict[str, dict[tuple[str, str, str], Entity]] = {}
        self._subscriptions: dict[str, tuple[str, dict[str, Any]]] = {}  # id -> (tenant, sub)
        self._registrations: dict[str, tuple[str, dict[str, Any]]] = {}  # id -> (tenant, reg)

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def find(
        self, tenant: str, selector: Selector, *, limit: int | None = None, offset: int = 0
    ) -> list[Entity]:
        found = [e for e in self._tenants.get(tenant, {}).values() if selector.matches(e)]
        found = found[offset:] if limit is None else found[offset : offset + limit]
        # Copies, so that callers may change what they got as they can with a database.
        return copy.deepcopy(found)

    async def insert(self, tenant: str, entity: Entity) -> None:
        entities = self._tenants.setdefault(tenant, {})
        key = entity_key(entity)
        if key in entities:
            raise AlreadyExists(str(key))
        entities[key] = copy.deepcopy(entity)

    async def save(self, tenant: str, entity: Entity) -> None:
        self._tenants.setdefault(tenant, {})[entity_key(entity)] = copy.deepcopy(entity)

    async def delete(self, tenant: str, entity: Entity) -> bool:
        return self._tenants.get(tenant, {}).pop(entity_key(entity), None) is not None

    async def purge_expired(self, now: float) -> list[tuple[str, Entity]]:
        purged = []
        for tenant, entities in self._tenants.items():
            for key, entity in list(entities.items()):
                if entity.get("expDate") is not None and entity["expDate"] < now:
                    purged.append((tenant, entities.pop(key)))
        return purged

    async def load_registrations(self) -> list[tuple[str, dict[str, Any]]]:
        return [(tenant, copy.deepcopy(reg)) for tenant, reg in self._registrations.values()]

    async def save_registration(self, tenant: str, reg: dict[str, Any]) -> None:
        self._registrations[reg["id"]] = (tenant, copy.deepcopy(reg))

    async def delete_registration(self, tenant: str, reg_id: str) -> bool:
        found = self._registrations.get(reg_id)
        if found is None or found[0] != tenant:
            return False
        del self._registrations[reg_id]
        return True

    async def load_subscriptions(self) -> list[tuple[str, dict[str, Any]]]:
        return [(tenant, copy.deepcopy(sub)) for tenant, sub in self._subscriptions.values()]

    async def save_subscription(self, tenant: str, sub: dict[str, Any]) -> None:
        self._subscriptions[sub["id"]] = (tenant, copy.deepcopy(sub))

    async def delete_subscription(self, tenant: str, sub_id: str) -> bool:
        found = self._subscriptions.get(sub_id)
        if found is None or found[0] != tenant:
            return False
        del self._subscriptions[sub_id]
        return True
