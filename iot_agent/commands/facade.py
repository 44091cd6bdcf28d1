"""``Commands``: the one object the rest of the agent holds for commands and lazy attributes.

It wires the parts (``routes``, ``registration``, ``persistence``, ``delivery``,
``polling``, ``expiry``, ``status``) over the agent's ``Southbound`` and state store, runs
the work that must not hold up the broker's request as background tasks, and offers:

* to the runtime: ``start``/``stop``, ``routes()`` for the north app, the provisioning
  listener ``on_provisioning`` and the autoprovisioning hook ``on_autoprovision``;
* to the transports: ``push`` (where MQTT and LoRaWAN put their ``Deliver``), ``poll`` and
  ``delivered`` (HTTP ``getCmd``), ``result`` (a device's answer) and ``set_status``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from typing import Any

from starlette.routing import BaseRoute

from ngsi.client import HTTPClient, NGSIClient
from ngsi.destinations import Gate, Policy, parse_rules

from ..config import Config
from ..device import POLL, attribute_names, transport_of
from ..errors import CommandNotFound
from ..provisioning.state import AgentState
from ..provisioning.store import device_key
from ..south.ingest import Southbound
from . import expiry, persistence
from .delivery import RESUME_RETRY_SECONDS, Deliver, Delivery
from .http_push import device_poster
from .persistence import Order
from .polling import PollCommand, PollQueues
from .registration import Registrar
from .routes import ProviderRoutes
from .status import OK, StatusWriter

log = logging.getLogger("waziup.iot_agent.commands")

Doc = dict[str, Any]


class Commands:
    """Registrations, subscriptions, forwarded updates, delivery and results (see the package doc)."""

    def __init__(self, south: Southbound, config: Config) -> None:
        self.south = south
        self.config = config
        # Devices' endpoints are URLs clients chose: the destination policy decides, per
        # command (paths) and per connection (addresses); a client of their own.
        self.gate = Gate(Policy(parse_rules(",".join(config.allowed_destinations)), setting="IOTA_ALLOWED_DESTINATIONS"))
        self.devices = NGSIClient(transport=HTTPClient(gate=self.gate))
        self.set_status = StatusWriter(south, config)
        self.registrar = Registrar(south, config, self.state)
        self.polling = PollQueues(self.state, self.set_status)
        self.delivery = Delivery(
            self.state, self.set_status, self.transport_of, self.polling.pending_written,
            device_poster(self.devices, self.gate),
        )
        self.provider = ProviderRoutes(south, config, self.accept)
        self._tasks: set[asyncio.Task[None]] = set()
        self._daemon: asyncio.Task[None] | None = None

    @property
    def state(self) -> AgentState:
        return self.south.registry.state

    @property
    def push(self) -> dict[str, Deliver]:
        """Transport name (``mqtt``, ``lora``) -> its delivery, set by that transport."""
        return self.delivery.push

    def transport_of(self, device: Doc, group: Doc | None) -> str:
        """``lora``, ``mqtt``, ``http-push`` or ``http-poll``."""
        return transport_of(device, group, self.config.default_transport)

    # -- life cycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Take back the commands stored by an earlier run (the registry is open): poll
        commands are queued before this returns, so a device polling right after the
        restart gets them; pushes are retried in the background."""
        await self.resume()
        if self.config.polling_expiration > 0:
            self._daemon = asyncio.create_task(
                expiry.expire_forever(
                    self.polling, self.set_status, self.config.polling_expiration, self.config.polling_daemon_frequency
                )
            )

    async def stop(self) -> None:
        if self._daemon is not None:
            self._daemon.cancel()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, *([self._daemon] if self._daemon else []), return_exceptions=True)
        self._tasks.clear()
        await self.devices.aclose()

    def spawn(self, coroutine: Awaitable[None]) -> None:
        """Run in the background, failures logged (the broker's request does not wait)."""

        async def run() -> None:
            try:
                await coroutine
            except Exception:
                log.exception("command task failed")

        task = asyncio.ensure_future(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def idle(self) -> None:
        """Wait for the background work started so far (tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def resume(self) -> None:
        for device, group, command in await persistence.reload(self.state, self.south):
            if self.transport_of(device, group) == POLL:
                self.polling.add(device, group, command)
            else:
                self.spawn(self.delivery.execute(device, group, command, retry_for=RESUME_RETRY_SECONDS))

    # -- provisioning -----------------------------------------------------------------------

    async def on_provisioning(self, event: str, old: Doc | None, new: Doc | None) -> None:
        """Provisioning listener: (un)register a device's commands and lazy attributes."""
        if event != "device":
            return
        try:
            if old is not None:
                await self.registrar.unregister(old)
                if new is None or device_key(new) != device_key(old):
                    self.forget(old)
            if new is not None:
                group = await self.south.group_for(new)
                self.polling.refresh(new, group)
                await self.registrar.register(new, group)
        except Exception:
            log.exception("context provider registration failed")

    async def on_autoprovision(self, device: Doc, group: Doc | None) -> None:
        await self.registrar.register(device, group)

    def forget(self, device: Doc) -> None:
        """A deleted device: its waiting commands and pre-processor state go."""
        key = device_key(device)
        self.polling.forget(key)
        self.state.forget_device(key)
        self.south.forget(key)

    # -- north: the broker forwards, or notifies ---------------------------------------------

    def routes(self) -> list[BaseRoute]:
        return self.provider.routes()

    def accept(self, orders: list[Order]) -> None:
        """Store the commands (durably: the broker gets its 2xx after this), then run them."""
        held = persistence.store_orders(self.state, orders, self.transport_of, time.time())
        for device, group, command in held:
            if command.how == POLL:  # pollable as soon as the broker has its answer
                self.polling.expect_pending(command.id)
                self.polling.add(device, group, command)
            self.spawn(self.delivery.execute(device, group, command))

    # -- south: devices poll and answer -------------------------------------------------------

    def poll(self, device: Doc) -> list[PollCommand]:
        """The device's commands waiting to be polled; they become DELIVERED (status written
        through ``delivered``)."""
        return self.polling.take(device)

    async def delivered(self, device: Doc, group: Doc | None, commands: list[PollCommand]) -> None:
        await self.polling.delivered(device, group, commands)

    async def result(self, device: Doc, group: Doc | None, name: str, result: Any, status: str = OK) -> None:
        """A device's answer to a command (cmdexe, /iot/json/commands, a UL result measure)."""
        if name not in attribute_names(device, group, "commands"):
            raise CommandNotFound(name)
        self.polling.remove(device_key(device), name)
        await self.set_status(device, group, name, status, result)

    async def expire(self, now: float | None = None) -> None:
        """Poll commands older than IOTA_POLLING_EXPIRATION end ERROR / EXPIRED."""
        await expiry.expire(self.polling, self.set_status, self.config.polling_expiration, now)
