"""The sources the service runs: definitions kept in the store, one runner each.

The store (collection ``sources``, one document per source: ``{"name", "definition"}``)
is the truth that survives a restart: ``open()`` starts a runner for every source it
holds. Statuses live in the runners (and in the ``DataSource`` entities): a restart
begins a new count.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from ngsi.client import NGSIClient
from orchestrator.waziup_api.store import Store

from .connectors import Context
from .definition import Definition, DefinitionError, parse_definition
from .runner import SourceRunner, Writer

log = logging.getLogger("waziup.sources")
COLLECTION = "sources"


class Conflict(Exception):
    """A source of that name exists already."""


class NotFound(Exception):
    """No source of that name."""


class Sources:
    """Add, replace, remove and run sources; each change is stored before it takes effect."""

    def __init__(self, store: Store, broker: NGSIClient, context: Context, default_tenant: str | None) -> None:
        self.store = store
        self.broker = broker
        self.context = context
        self.default_tenant = default_tenant
        self.runners: dict[str, SourceRunner] = {}
        self._lock = asyncio.Lock()  # one change at a time: a store write and a runner swap go together

    async def open(self) -> None:
        """Start every stored source; one whose document no longer reads is logged and left stopped."""
        for doc in await self.store.list(COLLECTION):
            try:
                definition = parse_definition(doc["definition"])
            except (DefinitionError, KeyError, TypeError) as exc:
                log.error("stored source %r not started: %s", doc.get("name"), exc)
                continue
            self._start(definition)

    async def close(self) -> None:
        await asyncio.gather(*(runner.stop() for runner in self.runners.values()))
        self.runners.clear()

    def get(self, name: str) -> SourceRunner:
        runner = self.runners.get(name)
        if runner is None:
            raise NotFound(name)
        return runner

    def all(self) -> list[SourceRunner]:
        return list(self.runners.values())

    async def add(self, definition: Definition) -> SourceRunner:
        async with self._lock:
            if not await self.store.insert(COLLECTION, definition.name, _doc(definition)):
                raise Conflict(definition.name)
            old = self.runners.pop(definition.name, None)
            if old is not None:  # stored by another process since: take the store's word
                await old.stop()
            return self._start(definition)

    async def replace(self, definition: Definition) -> tuple[SourceRunner, bool]:
        """Store and restart; True when the source is new."""
        async with self._lock:
            old = self.runners.pop(definition.name, None)
            created = old is None and await self.store.get(COLLECTION, definition.name) is None
            await self.store.put(COLLECTION, definition.name, _doc(definition))
            if old is not None:
                await old.stop()
                if _status_place(old.writer) != _status_place(self._writer(definition)):
                    await old.writer.delete_status(old.definition.status_id)
            return self._start(definition), created

    async def remove(self, name: str) -> None:
        """Stop it and forget it; its entities stay, its ``DataSource`` entity goes."""
        async with self._lock:
            runner = self.runners.pop(name, None)
            deleted = await self.store.delete(COLLECTION, name)
            if runner is None and not deleted:
                raise NotFound(name)
            if runner is not None:
                await runner.stop()
                await runner.writer.delete_status(runner.definition.status_id)

    def _writer(self, definition: Definition) -> Writer:
        tenant = definition.tenant if definition.tenant is not None else self.default_tenant
        return Writer(self.broker, tenant or None, definition.service_path)

    def _start(self, definition: Definition) -> SourceRunner:
        runner = SourceRunner(definition, self._writer(definition), self.context)
        self.runners[definition.name] = runner
        runner.start()
        return runner


def _doc(definition: Definition) -> dict[str, Any]:
    return {"name": definition.name, "definition": dict(definition.document)}


def _status_place(writer: Writer) -> tuple[str | None, str | None]:
    return writer.tenant, writer.service_path


def view(runner: SourceRunner, full: bool = True) -> Mapping[str, Any]:
    """A source as the API shows it."""
    definition = runner.definition
    shown: dict[str, Any] = {"name": definition.name, "kind": definition.kind,
                             "url": definition.url or (definition.mqtt.url if definition.mqtt else ""),
                             "statusEntity": definition.status_id, "status": runner.status.to_json()}
    if full:
        shown["definition"] = dict(definition.document)
    return shown
