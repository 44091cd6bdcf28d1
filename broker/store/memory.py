"""In-memory store: the contract over dicts, for tests and throw-away brokers."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from . import outbox
from .base import DOC_TABLES, AlreadyExists, DocKind, Entity, Selector, Store, entity_key


class MemoryStore(Store):
    def __init__(self, url: str = "memory://") -> None:
        self._tenants: dict[str, dict[tuple[str, str, str], Entity]] = {}
        # kind -> id -> (tenant, document), in creation order
        self._docs: dict[str, dict[str, tuple[str, dict[str, Any]]]] = {kind: {} for kind in DOC_TABLES}
        self._outbox = outbox.MemoryOutbox()

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

    async def outbox_append(self, stream: str, rows: Sequence[outbox.Row]) -> None:
        self._outbox.append(stream, rows)

    async def outbox_read(self, stream: str, limit: int) -> list[outbox.Stored]:
        return self._outbox.read(stream, limit)

    async def outbox_remove(self, stream: str, upto: int) -> None:
        self._outbox.remove(stream, upto)

    async def outbox_lease(self, stream: str, holder: str, seconds: float) -> bool:
        return self._outbox.lease(stream, holder, seconds)

    async def purge_expired(self, now: float) -> list[tuple[str, Entity]]:
        purged = []
        for tenant, entities in self._tenants.items():
            for key, entity in list(entities.items()):
                if entity.get("expDate") is not None and entity["expDate"] < now:
                    purged.append((tenant, entities.pop(key)))
        return purged

    async def load_docs(self, kind: DocKind) -> list[tuple[str, dict[str, Any]]]:
        return [(tenant, copy.deepcopy(doc)) for tenant, doc in self._docs[kind].values()]

    async def save_doc(self, kind: DocKind, tenant: str, doc: dict[str, Any]) -> None:
        self._docs[kind][doc["id"]] = (tenant, copy.deepcopy(doc))

    async def delete_doc(self, kind: DocKind, tenant: str, doc_id: str) -> bool:
        docs = self._docs[kind]
        found = docs.get(doc_id)
        if found is None or found[0] != tenant:
            return False
        del docs[doc_id]
        return True
