"""Agent state that must outlive the process, next to the registry (same SQLite file).

* **Commands accepted from the broker.** A command is written here *before* the agent
  answers the broker's forwarded update (or notification) with 2xx, so a kill -9 after
  that answer cannot lose it: on start the agent queues the HTTP-poll ones again (a
  device polling after the restart still gets its command, with its original age for
  ``IOTA_POLLING_EXPIRATION``) and pushes the others that were not delivered yet. A row
  goes when the command ends (result, error, expiry) or, for a push, once handed over.
* **Pre-processor state** (``iot_agent.preprocess.PreprocessState``: averaging and
  aggregation windows, last values for extrapolation and outliers), one row per device,
  rewritten after every reading that changed it.
* **Provider links**: the ids of the registrations (``cmdMode`` legacy) and subscriptions
  (``cmdMode`` notification) the agent made for a device, so deleting the device after
  a restart removes exactly those.

Like the registry, calls are synchronous SQLite on the event loop (WAL; every write is
committed before the call returns: a killed process loses nothing committed). The memory
registry keeps this state in memory (nothing survives, as nothing else does).
"""

from __future__ import annotations

import abc
import sqlite3
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from ..preprocess import PreprocessState

Doc = dict[str, Any]
DeviceKey = tuple[str, str, str, str]  # as store.device_key: service, subservice, device_id, apikey

REGISTRATION, SUBSCRIPTION = "registration", "subscription"


@dataclass
class StoredCommand:
    """A command the broker handed over: ``how`` is the transport chosen when it arrived
    (``http-poll``, ``http-push``, ``mqtt``, ``lora``); ``created`` is epoch seconds."""

    key: DeviceKey
    name: str
    value: Any
    created: float
    how: str
    delivered: bool = False
    id: str = field(default_factory=lambda: uuid.uuid4().hex)


class AgentState(abc.ABC):
    """The contract; every method is synchronous and durable once it returns."""

    # -- commands -----------------------------------------------------------------------------

    @abc.abstractmethod
    def put_commands(self, commands: list[StoredCommand]) -> None:
        """All in one transaction. A poll command replaces a waiting one of the same name
        for the same device (the device would only get the latest)."""

    @abc.abstractmethod
    def set_delivered(self, ids: list[str]) -> None: ...

    @abc.abstractmethod
    def drop_commands(self, ids: list[str]) -> None: ...

    @abc.abstractmethod
    def load_commands(self) -> list[StoredCommand]:
        """Every stored command, oldest first."""

    # -- pre-processor ------------------------------------------------------------------------

    @abc.abstractmethod
    def load_preprocess(self, key: DeviceKey) -> Doc | None: ...

    @abc.abstractmethod
    def save_preprocess(self, key: DeviceKey, state: Doc) -> None: ...

    # -- provider links -----------------------------------------------------------------------

    @abc.abstractmethod
    def add_link(self, key: DeviceKey, kind: str, ident: str) -> None: ...

    @abc.abstractmethod
    def links(self, key: DeviceKey) -> list[tuple[str, str]]:
        """(kind, id) pairs, oldest first."""

    @abc.abstractmethod
    def drop_links(self, key: DeviceKey) -> None: ...

    @abc.abstractmethod
    def forget_device(self, key: DeviceKey) -> None:
        """A deleted device: its commands and pre-processor state go (links are the caller's)."""


class MemoryAgentState(AgentState):
    def __init__(self) -> None:
        self._commands: dict[str, StoredCommand] = {}
        self._preprocess: dict[DeviceKey, bytes] = {}
        self._links: dict[DeviceKey, list[tuple[str, str]]] = {}

    def put_commands(self, commands: list[StoredCommand]) -> None:
        for command in commands:
            if command.how == "http-poll":
                for old in [c for c in self._commands.values() if c.key == command.key and c.name == command.name and c.how == "http-poll"]:
                    del self._commands[old.id]
            self._commands[command.id] = StoredCommand(**{**command.__dict__, "value": orjson.loads(orjson.dumps(command.value))})

    def set_delivered(self, ids: list[str]) -> None:
        for ident in ids:
            if ident in self._commands:
                self._commands[ident].delivered = True

    def drop_commands(self, ids: list[str]) -> None:
        for ident in ids:
            self._commands.pop(ident, None)

    def load_commands(self) -> list[StoredCommand]:
        return [StoredCommand(**c.__dict__) for c in self._commands.values()]

    def load_preprocess(self, key: DeviceKey) -> Doc | None:
        raw = self._preprocess.get(key)
        return None if raw is None else dict(orjson.loads(raw))

    def save_preprocess(self, key: DeviceKey, state: Doc) -> None:
        self._preprocess[key] = orjson.dumps(state)

    def add_link(self, key: DeviceKey, kind: str, ident: str) -> None:
        self._links.setdefault(key, []).append((kind, ident))

    def links(self, key: DeviceKey) -> list[tuple[str, str]]:
        return list(self._links.get(key, ()))

    def drop_links(self, key: DeviceKey) -> None:
        self._links.pop(key, None)

    def forget_device(self, key: DeviceKey) -> None:
        self.drop_commands([c.id for c in self._commands.values() if c.key == key])
        self._preprocess.pop(key, None)


