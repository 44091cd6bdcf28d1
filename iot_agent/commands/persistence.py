"""Commands kept across restarts: written before the broker gets its 2xx, read back on start.

A command is in the agent's state store (``provisioning.state``) from the moment it is
accepted until it ends, so a kill -9 after the broker's answer loses nothing: on start
the commands of devices still provisioned come back (poll ones to their queue, pushes to
be made), those of deleted devices are dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, NamedTuple

from ..provisioning.state import AgentState, StoredCommand
from ..provisioning.store import device_key
from ..south.ingest import Southbound

log = logging.getLogger("waziup.iot_agent.commands")

Doc = dict[str, Any]


class Order(NamedTuple):
    """A command for a device, as the broker handed it over (forwarded or notified)."""

    device: Doc
    group: Doc | None
    name: str
    value: Any


class Held(NamedTuple):
    """A stored command with the device (and group) it is for."""

    device: Doc
    group: Doc | None
    command: StoredCommand


def store_orders(
    state: AgentState, orders: list[Order], transport_of: Callable[[Doc, Doc | None], str], now: float
) -> list[Held]:
    """Write the orders in one durable step; ``how`` is the transport chosen now."""
    held = [
        Held(device, group, StoredCommand(device_key(device), name, value, now, transport_of(device, group)))
        for device, group, name, value in orders
    ]
    state.put_commands([h.command for h in held])
    return held


async def reload(state: AgentState, south: Southbound) -> list[Held]:
    """The stored commands of devices still provisioned; the others leave the store."""
    stored = state.load_commands()
    held: list[Held] = []
    gone: list[str] = []
    for command in stored:
        service, subservice, device_id, apikey = command.key
        found = await south.registry.find_devices(
            service=service, subservice=subservice, device_id=device_id, apikey=apikey, limit=1
        )
        if not found:
            gone.append(command.id)
            continue
        device = found[0]
        held.append(Held(device, await south.group_for(device), command))
    state.drop_commands(gone)
    if stored:
        log.info("resumed %d stored command(s), %d of deleted devices dropped", len(stored) - len(gone), len(gone))
    return held
