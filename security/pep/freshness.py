"""When cached answers may still be used: the identity manager's policy version, confirmed
recently enough.

The identity manager moves one number, its *policy version*, whenever something that
decides a PEP question changes (a role, a permission, an assignment, a membership, a user
disabled; docs/security.md "Change notification"). The PEP keeps an *epoch*, the count of
changes of that number it saw, and tags every cached decision, user answer and policy set
with the epoch it was learnt in (``cache.Cache``); a new epoch forgets them all at once.

How the PEP learns the number, and what it costs (measured in docs/security.md, "The PEP"):

* a cached answer is used only if the version was confirmed less than ``interval`` ago
  (1 s by default). When it was not, the request that needs it asks ``GET
  /v1/policy_version`` first, and every request arriving meanwhile waits on that same call
  (one call at a time). So under traffic the identity manager gets at most one such call a
  second per PEP process, an idle PEP none, and a role removed takes effect within
  ``interval`` plus one round trip, whatever the traffic was before;
* every ``/user`` answer carries ``X-Policy-Version``: a higher number seen there starts a
  new epoch at once (:meth:`observe`); only the poll may move the number down (an identity
  manager restored from a backup), since answers racing each other may arrive out of order.

We chose this over a background poller: it needs no task that outlives requests (guards
have no shutdown hook), costs nothing while idle, and its bound holds from the first
request after a pause, where a poller's holds only while it runs. Its price: one request a
second waits one round trip to the identity manager (about 1 ms on a LAN).

An identity manager without the number (Keyrock: ``/v1/policy_version`` is 404) is asked
once; cached answers then live ``cache_time``, as in Wilma. ``interval`` 0 asks on every
request that uses the cache (the strictest, and one call per request).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable

log = logging.getLogger("waziup.security.pep")


class Freshness:
    def __init__(
        self,
        fetch: Callable[[], Awaitable[int | None]],
        interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.fetch = fetch
        self.interval = interval
        self.clock = clock
        self.epoch = 0
        self.version: int | None = None
        self.checked = -math.inf  # clock() when the last poll that confirmed the version was sent
        self.supported = True
        self._task: asyncio.Future[int] | None = None

    async def current(self) -> int:
        """The epoch, after confirming the version if it was not within ``interval``."""
        if self.clock() - self.checked < self.interval:
            return self.epoch
        return await self.refresh()

    async def refresh(self) -> int:
        """Ask the identity manager now (or join the call in flight)."""
        task = self._task
        if task is None:
            task = self._task = asyncio.ensure_future(self._poll())
            task.add_done_callback(_consume)
        return await asyncio.shield(task)

    async def _poll(self) -> int:
        started = self.clock()
        try:
            version = await self.fetch()
        finally:
            self._task = None
        if version is None:
            if self.supported:
                log.warning("the identity manager has no policy version: cached answers live cache_time")
            self.supported = False
            self.checked = math.inf
            return self.epoch
        self._adopt(version)
        self.checked = started  # the answer is at least as recent as the moment it was asked
        return self.epoch

    def observe(self, version: int | None) -> None:
        """A version seen on a ``/user`` answer: a higher one starts a new epoch now."""
        if version is not None and (self.version is None or version > self.version):
            self._adopt(version)

    def epoch_for(self, version: int | None) -> int | None:
        """The epoch to keep an answer under that reflects ``version`` (observed first); None
        when the answer is older than the version known, and must not be kept."""
        self.observe(version)
        if version is not None and self.version is not None and version < self.version:
            return None
        return self.epoch

    def _adopt(self, version: int) -> None:
        if version != self.version:
            if self.version is not None:
                self.epoch += 1
                log.info("policy version %s -> %s: cached decisions forgotten", self.version, version)
            self.version = version


def _consume(task: asyncio.Future[int]) -> None:
    """Retrieve a failed poll's exception when every waiter has gone (no 'never retrieved')."""
    if not task.cancelled():
        task.exception()
