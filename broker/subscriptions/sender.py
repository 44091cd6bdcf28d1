"""Delivering notifications: the entity service's listener, per-destination queues, HTTP workers.

The listener runs inside the request that wrote the entity: it decides which
subscriptions fire (matcher, over an index of the subscriptions by entity id), builds the
requests (notify), updates the counters Orion updates at trigger time (timesSent,
lastNotification, oneshot), and enqueues. It does not wait for the receivers' answers, but
the request is answered only once its notifications are written to their receivers'
connections (``_until_written``: at most WRITE_WAIT, receivers that answer promptly only),
so that a client never sees its write acknowledged before the notification left.

Queues. Each destination (scheme, host, port; an MQTT broker) has its own queue and up
to ``connections`` workers, each with one keep-alive connection of the lean HTTP/1.1
client (``ngsi.client.http11``), so a dead receiver only holds up its own notifications.
Notifications of one subscription about one entity go out one after the other in trigger
order (a worker that finds that pair in flight leaves the notification to the worker
sending it), so a receiver sees the updates of an entity in order; everything else goes
out in parallel.

Back-pressure. When a destination's backlog passes ``busy_mark`` while it answers
promptly (none of its requests in flight for more than RESPONSIVE: the broker is merely
busy producing notifications faster than it sends them), the writing request waits, at
most ``busy_wait`` seconds in all, until the backlog is back under the mark: writes slow
down instead of notifications piling up or being lost. A receiver that hangs causes no
wait beyond that first moment (writes never depend on it); its notifications queue
up to ``queue_size`` in all, beyond which new ones are dropped and recorded as failures,
as Orion does when its notification queue is full (``-notificationMode threadpool:q:n``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import ssl
import time
from collections import deque
from typing import Any, Callable, Protocol

from ngsi.client import http11
from ngsi.context import RequestContext
from ngsi.destinations import Gate

from ..changes import DELETE, Change
from .matcher import fires
from .mqtt import MAX_AGE as MQTT_MAX_AGE
from .mqtt import MqttError, MqttMessage, MqttPublisher, build_mqtt
from .notify import Notification, build
from .service_token import ServiceToken

log = logging.getLogger("waziup.notify")

DEFAULT_TIMEOUT = 5.0  # seconds; Orion's -httpTimeout default (5000 ms)
QUEUE_SIZE = 10000  # notifications waiting or in flight, all destinations
CONNECTIONS = 16  # concurrent requests (connections) per destination
BUSY_MARK = 64  # backlog of one destination above which writers wait
BUSY_WAIT = 1.0  # seconds a writer waits at most
RESPONSIVE = 0.5  # seconds: a destination with no request in flight for longer is "merely busy"
RAMP = 4  # new connections of a destination not yet proven by an answer (see _grow)
IDLE_WORKER = 10.0  # seconds an idle worker lingers before ending
WRITE_WAIT = 0.5  # seconds a write waits at most for its notifications to be on the wire

Item = Notification | MqttMessage
# (owner as the subscription keeps it, tenant, entity) -> the entity as the owner may see it, or None
Visibility = Callable[[dict[str, Any], str, dict[str, Any]], "dict[str, Any] | None"]


class Registry(Protocol):
    def for_tenant(self, tenant: str) -> list[dict[str, Any]]: ...

    def record_success(self, tenant: str, sub_id: str, when: float, code: int | None) -> Any: ...

    def record_failure(self, tenant: str, sub_id: str, when: float, reason: str) -> Any: ...


def failure_reason(exc: BaseException) -> str:
    """Orion's (libcurl's) texts for lastFailureReason."""
    if isinstance(exc, http11.HTTPError):
        return exc.reason
    return "Could not connect to server"


def notification_mode(text: str) -> dict[str, int]:
    """Orion's ``-notificationMode``: ``transient`` (default) and ``permanent`` keep the
    defaults; ``threadpool:q:n`` bounds the queue to ``q`` notifications and sends with
    ``n`` connections per destination (Orion's ``n`` worker threads). Keyword arguments of
    :class:`Notifier`; ValueError for anything else."""
    if text in ("", "transient", "permanent"):
        return {}
    kind, _, rest = text.partition(":")
    queue, _, workers = rest.partition(":")
    try:
        if kind != "threadpool":
            raise ValueError
        sizes = {"queue_size": int(queue), "connections": int(workers)}
    except ValueError:
        raise ValueError(f"{text!r} is not transient, permanent or threadpool:<queue size>:<workers>") from None
    if sizes["queue_size"] < 1 or sizes["connections"] < 1:
        raise ValueError(f"{text!r}: queue size and workers must be at least 1")
    return sizes


async def _maybe_await(value: Any) -> None:
    if asyncio.iscoroutine(value) or isinstance(value, asyncio.Future):
        await value


class _Destination:
    """The queue and workers of one receiver."""

    __slots__ = ("key", "queue", "lanes", "backlog", "workers", "idle", "sending", "writers", "fresh", "regrow")

    def __init__(self, key: Any) -> None:
        self.key = key
        self.queue: deque[tuple[tuple[str, str], Item]] = deque()
        self.lanes: dict[tuple[str, str], deque[Item]] = {}  # (sub, entity) in flight -> waiting behind
        self.backlog = 0  # notifications not started yet (queue and lanes)
        self.workers = 0
        self.idle: list[asyncio.Future[None]] = []  # workers waiting for work
        self.sending: dict[int, float] = {}  # worker -> loop time its current request started
        self.writers: list[asyncio.Future[None]] = []  # requests waiting for the backlog to shrink
        self.fresh: dict[int, float] = {}  # worker -> loop time it started, until its first answer
        self.regrow: asyncio.TimerHandle | None = None  # a later _grow, when fresh workers held it back


class _Index:
    """Which subscriptions may fire for an entity: those naming its id exactly, and those
    with a pattern (or no id). Rebuilt when the registry announces a change; 1,000
    per-entity subscriptions then cost one dict lookup per write, not 1,000 checks."""

    def __init__(self, registry: Any) -> None:
        self.registry = registry
        self.enabled = hasattr(registry, "listeners") and hasattr(registry, "get")
        self._tenants: dict[str, tuple[dict[str, list[tuple[int, str]]], list[tuple[int, str]]]] = {}
        self._generation: object = None
        if self.enabled:
            registry.listeners.append(self._changed)

    def _changed(self, tenant: str, action: str, sub: dict[str, Any]) -> None:
        self._tenants.pop(tenant, None)

    def candidates(self, tenant: str, entity_id: str) -> list[dict[str, Any]]:
        registry = self.registry
        if not self.enabled:
            return list(registry.for_tenant(tenant))
        generation = getattr(registry, "_tenants", None)  # a new dict after a full reload
        if generation is not self._generation:
            self._tenants.clear()
            self._generation = generation
        built = self._tenants.get(tenant)
        if built is None:
            built = self._tenants[tenant] = self._build(tenant)
        by_id, rest = built
        named = by_id.get(entity_id)
        if named is None:
            chosen = rest
        elif not rest:
            chosen = named
        else:
            chosen = sorted(named + rest)  # creation order, as Orion numbers notifications
        out = []
        for _, sub_id in chosen:
            sub = registry.get(tenant, sub_id)
            if sub is not None:
                out.append(sub)
        return out

    def _build(self, tenant: str) -> tuple[dict[str, list[tuple[int, str]]], list[tuple[int, str]]]:
        by_id: dict[str, list[tuple[int, str]]] = {}
        rest: list[tuple[int, str]] = []
        for position, sub in enumerate(self.registry.for_tenant(tenant)):
            selectors = (sub.get("subject") or {}).get("entities") or []
            entry = (position, sub["id"])
            if selectors and all(isinstance(s.get("id"), str) for s in selectors):
                for entity_id in {s["id"] for s in selectors}:
                    by_id.setdefault(entity_id, []).append(entry)
            else:
                rest.append(entry)
        return by_id, rest


class Notifier:
    """Subscriptions' side of every entity write; ``listener`` goes into EntityService.listeners."""

    def __init__(
        self,
        registry: Registry,
        *,
        http_timeout: float | None = None,
        custom_enabled: bool = True,
        queue_size: int = QUEUE_SIZE,
        connections: int = CONNECTIONS,
        busy_mark: int = BUSY_MARK,
        busy_wait: float = BUSY_WAIT,
        insecure: bool = False,
        ssl_context: ssl.SSLContext | None = None,
        gate: Gate | None = None,
        visibility: Visibility | None = None,
        mqtt_max_age: float = MQTT_MAX_AGE,
        workers: int | None = None,  # former name of ``connections``
        service_token: ServiceToken | None = None,
    ) -> None:
        self.registry = registry
        self.http_timeout = http_timeout or DEFAULT_TIMEOUT
        self.custom_enabled = custom_enabled
        self.queue_size = queue_size
        self.connections = workers if workers is not None else connections
        self.busy_mark = max(1, min(busy_mark, queue_size // 2))  # waits start before drops
        self.busy_wait = busy_wait
        self.mqtt = MqttPublisher(max_age=mqtt_max_age)  # seconds (Orion's -mqttMaxAge is in minutes)
        self.index = _Index(registry)
        self.outstanding = 0  # queued or in flight, all destinations
        self._destinations: dict[Any, _Destination] = {}
        self._keys: dict[str, Any] = {}  # URL -> destination key
        self._tasks: set[asyncio.Task[None]] = set()
        self._drained: list[asyncio.Future[None]] = []
        self._insecure = insecure
        self._ssl_context = ssl_context  # -notifCaFile: the CAs trusted for https receivers
        self._client: http11.HTTPClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sent: dict[int, asyncio.Future[None]] = {}  # id(notification) -> done once written
        # The destination policy (-notifAllowedHosts): checked per notification (paths) and
        # per connection (addresses, so a name that changes its answer reaches nothing else).
        self.gate = gate
        # Subscriptions that keep their creator (``_owner``) see each change through this
        # filter (an authorization module's, composed by the orchestrator): reduced to what
        # the creator may read, or nothing. Conditions are evaluated on that view too.
        self.visibility = visibility
        # ... and, once a subscription fires, through the filter's ``release`` when it has
        # one: the entity in the form the creator may receive it (privacy transforms such
        # as pseudonymous ids and coarser locations, which conditions must not see), applied
        # before the notification is built, custom payloads' macros included.
        self.release: Visibility | None = getattr(visibility, "release", None)
        # -notifTokenFor: the broker's own token on its notifications to those URLs (service_token.py)
        self.service_token = service_token

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._client = http11.HTTPClient(
            max_per_host=self.connections, verify=not self._insecure, ssl_context=self._ssl_context, gate=self.gate
        )

    async def stop(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        self._tasks.clear()
        for destination in self._destinations.values():
            if destination.regrow is not None:
                destination.regrow.cancel()
        self._destinations.clear()
        for waiter in [*self._drained, *self._sent.values()]:
            if not waiter.done():
                waiter.set_result(None)
        self._sent.clear()
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        await self.mqtt.aclose()

    def _spawn(self, coro: Any) -> asyncio.Task[None]:
        loop = self._loop or asyncio.get_running_loop()
        task = loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- triggering --------------------------------------------------------------------------

    async def listener(self, change: Change) -> None:
        """The change hook: enqueue what ``change`` causes, then wait if a receiver is busy."""
        if change.ctx.internal and change.action == DELETE:
            return  # the expiry purge: MongoDB's TTL removes entities silently in Orion
        written: list[asyncio.Future[None]] = []
        pressed = self._dispatch(change, written)
        if pressed:
            await self._relieve(pressed, change.ctx)
        elif written:
            await self._until_written(written, change.ctx)

    def dispatch(self, change: Change) -> int:
        """Enqueue the notifications ``change`` causes; returns how many."""
        before = self.outstanding
        self._dispatch(change, None)
        return self.outstanding - before

    def _dispatch(self, change: Change, written: list[asyncio.Future[None]] | None) -> list[_Destination]:
        """Enqueue; the busy destinations the writer should wait for. ``written`` collects a
        future per HTTP notification to a responsive receiver, done once it is on the wire."""
        entity = change.entity
        try:
            subs = self.index.candidates(change.tenant, entity["id"])
        except Exception:
            log.exception("cannot list subscriptions of tenant %r", change.tenant)
            return []
        if not subs:
            return []
        now = time.time()
        pressed: list[_Destination] = []
        views: dict[str, Change | None] = {}  # per owner: the change as that owner sees it
        releases: dict[str, Change | None] = {}  # per owner: the change as that owner receives it
        for sub in subs:
            seen: Change | None = change
            owner = sub.get("_owner")
            if owner is not None and self.visibility is not None:
                seen = self._as_seen_by(owner, change, views)
                if seen is None:
                    continue
            try:
                alteration = fires(sub, seen, now)
                if alteration is None:
                    continue
                if owner is not None and self.release is not None:
                    seen = self._as_received_by(owner, sub, seen, releases)
                    if seen is None:
                        continue
                effective = sub if self.custom_enabled else _without_custom(sub)
                notification: Item | None = build(effective, seen, alteration, change.ctx.tally.next_notification())
                if notification is None:
                    notification = build_mqtt(sub, seen, alteration, custom_enabled=self.custom_enabled)
            except Exception:
                log.exception("cannot build the notification of subscription %s", sub.get("id"))
                continue
            if notification is None:
                continue
            # Throttled and oneshot subscriptions are claimed in trigger order: one lane for all
            # their entities; others keep order per entity.
            serial = sub.get("throttling") or sub.get("status") == "oneshot"
            self._mark_sent(change.tenant, sub, now)
            destination = self._enqueue(notification, "" if serial else entity["id"])
            if destination is None or not self._responsive(destination):
                continue
            if destination.backlog > self.busy_mark:
                if destination not in pressed:
                    pressed.append(destination)
            elif written is not None and isinstance(notification, Notification):
                assert self._loop is not None
                future = self._sent[id(notification)] = self._loop.create_future()
                written.append(future)
        return pressed

    def _as_seen_by(self, owner: dict[str, Any], change: Change, views: dict[str, Change | None]) -> Change | None:
        key = repr(sorted(owner.items()))
        if key in views:
            return views[key]
        assert self.visibility is not None
        both = _through(self.visibility, owner, change, "filter")
        seen = None
        if both is not None:
            before, after = both
            shown = set((after or before or {}).get("attrs", ())) | set((before or {}).get("attrs", ()))
            touched = tuple(name for name in change.touched if name in shown or name == "dateExpires")
            seen = dataclasses.replace(change, before=before, after=after, touched=touched)
        views[key] = seen
        return seen

    def _as_received_by(self, owner: dict[str, Any], sub: dict[str, Any], change: Change,
                        releases: dict[str, Change | None]) -> Change | None:
        """The change as the owner receives it; per subscription when the filter says
        its releases depend on it (``per_subscription``: a policy for one subscription)."""
        key = repr(sorted(owner.items()))
        if getattr(self.visibility, "per_subscription", False):
            owner = {**owner, "subscription": str(sub.get("id") or "")}
            key += owner["subscription"]
        if key in releases:
            return releases[key]
        assert self.release is not None
        both = _through(self.release, owner, change, "release")
        releases[key] = None if both is None else dataclasses.replace(change, before=both[0], after=both[1])
        return releases[key]

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

    # -- queues ------------------------------------------------------------------------------

    def _destination_key(self, item: Item) -> Any:
        url = item.url
        key = self._keys.get(url)
        if key is None:
            if isinstance(item, MqttMessage):
                key = ("mqtt", url)
            else:
                try:
                    key = http11.parse_url(url).key
                except http11.HTTPError:
                    key = ("bad", url)
            if len(self._keys) > 4096:
                self._keys.clear()
            self._keys[url] = key
        return key

    def _enqueue(self, item: Item, entity_id: str) -> _Destination | None:
        """Queue ``item``; wake an idle worker of its destination or start one."""
        if self.outstanding >= self.queue_size:
            log.warning("notification queue full: notification of subscription %s dropped", item.sub_id)
            self._failure(item, time.time(), "notification queue is full")
            return None
        if self._loop is None:  # not started: nothing would send it
            self._failure(item, time.time(), "notifier not started")
            return None
        key = self._destination_key(item)
        destination = self._destinations.get(key)
        if destination is None:
            destination = self._destinations[key] = _Destination(key)
        destination.queue.append(((item.sub_id, entity_id), item))
        destination.backlog += 1
        self.outstanding += 1
        while destination.idle:
            waiter = destination.idle.pop()
            if not waiter.done():
                waiter.set_result(None)
                return destination
        self._grow(destination)
        return destination

    def _grow(self, destination: _Destination) -> None:
        """Start a worker for the queued notifications, ramping up: at most RAMP workers whose
        first request has no answer yet (for less than RESPONSIVE). Why: a burst of
        notifications to one receiver would otherwise open ``connections`` connections at
        once, and a receiver with a small listen backlog (Python's http.server: 5) that is
        slow to accept drops the connections beyond it; the kernel retries them a second
        later. Each answered request proves its connection was accepted; keep-alive
        connections then carry the rest."""
        if not destination.queue or destination.workers >= self.connections:
            return
        assert self._loop is not None
        now = self._loop.time()
        fresh = [started for started in destination.fresh.values() if started > now - RESPONSIVE]
        if len(fresh) >= RAMP:
            if destination.regrow is None:
                destination.regrow = self._loop.call_at(min(fresh) + RESPONSIVE, self._regrow, destination)
            return
        destination.workers += 1
        destination.fresh[id(self._spawn(self._work(destination)))] = now

    def _regrow(self, destination: _Destination) -> None:
        destination.regrow = None
        if self._destinations.get(destination.key) is destination:
            self._grow(destination)

    def _responsive(self, destination: _Destination) -> bool:
        """Does the destination answer promptly (no request of it in flight for long)? Then its
        backlog comes from the broker being busy, and writers may wait for it."""
        assert self._loop is not None
        oldest = self._loop.time() - RESPONSIVE
        return all(started > oldest for started in destination.sending.values())

    async def _relieve(self, pressed: list[_Destination], ctx: RequestContext) -> None:
        """Back-pressure: wait until the busy destinations' backlogs shrink, at most
        ``busy_wait`` in all for one request (a batch writing many entities included)."""
        loop = self._loop
        assert loop is not None
        deadline = self._budget_end(loop, ctx)
        for destination in pressed:
            remaining = deadline - loop.time()
            if remaining <= 0 or destination.backlog <= self.busy_mark:
                continue
            await _wait_listed(loop, destination.writers, remaining)

    def _budget_end(self, loop: asyncio.AbstractEventLoop, ctx: RequestContext) -> float:
        """When the request's back-pressure budget ends: ``busy_wait`` from its first wait,
        for all its waits together (a batch writing many entities included)."""
        tally = ctx.tally
        if tally.deadline is None:
            tally.deadline = loop.time() + self.busy_wait
        return tally.deadline

    async def _until_written(self, written: list[asyncio.Future[None]], ctx: RequestContext) -> None:
        """Answer only once the notifications this write caused are on the wire, so that a
        client reading its receiver right after the answer finds them there, however
        loaded the machine (Orion's notification threads start at once, too). Bounded:
        WRITE_WAIT at most, within the request's back-pressure budget; a receiver that
        does not answer promptly is not waited for (``_responsive``)."""
        loop = self._loop
        assert loop is not None
        timeout = min(WRITE_WAIT, self._budget_end(loop, ctx) - loop.time())
        pending = [future for future in written if not future.done()]
        if pending and timeout > 0:
            await asyncio.wait(pending, timeout=timeout)

    async def _work(self, destination: _Destination) -> None:
        """One worker of a destination: takes notifications until idle for IDLE_WORKER."""
        loop = self._loop
        assert loop is not None
        queue = destination.queue
        lanes = destination.lanes
        me = id(asyncio.current_task())
        first = True
        try:
            while True:
                if not queue:
                    waiter = await _wait_listed(loop, destination.idle, IDLE_WORKER)
                    if not queue:
                        if waiter in destination.idle:
                            destination.idle.remove(waiter)
                        if not destination.idle and destination.workers == 1 and not lanes:
                            self._destinations.pop(destination.key, None)
                        return
                    continue
                lane_key, item = queue.popleft()
                lane = lanes.get(lane_key)
                if lane is not None:  # that (subscription, entity) is being sent: queue behind it
                    lane.append(item)
                    continue
                lane = lanes[lane_key] = deque()
                try:
                    while True:
                        self._started(destination)
                        destination.sending[me] = loop.time()
                        try:
                            await self._deliver(item)
                        finally:
                            del destination.sending[me]
                            self._finished()
                            if first:
                                first = False
                                destination.fresh.pop(me, None)
                                if len(destination.queue) > 1:  # one is this worker's next
                                    self._grow(destination)
                        if not lane:
                            break
                        item = lane.popleft()
                finally:
                    del lanes[lane_key]
        finally:
            destination.workers -= 1
            destination.fresh.pop(me, None)

    def _started(self, destination: _Destination) -> None:
        destination.backlog -= 1
        if destination.writers and destination.backlog <= self.busy_mark:
            writers, destination.writers = destination.writers, []
            for waiter in writers:
                if not waiter.done():
                    waiter.set_result(None)

    def _finished(self) -> None:
        self.outstanding -= 1
        if self.outstanding == 0 and self._drained:
            drained, self._drained = self._drained, []
            for waiter in drained:
                if not waiter.done():
                    waiter.set_result(None)

    # -- delivery ----------------------------------------------------------------------------

    async def _deliver(self, item: Item) -> None:
        try:
            # Workers sharing a database: a throttled/oneshot trigger is checked there first.
            claim = getattr(self.registry, "claim", None)
            if claim is None or await claim(item.tenant, item.sub_id):
                await self.send(item)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("notification of subscription %s failed", item.sub_id)
        finally:
            self._written(item)

    def _written(self, item: Item) -> None:
        """The writer waiting for ``item`` to be on the wire may go on (sent, failed or dropped)."""
        future = self._sent.pop(id(item), None)
        if future is not None and not future.done():
            future.set_result(None)

    async def send(self, notification: Item) -> None:
        if isinstance(notification, MqttMessage):
            await self.send_mqtt(notification)
            return
        client = self._client
        if client is None:
            raise RuntimeError("the notifier is not started")
        timeout = notification.timeout or self.http_timeout
        if not await self._destination_allowed(notification):
            return
        headers = notification.headers
        vouched = self.service_token is not None and self.service_token.wanted(notification.url, notification.custom)
        try:
            if vouched:
                assert self.service_token is not None
                headers = await self.service_token.headers(headers)
            response = await client.request(
                notification.method, notification.url, headers, notification.body, timeout,
                on_sent=lambda: self._written(notification),
            )
        except Exception as exc:  # connection refused, timeout, bad URL...
            reason = failure_reason(exc)
            log.info("notification of subscription %s to %s failed: %s", notification.sub_id, notification.url, reason)
            self._failure(notification, time.time(), reason)
            return
        status = response.status
        if not 200 <= status < 300:
            log.info("notification of subscription %s got HTTP %s", notification.sub_id, status)
        if status == 401 and vouched:
            assert self.service_token is not None
            await self.service_token.credentials.expired()  # the next one fetches a new token
        # Orion counts any HTTP answer as a delivery (lastSuccessCode shows the status).
        await _maybe_await(self.registry.record_success(notification.tenant, notification.sub_id, time.time(), status))

    async def send_mqtt(self, message: MqttMessage) -> None:
        """Orion's doNotifyMqtt: no status code on success, no reason on failure (but for a
        destination the policy refuses: that reason is shown)."""
        if not await self._destination_allowed(message):
            return
        try:
            await self.mqtt.publish(message)
        except MqttError as exc:
            log.info("MQTT notification of subscription %s to %s failed: %s", message.sub_id, message.url, exc)
            self._failure(message, time.time(), "")
            return
        await _maybe_await(self.registry.record_success(message.tenant, message.sub_id, time.time(), None))

    async def _destination_allowed(self, item: Item) -> bool:
        """The destination policy, at send time (macros may have built the URL; a name may
        resolve elsewhere now): a refusal is a failure with the policy's reason."""
        if self.gate is None:
            return True
        decision = await self.gate.check(item.url)
        if decision.allowed:
            return True
        log.info("notification of subscription %s to %s refused: %s", item.sub_id, item.url, decision.reason)
        self._failure(item, time.time(), decision.failure)
        return False

    def _failure(self, notification: Item, when: float, reason: str) -> None:
        try:
            result = self.registry.record_failure(notification.tenant, notification.sub_id, when, reason)
            if asyncio.iscoroutine(result):
                asyncio.ensure_future(result)
        except Exception:
            log.exception("record_failure failed for subscription %s", notification.sub_id)

    async def drain(self) -> None:
        """Wait until every queued notification went out (tests)."""
        if self.outstanding == 0:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._drained.append(waiter)
        await waiter


def _settle(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


async def _wait_listed(
    loop: asyncio.AbstractEventLoop, waiters: list[asyncio.Future[None]], timeout: float
) -> asyncio.Future[None]:
    """Wait, at most ``timeout`` seconds, on a new future put in ``waiters``, the list of
    those to wake when their turn comes (writers held back, idle workers). Returns the
    future, which after a timeout may still be in the list for the caller to take out."""
    waiter = loop.create_future()
    waiters.append(waiter)
    timer = loop.call_later(timeout, _settle, waiter)
    try:
        await waiter
    finally:
        timer.cancel()
    return waiter


def _through(view: Visibility, owner: dict[str, Any], change: Change, what: str) -> tuple[Any, Any] | None:
    """(before, after) as ``view`` shows them to the owner; None when it shows nothing of
    an entity the change has, or fails (then nothing is sent: the filter fails closed)."""
    try:
        before = None if change.before is None else view(owner, change.tenant, change.before)
        after = None if change.after is None else view(owner, change.tenant, change.after)
    except Exception:
        log.exception("the notification %s failed: nothing is sent to owner %s", what, owner.get("user_id"))
        return None
    if (change.after is not None and after is None) or (change.before is not None and before is None):
        return None
    return before, after


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
