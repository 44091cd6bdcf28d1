"""Where provisioned groups and devices live: SQLite under the data dir, or memory (tests).

Documents are kept in the provisioning API's own form (as posted, see ``model``), so a
read gives back what was written. The uniqueness rules are the FIWARE agents':
a group is unique on (resource, apikey) across every service; a device on (service,
subservice, device_id, apikey), a device without apikey counting as apikey "".

Like the broker's SQLite store, calls are synchronous on the event loop: the registry is
small and SQLite answers from its cache in microseconds; every write is committed before
the agent answers.
"""

from __future__ import annotations

import abc
import copy
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from ngsi.store_lifecycle import WhileOpen, prepare_sqlite_path

from . import state as agent_state
from .state import AgentState

Doc = dict[str, Any]
DeviceKey = tuple[str, str, str, str]  # service, subservice, device_id, apikey ("" for none)


class Conflict(Exception):
    """An insert or update would break a uniqueness rule; ``index`` is the offending document."""

    def __init__(self, index: int = 0) -> None:
        super().__init__(f"conflict on document {index}")
        self.index = index


def group_key(group: Doc) -> tuple[str, str]:
    return str(group.get("resource", "")), str(group.get("apikey", ""))


def device_key(device: Doc) -> DeviceKey:
    return (
        str(device.get("service", "")),
        str(device.get("service_path", "")),
        str(device["device_id"]),
        str(device.get("apikey") or ""),
    )


@dataclass(frozen=True)
class _Kind:
    """A kind of document as both backends store it: its table, its columns (``row`` gives
    their values; ``key_columns`` are its uniqueness key), and the document field each
    filter of ``find``/``count`` reads (filters are named as the columns)."""

    table: str
    columns: tuple[str, ...]
    key_columns: tuple[str, ...]
    row: Callable[[Doc], tuple[str, ...]]
    key: Callable[[Doc], tuple[str, ...]]
    fields: dict[str, str]


GROUPS = _Kind(
    "groups",
    ("service", "subservice", "resource", "apikey"),
    ("resource", "apikey"),
    lambda g: (g.get("service", ""), g.get("subservice", ""), *group_key(g)),
    group_key,
    {"service": "service", "subservice": "subservice", "resource": "resource", "apikey": "apikey"},
)
DEVICES = _Kind(
    "devices",
    ("service", "subservice", "device_id", "apikey"),
    ("service", "subservice", "device_id", "apikey"),
    device_key,
    device_key,
    {"service": "service", "subservice": "service_path", "device_id": "device_id", "apikey": "apikey"},
)
Filters = dict[str, str | None]


