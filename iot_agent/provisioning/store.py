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
import os
import sqlite3
from typing import Any

import orjson

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


class ProvisioningStore(abc.ABC):
    """The registry contract. Filters left at None match anything; results keep insertion order.

    ``state`` is the agent's run-time state kept with the registry (pending commands,
    pre-processor windows, provider links: ``provisioning.state``)."""

    state: AgentState

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    # -- groups ------------------------------------------------------------------------------

    @abc.abstractmethod
    async def insert_groups(self, groups: list[Doc]) -> None:
        """All or nothing; raises Conflict on a (resource, apikey) already taken or repeated."""

    @abc.abstractmethod
    async def find_groups(
        self,
        *,
        service: str | None = None,
        subservice: str | None = None,
        resource: str | None = None,
        apikey: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Doc]: ...

    @abc.abstractmethod
    async def count_groups(self, *, service: str | None = None, subservice: str | None = None) -> int: ...

    @abc.abstractmethod
    async def replace_group(self, key: tuple[str, str], group: Doc) -> bool:
        """Overwrite the group stored under ``key``; Conflict if its new key is taken."""

    @abc.abstractmethod
    async def delete_group(self, key: tuple[str, str]) -> bool: ...

    # -- devices -----------------------------------------------------------------------------

    @abc.abstractmethod
    async def insert_devices(self, devices: list[Doc]) -> None:
        """All or nothing; raises Conflict on a device key already taken or repeated."""

    @abc.abstractmethod
    async def find_devices(
        self,
        *,
        service: str | None = None,
        subservice: str | None = None,
        device_id: str | None = None,
        apikey: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Doc]: ...

    @abc.abstractmethod
    async def count_devices(self, *, service: str | None = None, subservice: str | None = None) -> int: ...

    @abc.abstractmethod
    async def replace_device(self, key: DeviceKey, device: Doc) -> bool:
        """Overwrite the device stored under ``key``; Conflict if its new key is taken."""

    @abc.abstractmethod
    async def delete_device(self, key: DeviceKey) -> bool: ...


def open_registry(path: str | None) -> ProvisioningStore:
    """SQLite at ``path``, or memory when ``path`` is None."""
    return MemoryProvisioningStore() if path is None else SQLiteProvisioningStore(path)


# -- memory ------------------------------------------------------------------------------------


def _matches(doc: Doc, filters: dict[str, str | None]) -> bool:
    return all(value is None or (doc.get(name) or "") == value for name, value in filters.items())


class MemoryProvisioningStore(ProvisioningStore):
    def __init__(self) -> None:
        self.state = agent_state.MemoryAgentState()
        self._groups: dict[tuple[str, str], Doc] = {}
        self._devices: dict[DeviceKey, Doc] = {}

    async def insert_groups(self, groups: list[Doc]) -> None:
        keys = [group_key(g) for g in groups]
        for i, key in enumerate(keys):
            if key in self._groups or key in keys[:i]:
                raise Conflict(i)
        for key, group in zip(keys, groups):
            self._groups[key] = copy.deepcopy(group)

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
        found = [g for g in self._groups.values() if _matches(g, filters)]
        return copy.deepcopy(found[offset:] if limit is None else found[offset : offset + limit])

    async def count_groups(self, *, service: str | None = None, subservice: str | None = None) -> int:
        return len(await self.find_groups(service=service, subservice=subservice))

    async def replace_group(self, key: tuple[str, str], group: Doc) -> bool:
        if key not in self._groups:
            return False
        new_key = group_key(group)
        if new_key != key and new_key in self._groups:
            raise Conflict(0)
        # Rebuild to keep the group's place in the listing order.
        self._groups = {(new_key if k == key else k): (copy.deepcopy(group) if k == key else v) for k, v in self._groups.items()}
        return True

    async def delete_group(self, key: tuple[str, str]) -> bool:
        return self._groups.pop(key, None) is not None

    async def insert_devices(self, devices: list[Doc]) -> None:
        keys = [device_key(d) for d in devices]
        for i, key in enumerate(keys):
            if key in self._devices or key in keys[:i]:
                raise Conflict(i)
        for key, device in zip(keys, devices):
            self._devices[key] = copy.deepcopy(device)

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
        filters = {"service": service, "service_path": subservice, "device_id": device_id, "apikey": apikey}
        found = [d for d in self._devices.values() if _matches(d, filters)]
        return copy.deepcopy(found[offset:] if limit is None else found[offset : offset + limit])

    async def count_devices(self, *, service: str | None = None, subservice: str | None = None) -> int:
        return len(await self.find_devices(service=service, subservice=subservice))

    async def replace_device(self, key: DeviceKey, device: Doc) -> bool:
        if key not in self._devices:
            return False
        new_key = device_key(device)
        if new_key != key and new_key in self._devices:
            raise Conflict(0)
        self._devices = {(new_key if k == key else k): (copy.deepcopy(device) if k == key else v) for k, v in self._devices.items()}
        return True

    async def delete_device(self, key: DeviceKey) -> bool:
        return self._devices.pop(key, None) is not None


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


