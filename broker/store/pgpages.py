"""Deep pages on PostgreSQL without ``OFFSET``: the ordered row ids (``seq``) of a selector
kept in memory, and the page read by id in one round trip.

``LIMIT 20 OFFSET 50000`` makes PostgreSQL walk 50,000 rows for 20 (94 pages/s on the
bench's 100,000 entities). As SQLite does (sqlquery.py), the store keeps, for the last
few selectors paged deeply, the ids of their entities in creation order; a page is then
``WHERE seq = ANY($2)``. The list stays right with other processes on the database: a
trigger counts, per tenant, the rows every statement inserts or deletes
(``entity_changes``, in the writing transaction), and the page is read in the same
statement as that count. An equal count means no entity came or went since the list was
made, so the page is exactly what ``OFFSET`` would give; another count rebuilds the list.
Updates never change which entities a selector names (id, type and service path are the
key), so PATCH traffic never invalidates a list.
"""

from __future__ import annotations

from array import array
from collections import OrderedDict
from typing import Any

from .base import Selector
from .sqlquery import PAGE_CACHE_ENTRIES

SCHEMA = """
CREATE TABLE IF NOT EXISTS entity_changes (
    tenant text COLLATE "C" PRIMARY KEY,
    n bigint NOT NULL
);
CREATE OR REPLACE FUNCTION waziup_entity_changes() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO entity_changes (tenant, n) SELECT tenant, count(*) FROM changed GROUP BY tenant
    ON CONFLICT (tenant) DO UPDATE SET n = entity_changes.n + excluded.n;
    RETURN NULL;
END
$$;
"""

# (trigger, event, transition table); created once, if missing (CREATE TRIGGER locks the table).
TRIGGERS = (("entities_inserted", "INSERT", "NEW"), ("entities_deleted", "DELETE", "OLD"))

_COUNT = "(SELECT n FROM entity_changes WHERE tenant = $1)"


async def create_schema(conn: Any) -> None:
    """In the store's schema transaction (under its advisory lock)."""
    await conn.execute(SCHEMA)
    existing = {row[0] for row in await conn.fetch("SELECT tgname FROM pg_trigger WHERE tgrelid = 'entities'::regclass")}
    for name, event, table in TRIGGERS:
        if name not in existing:
            await conn.execute(
                f"CREATE TRIGGER {name} AFTER {event} ON entities REFERENCING {table} TABLE AS changed "
                "FOR EACH STATEMENT EXECUTE FUNCTION waziup_entity_changes()"
            )


class Pages:
    """The ordered ids of the last ``PAGE_CACHE_ENTRIES`` selectors paged deeply."""

    def __init__(self) -> None:
        self._lists: OrderedDict[tuple[str, Selector], tuple[int, array]] = OrderedDict()

    async def page(
        self, db: Any, where_sql: str, params: list[Any], tenant: str, selector: Selector, limit: int | None, offset: int
    ) -> list[bytes] | None:
        """The raw documents of a page, or None when entities keep coming and going (the
        caller then pages with OFFSET). ``params[0]`` is the tenant (``$1`` of ``where_sql``)."""
        key = (tenant, selector)
        for _ in range(3):
            count, seqs = await self._list(db, where_sql, params, key)
            wanted = list(seqs[offset:] if limit is None else seqs[offset : offset + limit])
            if wanted:
                rows = await db.fetch(
                    f"SELECT raw, {_COUNT} FROM entities WHERE seq = ANY($2::bigint[]) ORDER BY seq", tenant, wanted
                )
                now = rows[0][1] if rows else await db.fetchval(f"SELECT {_COUNT}", tenant)
            else:
                rows = []
                now = await db.fetchval(f"SELECT {_COUNT}", tenant)
            if (now or 0) == count and len(rows) == len(wanted):
                self._lists.move_to_end(key)
                return [row[0] for row in rows]
            self._lists.pop(key, None)
        return None

    async def count(self, db: Any, where_sql: str, params: list[Any], tenant: str, selector: Selector) -> int:
        """The selector's number of entities, checked against the change count (one round trip)."""
        key = (tenant, selector)
        cached = self._lists.get(key)
        if cached is not None and ((await db.fetchval(f"SELECT {_COUNT}", tenant)) or 0) == cached[0]:
            return len(cached[1])
        self._lists.pop(key, None)
        return len((await self._list(db, where_sql, params, key))[1])

    async def _list(self, db: Any, where_sql: str, params: list[Any], key: tuple[str, Selector]) -> tuple[int, array]:
        cached = self._lists.get(key)
        if cached is not None:
            return cached
        row = await db.fetchrow(
            f"SELECT {_COUNT}, array_agg(seq ORDER BY seq) FROM entities WHERE {where_sql}", *params
        )
        cached = (row[0] or 0, array("q", row[1] or ()))
        self._lists[key] = cached
        while len(self._lists) > PAGE_CACHE_ENTRIES:
            self._lists.popitem(last=False)
        return cached
