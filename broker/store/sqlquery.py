"""Query pushdown for the SQL stores: ``q`` hints as SQL, on-demand attribute indexes, and
the SQLite page cache for large offsets.

``q`` pushdown. The broker turns the most selective item of a ``q`` filter into a
``ValueHint`` (listing.py); a store adds a condition that keeps a superset of its
matches, and the broker's exact filter (``ngsi/query.py``) still decides. SQLite looks at
``json_extract(doc, '$.attrs."<attr>".value')``: a number, a string, ``1``/``0`` for
booleans, the JSON text of an array (which starts with ``[``) or object. Python compares
exactly; SQL compares at most as loosely (bounds are always inclusive, so an integer
rounded to a double stays inside), so no match is dropped. PostgreSQL uses the same path
on its ``jsonb`` column (numbers compared as ``numeric``; strings by equality only, since
jsonb orders strings by the database collation, not by code point like Python).

Attribute indexes. Without an index the condition still saves the broker from parsing
every document (SQLite evaluates ``json_extract`` in C), but it reads every entity the
other filters let through. When such a query takes longer than ``INDEX_AFTER`` seconds,
the store creates an expression index for that attribute (``tenant``, value), at most
``MAX_ATTR_INDEXES`` of them per database: each costs every write of a document that has
the attribute an extra evaluation (a few microseconds). Orion never creates indexes by
itself; an administrator does, in MongoDB. Measured in docs/storage.md.

Paging. ``LIMIT n OFFSET k`` walks ``k`` index entries; for large offsets SQLite keeps the
ordered row ids (``seq``) of a selector in memory and reads the page by id. The cache is
checked against the database at every use, so several processes on one file stay right:
``max(seq)`` changes with every insert (ids only grow; one is reused only after the
largest was deleted) and a trigger counts deletes, in a row other processes see. A PATCH
changes neither, so updates never invalidate the cache.
"""

from __future__ import annotations

import hashlib
import math
import time
from array import array
from decimal import Decimal
from collections import OrderedDict
from typing import Any, Callable

import orjson

from .base import Selector, ValueHint

NUMBER, STRING = "number", "string"
INDEX_AFTER = 0.005  # seconds: a pushed query slower than this gets its attribute indexed
MAX_ATTR_INDEXES = 16
PAGE_CACHE_OFFSET = 100  # offsets from here on read pages through the cache
PAGE_CACHE_ENTRIES = 8  # selectors whose ordered ids are kept (8 bytes per entity each)
MAX_POINTS = 100  # longer value lists are not pushed down


def pushable_attr(name: str) -> bool:
    """Names a JSON path can quote (SQLite's quoted label ends at the next ``"``)."""
    return bool(name) and '"' not in name and "\\" not in name and "'" not in name and all(c >= " " for c in name)


def index_name(prefix: str, attr: str) -> str:
    return f"{prefix}{hashlib.sha1(attr.encode()).hexdigest()[:16]}"


# --------------------------------------------------------------------------- SQLite

SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS query_counters (name TEXT PRIMARY KEY, n INTEGER NOT NULL);
INSERT OR IGNORE INTO query_counters (name, n) VALUES ('deletes', 0);
CREATE TRIGGER IF NOT EXISTS entities_count_deletes AFTER DELETE ON entities
BEGIN
    UPDATE query_counters SET n = n + 1 WHERE name = 'deletes';
