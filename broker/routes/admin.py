"""Orion's administration API: ``/statistics``, ``/cache/statistics``, ``/admin/log``, ``/log/trace``.

What the manuals say (admin/statistics.md, admin/management_api.md, admin/logs.md) and where we
differ, so that monitoring scripts and client libraries written for Orion (FiLiP's
``get_statistics``) keep working:

* ``GET /statistics`` always has ``uptime_in_secs`` and ``measuring_interval_in_secs``; the
  ``counters`` block comes with ``-statCounters``, ``timing`` (only ``total``: the whole request)
  with ``-statTiming``, ``notifQueue`` with ``-statNotifQueue`` in threadpool notification mode.
  There is no ``semWait`` block: the broker has none of Orion's semaphores (one event loop).
  Counting costs nothing unless a flag asks for it (``BrokerApp`` measures only then).
* ``GET /cache/statistics``: the subscriptions the broker holds in memory (all of them: our
  registry is Orion's subscription cache without the periodic refresh, so ``refreshs`` is the
  start-up load) and the inserts, updates and removes made since start or the last reset.
* ``DELETE`` on either resets its counters (not what is state: the items, the queue size).
* ``/admin/log``: the level changes at run time (the root logger's, as ``-logLevel`` sets
  it); ``infoPayloadMaxSize`` and ``lineMaxSize`` are kept and shown (no log line of ours prints
  payloads); ``deprecate`` logs uses of deprecated geo types as WARN. ``/log/trace``: Orion's
  trace levels are kept and shown, as ``-t`` they change no output (our logs have no trace levels).

Statistics, like the log level, belong to one process: with ``-workers N`` each worker answers
for itself, as each Orion instance of a cluster does.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ngsi.errors import BadRequest
from ngsi.server.reply import Reply

from ..changes import DELETE as DELETED, Change
from ..http import Call, Handler, Resource, check_accept, json_response, parse_options
from . import batch, entities, notify, registrations, subscriptions, types, version
from .params import check_params

log = logging.getLogger("waziup.broker")

RESET = {"message": "All statistics counter reset"}  # admin/statistics.md, "Reseting statistics"
IDS_MAX = 4096  # characters of /cache/statistics "ids" before "too many subscriptions" (admin/statistics.md)
TOO_MANY = "too many subscriptions"
QUEUE_FULL = "notification queue is full"  # the failure reason of broker/subscriptions/sender.py's drop

# admin/logs.md, "Log file": the -logLevel values, and the Python level each lets through.
LEVELS = {
    "NONE": logging.CRITICAL + 10, "FATAL": logging.CRITICAL, "ERROR": logging.ERROR,
    "WARN": logging.WARNING, "INFO": logging.INFO, "DEBUG": logging.DEBUG,
}
DEFAULT_INFO_PAYLOAD_MAX = 5 * 1024  # admin/cli.md, -logInfoPayloadMaxSize: 5 KBytes
DEFAULT_LINE_MAX = 32 * 1024  # admin/cli.md, -logLineMaxSize: 32 KBytes
MIN_LINE_MAX = 100  # admin/cli.md: "Minimum allowed value: 100 bytes"
TRACE_MAX = 255  # admin/cli.md, -t: "use all trace levels: -t 0-255"
DEPRECATED_GEO_TYPES = frozenset({"geo:point", "geo:line", "geo:box", "geo:polygon"})  # deprecated.md


# -- statistics ---------------------------------------------------------------------------------


@dataclass
class Statistics:
    """The counters of ``GET /statistics`` (admin/statistics.md), one set per process.

    ``counters``, ``timing`` and ``notif_queue`` are the blocks ``-statCounters``,
    ``-statTiming`` and ``-statNotifQueue`` (threadpool mode only) enable.
    """

    counters: bool = False
    timing: bool = False
    notif_queue: bool = False
    # measuring_interval_in_secs counts from here: the process's start, then the last reset
    started: float = field(default_factory=lambda: version.STARTED)
    requests: dict[str, dict[str, int]] = field(default_factory=dict)  # URL pattern -> verb -> count
    json_requests: int = 0
    text_requests: int = 0
    no_payload_requests: int = 0
    invalid_requests: int = 0  # no such URL (Orion's "Service not found"), or a forbidden character in it
    missed_verb: int = 0  # a method the URL does not serve (405)
    deprecated: dict[str, int] = field(default_factory=dict)  # "geoFormat", "ngsiv1Forwarding"
    queued: int = 0  # notifications triggered (queued or rejected)
    rejected: int = 0  # dropped: the queue was full
    sent_ok: int = 0  # answered (any HTTP status: Orion counts it as delivered), or published over MQTT
    sent_error: int = 0  # connection failures, timeouts, refused destinations
    accumulated: float = 0.0  # seconds spent serving requests
    last: float = 0.0  # the last request's

    @property
    def measuring(self) -> bool:
        """Must each request be looked at (``BrokerApp`` skips all of it otherwise)?"""
        return self.counters or self.timing

    @property
    def watching_notifications(self) -> bool:
        return self.counters or self.notif_queue

    def reset(self) -> None:
        """``DELETE /statistics``: every counter to zero; the measuring interval starts now."""
        fresh = Statistics(self.counters, self.timing, self.notif_queue, started=time.time())
        self.__dict__.update(fresh.__dict__)

    def request(self, pattern: str | None, method: str, payload: str | None, served: bool) -> None:
        """Count one request: ``pattern`` its URL's (None: no such URL), ``served`` whether that
        URL serves ``method``; ``payload`` "json", "text", another media type, or None (none)."""
        if payload is None:
            self.no_payload_requests += 1
        elif payload == "json":
            self.json_requests += 1
        elif payload == "text":
            self.text_requests += 1
        if pattern is None:
            self.invalid_requests += 1
        elif not served:
            self.missed_verb += 1
        else:
            verbs = self.requests.setdefault(pattern, {})
            verbs[method] = verbs.get(method, 0) + 1

    def took(self, seconds: float) -> None:
        self.accumulated += seconds
        self.last = seconds

    def used(self, feature: str) -> None:
        """A deprecated feature was used (admin/logs.md, "Log deprecated usages")."""
        self.deprecated[feature] = self.deprecated.get(feature, 0) + 1

    def render(self, *, full: bool, queue_size: int, cors: bool) -> dict[str, Any]:
        now = time.time()
        out: dict[str, Any] = {}
        if self.counters:
            out["counters"] = self._counters(full, cors)
        if self.timing:
            out["timing"] = {
                "accumulated": {"total": self.accumulated} if self.accumulated else {},
                "last": {"total": self.last} if self.last else {},
            }
        if self.notif_queue:
            out["notifQueue"] = {
                "in": self.queued - self.rejected,
                "out": self.sent_ok + self.sent_error,
                "reject": self.rejected,
                "sentOk": self.sent_ok,
                "sentError": self.sent_error,
                "size": queue_size,
            }
        out["uptime_in_secs"] = int(now - version.STARTED)
        out["measuring_interval_in_secs"] = int(now - self.started)
        return out

    def _counters(self, full: bool, cors: bool) -> dict[str, Any]:
        """Orion shows a counter only once it counted something, all of them (zeros too) with
        ``options=fullCounters`` (admin/statistics.md, "Counter block")."""
        deprecated = {name: self.deprecated.get(name, 0) for name in ("geoFormat", "ngsiv1Forwarding")}
        requests: dict[str, dict[str, int]] = {}
        if full:
            for pattern, resource in URLS.items():
                verbs = [verb.strip() for verb in resource.allow.split(",")] + (["OPTIONS"] if cors else [])
                requests[pattern] = {verb: 0 for verb in verbs}
        for pattern, counted in self.requests.items():
            requests.setdefault(pattern, {}).update(counted)
        counters = {
            "deprecatedFeatures": deprecated,
            "invalidRequests": self.invalid_requests,
            "jsonRequests": self.json_requests,
            "missedVerb": self.missed_verb,
            "noPayloadRequests": self.no_payload_requests,
            "notificationsSent": self.sent_ok + self.sent_error,
            "requests": requests,
            "textRequests": self.text_requests,
        }
        if full:
            return counters
        counters["deprecatedFeatures"] = {name: n for name, n in deprecated.items() if n}
        return {name: value for name, value in counters.items() if value or name == "requests"}


class CountingRegistry:
    """The subscription registry as the notifier sees it, counting what happens to each
    notification for ``notificationsSent`` and the ``notifQueue`` block; the rest passes through."""

    def __init__(self, registry: Any, stats: Statistics) -> None:
        self._registry = registry
        self._stats = stats

    def __getattr__(self, name: str) -> Any:
        return getattr(self._registry, name)

    def record_sent(self, tenant: str, sub_id: str, when: float) -> Any:
        self._stats.queued += 1
        return self._registry.record_sent(tenant, sub_id, when)

    def record_success(self, tenant: str, sub_id: str, when: float, code: int | None) -> Any:
        self._stats.sent_ok += 1
        return self._registry.record_success(tenant, sub_id, when, code)

    def record_failure(self, tenant: str, sub_id: str, when: float, reason: str) -> Any:
        if reason == QUEUE_FULL:
            self._stats.rejected += 1
        else:
            self._stats.sent_error += 1
        return self._registry.record_failure(tenant, sub_id, when, reason)


@dataclass
class SubCache:
    """``GET /cache/statistics``: the cache operations since start (or the last reset)."""

    refreshs: int = 1  # the start-up load; the registry is kept current, never refreshed
    inserts: int = 0
    removes: int = 0
    updates: int = 0

    def listener(self, tenant: str, action: str, sub: dict[str, Any]) -> None:
        """A SubscriptionRegistry listener (created, updated, deleted; here or by another worker)."""
        if action == "create":
            self.inserts += 1
        elif action == "update":
            self.updates += 1
        elif action == "delete":
            self.removes += 1

    def reset(self) -> None:
        self.refreshs = self.inserts = self.removes = self.updates = 0

    def render(self, ids: list[str]) -> dict[str, Any]:
        listed = ", ".join(ids)
        return {
            "ids": TOO_MANY if len(listed) > IDS_MAX else listed,
            "refreshs": self.refreshs,
            "inserts": self.inserts,
            "removes": self.removes,
            "updates": self.updates,
            "items": len(ids),
        }


# -- log configuration --------------------------------------------------------------------------


@dataclass
class LogSettings:
    """What ``GET /admin/log`` shows and ``PUT /admin/log`` changes (admin/management_api.md)."""

    level: str = "WARN"
    info_payload_max: int = DEFAULT_INFO_PAYLOAD_MAX
    line_max: int = DEFAULT_LINE_MAX
    deprecate: bool = False
    trace: frozenset[int] = frozenset()

    def render(self) -> dict[str, Any]:
        return {
            "infoPayloadMaxSize": self.info_payload_max, "level": self.level,
            "lineMaxSize": self.line_max, "deprecate": self.deprecate,
        }


def initial_level(configured: str) -> str:
    """The -logLevel given, in Orion's spelling (the server maps an unknown one to WARN too)."""
    level = configured.upper()
    return "WARN" if level == "WARNING" else level if level in LEVELS else "WARN"


