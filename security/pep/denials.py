"""Denied requests to the audit trail (``-audit``), off the request path.

A denial is decided in microseconds and must be answered as fast; the audit trail is the
identity manager's (``POST /audit/events``, security/audit). So the guard only queues the
event, and one background task sends the queue, one event at a time. The queue is bounded
(``capacity``): a caller hammering a forbidden path cannot make the PEP hold memory or
flood the identity manager; what overflows is counted, and the count is sent as one
``request.denied.dropped`` event once there is room. Only authorization denials (a valid
token, refused) are recorded: a request without a token says nothing about anyone.
``record`` queues any other event the same way (the history's CSV exports,
security/privacy/guard.py).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from .idm import IdMClient, IdMError

log = logging.getLogger("waziup.security.pep")


class DenialReporter:
    def __init__(self, idm: IdMClient, service: str, capacity: int = 1000) -> None:
        self.idm = idm
        self.service = service
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(capacity)
        self.dropped = 0
        self.sent = 0
        self._task: asyncio.Task[None] | None = None

    def report(self, *, user: str, method: str, path: str, tenant: str, source: str, reason: str) -> None:
        self.record({"action": "request.denied", "target": f"{self.service} {method} {path}", "tenant": tenant,
                     "decision": "deny", "reason": reason, "details": {"user": user, "source": source}})

    def record(self, event: dict[str, Any]) -> None:
        """Queue any event (the privacy guard's exports too); never waits."""
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped += 1
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._send())

    async def _send(self) -> None:
        while True:
            event = await self.queue.get()
            await self._post(event)
            if self.dropped and self.queue.empty():
                dropped, self.dropped = self.dropped, 0
                await self._post({"action": "request.denied.dropped", "target": self.service, "decision": "deny",
                                  "reason": f"{dropped} denied requests not recorded: the queue was full"})

    async def _post(self, event: dict[str, Any]) -> None:
        try:
            await self.idm.audit_event(event)
            self.sent += 1
        except (IdMError, OSError) as exc:
            log.warning("audit: a denied request could not be recorded: %s", exc)
