"""Delivering notifications: the entity service's listener, a bounded queue and HTTP workers.

The listener runs inside the request that wrote the entity: it decides which
subscriptions fire (matcher), builds the requests (notify), updates the counters Orion
updates at trigger time (timesSent, lastNotification, oneshot), and enqueues. It never
waits for a receiver, so a slow or dead receiver cannot slow writes down; a full queue
drops the notification and records it as a failure, as Orion does when its queue is full.

Workers share one pooled ``httpx.AsyncClient``. Notifications of one subscription are
sent one after the other in trigger order (a per-subscription lock taken right after
dequeueing), so a receiver sees the updates of an entity in order; different
subscriptions go out in parallel.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Protocol

from .matcher import CURRENT, Change, RequestContext, fires
from .mqtt import MqttError, MqttMessage, MqttPublisher, build_mqtt
from .notify import Notification, build

log = logging.getLogger("waziup.notify")

DEFAULT_TIMEOUT = 5.0  # seconds; Orion's -httpTimeout default (5000 ms)
QUEUE_SIZE = 10000
WORKERS = 8


class Registry(Protocol):
    def for_tenant(self, tenant: str) -> list[dict[str, Any]]: ...

    def record_success(self, tenant: str, sub_id: str, when: float, code: int | None) -> Any: ...

    def record_failure(self, tenant: str, sub_id: str, when: float, reason: str) -> Any: ...


def failure_reason(exc: BaseException) -> str:
    """Orion's (libcurl's) texts for lastFailureReason."""
    import httpx

    if isinstance(exc, httpx.TimeoutException):
        return "Timeout was reached"
    if isinstance(exc, httpx.ConnectError):
        text = str(exc).lower()
        if "name or service not known" in text or "nodename" in text or "resolve" in text or "getaddrinfo" in text:
            return "Could not resolve hostname"
        return "Could not connect to server"
    if isinstance(exc, (httpx.UnsupportedProtocol, httpx.InvalidURL)):
        return "Unsupported protocol"
    return "Could not connect to server"


async def _maybe_await(value: Any) -> None:
    if asyncio.iscoroutine(value) or isinstance(value, asyncio.Future):
        await value


class Notifier:
    """Subscriptions' side of every entity write; ``listener`` goes into EntityService.listeners."""

    def __init__(
        self,
        registry: Registry,
        *,
        multiservice: bool = False,
        http_timeout: float | None = None,
        custom_enabled: bool = True,
        queue_size: int = QUEUE_SIZE,
        workers: int = WORKERS,
        transport: Any = None,
    ) -> None:
        self.registry = registry
        self.multiservice = multiservice
        self.http_timeout = http_timeout or DEFAULT_TIMEOUT
        self.custom_enabled = custom_enabled
        self.queue: asyncio.Queue[Notification | MqttMessage] = asyncio.Queue(maxsize=queue_size)
        self.mqtt = MqttPublisher()
        self.worker_count = workers
        self._workers: list[asyncio.Task[None]] = []
        self._locks: dict[str, asyncio.Lock] = {}
        self._client: Any = None
        self._transport = transport  # an httpx transport (tests)

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        import httpx

        limits = httpx.Limits(max_connections=64, max_keepalive_connections=16)
        self._client = httpx.AsyncClient(
            limits=limits, follow_redirects=False, trust_env=False, transport=self._transport
        )
        for name in ("Accept-Encoding", "Accept", "User-Agent", "Connection"):
            self._client.headers.pop(name, None)
        self._workers = [asyncio.create_task(self._work()) for _ in range(self.worker_count)]
        self._workers.append(asyncio.create_task(self._warm_up()))

    async def _warm_up(self) -> None:
        """Pay httpx's lazy imports and backend set-up now, not on the first notification
        (receivers expect it within milliseconds): one request to a closed local port."""
        try:
            await self._client.get("http://127.0.0.1:1/", timeout=1.0)
        except Exception:
            pass
        from . import notify  # noqa: F401
        try:
            import ngsi.geo  # noqa: F401
            import ngsi.query  # noqa: F401
            from ngsi import jexl  # noqa: F401
        except ImportError:  # pragma: no cover
            pass

    async def stop(self) -> None:
        for task in self._workers:
            task.cancel()
        for task in self._workers:
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        self._workers = []
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        await self.mqtt.aclose()

    # -- triggering --------------------------------------------------------------------------

    async def listener(
        self, tenant: str, action: str, before: dict[str, Any] | None, after: dict[str, Any] | None, changed: list[str]
    ) -> None:
        ctx = CURRENT.get()
        if ctx is None:
            if action == "delete":
                return  # the expiry purge: MongoDB's TTL removes entities silently in Orion
            ctx = RequestContext()
            CURRENT.set(ctx)
        change = Change(tenant, action, before, after, tuple(changed), forced=ctx.forced)
        self.dispatch(change, ctx)

    def dispatch(self, change: Change, ctx: RequestContext) -> int:
        """Enqueue the notifications ``change`` causes; returns how many."""
        try:
            subs = list(self.registry.for_tenant(change.tenant))
        except Exception:
            log.exception("cannot list subscriptions of tenant %r", change.tenant)
            return 0
        now = time.time()
        count = 0
        for sub in subs:
            try:
                alteration = fires(sub, change, now)
                if alteration is None:
                    continue
                effective = sub if self.custom_enabled else _without_custom(sub)
                notification: Notification | MqttMessage | None = build(
                    effective, change, alteration, ctx, ctx.next_notification(), multiservice=self.multiservice
                )
                if notification is None:
                    notification = build_mqtt(sub, change, alteration, ctx, custom_enabled=self.custom_enabled)
            except Exception:
                log.exception("cannot build the notification of subscription %s", sub.get("id"))
                continue
            if notification is None:
                continue
            self._mark_sent(change.tenant, sub, now)
            try:
                self.queue.put_nowait(notification)
            except asyncio.QueueFull:
                log.warning("notification queue full: notification of subscription %s dropped", sub.get("id"))
                self._failure(notification, time.time(), "notification queue is full")
                continue
            count += 1
        return count

    def _mark_sent(self, tenant: str, sub: dict[str, Any], now: float) -> None:
        """timesSent, lastNotification and oneshot are Orion's trigger-time counters."""
        record = getattr(self.registry, "record_sent", None)
        if record is not None:
            try:
                record(tenant, sub["id"], now)
            except Exception:
                log.exception("record_sent failed for subscription %s", sub.get("id"))
        else:
            notification = sub.setdefault("notification", {})
            notification["timesSent"] = (notification.get("timesSent") or 0) + 1
            notification["lastNotification"] = now
            if sub.get("status") == "oneshot":
                sub["status"] = "inactive"

    # -- delivery ----------------------------------------------------------------------------

    async def _work(self) -> None:
        while True:
            notification = await self.queue.get()
            lock = self._locks.setdefault(notification.sub_id, asyncio.Lock())
            try:
                async with lock:
                    # Workers sharing a database: a throttled/oneshot trigger is checked there first.
                    claim = getattr(self.registry, "claim", None)
                    if claim is None or await claim(notification.tenant, notification.sub_id):
                        await self.send(notification)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("notification of subscription %s failed", notification.sub_id)
            finally:
                self.queue.task_done()

    async def send(self, notification: Notification | MqttMessage) -> None:
        if isinstance(notification, MqttMessage):
            await self.send_mqtt(notification)
            return
        timeout = notification.timeout or self.http_timeout
        try:
            response = await self._client.request(
                notification.method,
                notification.url,
                headers=notification.headers,
                content=notification.body,
                timeout=timeout,
            )
        except Exception as exc:  # connection refused, timeout, bad URL...
            reason = failure_reason(exc)
            log.info("notification of subscription %s to %s failed: %s", notification.sub_id, notification.url, reason)
            self._failure(notification, time.time(), reason)
            return
        if 200 <= response.status_code < 300:
            await _maybe_await(
                self.registry.record_success(notification.tenant, notification.sub_id, time.time(), response.status_code)
            )
        else:
            log.info("notification of subscription %s got HTTP %s", notification.sub_id, response.status_code)
            # Orion counts any HTTP answer as a delivery (lastSuccessCode shows the status).
            await _maybe_await(
                self.registry.record_success(notification.tenant, notification.sub_id, time.time(), response.status_code)
            )

    async def send_mqtt(self, message: MqttMessage) -> None:
        """Orion's doNotifyMqtt: no status code on success, no reason on failure."""
        try:
            await self.mqtt.publish(message)
        except MqttError as exc:
            log.info("MQTT notification of subscription %s to %s failed: %s", message.sub_id, message.url, exc)
            self._failure(message, time.time(), "")
            return
        await _maybe_await(self.registry.record_success(message.tenant, message.sub_id, time.time(), None))

    def _failure(self, notification: Notification | MqttMessage, when: float, reason: str) -> None:
        try:
            result = self.registry.record_failure(notification.tenant, notification.sub_id, when, reason)
            if asyncio.iscoroutine(result):
                asyncio.ensure_future(result)
        except Exception:
            log.exception("record_failure failed for subscription %s", notification.sub_id)

    async def drain(self) -> None:
        """Wait until every queued notification went out (tests)."""
        await self.queue.join()


def _without_custom(sub: dict[str, Any]) -> dict[str, Any]:
    """-disableCustomNotifications: httpCustom is sent as plain http to its URL."""
    notification = sub.get("notification") or {}
    custom = notification.get("httpCustom")
    if custom is None:
        return sub
    copy = dict(sub)
    copy["notification"] = {k: v for k, v in notification.items() if k != "httpCustom"}
    copy["notification"]["http"] = {"url": custom.get("url", "")}
    return copy