def parse_level(text: str) -> str:
    """A ``level`` value: Orion's names, in any case."""
    level = text.upper()
    if level not in LEVELS:
        raise BadRequest(f"invalid log level, accepted values: {', '.join(LEVELS)}")
    return level


def _size(text: str, name: str, minimum: int) -> int:
    if not text.isdigit() or int(text) < minimum:
        raise BadRequest(f"invalid {name} value: an integer, {minimum} or more")
    return int(text)


def _flag(text: str) -> bool:
    if text not in ("true", "false"):
        raise BadRequest("invalid deprecate value: true or false")
    return text == "true"


def parse_trace(text: str) -> frozenset[int]:
    """``t1``, ``t1-t2``, ``t1-t2,t3-t4``... (admin/cli.md, ``-t``): the set of levels, 0 to 255."""
    levels: set[int] = set()
    for part in text.split(","):
        low, dash, high = part.partition("-")
        if not low.isdigit() or (dash and not high.isdigit()):
            raise BadRequest(f"invalid trace levels {text!r}: numbers from 0 to {TRACE_MAX}, ranges (t1-t2), "
                             "comma-separated")
        first, last = int(low), int(high) if dash else int(low)
        if last > TRACE_MAX or first > last:
            raise BadRequest(f"invalid trace levels {text!r}: numbers from 0 to {TRACE_MAX}, ranges (t1-t2), "
                             "comma-separated")
        levels.update(range(first, last + 1))
    return frozenset(levels)


