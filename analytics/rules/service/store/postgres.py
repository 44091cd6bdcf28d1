"""``postgresql://user:password@host/db``: the rules service's store in PostgreSQL (asyncpg).

For deployments whose other services already keep their data there. Three tables of
their own (``rule_documents``, ``rule_engine_state``, ``rule_firings``), made at open;
one pool (``?pool_size=N``, default 4; other URL parameters are asyncpg's). asyncpg
and OS errors become ``StoreError`` here. Documents are ``jsonb`` written as text.
"""

from __future__ import annotations

import json
from typing import Any, Final

import asyncpg  # type: ignore[import-untyped]
import orjson

from ngsi.store_lifecycle import ErrorMapping, WhileOpen, open_pool, postgres_dsn

from .base import FiringRecord, RulesStore, StoredRule, StoreError

STATEMENT_TIMEOUT_MS: Final = 30_000
_CAUGHT: Final[tuple[type[BaseException], ...]] = (
    asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.exceptions.InternalClientError, OSError, TimeoutError,
)
_LOCK: Final = 0x7275_6C65_7331  # "rules1": schema creation, across processes

_SCHEMA = """
CREATE TABLE IF NOT EXISTS rule_documents (
    tenant text NOT NULL, name text NOT NULL, doc jsonb NOT NULL, enabled boolean NOT NULL,
    subscription text, created double precision NOT NULL, modified double precision NOT NULL,
    PRIMARY KEY (tenant, name)
);
CREATE TABLE IF NOT EXISTS rule_engine_state (id int PRIMARY KEY CHECK (id = 1), doc jsonb NOT NULL);
CREATE TABLE IF NOT EXISTS rule_firings (
    id bigserial PRIMARY KEY, tenant text NOT NULL, rule text NOT NULL, t double precision NOT NULL,
    firing jsonb NOT NULL, outcomes jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS rule_firings_rule_t ON rule_firings (tenant, rule, t);
"""


_mapped = ErrorMapping(_CAUGHT, StoreError, "postgresql: {name}: {exc}")


def _text(value: Any) -> str:
    """JSON text (NUL escaped by both encoders, as jsonb wants); the standard library for
    what orjson refuses."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value, default=str)


class PostgresStore(WhileOpen[asyncpg.Pool], RulesStore):
    def __init__(self, url: str) -> None:
        self.dsn, self.pool_size = postgres_dsn(url, pool_size=4, most=100, error=StoreError)
        self._handle: asyncpg.Pool | None = None  # the pool while open (WhileOpen)

    pool = WhileOpen.handle

    def closed_error(self) -> Exception:
        return StoreError("the rules store is not open")

    async def open(self) -> None:
        with _mapped:
            self._handle = await open_pool(self.dsn, self.pool_size, lock=_LOCK, schema=_SCHEMA,
                                           server_settings={"statement_timeout": str(STATEMENT_TIMEOUT_MS)})

    async def close(self) -> None:
        if self._handle is not None:
            with _mapped:
                await self._handle.close()
            self._handle = None

    async def rules(self) -> list[StoredRule]:
        with _mapped:
            rows = await self.pool.fetch("SELECT tenant, name, doc::text, enabled, subscription, created, modified "
                                         "FROM rule_documents ORDER BY tenant, created, name")
        return [StoredRule(r[0], r[1], orjson.loads(r[2]), r[3], r[4], r[5], r[6]) for r in rows]

    async def put_rule(self, rule: StoredRule) -> None:
        with _mapped:
            await self.pool.execute(
                "INSERT INTO rule_documents VALUES ($1, $2, $3::jsonb, $4, $5, $6, $7) ON CONFLICT (tenant, name) "
                "DO UPDATE SET doc = excluded.doc, enabled = excluded.enabled, subscription = excluded.subscription, "
                "created = excluded.created, modified = excluded.modified",
                rule.tenant, rule.name, _text(rule.doc), rule.enabled, rule.subscription, rule.created, rule.modified)

    async def delete_rule(self, tenant: str, name: str) -> None:
        with _mapped:
            async with self.pool.acquire() as conn, conn.transaction():
                await conn.execute("DELETE FROM rule_documents WHERE tenant = $1 AND name = $2", tenant, name)
                await conn.execute("DELETE FROM rule_firings WHERE tenant = $1 AND rule = $2", tenant, name)

    async def load_state(self) -> dict[str, Any] | None:
        with _mapped:
            text = await self.pool.fetchval("SELECT doc::text FROM rule_engine_state WHERE id = 1")
        return None if text is None else dict(orjson.loads(text))

    async def save_state(self, state: dict[str, Any]) -> None:
        with _mapped:
            await self.pool.execute("INSERT INTO rule_engine_state VALUES (1, $1::jsonb) ON CONFLICT (id) "
                                    "DO UPDATE SET doc = excluded.doc", _text(state))

    async def add_firings(self, records: list[FiringRecord]) -> None:
        with _mapped:
            await self.pool.executemany(
                "INSERT INTO rule_firings (tenant, rule, t, firing, outcomes) VALUES ($1, $2, $3, $4::jsonb, $5::jsonb)",
                [(r.tenant, r.rule, r.time, _text(r.firing), _text(r.outcomes)) for r in records])

    async def firings(self, tenant: str, rule: str, since: float | None, until: float | None, limit: int,
                      offset: int) -> tuple[list[FiringRecord], int]:
        where = "tenant = $1 AND rule = $2 AND t >= $3 AND t <= $4"
        args = (tenant, rule, float("-inf") if since is None else since, float("inf") if until is None else until)
        with _mapped:
            total = await self.pool.fetchval(f"SELECT count(*) FROM rule_firings WHERE {where}", *args)
            rows = await self.pool.fetch(f"SELECT t, firing::text, outcomes::text FROM rule_firings WHERE {where} "
                                         "ORDER BY t DESC, id DESC LIMIT $5 OFFSET $6", *args, limit, offset)
        return [FiringRecord(tenant, rule, r[0], orjson.loads(r[1]), orjson.loads(r[2])) for r in rows], int(total)

    async def prune_firings(self, keep: int) -> None:
        with _mapped:
            await self.pool.execute(
                "DELETE FROM rule_firings WHERE id IN (SELECT id FROM (SELECT id, row_number() OVER "
                "(PARTITION BY tenant, rule ORDER BY t DESC, id DESC) AS n FROM rule_firings) ranked WHERE n > $1)",
                keep)
