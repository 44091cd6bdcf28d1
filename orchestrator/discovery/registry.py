"""Every sensor the platform knows, read from its services (the I/O around ``harvest.py``).

For each tenant: the broker's entities (paged, with their attributes' metadata and
``dateModified``) and registrations, the IoT agent's devices and groups (its north API,
every service path). The broker lists no tenants (Orion has no such call), so the tenants
are the configured ones; ``""`` is the default tenant (no ``Fiware-Service`` header).

A refresh reads everything, builds a new ``Index`` off the event loop and swaps it in one
assignment: a query runs on the old index or the new one, never on half of one. A source
that fails is logged and noted in ``problems``, and what it gave last time is kept (none if
it never answered); the others still count. ``run`` refreshes every ``interval`` seconds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ngsi.client import NGSIClient, NGSIClientError, NGSIConnectionError

from . import harvest
from .model import Hit, Query, Sensor
from .search import Index

log = logging.getLogger("waziup.orchestrator.discovery")

PAGE = 1000  # Orion's largest page
AGENT_PAGE = 1000


@dataclass
class Status:
    """What the last refresh found: when it ended, how many sensors, which sources failed."""

    refreshed: float | None = None
    sensors: int = 0
    took: float = 0.0
    problems: list[str] = field(default_factory=list)


class Registry:
    """``broker``: an NGSI client on the context broker; ``agent``: one on the IoT agent's
    north port (``None``: no agent); ``tenants``: the tenants to read (``""`` the default)."""

    def __init__(
        self, broker: NGSIClient | None, agent: NGSIClient | None = None, *,
        tenants: Sequence[str] = ("",), interval: float = 60.0, clock: Callable[[], float] = time.time,
    ) -> None:
        self.broker = broker
        self.agent = agent
        self.tenants = tuple(dict.fromkeys(tenants)) or ("",)
        self.interval = interval
        self.clock = clock
        self.index = Index(())
        self.status = Status()
        self._lock = asyncio.Lock()
        self._last: dict[str, Any] = {}  # each source's last good read

    def search(self, query: Query) -> list[Hit]:
        return self.index.search(query)

    async def refresh(self) -> Status:
        """Read every source again and swap the index; concurrent calls share one refresh."""
        if self._lock.locked():  # one is under way: its result is as fresh as ours would be
            async with self._lock:
                return self.status
        async with self._lock:
            started = time.perf_counter()
            problems: list[str] = []
            broker: list[Sensor] = []
            agent: list[Sensor] = []
            registered: list[Sensor] = []
            units: dict[tuple[str, str, str], str] = {}
            for tenant in self.tenants:
                if self.broker is not None:
                    broker += await self._guarded(problems, f"broker entities of tenant {tenant!r}",
                                                  self._entities(tenant))
                    registered += await self._guarded(problems, f"registrations of tenant {tenant!r}",
                                                      self._registrations(tenant))
                if self.agent is not None and tenant:  # the agents need a service
                    found, group_units = await self._guarded(problems, f"IoT agent devices of tenant {tenant!r}",
                                                             self._devices(tenant), ([], {}))
                    agent += found
                    units.update(group_units)
            sensors = harvest.merge(broker, agent, registered, units)
            self.index = await asyncio.to_thread(Index, sensors)
            self.status = Status(self.clock(), len(sensors), time.perf_counter() - started, problems)
            log.info("discovery: %d sensors in %.2f s%s", len(sensors), self.status.took,
                     f" ({len(problems)} sources failed)" if problems else "")
            return self.status

    async def run(self) -> None:
        """Refresh now, then every ``interval`` seconds, until cancelled."""
        while True:
            try:
                await self.refresh()
            except Exception:  # keep refreshing: the next round may succeed
                log.exception("discovery refresh failed")
            await asyncio.sleep(self.interval)

    # -- sources ------------------------------------------------------------------------------

    async def _guarded(self, problems: list[str], what: str, work: Any, empty: Any = None) -> Any:
        """What ``work`` read, remembered; when it fails, what it read last time (a source
        down for a moment does not empty the index), else ``empty``."""
        try:
            found = await work
        except (NGSIClientError, NGSIConnectionError, ValueError) as exc:
            problems.append(f"{what}: {exc}")
            log.warning("discovery: %s: %s", what, exc)
            return self._last.get(what, [] if empty is None else empty)
        self._last[what] = found
        return found

    async def _entities(self, tenant: str) -> list[Sensor]:
        assert self.broker is not None
        sensors: list[Sensor] = []
        async for entity in self.broker.iter_query(
            attrs="*,dateModified", metadata="*,dateModified", page_size=PAGE,
            service=tenant or None, service_path="/#",
        ):
            if isinstance(entity, dict):
                sensors += harvest.entity_sensors(entity, tenant)
        return sensors

    async def _registrations(self, tenant: str) -> list[Sensor]:
        assert self.broker is not None
        found = await self.broker.list_registrations(service=tenant or None, service_path="/#")
        return [s for item in found if isinstance(item, dict) for s in harvest.registration_sensors(item, tenant)]

    async def _devices(self, tenant: str) -> tuple[list[Sensor], dict[tuple[str, str, str], str]]:
        groups = await self._agent_list("/iot/groups", "groups", tenant)
        devices = await self._agent_list("/iot/devices", "devices", tenant)
        sensors = [s for d in devices for s in harvest.device_sensors(d, harvest.group_of(d, groups))]
        return sensors, harvest.group_units(groups)

    async def _agent_list(self, path: str, key: str, tenant: str) -> list[dict[str, Any]]:
        """Every item of an agent listing, page by page, across the tenant's service paths."""
        assert self.agent is not None
        items: list[dict[str, Any]] = []
        while True:
            response = await self.agent.request(
                "GET", path, params={"limit": AGENT_PAGE, "offset": len(items) or None},
                service=tenant, service_path="/*",
            )
            body = response.json()
            page = body.get(key) if isinstance(body, dict) else None
            if not isinstance(page, list):
                raise ValueError(f"GET {path}: no {key} list in the answer")
            items += [item for item in page if isinstance(item, dict)]
            if len(page) < AGENT_PAGE:
                return items