def _page(limit: int | None, offset: int) -> tuple[str, list[Any]]:
    if limit is None and not offset:
        return "", []
    return " LIMIT ? OFFSET ?", [-1 if limit is None else limit, offset]


class SQLiteProvisioningStore(ProvisioningStore):
    def __init__(self, path: str) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None
        self.state = agent_state.SQLiteAgentState(lambda: self.db)

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("the provisioning store is not open")
        return self._db

    async def open(self) -> None:
        if self.path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(_SCHEMA)
        db.executescript(agent_state.SCHEMA)
        self._db = db

    async def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def _insert_all(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        db = self.db
        db.execute("BEGIN")
        for i, row in enumerate(rows):
            try:
                db.execute(sql, row)
            except sqlite3.IntegrityError:
                db.execute("ROLLBACK")
                raise Conflict(i) from None
        db.execute("COMMIT")

    def _update(self, sql: str, params: tuple[Any, ...]) -> bool:
        try:
            return self.db.execute(sql, params).rowcount > 0
        except sqlite3.IntegrityError:
            raise Conflict(0) from None

    async def insert_groups(self, groups: list[Doc]) -> None:
        rows = [(g.get("service", ""), g.get("subservice", ""), *group_key(g), orjson.dumps(g)) for g in groups]
        self._insert_all("INSERT INTO groups (service, subservice, resource, apikey, doc) VALUES (?, ?, ?, ?, ?)", rows)

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
        where, params = _where({"service": service, "subservice": subservice, "resource": resource, "apikey": apikey})
        page, more = _page(limit, offset)
        rows = self.db.execute(f"SELECT doc FROM groups{where} ORDER BY seq{page}", params + more).fetchall()
        return [orjson.loads(row[0]) for row in rows]

    async def count_groups(self, *, service: str | None = None, subservice: str | None = None) -> int:
        where, params = _where({"service": service, "subservice": subservice})
        return int(self.db.execute(f"SELECT count(*) FROM groups{where}", params).fetchone()[0])

    async def replace_group(self, key: tuple[str, str], group: Doc) -> bool:
        return self._update(
            "UPDATE groups SET service = ?, subservice = ?, resource = ?, apikey = ?, doc = ? WHERE resource = ? AND apikey = ?",
            (group.get("service", ""), group.get("subservice", ""), *group_key(group), orjson.dumps(group), *key),
        )

    async def delete_group(self, key: tuple[str, str]) -> bool:
        return self.db.execute("DELETE FROM groups WHERE resource = ? AND apikey = ?", key).rowcount > 0

    async def insert_devices(self, devices: list[Doc]) -> None:
        rows = [(*device_key(d), orjson.dumps(d)) for d in devices]
        self._insert_all("INSERT INTO devices (service, subservice, device_id, apikey, doc) VALUES (?, ?, ?, ?, ?)", rows)

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
        where, params = _where({"service": service, "subservice": subservice, "device_id": device_id, "apikey": apikey})
        page, more = _page(limit, offset)
        rows = self.db.execute(f"SELECT doc FROM devices{where} ORDER BY seq{page}", params + more).fetchall()
        return [orjson.loads(row[0]) for row in rows]

    async def count_devices(self, *, service: str | None = None, subservice: str | None = None) -> int:
        where, params = _where({"service": service, "subservice": subservice})
        return int(self.db.execute(f"SELECT count(*) FROM devices{where}", params).fetchone()[0])

    async def replace_device(self, key: DeviceKey, device: Doc) -> bool:
        return self._update(
            "UPDATE devices SET service = ?, subservice = ?, device_id = ?, apikey = ?, doc = ? "
            "WHERE service = ? AND subservice = ? AND device_id = ? AND apikey = ?",
            (*device_key(device), orjson.dumps(device), *key),
        )

    async def delete_device(self, key: DeviceKey) -> bool:
        return (
            self.db.execute(
                "DELETE FROM devices WHERE service = ? AND subservice = ? AND device_id = ? AND apikey = ?", key
            ).rowcount
            > 0
        )
