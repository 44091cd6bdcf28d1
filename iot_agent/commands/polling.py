"""Commands of HTTP devices without an endpoint: kept until the device asks (``getCmd=1``).

A device's queue holds its latest command of each name (as the store does). Polling hands
out the commands not yet delivered and marks them DELIVERED; a result, the expiry
(``commands.expiry``) or the device's deletion takes them out. The queues mirror the
agent's state store, which every change here is written to, so a restart finds them again.

A device may poll before the PENDING of its command reached the broker (the command is
pollable as soon as the broker has its 2xx): DELIVERED then waits for PENDING, so the
broker never shows PENDING after DELIVERED.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

from ..provisioning.state import AgentState, StoredCommand
from ..provisioning.store import DeviceKey, device_key
from .status import DELIVERED, SetStatus

Doc = dict[str, Any]
# How long DELIVERED waits for the PENDING of the same command to be written.
PENDING_WAIT_SECONDS = 10


@dataclass
class PollCommand:
    name: str
    value: Any
    created: float
    delivered: bool = False
    id: str = ""


@dataclass
class DeviceQueue:
    device: Doc
    group: Doc | None
    commands: dict[str, PollCommand] = field(default_factory=dict)


class PollQueues:
    """The waiting commands of every polling device (see the module doc)."""

    def __init__(self, state: AgentState, set_status: SetStatus) -> None:
        self.state = state
        self.set_status = set_status
        self.queues: dict[DeviceKey, DeviceQueue] = {}
        # poll command id -> set once its PENDING is written (DELIVERED must come after it)
        self._pending_written: dict[str, asyncio.Event] = {}

    def add(self, device: Doc, group: Doc | None, command: StoredCommand) -> None:
        queue = self.queues.setdefault(device_key(device), DeviceQueue(device, group))
        queue.commands[command.name] = PollCommand(command.name, command.value, command.created, command.delivered, command.id)

    def expect_pending(self, command_id: str) -> None:
        """A new command whose PENDING is still to be written."""
        self._pending_written[command_id] = asyncio.Event()

    def pending_written(self, command_id: str) -> None:
        written = self._pending_written.pop(command_id, None)
        if written is not None:
            written.set()

    def refresh(self, device: Doc, group: Doc | None) -> None:
        """The device was provisioned again: its queue answers with the new documents."""
        queue = self.queues.get(device_key(device))
        if queue is not None:
            queue.device, queue.group = device, group

    def forget(self, key: DeviceKey) -> None:
        self.queues.pop(key, None)

    def take(self, device: Doc) -> list[PollCommand]:
        """The device's commands waiting to be polled; they become DELIVERED (status written
        by the caller through ``delivered``)."""
        queue = self.queues.get(device_key(device))
        if queue is None:
            return []
        fresh = [c for c in queue.commands.values() if not c.delivered]
        for command in fresh:
            command.delivered = True
        self.state.set_delivered([c.id for c in fresh])
        return fresh

    async def delivered(self, device: Doc, group: Doc | None, commands: list[PollCommand]) -> None:
        for command in commands:
            written = self._pending_written.get(command.id)
            if written is not None:  # polled before its PENDING reached the broker
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(written.wait(), PENDING_WAIT_SECONDS)
            await self.set_status(device, group, command.name, DELIVERED, None)

    def remove(self, key: DeviceKey, name: str) -> tuple[DeviceQueue, PollCommand] | None:
        """Take a command out of its queue and of the store (answered, expired)."""
        queue = self.queues.get(key)
        if queue is None:
            return None
        command = queue.commands.pop(name, None)
        if command is None:
            return None
        self.state.drop_commands([command.id])
        return queue, command

    def prune(self) -> None:
        """Drop the queues left empty."""
        for key, queue in list(self.queues.items()):
            if not queue.commands:
                self.queues.pop(key, None)
