"""The rows a PostgreSQL store last read or wrote for an entity id, so that a simple write
(a PATCH) is one round trip: ``UPDATE ... WHERE seq = $1 AND ver = $2``.

Pure bookkeeping, no I/O. An entry holds every row of one (tenant, id), as this process
last saw them; each row carries ``seq`` (its identity: a re-created entity gets a new one)
and ``ver`` (bumped by every write of the row). A write checks both, so a row another
process changed or re-created since makes the write miss and the store reads it again: an
entry may be stale, never wrong in what it writes. What an entry cannot vouch for is
absence: an entity another process created later is not in it, so a store treats "no row
matches" as a miss and asks the database.

Bounded by the bytes of the documents it holds (least recently used out first).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

MAX_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True)
class Row:
    seq: int
    ver: int
    type: str
    sp: str
    raw: bytes


Key = tuple[str, str]  # (tenant, entity id)


class RowCache:
    def __init__(self, max_bytes: int = MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self._rows: OrderedDict[Key, tuple[Row, ...]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._rows)

    def get(self, key: Key) -> tuple[Row, ...] | None:
        rows = self._rows.get(key)
        if rows is not None:
            self._rows.move_to_end(key)
        return rows

    def put(self, key: Key, rows: tuple[Row, ...]) -> None:
        """Remember ``rows`` as every row of ``key``; nothing is kept for no rows (absence
        is not something an entry can vouch for)."""
        self.evict(key)
        if not rows:
            return
        size = sum(len(row.raw) for row in rows)
        if size > self.max_bytes:
            return
        self._rows[key] = rows
        self.size += size
        while self.size > self.max_bytes:
            _, dropped = self._rows.popitem(last=False)
            self.size -= sum(len(row.raw) for row in dropped)

    def replace(self, key: Key, row: Row) -> None:
        """``row`` (same seq, next ver) was just written over its predecessor."""
        rows = self._rows.get(key)
        if rows is None:
            return
        self.put(key, tuple(row if old.seq == row.seq else old for old in rows))

    def evict(self, key: Key) -> None:
        rows = self._rows.pop(key, None)
        if rows is not None:
            self.size -= sum(len(row.raw) for row in rows)

    def clear(self) -> None:
        self._rows.clear()
        self.size = 0
