"""Executing firings off the ingestion path: a bounded queue and a few worker tasks.

``/notices`` and the tick hand firings to ``Executor.submit``, which never waits: a full
queue drops the firing (logged, its actions counted as failed, so their throttles do not
hold the next ones back). Workers run each firing's actions in order:

* ``update``: ``POST /v2/op/update`` (``append``, ``update``, ``delete``) on the broker,
  through the NGSI client; with a ``filter``, the matching entities are queried first;
* ``command``: ``PUT /v2/entities/{id}/attrs/{command}`` ``{"type": "command", "value"}``
  on the broker, which forwards it to the IoT agent through the device's registration;
* ``post``: the request through the platform's HTTP client, after the destination policy
  (``ngsi/destinations.py`` ``Gate``) allowed the URL, and per connection (the client's
  gate); redirects are not followed; any status >= 400 is a failure;
* ``email``: ``mailer.py``.

A failed action calls ``on_failure(firing, index)`` (the engine's ``action_failed``) and the
firing's next actions still run. Nothing is retried: the next matching notification
fires again, since a failure frees the throttle. Each firing's outcome goes to
``on_done`` (the firing history).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final

import orjson

from ngsi.client import NGSIClient, NGSIClientError
from ngsi.client.http11 import DestinationRefused
from ngsi.destinations import Gate

from ..engine import Firing
from .mailer import Mailer, MailError

log = logging.getLogger("waziup.rules.actions")

Outcome = dict[str, Any]
OnFailure = Callable[[Firing, int], None]
OnDone = Callable[[Firing, float, list[Outcome]], Awaitable[None]]
FILTER_LIMIT: Final = 1000  # entities one filtered update reaches at most


class ActionError(Exception):
    """An action that did not succeed; the text goes to the firing history."""


def _tenant(action: dict[str, Any]) -> dict[str, Any]:
    return {"service": action.get("service") or None, "service_path": action.get("servicePath") or "/"}


class Executor:
    def __init__(self, broker: NGSIClient, web: NGSIClient, gate: Gate, mailer: Mailer, *, queue_size: int,
                 workers: int, timeout: float, on_failure: OnFailure, on_done: OnDone,
                 clock: Callable[[], float] = time.time) -> None:
        self.broker = broker
        self.web = web
        self.gate = gate
        self.mailer = mailer
        self.timeout = timeout
        self.on_failure = on_failure
        self.on_done = on_done
        self.clock = clock
        self.queue: asyncio.Queue[tuple[Firing, float]] = asyncio.Queue(queue_size)
        self.worker_count = workers
        self._workers: list[asyncio.Task[None]] = []
        self.dropped = 0

    def start(self) -> None:
        self._workers = [asyncio.create_task(self._work(), name=f"rules-worker-{i}") for i in range(self.worker_count)]

    async def stop(self, drain: float = 5.0) -> None:
        """Let queued firings run for at most ``drain`` seconds, then stop the workers."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.queue.join(), drain)
        for task in self._workers:
            task.cancel()
        for task in self._workers:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def submit(self, firing: Firing) -> bool:
        """Queue a firing (never waits); False when the queue is full and it was dropped."""
        try:
            self.queue.put_nowait((firing, self.clock()))
            return True
        except asyncio.QueueFull:
            self.dropped += 1
            log.warning("queue full: firing dropped tenant=%s rule=%s entity=%s", firing.tenant or "-", firing.rule,
                        firing.entity.get("id"))
            for index in range(len(firing.actions)):
                self.on_failure(firing, index)
            return False

    async def _work(self) -> None:
        while True:
            firing, at = await self.queue.get()
            try:
                outcomes = [await self._run(firing, index, action) for index, action in enumerate(firing.actions)]
                await self.on_done(firing, at, outcomes)
            except Exception:  # a bug must not kill the worker
                log.exception("firing failed tenant=%s rule=%s", firing.tenant or "-", firing.rule)
            finally:
                self.queue.task_done()

    async def _run(self, firing: Firing, index: int, action: dict[str, Any]) -> Outcome:
        started = time.perf_counter()
        try:
            await asyncio.wait_for(self.execute(action), self.timeout)
        except (TimeoutError, ActionError, MailError, NGSIClientError) as exc:
            reason = str(exc) or type(exc).__name__
            if isinstance(exc, asyncio.TimeoutError):
                reason = f"timed out after {self.timeout:g} s"
            self.on_failure(firing, index)
            log.warning("action failed tenant=%s rule=%s entity=%s action=%s error=%s", firing.tenant or "-",
                        firing.rule, firing.entity.get("id"), action["type"], reason)
            return {"ok": False, "error": reason}
        log.info("action done tenant=%s rule=%s entity=%s action=%s ms=%.1f", firing.tenant or "-", firing.rule,
                 firing.entity.get("id"), action["type"], (time.perf_counter() - started) * 1000)
        return {"ok": True}

    async def execute(self, action: dict[str, Any]) -> None:
        kind = action["type"]
        if kind == "update":
            await self._update(action)
        elif kind == "command":
            await self.broker.update_attr(
                action["entity"]["id"], action["command"], {"type": "command", "value": action["value"]},
                action["entity"].get("type") or None, **_tenant(action))
        elif kind == "post":
            await self._post(action)
        elif kind == "email":
            await self.mailer.send(action, self.timeout)
        else:
            raise ActionError(f"unknown action type {kind!r}")

    async def _update(self, action: dict[str, Any]) -> None:
        attributes = action["attributes"]
        if action["actionType"] == "delete":
            attributes = {name: {} for name in attributes}
        if "entity" in action:
            targets = [action["entity"]]
        else:
            f = action["filter"]
            found = await self.broker.query(limit=FILTER_LIMIT, type=f.get("type"), id=f.get("id"),
                                            id_pattern=f.get("idPattern"), q=f.get("q"), attrs="__none__",
                                            **_tenant(action))
            targets = [{"id": e["id"], "type": e["type"]} for e in found]
        if not targets:
            return
        entities = [{"id": t["id"], "type": t["type"], **attributes} for t in targets]
        await self.broker.op_update(action["actionType"], entities, **_tenant(action))

    async def _post(self, action: dict[str, Any]) -> None:
        url = self.web.url(action["url"], action.get("qs") or None)
        decision = await self.gate.check(url)
        if not decision.allowed:
            raise ActionError(f"refused by the destination policy: {decision.failure}")
        body = action["body"].encode() if "body" in action else orjson.dumps(action.get("json"))
        try:
            answer = await self.web.send(action.get("method", "POST"), url, headers=action.get("headers") or {},
                                         body=body, timeout=self.timeout)
        except NGSIClientError as exc:
            cause = exc.__cause__
            if isinstance(cause, DestinationRefused):
                raise ActionError(f"refused by the destination policy: {cause.reason}") from None
            raise ActionError(f"{action.get('method', 'POST')} {url}: {exc}") from None
        if answer.status_code >= 400:
            raise ActionError(f"{action.get('method', 'POST')} {url} answered {answer.status_code}")
