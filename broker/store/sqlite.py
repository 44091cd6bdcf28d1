"""Embedded SQLite store: one file, zero set-up, the broker's default.

Durability: the database runs in WAL mode and every write is committed before the
broker answers, so an acknowledged write is in the operating system's hands and
survives ``kill -9`` of the broker (``synchronous=NORMAL`` trades only power-loss
safety of the last transactions for speed; set ``?synchronous=FULL`` in the URL to
have that too).

Calls are synchronous on the event loop: SQLite answers from the page cache in
microseconds, faster than a hop to a thread, and it keeps each read-modify-write of
the broker atomic within one worker.
"""

from __future__ import annotations

import os
import re
import sqlite3
from contextlib import contextmanager
from typing import Any, Iterator
from urllib.parse import parse_qs

import orjson

from .base import AlreadyExists, Entity, Selector, Store, StoreError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entities (
    seq INTEGER PRIMARY KEY,
    tenant TEXT NOT NULL,
    id TEXT NOT NULL,
    type TEXT NOT NULL,
    sp TEXT NOT NULL,
    exp REAL,
    doc BLOB NOT NULL,
    UNIQUE (tenant, id, type, sp)
);
CREATE INDEX IF NOT EXISTS entities_type ON entities (tenant, type);
CREATE INDEX IF NOT EXISTS entities_sp ON entities (tenant, sp);
CREATE INDEX IF NOT EXISTS entities_exp ON entities (exp) WHERE exp IS NOT NULL;
CREATE TABLE IF NOT EXISTS subscriptions (
    tenant TEXT NOT NULL,
    id TEXT PRIMARY KEY,
    doc BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS registrations (
    tenant TEXT NOT NULL,
    id TEXT PRIMARY KEY,
    doc BLOB NOT NULL
);
"""

_regex_cache: dict[str, re.Pattern[str]] = {}


def _regexp(pattern: str, text: str) -> bool:
    compiled = _regex_cache.get(pattern)
    if compiled is None:
        if len(_regex_cache) > 1000:
            _regex_cache.clear()
        compiled = _regex_cache[pattern] = re.compile(pattern)
    return compiled.search(text) is not None


@contextmanager
def _mapped_errors() -> Iterator[None]:
    """sqlite3 exceptions become StoreError, so callers see one hierarchy for every backend."""
    try:
        yield
    except sqlite3.IntegrityError as exc:
        raise AlreadyExists(str(exc)) from exc
    except sqlite3.Error as exc:
        raise StoreError(f"sqlite: {exc}") from exc


def _path_from_url(url: str) -> tuple[str, dict[str, list[str]]]:
    """SQLAlchemy's convention: ``sqlite:///relative.db``, ``sqlite:////absolute.db``, ``sqlite://`` in memory."""
    rest, _, query = url.partition("?")
    path = rest[len("sqlite:///") :] if rest.startswith("sqlite:///") else ""
    return path or ":memory:", parse_qs(query)


def _where(tenant: str, selector: Selector) -> tuple[str, list[Any]]:
    clauses = ["tenant = ?"]
    params: list[Any] = [tenant]
    if selector.ids is not None:
        clauses.append(f"id IN ({','.join('?' * len(selector.ids))})")
        params.extend(selector.ids)
    if selector.id_pattern is not None:
        clauses.append("id REGEXP ?")
        params.append(selector.id_pattern)
    if selector.types is not None:
        # "+type": with ids given, the (tenant, id, ...) index must win (see "+sp" below).
        column = "+type" if selector.ids is not None else "type"
        clauses.append(f"{column} IN ({','.join('?' * len(selector.types))})")
        params.extend(selector.types)
    if selector.type_pattern is not None:
        clauses.append("type REGEXP ?")
        params.append(selector.type_pattern)
    scopes = []
    # With ids given, the unique (tenant, id, ...) index is the one to use; without statistics
    # SQLite may pick (tenant, sp) instead and scan every entity of the path: "+sp" rules it out.
    sp = "+sp" if selector.ids is not None else "sp"
    # A "/" subtree among the scopes matches every path (checked first: no stray params).
    for path, subtree in () if ("/", True) in selector.service_paths else selector.service_paths:
        if subtree:
            # '/' sorts right before '0': [path + '/', path + '0') is the subtree, served by the index.
            scopes.append(f"({sp} = ? OR ({sp} >= ? AND {sp} < ?))")
            params.extend([path, path + "/", path + "0"])
        else:
            scopes.append(f"{sp} = ?")
            params.append(path)
    if scopes:
        clauses.append("(" + " OR ".join(scopes) + ")")
    return " AND ".join(clauses), params


class SQLiteStore(Store):
    def __init__(self, url: str) -> None:
        self.path, options = _path_from_url(url)
        self.synchronous = options.get("synchronous", ["NORMAL"])[0].upper()
        self._db: sqlite3.Connection | None = None

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise StoreError("the SQLite store is not open")
        return self._db

    async def open(self) -> None:
        if self.path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        with _mapped_errors():
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA synchronous={self.synchronous if self.synchronous in ('OFF', 'NORMAL', 'FULL') else 'NORMAL'}")
            db.create_function("REGEXP", 2, _regexp, deterministic=True)
            db.executescript(_SCHEMA)
        self._db = db

    async def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    async def find(
        self, tenant: str, selector: Selector, *, limit: int | None = None, offset: int = 0
    ) -> list[Entity]:
        where, params = _where(tenant, selector)
        sql = f"SELECT doc FROM entities WHERE {where} ORDER BY seq"
        if limit is not None or offset:
            sql += " LIMIT ? OFFSET ?"
            params += [-1 if limit is None else limit, offset]
        with _mapped_errors():
            rows = self.db.execute(sql, params).fetchall()
        return [orjson.loads(row[0]) for row in rows]

    async def count(self, tenant: str, selector: Selector) -> int:
        where, params = _where(tenant, selector)
        with _mapped_errors():
            (n,) = self.db.execute(f"SELECT count(*) FROM entities WHERE {where}", params).fetchone()
        return int(n)

    async def insert(self, tenant: str, entity: Entity) -> None:
        with _mapped_errors():
            self.db.execute(
                "INSERT INTO entities (tenant, id, type, sp, exp, doc) VALUES (?, ?, ?, ?, ?, ?)",
                (tenant, entity["id"], entity["type"], entity["servicePath"], entity.get("expDate"), orjson.dumps(entity)),
            )

    async def save(self, tenant: str, entity: Entity) -> None:
        with _mapped_errors():
            self.db.execute(
                "INSERT INTO entities (tenant, id, type, sp, exp, doc) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (tenant, id, type, sp) DO UPDATE SET exp = excluded.exp, doc = excluded.doc",
                (tenant, entity["id"], entity["type"], entity["servicePath"], entity.get("expDate"), orjson.dumps(entity)),
            )

    async def delete(self, tenant: str, entity: Entity) -> bool:
        with _mapped_errors():
            cursor = self.db.execute(
                "DELETE FROM entities WHERE tenant = ? AND id = ? AND type = ? AND sp = ?",
                (tenant, entity["id"], entity["type"], entity["servicePath"]),
            )
        return cursor.rowcount > 0

    async def purge_expired(self, now: float) -> list[tuple[str, Entity]]:
        with _mapped_errors():
            rows = self.db.execute(
                "DELETE FROM entities WHERE exp IS NOT NULL AND exp < ? RETURNING tenant, doc", (now,)
            ).fetchall()
        return [(tenant, orjson.loads(doc)) for tenant, doc in rows]

    async def load_subscriptions(self) -> list[tuple[str, dict[str, Any]]]:
        with _mapped_errors():
            rows = self.db.execute("SELECT tenant, doc FROM subscriptions ORDER BY rowid").fetchall()
        return [(tenant, orjson.loads(doc)) for tenant, doc in rows]

    async def save_subscription(self, tenant: str, sub: dict[str, Any]) -> None:
        with _mapped_errors():
            self.db.execute(
                "INSERT INTO subscriptions (tenant, id, doc) VALUES (?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET tenant = excluded.tenant, doc = excluded.doc",
                (tenant, sub["id"], orjson.dumps(sub)),
            )

    async def delete_subscription(self, tenant: str, sub_id: str) -> bool:
        with _mapped_errors():
            cursor = self.db.execute("DELETE FROM subscriptions WHERE tenant = ? AND id = ?", (tenant, sub_id))
        return cursor.rowcount > 0

    async def load_registrations(self) -> list[tuple[str, dict[str, Any]]]:
        with _mapped_errors():
            rows = self.db.execute("SELECT tenant, doc FROM registrations ORDER BY rowid").fetchall()
        return [(tenant, orjson.loads(doc)) for tenant, doc in rows]

    async def save_registration(self, tenant: str, reg: dict[str, Any]) -> None:
        with _mapped_errors():
            self.db.execute(
                "INSERT INTO registrations (tenant, id, doc) VALUES (?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET tenant = excluded.tenant, doc = excluded.doc",
                (tenant, reg["id"], orjson.dumps(reg)),
            )

    async def delete_registration(self, tenant: str, reg_id: str) -> bool:
        with _mapped_errors():
            cursor = self.db.execute("DELETE FROM registrations WHERE tenant = ? AND id = ?", (tenant, reg_id))
        return cursor.rowcount > 0
