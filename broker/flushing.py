"""Write-behind of counters: the subscriptions' notification counters and the
registrations' forwarding counters change on every notification or forwarded request,
so each registry changes them in memory at once and writes the changed ones to the store
a moment later (``FLUSH_DELAY``) in one batch, and on close. A request never waits for
that write."""

from __future__ import annotations

import asyncio
import contextlib

FLUSH_DELAY = 0.5  # seconds between a counter change and its write to the store


class DelayedFlush:
    """The base of a registry whose counters are written behind: ``_mark`` a (tenant, id)
    whose counters changed, and ``flush`` (the registry's own) persists those in ``_dirty``."""

    def __init__(self) -> None:
        self._dirty: set[tuple[str, str]] = set()
        self._flusher: asyncio.Task[None] | None = None

    async def flush(self) -> None:
        raise NotImplementedError

    def _mark(self, tenant: str, item_id: str) -> None:
        """Note a changed (tenant, id) and start a flush ``FLUSH_DELAY`` later, unless one is due."""
        self._dirty.add((tenant, item_id))
        if self._flusher is None or self._flusher.done():
            try:
                self._flusher = asyncio.get_running_loop().create_task(self._flush_later())
            except RuntimeError:  # no loop (pure tests): flush() persists on demand
                self._flusher = None

    async def _flush_later(self) -> None:
        while self._dirty:
            await asyncio.sleep(FLUSH_DELAY)
            await self.flush()

    async def close(self) -> None:
        """Stop the pending flush and write what is left."""
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None
        await self.flush()
