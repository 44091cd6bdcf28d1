"""``AuditLog``: what services call, from asyncio, to record an event.

``await audit.record(actor=..., action=..., ...)`` runs the SQLite work in a thread (so the
event loop never waits on an fsync), or awaits PostgreSQL's. By default it never raises into the caller: a failure
(disk full, file locked for 30 s, a bad event) is logged at ERROR with the event's action
and counted in ``lost``, and the request goes on. That is fail-open, chosen because the
events come from request paths (sign-ins, PEP decisions) whose availability matters more
than a complete trail on a single-node platform, and because the loss is loud. Where a
missing record is worse than a refused request (e.g. exports and erasures, or a deployment
whose policy demands it), build the log with ``strict=True``: ``record`` then raises
:class:`~security.audit.store.AuditError` and the caller must refuse the operation.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterable, Mapping
from typing import Any

from .postgres import PgAuditStore
from .record import Anchor, Event, Record, Report, verify
from .store import AuditError, AuditStore

log = logging.getLogger("waziup.audit")


class AuditLog:
    """An :class:`AuditStore` (run in threads) or a :class:`PgAuditStore` (awaited) behind
    one asyncio interface; ``strict`` makes ``record`` raise its failures."""

    def __init__(self, store: AuditStore | PgAuditStore, *, strict: bool = False) -> None:
        self.store = store
        self.strict = strict
        self.lost = 0  # events that could not be recorded (fail-open mode)

    @classmethod
    def open(cls, data_dir: str | os.PathLike[str], *, strict: bool = False, keyed: bool = True) -> AuditLog:
        """The SQLite log of ``data_dir`` (``<data>/audit.db``)."""
        return cls(AuditStore(data_dir, keyed=keyed), strict=strict)

    @classmethod
    async def connect(cls, data_dir: str | os.PathLike[str], url: str = "", *, strict: bool = False,
                      keyed: bool = True) -> AuditLog:
        """The log on PostgreSQL when ``url`` is a ``postgresql://`` one, else SQLite's."""
        if not url.startswith(("postgresql://", "postgres://")):
            return cls.open(data_dir, strict=strict, keyed=keyed)
        store = PgAuditStore(url, data_dir, keyed=keyed)
        await store.open()
        return cls(store, strict=strict)

    def close(self) -> None:
        """SQLite's close (PostgreSQL's pool needs ``aclose``)."""
        if isinstance(self.store, AuditStore):
            self.store.close()

    async def aclose(self) -> None:
        if isinstance(self.store, AuditStore):
            self.store.close()
        else:
            await self.store.close()

    async def _run(self, method: str, *args: Any, **kwargs: Any) -> Any:
        if isinstance(self.store, AuditStore):
            return await asyncio.to_thread(lambda: getattr(self.store, method)(*args, **kwargs))
        return await getattr(self.store, method)(*args, **kwargs)

    async def record(self, *, actor: str, action: str, actor_kind: str = "user", target: str = "", tenant: str = "",
                     source: str = "", decision: str = "", reason: str = "",
                     details: Mapping[str, Any] | None = None) -> Record | None:
        """Append the event; its record, or None when it was lost (see the module's doc)."""
        try:
            event = Event(actor, action, actor_kind, target, tenant, source, decision, reason, dict(details or {}))
            record: Record = await self._run("append", event)
            return record
        except Exception as exc:
            if self.strict and isinstance(exc, AuditError):
                raise
            if self.strict:
                raise AuditError(f"audit event {action!r}: {exc}") from exc
            self.lost += 1
            log.error("AUDIT RECORD LOST (%d so far): %s by %s: %s", self.lost, action, actor_kind, exc)
            return None

    async def query(self, **filters: Any) -> list[Record]:
        found: list[Record] = await self._run("query", **filters)
        return found

    async def verify(self, anchor: Anchor | None = None) -> Report:
        """The chain checked with the store's key, against ``anchor`` or else the head file."""
        records: list[Record] = await self._run("records")
        return await asyncio.to_thread(verify, records, self.store.key, anchor or self.store.anchor())

    async def pseudonymize(self, actor_id: str, pseudonym: str, *, aliases: Iterable[str] = (), by: str = "",
                           by_kind: str = "service") -> Record:
        """Always raises on failure: an erasure that silently left personal data is not done."""
        done: Record = await self._run("pseudonymize", actor_id, pseudonym, aliases=tuple(aliases), by=by,
                                       by_kind=by_kind)
        return done