class ProvisioningStore(abc.ABC):
    """The registry contract. Filters left at None match anything; results keep insertion order.

    ``state`` is the agent's run-time state kept with the registry (pending commands,
    pre-processor windows, provider links: ``provisioning.state``).

    Groups and devices obey the same rules, so a backend implements them once, per
    ``_Kind`` (the ``_insert``, ``_find``... primitives); the methods here name the filters."""

    state: AgentState

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    # -- groups ------------------------------------------------------------------------------

    async def insert_groups(self, groups: list[Doc]) -> None:
        """All or nothing; raises Conflict on a (resource, apikey) already taken or repeated."""
        self._insert(GROUPS, groups)

    async def find_groups(
        self,
        *,
        service: str | None = None,
        subservice: str | None = None,
        resource: str | None = None,
        apikey: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Doc]:
        filters = {"service": service, "subservice": subservice, "resource": resource, "apikey": apikey}
        return self._find(GROUPS, filters, limit, offset)

    async def count_groups(self, *, service: str | None = None, subservice: str | None = None) -> int:
        return self._count(GROUPS, {"service": service, "subservice": subservice})

    async def replace_group(self, key: tuple[str, str], group: Doc) -> bool:
        """Overwrite the group stored under ``key``; Conflict if its new key is taken."""
        return self._replace(GROUPS, key, group)

    async def delete_group(self, key: tuple[str, str]) -> bool:
        return self._delete(GROUPS, key)

    # -- devices -----------------------------------------------------------------------------

    async def insert_devices(self, devices: list[Doc]) -> None:
        """All or nothing; raises Conflict on a device key already taken or repeated."""
        self._insert(DEVICES, devices)

    async def find_devices(
        self,
        *,
        service: str | None = None,
        subservice: str | None = None,
        device_id: str | None = None,
        apikey: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Doc]:
        filters = {"service": service, "subservice": subservice, "device_id": device_id, "apikey": apikey}
        return self._find(DEVICES, filters, limit, offset)

    async def count_devices(self, *, service: str | None = None, subservice: str | None = None) -> int:
        return self._count(DEVICES, {"service": service, "subservice": subservice})

    async def replace_device(self, key: DeviceKey, device: Doc) -> bool:
        """Overwrite the device stored under ``key``; Conflict if its new key is taken."""
        return self._replace(DEVICES, key, device)

    async def delete_device(self, key: DeviceKey) -> bool:
        return self._delete(DEVICES, key)

    # -- what a backend implements, once for both kinds --------------------------------------

    @abc.abstractmethod
    def _insert(self, kind: _Kind, docs: list[Doc]) -> None:
        """All or nothing; ``Conflict(i)`` when ``docs[i]``'s key is taken or repeated."""

    @abc.abstractmethod
    def _find(self, kind: _Kind, filters: Filters, limit: int | None, offset: int) -> list[Doc]: ...

    @abc.abstractmethod
    def _count(self, kind: _Kind, filters: Filters) -> int: ...

    @abc.abstractmethod
    def _replace(self, kind: _Kind, key: tuple[str, ...], doc: Doc) -> bool: ...

    @abc.abstractmethod
    def _delete(self, kind: _Kind, key: tuple[str, ...]) -> bool: ...


def open_registry(path: str | None) -> ProvisioningStore:
    """SQLite at ``path``, or memory when ``path`` is None."""
    return MemoryProvisioningStore() if path is None else SQLiteProvisioningStore(path)


# -- memory ------------------------------------------------------------------------------------


def _matches(doc: Doc, filters: dict[str, str | None]) -> bool:
    return all(value is None or (doc.get(name) or "") == value for name, value in filters.items())


class MemoryProvisioningStore(ProvisioningStore):
    def __init__(self) -> None:
        self.state = agent_state.MemoryAgentState()
        self._docs: dict[str, dict[tuple[str, ...], Doc]] = {GROUPS.table: {}, DEVICES.table: {}}

    def _insert(self, kind: _Kind, docs: list[Doc]) -> None:
        stored = self._docs[kind.table]
        keys = [kind.key(d) for d in docs]
        for i, key in enumerate(keys):
            if key in stored or key in keys[:i]:
                raise Conflict(i)
        for key, doc in zip(keys, docs):
            stored[key] = copy.deepcopy(doc)

    def _matching(self, kind: _Kind, filters: Filters) -> list[Doc]:
        wanted = {kind.fields[name]: value for name, value in filters.items()}
        return [d for d in self._docs[kind.table].values() if _matches(d, wanted)]

    def _find(self, kind: _Kind, filters: Filters, limit: int | None, offset: int) -> list[Doc]:
        found = self._matching(kind, filters)
        return copy.deepcopy(found[offset:] if limit is None else found[offset : offset + limit])

    def _count(self, kind: _Kind, filters: Filters) -> int:
        return len(self._matching(kind, filters))

    def _replace(self, kind: _Kind, key: tuple[str, ...], doc: Doc) -> bool:
        stored = self._docs[kind.table]
        if key not in stored:
            return False
        new_key = kind.key(doc)
        if new_key != key and new_key in stored:
            raise Conflict(0)
        # Rebuild to keep the document's place in the listing order.
        self._docs[kind.table] = {(new_key if k == key else k): (copy.deepcopy(doc) if k == key else v) for k, v in stored.items()}
        return True

    def _delete(self, kind: _Kind, key: tuple[str, ...]) -> bool:
        return self._docs[kind.table].pop(key, None) is not None


# -- SQLite ------------------------------------------------------------------------------------

