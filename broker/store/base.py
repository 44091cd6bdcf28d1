"""The store contract every backend implements.

A store keeps entity documents (the internal form of ``ngsi/__init__.py``) per tenant,
keyed by (id, type, servicePath), in creation order. It knows nothing of NGSI
semantics: the broker reads documents, changes them with pure ``ngsi`` code and writes
them back. A store answers the filters an index can serve (tenant, id, id pattern,
type, type pattern, service path); ``q``, ``mq`` and geo filters run in the broker on
what the store returns.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from collections.abc import Sequence
from typing import Any, Awaitable, Callable, Literal

from ngsi.regex import compile_pattern
from ngsi.servicepath import covers
from ngsi.store_lifecycle import ErrorMapping, Openable, backend_class

Entity = dict[str, Any]
# What a read-modify-write decides to do: ("insert" | "save" | "delete", entity), or nothing.
Write = tuple[str, Entity] | None
# Told of a subscription or registration another process changed: (kind, tenant, id), kind
# "subscription" | "registration", or "*" (notifications may have been missed: reload all).
ChangeCallback = Callable[[str, str, str], Awaitable[None] | None]
# The documents a store keeps besides entities, by kind: subscriptions (the canonical dicts
# of broker.subscriptions.model) and registrations (broker.registrations.model); in the SQL
# backends each kind has a table of its own.
DocKind = Literal["subscription", "registration"]
DOC_TABLES: dict[str, str] = {"subscription": "subscriptions", "registration": "registrations"}

BACKENDS = {
    "memory": "broker.store.memory:MemoryStore",
    "sqlite": "broker.store.sqlite:SQLiteStore",
    "postgresql": "broker.store.postgres:PostgresStore",
    "postgres": "broker.store.postgres:PostgresStore",
}


class StoreError(Exception):
    """The store failed to do what was asked."""


class AlreadyExists(StoreError):
    """An insert found an entity with the same id, type and service path."""


class DriverErrors(ErrorMapping):
    """``ngsi.store_lifecycle.ErrorMapping`` to StoreError, where a unique-key violation
    (``duplicate``) is AlreadyExists: one hierarchy whatever the backend."""

    __slots__ = ("duplicate",)

    def __init__(
        self, duplicate: type[BaseException], failures: tuple[type[BaseException], ...], message: str
    ) -> None:
        super().__init__(failures, StoreError, message)
        self.duplicate = duplicate

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, traceback: object) -> None:
        if exc is None:  # every statement: as cheap as the base's
            return
        if isinstance(exc, self.duplicate):
            raise AlreadyExists(str(exc)) from exc
        ErrorMapping.__exit__(self, kind, exc, traceback)


@dataclass(frozen=True)
class ValueHint:
    """Where the broker's ``q`` filter will look, so a store with an index can narrow first.

    The store may drop every entity whose attribute ``attr`` does not exist, or whose value
    is neither a JSON array nor a ``kind`` scalar ("number" | "string") inside one of
    ``intervals`` (closed ``(low, high)`` pairs, ``None`` = unbounded). Keeping more is
    always allowed: the broker runs the exact filter on what the store returns, so a hint
    only has to name a superset of the matches (booleans counting as numbers, arrays always
    kept) and a store may ignore it (the memory store does).
    """

    attr: str
    kind: str
    intervals: tuple[tuple[Any, Any], ...]


@dataclass(frozen=True)
class Selector:
    """Index-served entity filters. ``service_paths`` holds (path, subtree) pairs.
    ``hint`` narrows further for a ``q`` filter the broker applies anyway (see ValueHint)."""

    ids: tuple[str, ...] | None = None
    id_pattern: str | None = None
    types: tuple[str, ...] | None = None
    type_pattern: str | None = None
    service_paths: tuple[tuple[str, bool], ...] = (("/", True),)
    hint: ValueHint | None = None

    def matches(self, entity: Entity) -> bool:
        """The same test the SQL of a backend makes, for stores that scan."""
        if self.ids is not None and entity["id"] not in self.ids:
            return False
        if self.id_pattern is not None and not pattern_search(self.id_pattern, entity["id"]):
            return False
        if self.types is not None and entity["type"] not in self.types:
            return False
        if self.type_pattern is not None and not pattern_search(self.type_pattern, entity["type"]):
            return False
        return covers(self.service_paths, entity["servicePath"])


def pattern_search(pattern: str, text: str) -> bool:
    """An idPattern/typePattern test; a pattern that does not compile is the StoreError
    every backend gives for it."""
    compiled = compile_pattern(pattern)
    if compiled is None:
        raise StoreError(f"invalid regular expression: {pattern!r}")
    return compiled.search(text) is not None


def entity_key(entity: Entity) -> tuple[str, str, str]:
    return (entity["id"], entity["type"], entity["servicePath"])


class Store(Openable):
    """Async contract of an entity store (``open`` and ``close`` are ``Openable``'s).

    A backend must implement the abstract methods; the others have a default built on
    them, which a backend overrides where it can do better (an index, a transaction)."""

    # True when other processes (workers) write the same database: they learn of each
    # other's subscription and registration changes through ``listen``, and writes of
    # shared documents go through the atomic ``modify*`` methods.
    shared = False

    @abc.abstractmethod
    async def find(
        self, tenant: str, selector: Selector, *, limit: int | None = None, offset: int = 0
    ) -> list[Entity]:
        """Matching entities in creation order; ``limit``/``offset`` page them."""

    async def count(self, tenant: str, selector: Selector) -> int:
        return len(await self.find(tenant, selector))

    @abc.abstractmethod
    async def insert(self, tenant: str, entity: Entity) -> None:
        """Add a new entity; raises AlreadyExists when its key is taken."""

    @abc.abstractmethod
    async def save(self, tenant: str, entity: Entity) -> None:
        """Write an entity, replacing the one with the same key (keeping its place in order)."""

    @abc.abstractmethod
    async def delete(self, tenant: str, entity: Entity) -> bool:
        """Remove the entity with ``entity``'s key; whether there was one."""

    async def modify(self, tenant: str, selector: Selector, fn: Callable[[list[Entity]], Write]) -> None:
        """Read-modify-write, atomic: ``fn`` gets the entities ``selector`` finds (at most 2)
        and returns the write to make. Exceptions of ``fn`` write nothing and propagate.

        This default is atomic for stores whose calls never yield to the event loop (memory,
        SQLite: coroutines that await nothing run to their end in one go); a store shared by
        processes overrides it with a transaction that locks the rows.
        """
        found = await self.find(tenant, selector, limit=2)
        write = fn(found)
        if write is not None:
            op, entity = write
            if op == "insert":
                await self.insert(tenant, entity)
            elif op == "save":
                await self.save(tenant, entity)
            else:
                await self.delete(tenant, entity)

    async def modify_many(self, tenant: str, steps: Sequence[tuple[Selector, Callable[[list[Entity]], Write]]]) -> None:
        """Several read-modify-writes in order (a batch update), each step seeing what the
        steps before it wrote. When a step raises, the writes of the steps before it stay and
        the exception propagates. A backend may run them all in one transaction; this default
        is one ``modify`` per step."""
        for selector, fn in steps:
            await self.modify(tenant, selector, fn)

    @abc.abstractmethod
    async def purge_expired(self, now: float) -> list[tuple[str, Entity]]:
        """Remove the entities whose dateExpires has passed; returns (tenant, entity) pairs."""

    # -- subscriptions and registrations: documents keyed by their "id", per tenant --
    # One contract for both kinds (``DocKind``), which every backend keeps alike.

    @abc.abstractmethod
    async def load_docs(self, kind: DocKind) -> list[tuple[str, dict[str, Any]]]:
        """Every stored document of ``kind`` as (tenant, document), in creation order."""

    @abc.abstractmethod
    async def save_doc(self, kind: DocKind, tenant: str, doc: dict[str, Any]) -> None:
        """Insert or replace the document with id ``doc["id"]`` (keeping its place in order)."""

    @abc.abstractmethod
    async def delete_doc(self, kind: DocKind, tenant: str, doc_id: str) -> bool:
        """Whether the tenant had a document of that id to delete."""

    async def get_doc(self, kind: DocKind, tenant: str, doc_id: str) -> dict[str, Any] | None:
        """One stored document (a scan here; shared stores answer from an index)."""
        for owner, doc in await self.load_docs(kind):
            if owner == tenant and doc["id"] == doc_id:
                return doc
        return None

    async def modify_subscription(
        self, tenant: str, sub_id: str, fn: Callable[[dict[str, Any]], dict[str, Any]]
    ) -> dict[str, Any] | None:
        """Atomically replace a stored subscription by ``fn(stored)``; None when there is none.
        Shared stores lock the row, so counters that several workers bump add up."""
        sub = await self.get_doc("subscription", tenant, sub_id)
        if sub is None:
            return None
        sub = fn(sub)
        await self.save_doc("subscription", tenant, sub)
        return sub

    # -- the change feed's outbox (broker/feed.py, broker/store/outbox.py) --

    @abc.abstractmethod
    async def outbox_append(self, stream: str, rows: Sequence[tuple[str, str, bytes]]) -> None:
        """Commit (tenant, service path, payload) rows at the end of ``stream``, numbered in
        commit order by a sequence that never goes back."""

    @abc.abstractmethod
    async def outbox_read(self, stream: str, limit: int) -> list[tuple[int, str, str, bytes]]:
        """The oldest ``limit`` rows of ``stream`` as (seq, tenant, service path, payload)."""

    @abc.abstractmethod
    async def outbox_remove(self, stream: str, upto: int) -> None:
        """Remove the rows of ``stream`` numbered ``upto`` or less (delivered)."""

    @abc.abstractmethod
    async def outbox_lease(self, stream: str, holder: str, seconds: float) -> bool:
        """Take or renew the right to deliver ``stream`` for ``seconds``; False while
        another holder's lease runs."""

    async def listen(self, callback: ChangeCallback) -> None:
        """Call ``callback`` when another process changes a subscription or registration
        (nothing to do for a store only this process uses)."""
        return None

    async def sync(self) -> None:
        """Called at the start of each request of a shared store: hand ``listen``'s callback
        what other processes changed so far (SQLite). Stores that push changes (PostgreSQL's
        NOTIFY) have nothing to do."""
        return None


def open_store(url: str) -> Store:
    """Build the store for a URL (``sqlite:///path``, ``postgresql://...``, ``memory://``), importing only that backend."""
    store: Store = backend_class(url, BACKENDS, StoreError)(url)
    return store