def render_trace(levels: frozenset[int]) -> str:
    """The levels as ranges, ``180-199,220``; "empty" for none."""
    if not levels:
        return "empty"
    ranges: list[str] = []
    ordered = sorted(levels)
    start = previous = ordered[0]
    for level in [*ordered[1:], None]:
        if level is not None and level == previous + 1:
            previous = level
            continue
        ranges.append(str(start) if start == previous else f"{start}-{previous}")
        if level is not None:
            start = previous = level
    return ",".join(ranges)


# -- the administration state of one app ----------------------------------------------------------


class Admin:
    """Statistics, cache counters and log settings of one broker app (``app.state.admin``)."""

    def __init__(self, config: Any) -> None:
        self.stats = Statistics(
            counters=config.stat_counters,
            timing=config.stat_timing,
            notif_queue=config.stat_notif_queue and config.notification_mode.startswith("threadpool"),
        )
        self.cache = SubCache()
        self.log = LogSettings(level=initial_level(config.log_level), deprecate=config.log_deprecate)
        self._watching: list[Any] | None = None  # the entity listeners the deprecation watch is in

    def watch_deprecations(self, listeners: list[Any]) -> None:
        """Look at every entity write for deprecated features: counted with -statCounters,
        logged with ``deprecate``; called at start-up and when ``deprecate`` is turned on."""
        if self._watching is None and (self.stats.counters or self.log.deprecate):
            listeners.append(self.deprecations)
            self._watching = listeners

    async def deprecations(self, change: Change) -> None:
        """admin/logs.md, "Log deprecated usages": attributes typed ``geo:point``, ``geo:line``,
        ``geo:box`` or ``geo:polygon`` (the ``geoFormat`` counter, a WARN each with ``deprecate``)."""
        if change.action == DELETED or change.after is None:
            return
        attrs = change.after.get("attrs", {})
        for name in change.touched:
            kind = attrs.get(name, {}).get("type")
            if kind not in DEPRECATED_GEO_TYPES:
                continue
            self.stats.used("geoFormat")
            if self.log.deprecate:
                moment = "creation" if change.before is None else "update"
                log.warning("Deprecated usage of %s detected in attribute %s at entity %s, please use geo:json instead",
                            kind, name, moment)


