"""One asyncio task per source: fetch (or gather), map, write, keep the status.

A polled source (``http-json``, ``csv``) runs every ``interval`` seconds; after a failed
run it waits its back-off delay instead (``backoff.py``), which grows with the number of
consecutive failures, so a dead server is not hammered. An ``mqtt`` source stays
subscribed and writes what arrived every ``mqtt.flush`` seconds, or as soon as a batch
is full; a failed write keeps the records for the next try and backs off the same way.

Entities are written with ``POST /v2/op/update`` (``append``: created, or their attributes
added/updated) in batches of ``batch``. After each run the status (``status.py``) is
written as the entity ``urn:waziup:source:<name>`` (type ``DataSource``) in the source's
tenant and service path; a broker that refuses it only costs a log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from ngsi.client import NGSIClient, NGSIClientError, NGSIConnectionError

from . import backoff
from .connectors import Context, SourceError, csv_source, http_json
from .connectors.mqtt_source import MqttFeed
from .definition import Definition
from .mapping import Mapper
from .status import Status, now

log = logging.getLogger("waziup.sources")


class WriteError(SourceError):
    """The broker refused or missed a batch; ``written``: entities of earlier batches."""

    def __init__(self, message: str, written: int) -> None:
        super().__init__(message)
        self.written = written


@dataclass(frozen=True)
class Writer:
    """Where entities go: the broker, in one tenant and service path."""

    broker: NGSIClient
    tenant: str | None
    service_path: str | None

    async def write(self, entities: list[dict[str, Any]], batch: int) -> int:
        """Write ``entities`` in batches; WriteError (with the count written) on a failure."""
        written = 0
        for start in range(0, len(entities), batch):
            chunk = entities[start:start + batch]
            try:
                await self.broker.op_update("append", chunk, service=self.tenant, service_path=self.service_path)
            except NGSIClientError as exc:
                raise WriteError(f"the broker refused a batch: {exc.status} {exc}", written) from None
            except NGSIConnectionError as exc:
                raise WriteError(f"the broker is unreachable: {exc}", written) from None
            written += len(chunk)
        return written

    async def put_status(self, entity: dict[str, Any]) -> None:
        try:
            await self.broker.op_update("append", [entity], service=self.tenant, service_path=self.service_path)
        except (NGSIClientError, NGSIConnectionError) as exc:
            log.warning("source status %s not written: %s", entity["id"], exc)

    async def delete_status(self, entity_id: str) -> None:
        try:
            await self.broker.delete_entity(entity_id, "DataSource", service=self.tenant,
                                            service_path=self.service_path)
        except NGSIClientError as exc:
            if exc.status != 404:
                log.warning("source status %s not deleted: %s", entity_id, exc)
        except NGSIConnectionError as exc:
            log.warning("source status %s not deleted: %s", entity_id, exc)


def pages(definition: Definition, context: Context) -> AsyncIterator[list[Any]]:
    return (http_json.pages if definition.kind == "http-json" else csv_source.pages)(definition, context)


class SourceRunner:
    """The life of one source: ``start()``, ``run_now()``, ``stop()``; ``status`` any time."""

    def __init__(self, definition: Definition, writer: Writer, context: Context,
                 rand: Callable[[], float] | None = None) -> None:
        self.definition = definition
        self.writer = writer
        self.context = context
        self.mapper = Mapper(definition.entity)
        self.status = Status()
        self._rand = rand
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._waiting: list[asyncio.Future[None]] = []
        self._lock = asyncio.Lock()  # one run at a time (the loop's, or run_now's on a stopped source)
        self._feed: MqttFeed | None = None
        self._lost = False  # an mqtt source's connection dropped (its client reconnects by itself)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if self.running:
            return
        if not self.definition.enabled:
            self.status.state = "stopped"
            return
        loop = self._mqtt_loop if self.definition.kind == "mqtt" else self._poll_loop
        self._task = asyncio.get_running_loop().create_task(loop(), name=f"source-{self.definition.name}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._feed is not None:
            await self._feed.close()
            self._feed = None
        self.status.state = "stopped"
        self.status.next_run = None
        for waiter in self._waiting:
            if not waiter.done():
                waiter.set_result(None)
        self._waiting.clear()

    async def run_now(self, timeout: float | None = None) -> Status:
        """Run at once (an mqtt source: write what arrived) and return the status after it."""
        if not self.running:
            if self.definition.kind != "mqtt":
                async with self._lock:
                    await self._poll_once()
                    await self.writer.put_status(self._status_entity())
            return self.status
        waiter = asyncio.get_running_loop().create_future()
        self._waiting.append(waiter)
        self._wake.set()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(waiter), timeout)
        return self.status

    # -- polled sources -----------------------------------------------------------------------

    async def _poll_loop(self) -> None:
        while True:
            waiting, self._waiting = self._waiting, []
            self._wake.clear()
            async with self._lock:
                await self._poll_once()
            delay = self._next_delay(self.definition.interval)
            await self.writer.put_status(self._status_entity())
            for waiter in waiting:
                if not waiter.done():
                    waiter.set_result(None)
            await self._sleep(delay)

    async def _poll_once(self) -> None:
        written = skipped = dropped = 0
        reasons: tuple[str, ...] = ()
        try:
            async for records in pages(self.definition, self.context):
                mapped = self.mapper.map(records)
                skipped += mapped.skipped
                dropped += mapped.dropped
                reasons = reasons or mapped.reasons
                written += await self.writer.write(mapped.entities, self.definition.batch)
        except asyncio.CancelledError:
            raise
        except WriteError as exc:
            self._failed(str(exc), written + exc.written)
        except SourceError as exc:
            self._failed(str(exc), written)
        except Exception as exc:  # a bug must show in the status, and not end the source's task
            log.exception("source %s: unexpected failure", self.definition.name)
            self._failed(f"{type(exc).__name__}: {exc}", written)
        else:
            self.status.succeeded(written, skipped, dropped, reasons, now())

    # -- mqtt sources -------------------------------------------------------------------------

    async def _mqtt_loop(self) -> None:
        assert self.definition.mqtt is not None
        flush = self.definition.mqtt.flush
        while True:
            feed = MqttFeed(self.definition, self.context)
            try:
                await feed.start()
            except Exception as exc:  # SourceError, or a bug: shown in the status, tried again later
                if not isinstance(exc, SourceError):
                    log.exception("source %s: unexpected failure", self.definition.name)
                self._failed(str(exc) if isinstance(exc, SourceError) else f"{type(exc).__name__}: {exc}", 0)
                delay = self._next_delay(flush)
                await self.writer.put_status(self._status_entity())
                self._release_waiters()
                await self._sleep(delay)
                continue
            self._feed = feed
            self._lost = False
            self.status.state = "ok"
            self.status.consecutive_failures = 0
            self.status.retry_in = 0.0
            await self.writer.put_status(self._status_entity())
            try:
                await self._gather(feed, flush)
            finally:
                self._feed = None
                await feed.close()

    async def _gather(self, feed: MqttFeed, flush: float) -> None:
        """Write what arrives, every ``flush`` seconds or per full batch, while connected."""
        while True:
            delay = self._next_delay(flush)
            with contextlib.suppress(asyncio.TimeoutError):
                wake = asyncio.ensure_future(self._wake.wait())
                full = asyncio.ensure_future(feed.arrived.wait())
                try:
                    await asyncio.wait_for(asyncio.wait({wake, full}, return_when=asyncio.FIRST_COMPLETED), delay)
                finally:
                    wake.cancel()
                    full.cancel()
            self._wake.clear()
            waiting, self._waiting = self._waiting, []
            try:
                await self._flush(feed)
            except Exception as exc:  # a bug must show in the status, and not end the source's task
                log.exception("source %s: unexpected failure", self.definition.name)
                self._failed(f"{type(exc).__name__}: {exc}", 0)
            for waiter in waiting:
                if not waiter.done():
                    waiter.set_result(None)

    async def _flush(self, feed: MqttFeed) -> None:
        records = feed.take(self.definition.batch * 10)
        skipped, reasons = feed.take_skipped()
        if not records and not skipped:
            if not feed.connected and not self._lost:
                self._lost = True
                self._failed(f"MQTT {self.definition.mqtt.url if self.definition.mqtt else ''}: connection lost"
                             " (reconnecting)", 0)
                await self.writer.put_status(self._status_entity())
            elif feed.connected and self._lost:  # the client reconnected by itself
                self._lost = False
                self.status.succeeded(0, 0, 0, (), now())
                await self.writer.put_status(self._status_entity())
            return
        mapped = self.mapper.map(records)
        try:
            written = await self.writer.write(mapped.entities, self.definition.batch)
        except WriteError as exc:
            feed.give_back(records[exc.written:] if exc.written else records)
            self._failed(str(exc), exc.written)
        else:
            self.status.succeeded(written, mapped.skipped + skipped, mapped.dropped, reasons or mapped.reasons, now())
        await self.writer.put_status(self._status_entity())

    # -- shared -----------------------------------------------------------------------------------

    def _failed(self, error: str, written: int) -> None:
        log.warning("source %s failed: %s", self.definition.name, error)
        self.status.failed(error, now(), written)
        first, cap = self.definition.backoff
        rand = self._rand or random.random
        self.status.retry_in = backoff.delay(self.status.consecutive_failures, first, cap, rand)

    def _next_delay(self, normal: float) -> float:
        """The normal period, or the back-off delay chosen after the last failure."""
        delay = self.status.retry_in if self.status.consecutive_failures else normal
        self.status.next_run = now() + delay
        return delay

    async def _sleep(self, seconds: float) -> None:
        """Sleep, or less when ``run_now`` asks."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    def _release_waiters(self) -> None:
        waiting, self._waiting = self._waiting, []
        for waiter in waiting:
            if not waiter.done():
                waiter.set_result(None)

    def _status_entity(self) -> dict[str, Any]:
        return self.status.to_entity(self.definition.status_id, self.definition.kind)