SCHEMA = """
CREATE TABLE IF NOT EXISTS commands (
    id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    service TEXT NOT NULL,
    subservice TEXT NOT NULL,
    device_id TEXT NOT NULL,
    apikey TEXT NOT NULL,
    name TEXT NOT NULL,
    value BLOB NOT NULL,
    created REAL NOT NULL,
    how TEXT NOT NULL,
    delivered INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS commands_device ON commands (service, subservice, device_id, apikey, name);
CREATE TABLE IF NOT EXISTS preprocess_state (
    service TEXT NOT NULL,
    subservice TEXT NOT NULL,
    device_id TEXT NOT NULL,
    apikey TEXT NOT NULL,
    state BLOB NOT NULL,
    PRIMARY KEY (service, subservice, device_id, apikey)
);
CREATE TABLE IF NOT EXISTS provider_links (
    seq INTEGER PRIMARY KEY,
    service TEXT NOT NULL,
    subservice TEXT NOT NULL,
    device_id TEXT NOT NULL,
    apikey TEXT NOT NULL,
    kind TEXT NOT NULL,
    ident TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS provider_links_device ON provider_links (service, subservice, device_id, apikey);
"""

_KEY = "service = ? AND subservice = ? AND device_id = ? AND apikey = ?"


class SQLiteAgentState(AgentState):
    """Tables in the registry's database, through its connection (``connection()`` gives it
    once the registry is open)."""

    def __init__(self, connection: Callable[[], sqlite3.Connection]) -> None:
        self._connection = connection

    @property
    def db(self) -> sqlite3.Connection:
        return self._connection()

    def _transaction(self, statements: list[tuple[str, tuple[Any, ...]]]) -> None:
        db = self.db
        db.execute("BEGIN")
        try:
            for sql, params in statements:
                db.execute(sql, params)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def put_commands(self, commands: list[StoredCommand]) -> None:
        if not commands:
            return
        seq = int(self.db.execute("SELECT coalesce(max(seq), 0) FROM commands").fetchone()[0])
        statements: list[tuple[str, tuple[Any, ...]]] = []
        for i, c in enumerate(commands, start=1):
            if c.how == "http-poll":
                statements.append((f"DELETE FROM commands WHERE {_KEY} AND name = ? AND how = 'http-poll'", (*c.key, c.name)))
            statements.append((
                "INSERT INTO commands (id, seq, service, subservice, device_id, apikey, name, value, created, how, delivered) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (c.id, seq + i, *c.key, c.name, orjson.dumps(c.value), c.created, c.how, int(c.delivered)),
            ))
        self._transaction(statements)

    def set_delivered(self, ids: list[str]) -> None:
        if ids:
            self._transaction([("UPDATE commands SET delivered = 1 WHERE id = ?", (i,)) for i in ids])

    def drop_commands(self, ids: list[str]) -> None:
        if ids:
            self._transaction([("DELETE FROM commands WHERE id = ?", (i,)) for i in ids])

    def load_commands(self) -> list[StoredCommand]:
        rows = self.db.execute(
            "SELECT id, service, subservice, device_id, apikey, name, value, created, how, delivered FROM commands ORDER BY seq"
        ).fetchall()
        return [
            StoredCommand(key=(r[1], r[2], r[3], r[4]), name=r[5], value=orjson.loads(r[6]), created=r[7], how=r[8], delivered=bool(r[9]), id=r[0])
            for r in rows
        ]

    def load_preprocess(self, key: DeviceKey) -> Doc | None:
        row = self.db.execute(f"SELECT state FROM preprocess_state WHERE {_KEY}", key).fetchone()
        return None if row is None else dict(orjson.loads(row[0]))

    def save_preprocess(self, key: DeviceKey, state: Doc) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO preprocess_state (service, subservice, device_id, apikey, state) VALUES (?, ?, ?, ?, ?)",
            (*key, orjson.dumps(state)),
        )

    def add_link(self, key: DeviceKey, kind: str, ident: str) -> None:
        self.db.execute(
            "INSERT INTO provider_links (service, subservice, device_id, apikey, kind, ident) VALUES (?, ?, ?, ?, ?, ?)",
            (*key, kind, ident),
        )

    def links(self, key: DeviceKey) -> list[tuple[str, str]]:
        rows = self.db.execute(f"SELECT kind, ident FROM provider_links WHERE {_KEY} ORDER BY seq", key).fetchall()
        return [(str(r[0]), str(r[1])) for r in rows]

    def drop_links(self, key: DeviceKey) -> None:
        self.db.execute(f"DELETE FROM provider_links WHERE {_KEY}", key)

    def forget_device(self, key: DeviceKey) -> None:
        self._transaction([(f"DELETE FROM commands WHERE {_KEY}", key), (f"DELETE FROM preprocess_state WHERE {_KEY}", key)])


def persisted_preprocess_state(state: AgentState, key: DeviceKey) -> PreprocessState:
    """A device's pre-processor state as last saved, which saves itself whenever a reading
    changes it (``PreprocessState.on_change``)."""
    loaded = PreprocessState.from_dict(state.load_preprocess(key))
    loaded.on_change = lambda s: state.save_preprocess(key, s.to_dict())
    return loaded


__all__ = [
    "AgentState",
    "MemoryAgentState",
    "SQLiteAgentState",
    "StoredCommand",
    "persisted_preprocess_state",
    "REGISTRATION",
    "SUBSCRIPTION",
    "SCHEMA",
]