# -- routes -------------------------------------------------------------------------------------


def _admin(call: Call) -> Admin:
    admin: Admin = call.state.admin
    return admin


def _empty() -> Reply:
    return Reply(200, [(b"content-length", b"0")])


async def get_statistics(call: Call) -> Reply:
    check_params(call)
    notifier = getattr(call.state, "notifier", None)
    stats = _admin(call).stats
    body = stats.render(
        full="fullCounters" in call.options,
        queue_size=notifier.outstanding if notifier is not None else 0,
        cors=bool(call.state.config.cors_origin),
    )
    return json_response(body)


def _resetter(counters: Callable[[Admin], Statistics | SubCache]) -> Handler:
    """The DELETE of /statistics or /cache/statistics: zeroes its own ``counters``, and both
    answer with the one message of the manual (``RESET``)."""

    async def reset(call: Call) -> Reply:
        check_params(call)
        counters(_admin(call)).reset()
        return json_response(RESET)

    return reset


reset_statistics = _resetter(lambda admin: admin.stats)
reset_cache_statistics = _resetter(lambda admin: admin.cache)


async def get_cache_statistics(call: Call) -> Reply:
    check_params(call)
    # The stored subscriptions are the registry's (it loads them all and follows every change).
    docs = await call.state.store.load_docs("subscription")
    return json_response(_admin(call).cache.render([doc["id"] for _, doc in docs]))


async def get_log(call: Call) -> Reply:
    check_params(call)
    return json_response(_admin(call).log.render())


async def put_log(call: Call) -> Reply:
    """``PUT /admin/log?level=...&infoPayloadMaxSize=...&lineMaxSize=...&deprecate=...``: all
    checked before any is applied; at least one must be given."""
    check_params(call)
    admin = _admin(call)
    settings = admin.log
    level, info, line, deprecate = (call.param(name) for name in ("level", "infoPayloadMaxSize", "lineMaxSize", "deprecate"))
    if level is None and info is None and line is None and deprecate is None:
        raise BadRequest("log config missing: give level, infoPayloadMaxSize, lineMaxSize or deprecate")
    new_level = parse_level(level) if level is not None else settings.level
    new_info = _size(info, "infoPayloadMaxSize", 0) if info is not None else settings.info_payload_max
    new_line = _size(line, "lineMaxSize", MIN_LINE_MAX) if line is not None else settings.line_max
    new_deprecate = _flag(deprecate) if deprecate is not None else settings.deprecate
    if level is not None:
        logging.getLogger().setLevel(LEVELS[new_level])  # what -logLevel sets (broker/server.py)
    settings.level, settings.info_payload_max, settings.line_max = new_level, new_info, new_line
    settings.deprecate = new_deprecate
    if new_deprecate:
        admin.watch_deprecations(call.state.entities.listeners)
    return _empty()


def _trace_answer(levels: frozenset[int]) -> Reply:
    return json_response({"tracelevels": render_trace(levels)})


