"""Running one accepted command: ``<cmd>_status`` PENDING, then its delivery.

Pushes go through the ``Deliver`` of their transport (``device.transport_of``): MQTT and
LoRaWAN are registered by those transports when they start (``push["mqtt"]``,
``push["lora"]``), HTTP push is ``commands.http_push``. A poll command is already in its
queue: it only gets its PENDING. Once a push is handed to its transport, or has failed,
the command leaves the store: the device's answer, if any, comes as a result.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ..device import HTTP_PUSH, POLL
from ..errors import IoTAError
from ..provisioning.state import AgentState, StoredCommand
from .http_push import HttpPush, Post
from .status import ERROR, PENDING, SetStatus

log = logging.getLogger("waziup.iot_agent.commands")

Doc = dict[str, Any]
# (device, group, command, value) -> None: a transport's delivery of a pushed command.
Deliver = Callable[[Doc, Doc | None, str, Any], Awaitable[None]]
# After a restart, how long a push that cannot go out yet (MQTT still connecting) is retried.
RESUME_RETRY_SECONDS = 15.0
RETRY_PAUSE_SECONDS = 0.5


class Delivery:
    def __init__(
        self,
        state: AgentState,
        set_status: SetStatus,
        transport_of: Callable[[Doc, Doc | None], str],
        pending_written: Callable[[str], None],
        post: Post,
    ) -> None:
        self.state = state
        self.set_status = set_status
        self.transport_of = transport_of
        self.pending_written = pending_written  # told once a command's PENDING is written
        self.push: dict[str, Deliver] = {HTTP_PUSH: HttpPush(set_status, post)}

    async def execute(self, device: Doc, group: Doc | None, command: StoredCommand, *, retry_for: float = 0) -> None:
        """PENDING, then the delivery (a poll command is already queued: it only waits).
        ``retry_for`` seconds: a push that fails is tried again (after a restart, MQTT may
        still be connecting)."""
        name, value = command.name, command.value
        try:
            await self.set_status(device, group, name, PENDING, None)
        finally:
            self.pending_written(command.id)
        how = self.transport_of(device, group)
        if how == POLL:
            return
        deadline = time.monotonic() + retry_for
        try:
            while True:
                try:
                    await self._push(how, device, group, name, value)
                    return
                except Exception as exc:
                    if time.monotonic() < deadline:
                        await asyncio.sleep(RETRY_PAUSE_SECONDS)
                        continue
                    log.warning("command %s of %s failed: %s", name, device.get("device_id"), exc)
                    await self.set_status(device, group, name, ERROR, str(exc))
                    return
        finally:
            self.state.drop_commands([command.id])

    async def _push(self, how: str, device: Doc, group: Doc | None, name: str, value: Any) -> None:
        deliver = self.push.get(how)
        if deliver is None:
            raise IoTAError(f"no {how} transport to deliver command {name}")
        await deliver(device, group, name, value)
