"""Poll commands nobody picked up: after ``IOTA_POLLING_EXPIRATION`` ms they end ERROR /
``EXPIRED``, as node-lib's polling daemon ends them, checked every
``IOTA_POLLING_DAEMON_FREQ`` ms (else every expiration period).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping

from ..provisioning.store import DeviceKey
from .polling import DeviceQueue, PollQueues
from .status import ERROR, EXPIRED, SetStatus

log = logging.getLogger("waziup.iot_agent.commands")

# The shortest check period, however small the configured one.
MIN_PERIOD_SECONDS = 0.05


def overdue(queues: Mapping[DeviceKey, DeviceQueue], now: float, limit: float) -> list[tuple[DeviceKey, str]]:
    """(device, command) of the commands at least ``limit`` seconds old at ``now``."""
    return [
        (key, name)
        for key, queue in queues.items()
        for name, command in queue.commands.items()
        if now - command.created >= limit
    ]


async def expire(polling: PollQueues, set_status: SetStatus, expiration_ms: float, now: float | None = None) -> None:
    """End the overdue commands (none when ``expiration_ms`` is 0: no expiry)."""
    limit = expiration_ms / 1000
    if limit <= 0:
        return
    now = time.time() if now is None else now
    for key, name in overdue(polling.queues, now, limit):
        taken = polling.remove(key, name)
        if taken is not None:
            queue, _ = taken
            await set_status(queue.device, queue.group, name, ERROR, EXPIRED)
    polling.prune()


async def expire_forever(polling: PollQueues, set_status: SetStatus, expiration_ms: float, frequency_ms: float) -> None:
    """``expire`` every period until cancelled; a failed pass is logged and the next one runs."""
    period = (frequency_ms or expiration_ms) / 1000
    while True:
        await asyncio.sleep(max(period, MIN_PERIOD_SECONDS))
        try:
            await expire(polling, set_status, expiration_ms)
        except Exception:
            log.exception("command expiry failed")