END;
"""

_SQLITE_INDEX_PREFIX = "entities_attr_"
_STATE_SQL = "SELECT (SELECT max(seq) FROM entities), (SELECT n FROM query_counters WHERE name = 'deletes')"


def sqlite_value(attr: str) -> str:
    """The expression of an attribute's value; indexes match it textually. CAST: a BLOB
    argument would be read as JSONB by SQLite >= 3.45."""
    return f"json_extract(CAST(doc AS TEXT), '$.attrs.\"{attr}\".value')"


def widened(lo: float | None, hi: float | None) -> tuple[float | None, float | None]:
    """A number interval a few ulps wider on each side. A database may read the decimal
    text of a stored number into a double one ulp away from Python's (SQLite's own
    conversion), or round an integer to a double: the wider interval still keeps it."""
    if lo is not None:
        lo = lo - _SLACK_ULPS * math.ulp(lo)
    if hi is not None:
        hi = hi + _SLACK_ULPS * math.ulp(hi)
    return lo, hi


_SLACK_ULPS = 4


def _sqlite_branches(hint: ValueHint) -> list[tuple[str, list[Any]]]:
    """Conditions on the value, each one index range (their OR is the hint)."""
    e = sqlite_value(hint.attr)
    branches: list[tuple[str, list[Any]]] = []
    points = [lo for lo, hi in hint.intervals if lo is not None and lo == hi] if hint.kind == STRING else []
    if points:
        branches.append((f"{e} IN ({','.join('?' * len(points))})", points))
    for lo, hi in hint.intervals:
        if hint.kind == STRING and lo is not None and lo == hi:
            continue
        if hint.kind == NUMBER:  # numbers sort before every text in SQLite
            lo, hi = widened(lo, hi)
            if lo is None and hi is None:
                branches.append((f"{e} < ''", []))
            elif lo is None:
                branches.append((f"{e} <= ?", [hi]))
            elif hi is None:
                branches.append((f"{e} >= ? AND {e} < ''", [lo]))
            else:
                branches.append((f"{e} >= ? AND {e} <= ?", [lo, hi]))
        else:
            branches.append((f"{e} >= ? AND {e} <= ?", ["" if lo is None else lo, hi]) if hi is not None
                            else (f"{e} >= ?", ["" if lo is None else lo]))
    # Arrays match when an element does: json_extract gives their JSON text, "[...".
    branches.append((f"{e} >= '[' AND {e} < '\\'", []))
    return branches


class SQLiteQueries:
    """Per-connection pushdown state of a SQLite store: known attribute indexes, page cache."""

    def __init__(self) -> None:
        self.indexed: set[str] = set()
        self._index_count = 0
        self._pages: OrderedDict[tuple[str, Selector], tuple[tuple[Any, Any], array]] = OrderedDict()

    def load(self, db: Any) -> None:
        """Learn the attribute indexes the database has (other processes may have made some)."""
        rows = db.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND name LIKE ?", (_SQLITE_INDEX_PREFIX + "%",)
        ).fetchall()
        self._index_count = len(rows)
        self.indexed = {attr for (sql,) in rows if (attr := _attr_of(sql or "")) is not None}

    # -- q hints ----------------------------------------------------------------------

    def find_sql(
        self, where: Callable[..., tuple[str, list[Any]]], tenant: str, selector: Selector
    ) -> tuple[str, list[Any], bool]:
        """SELECT doc ... of a hinted selector; and whether it runs on an attribute index."""
        hint = selector.hint
        assert hint is not None
        branches = _sqlite_branches(hint)
        if hint.attr in self.indexed:
            # Each branch one index range, their union the ids; the other filters on the rows
            # ("+" columns: the id list, not the type or path index, drives the outer scan).
            outer, params = where(tenant, selector, unindexed=True)
            union = " UNION ".join(f"SELECT seq FROM entities WHERE tenant = ? AND {cond}" for cond, _ in branches)
            union_params: list[Any] = []
            for _, values in branches:
                union_params += [tenant, *values]
            return f"SELECT doc FROM entities WHERE seq IN ({union}) AND {outer} ORDER BY seq", union_params + params, True
        clause, params = where(tenant, selector)
        either = " OR ".join(f"({cond})" for cond, _ in branches)
        for _, values in branches:
            params += values
        return f"SELECT doc FROM entities WHERE {clause} AND ({either}) ORDER BY seq", params, False

    def after_scan(self, db: Any, attr: str, seconds: float, lock: Any) -> None:
        """Index an attribute whose unindexed query was slow (see the module docstring)."""
        if seconds < INDEX_AFTER or attr in self.indexed:
            return
        self.load(db)
        if attr in self.indexed or self._index_count >= MAX_ATTR_INDEXES:
            return
        with lock:
            db.execute(
                f"CREATE INDEX IF NOT EXISTS {index_name(_SQLITE_INDEX_PREFIX, attr)} ON entities (tenant, {sqlite_value(attr)})"
            )
        self.indexed.add(attr)
        self._index_count += 1

    # -- paging -----------------------------------------------------------------------

    def page(
        self, db: Any, where: Callable[..., tuple[str, list[Any]]], tenant: str, selector: Selector,
        limit: int | None, offset: int,
    ) -> list[bytes] | None:
        """The documents of a page read by id, or None when the database kept changing."""
        for _ in range(3):
            seqs = self._seqs(db, where, tenant, selector)
            wanted = seqs[offset:] if limit is None else seqs[offset : offset + limit]
            if not wanted:
                return []
            # The delete counter read with the rows: a row deleted (and its id perhaps
            # reused) since the ids were listed shows there, and the page is read again.
            rows = db.execute(
                f"SELECT doc, (SELECT n FROM query_counters WHERE name = 'deletes') FROM entities "
                f"WHERE seq IN ({','.join('?' * len(wanted))}) ORDER BY seq",
                list(wanted),
            ).fetchall()
            state = self._pages[(tenant, selector)][0]
            if len(rows) == len(wanted) and rows[0][1] == state[1]:
                return [row[0] for row in rows]
            self._pages.pop((tenant, selector), None)
        return None

    def count(self, db: Any, where: Callable[..., tuple[str, list[Any]]], tenant: str, selector: Selector) -> int:
        return len(self._seqs(db, where, tenant, selector))

    def _seqs(self, db: Any, where: Callable[..., tuple[str, list[Any]]], tenant: str, selector: Selector) -> array:
        """The ordered ids of a selector, as of now. The state is read before the ids, so ids
        newer than the state only make the next check extend or rebuild."""
        key = (tenant, selector)
        state = db.execute(_STATE_SQL).fetchone()
        cached = self._pages.get(key)
        if cached is not None:
            old, seqs = cached
            if old == state:
                self._pages.move_to_end(key)
                return seqs
            if old[1] == state[1] and (state[0] or 0) >= (old[0] or 0):  # inserts only: extend
                after = max(old[0] or 0, seqs[-1] if seqs else 0)
                clause, params = where(tenant, selector)
                seqs.extend(
                    row[0] for row in db.execute(f"SELECT seq FROM entities WHERE {clause} AND seq > ? ORDER BY seq", [*params, after])
                )
                self._pages[key] = (state, seqs)
                self._pages.move_to_end(key)
                return seqs
        clause, params = where(tenant, selector)
        seqs = array("q", (row[0] for row in db.execute(f"SELECT seq FROM entities WHERE {clause} ORDER BY seq", params)))
        self._pages[key] = (state, seqs)
        self._pages.move_to_end(key)
        while len(self._pages) > PAGE_CACHE_ENTRIES:
            self._pages.popitem(last=False)
        return seqs


def _attr_of(sql: str) -> str | None:
    start = sql.find("'$.attrs.\"")
    if start < 0:
        return None
    start += len("'$.attrs.\"")
    end = sql.find("\".value'", start)
    return None if end < 0 else sql[start:end]


def timed(run: Callable[[], Any]) -> tuple[Any, float]:
    began = time.perf_counter()
    result = run()
    return result, time.perf_counter() - began


# --------------------------------------------------------------------------- PostgreSQL

_PG_INDEX_PREFIX = "entities_attr_"
# Beyond every number a document holds (orjson writes doubles and 64-bit integers).
_PG_MIN, _PG_MAX = Decimal("-1e400"), Decimal("1e400")


def pg_value(attr: str) -> str:
    return f"(doc -> 'attrs' -> '{attr}' -> 'value')"


def pg_condition(hint: ValueHint, param: Callable[[Any], str]) -> str | None:
    """A condition on the jsonb document keeping a superset of the hint's entities, or None
    when there is nothing to push (strings ranges: jsonb orders strings by collation).

    jsonb orders values Null < String < Number < Boolean < Array < Object; ``[null]`` is the
    smallest non-empty array (``[]`` matches nothing and sorts oddly), ``{}`` the smallest
    object. Documents PostgreSQL could not store as jsonb (``doc`` NULL) are always kept.
    """
    e = pg_value(hint.attr)
    branches: list[str] = []
    if hint.kind == NUMBER:
        for lo, hi in hint.intervals:
            # Exact decimal values of the widened bounds: jsonb holds the decimal text
            # orjson wrote (shortest for doubles, exact for integers); numeric compares exactly.
            lo, hi = widened(lo, hi)
            low = param(_PG_MIN if lo is None else Decimal(lo))
            high = param(_PG_MAX if hi is None else Decimal(hi))
            branches.append(f"({e} >= to_jsonb({low}::numeric) AND {e} <= to_jsonb({high}::numeric))")
    else:
        if any(lo is None or lo != hi for lo, hi in hint.intervals):
            return None
        branches.append(f"{e} = ANY({param([_json_text(lo) for lo, _ in hint.intervals])}::jsonb[])")
    branches.append(f"({e} >= '[null]'::jsonb AND {e} < '{{}}'::jsonb)")
    branches.append("doc IS NULL")
    return "(" + " OR ".join(branches) + ")"


def _json_text(value: str) -> str:
    return orjson.dumps(value).decode()


def pg_index_sql(attr: str) -> str:
    return f"CREATE INDEX IF NOT EXISTS {index_name(_PG_INDEX_PREFIX, attr)} ON entities (tenant, {pg_value(attr)})"


PG_RAW_INDEX = "CREATE INDEX IF NOT EXISTS entities_rawonly ON entities (tenant) WHERE doc IS NULL"