_SCHEMA = """
CREATE TABLE IF NOT EXISTS groups (
    seq INTEGER PRIMARY KEY,
    service TEXT NOT NULL,
    subservice TEXT NOT NULL,
    resource TEXT NOT NULL,
    apikey TEXT NOT NULL,
    doc BLOB NOT NULL,
    UNIQUE (resource, apikey)
);
CREATE INDEX IF NOT EXISTS groups_tenant ON groups (service, subservice);
CREATE TABLE IF NOT EXISTS devices (
    seq INTEGER PRIMARY KEY,
    service TEXT NOT NULL,
    subservice TEXT NOT NULL,
    device_id TEXT NOT NULL,
    apikey TEXT NOT NULL,
    doc BLOB NOT NULL,
    UNIQUE (service, subservice, device_id, apikey)
);
CREATE INDEX IF NOT EXISTS devices_id ON devices (device_id);
"""


def _where(filters: dict[str, str | None]) -> tuple[str, list[Any]]:
    clauses = [f"{column} = ?" for column, value in filters.items() if value is not None]
    params = [value for value in filters.values() if value is not None]
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def _key_match(kind: _Kind) -> str:
    return " AND ".join(f"{column} = ?" for column in kind.key_columns)


def _page(limit: int | None, offset: int) -> tuple[str, list[Any]]:
    if limit is None and not offset:
        return "", []
    return " LIMIT ? OFFSET ?", [-1 if limit is None else limit, offset]


class SQLiteProvisioningStore(WhileOpen[sqlite3.Connection], ProvisioningStore):
    def __init__(self, path: str) -> None:
        self.path = path
        self._handle: sqlite3.Connection | None = None  # the connection while open (WhileOpen)
        self.state = agent_state.SQLiteAgentState(lambda: self.db)

    def closed_error(self) -> Exception:
        return RuntimeError("the provisioning store is not open")

    db = WhileOpen.handle  # the connection

    async def open(self) -> None:
        # API keys are devices' MQTT passwords under -auth: the file (and SQLite's
        # -wal/-shm, which take its mode) is its owner's only
        prepare_sqlite_path(self.path, mode=0o600)
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(_SCHEMA)
        db.executescript(agent_state.SCHEMA)
        self._handle = db

    async def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def _insert(self, kind: _Kind, docs: list[Doc]) -> None:
        columns = ", ".join([*kind.columns, "doc"])
        marks = ", ".join("?" * (len(kind.columns) + 1))
        sql = f"INSERT INTO {kind.table} ({columns}) VALUES ({marks})"
        rows = [(*kind.row(d), orjson.dumps(d)) for d in docs]
        db = self.db
        db.execute("BEGIN")
        for i, row in enumerate(rows):
            try:
                db.execute(sql, row)
            except sqlite3.IntegrityError:
                db.execute("ROLLBACK")
                raise Conflict(i) from None
        db.execute("COMMIT")

    def _find(self, kind: _Kind, filters: Filters, limit: int | None, offset: int) -> list[Doc]:
        where, params = _where(filters)
        page, more = _page(limit, offset)
        rows = self.db.execute(f"SELECT doc FROM {kind.table}{where} ORDER BY seq{page}", params + more).fetchall()
        return [orjson.loads(row[0]) for row in rows]

    def _count(self, kind: _Kind, filters: Filters) -> int:
        where, params = _where(filters)
        return int(self.db.execute(f"SELECT count(*) FROM {kind.table}{where}", params).fetchone()[0])

    def _replace(self, kind: _Kind, key: tuple[str, ...], doc: Doc) -> bool:
        columns = ", ".join(f"{column} = ?" for column in [*kind.columns, "doc"])
        sql = f"UPDATE {kind.table} SET {columns} WHERE {_key_match(kind)}"
        try:
            return self.db.execute(sql, (*kind.row(doc), orjson.dumps(doc), *key)).rowcount > 0
        except sqlite3.IntegrityError:
            raise Conflict(0) from None

    def _delete(self, kind: _Kind, key: tuple[str, ...]) -> bool:
        return self.db.execute(f"DELETE FROM {kind.table} WHERE {_key_match(kind)}", key).rowcount > 0