async def get_trace(call: Call) -> Reply:
    check_params(call)
    return _trace_answer(_admin(call).log.trace)


async def delete_trace(call: Call) -> Reply:
    """``DELETE /log/trace``: every trace level off."""
    check_params(call)
    settings = _admin(call).log
    settings.trace = frozenset()
    return _trace_answer(settings.trace)


async def put_trace_levels(call: Call) -> Reply:
    """``PUT /log/trace/{levels}``: these levels replace the previous ones (admin/management_api.md)."""
    check_params(call)
    settings = _admin(call).log
    settings.trace = parse_trace(call.path_params["levels"])
    return _trace_answer(settings.trace)


async def delete_trace_levels(call: Call) -> Reply:
    check_params(call)
    settings = _admin(call).log
    settings.trace = settings.trace - parse_trace(call.path_params["levels"])
    return _trace_answer(settings.trace)


class PayloadOptional(Resource):
    """A resource whose PUT needs no payload: the manual's ``curl -X PUT .../admin/log?level=DEBUG``
    and ``.../log/trace/t1`` send none, and Orion's 411 check ("Zero/No Content-Length in
    PUT/POST/PATCH request") leaves these URLs out. A PUT that declares no body goes straight to
    its handler, after the checks ``Resource`` makes first (Accept, tenant, options)."""

    async def handle(
        self, scope: Any, receive: Any, headers: dict[str, str], ctx: Any, path_params: dict[str, str], state: Any,
    ) -> Any:
        handler = self.handlers.get(scope["method"])
        declared = headers.get("content-length", "0").strip()
        if scope["method"] != "PUT" or handler is None or declared != "0" or "transfer-encoding" in headers:
            return await super().handle(scope, receive, headers, ctx, path_params, state)
        check_accept(headers.get("accept"))
        ctx.checked_tenant()
        call = Call(scope, receive, headers, ctx, b"", path_params, state)
        if scope.get("query_string"):
            options = parse_options(call.query.get("options"))
            if options:
                call.ctx = ctx.with_options(options)
        return await handler(call)


STATISTICS = Resource("GET, DELETE", GET=get_statistics, DELETE=reset_statistics)
CACHE_STATISTICS = Resource("GET, DELETE", GET=get_cache_statistics, DELETE=reset_cache_statistics)
ADMIN_LOG = PayloadOptional("GET, PUT", GET=get_log, PUT=put_log)
LOG_TRACE = Resource("GET, DELETE", GET=get_trace, DELETE=delete_trace)
LOG_TRACE_LEVELS = PayloadOptional("PUT, DELETE", PUT=put_trace_levels, DELETE=delete_trace_levels)  # {levels}

# The fixed paths of this module, for the front end's table (broker/front.py FIXED).
FIXED: dict[str, Resource] = {
    "/statistics": STATISTICS,
    "/cache/statistics": CACHE_STATISTICS,
    "/admin/log": ADMIN_LOG,
    "/log/trace": LOG_TRACE,
}

# Every URL of the broker as the counters name it, with the resource serving it.
URLS: dict[str, Resource] = {
    "/version": version.VERSION,
    "/openapi.json": version.OPENAPI,
    "/v2": version.ENTRY_POINTS,
    "/v2/entities": entities.ENTITIES,
    "/v2/entities/{id}": entities.ENTITY,
    "/v2/entities/{id}/attrs": entities.ATTRS,
    "/v2/entities/{id}/attrs/{name}": entities.ATTR,
    "/v2/entities/{id}/attrs/{name}/value": entities.ATTR_VALUE,
    "/v2/types": types.TYPES,
    "/v2/types/{type}": types.TYPE,
    "/v2/subscriptions": subscriptions.SUBSCRIPTIONS,
    "/v2/subscriptions/{id}": subscriptions.SUBSCRIPTION,
    "/v2/registrations": registrations.REGISTRATIONS,
    "/v2/registrations/{id}": registrations.REGISTRATION,
    "/v2/op/query": batch.OP_QUERY,
    "/v2/op/update": batch.OP_UPDATE,
    "/v2/op/notify": notify.OP_NOTIFY,
    "/statistics": STATISTICS,
    "/cache/statistics": CACHE_STATISTICS,
    "/admin/log": ADMIN_LOG,
    "/log/trace": LOG_TRACE,
    "/log/trace/{level}": LOG_TRACE_LEVELS,
}
PATTERNS: dict[Resource, str] = {resource: pattern for pattern, resource in URLS.items()}
