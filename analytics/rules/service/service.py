"""The rules service's state and life: rules, the engine, subscriptions, the executor.

``RulesService`` is what the routes call; it owns no socket. Rule changes are written to
the store before they are answered (and made in the broker first: a subscription without
its rule is removed at the next check, a rule without its subscription gets one).
Notifications and ticks feed the engine, which is synchronous and runs on the event loop,
so a change is applied to every rule at once; the firings go to the executor's queue and
``/notices`` answers without waiting for any action.

Background tasks (``start``/``stop``): the tick (``-tickInterval``: no-signal checks and
state expiry), the snapshot of the engine's state (``-saveInterval``, and at stop), and the
subscription check (at start, then every ``-resubscribeInterval``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ngsi.client import NGSIClient, NGSIClientError, NGSIConnectionError
from ngsi.destinations import Gate

from ..engine import Engine, Firing
from ..model import Rule, RuleError, parse_rule
from .config import Config
from .errors import BadRequest, Conflict, NotFound
from .executor import Executor, Outcome
from .mailer import Mailer
from .notices import Notice
from .store import FiringRecord, RulesStore, StoredRule, StoreError
from .subscriptions import Subscriber

log = logging.getLogger("waziup.rules")

Key = tuple[str, str]  # (tenant, rule name)


class RulesService:
    def __init__(self, config: Config, store: RulesStore, broker: NGSIClient, web: NGSIClient, gate: Gate,
                 clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.store = store
        self.gate = gate
        self.clock = clock
        self.engine = Engine()
        self.rules: dict[Key, StoredRule] = {}
        self.by_subscription: dict[tuple[str, str], str] = {}  # (tenant, subscription id) -> rule name
        self.subscriber = Subscriber(broker, config.notices_url, config.notice_key.value)
        self.executor = Executor(broker, web, gate, Mailer(config), queue_size=config.queue_size,
                                 workers=config.workers, timeout=float(config.action_timeout),
                                 on_failure=self.engine_failed, on_done=self._record, clock=clock)
        self._lock = asyncio.Lock()  # rule changes and the subscription check, one at a time
        self._tasks: list[asyncio.Task[None]] = []

    # ------------------------------------------------------------------ life

    async def start(self) -> None:
        """Rules from the store, the engine's last snapshot, then the background tasks."""
        stored = await self.store.rules()
        self.rules = {(r.tenant, r.name): r for r in stored}
        self._index()
        snapshot = await self.store.load_state()
        if snapshot is not None:
            try:
                self.engine.load_state(snapshot)
            except (ValueError, KeyError, TypeError) as exc:
                log.error("engine state not restored (starting empty): %s", exc)
                self.engine = Engine()
        self._align_engine(snapshot)
        self.executor.start()
        self._tasks = [
            asyncio.create_task(self._every(self.config.tick_interval / 1000.0, self.tick), name="rules-tick"),
            asyncio.create_task(self._every(float(self.config.save_interval), self.save), name="rules-save"),
            asyncio.create_task(self._every(float(self.config.resubscribe_interval), self.check_subscriptions,
                                            first=True), name="rules-subscriptions"),
        ]
        log.info("rules service started rules=%d restored_state=%s notify=%s", len(self.rules),
                 snapshot is not None, self.config.notices_url)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.executor.stop()
        await self.save()
        with contextlib.suppress(StoreError):
            await self.store.prune_firings(self.config.firings_kept)

    async def _every(self, seconds: float, work: Callable[[], Awaitable[None]], first: bool = False) -> None:
        if not first:
            await asyncio.sleep(seconds)
        while True:
            try:
                await work()
            except Exception:
                log.exception("background task failed: %s", getattr(work, "__name__", work))
            await asyncio.sleep(seconds)

    def _index(self) -> None:
        self.by_subscription = {(r.tenant, r.subscription): r.name for r in self.rules.values() if r.subscription}

    def _align_engine(self, snapshot: dict[str, Any] | None) -> None:
        """The store's rules are the truth: the snapshot may predate the last changes."""
        enabled = {k: r for k, r in self.rules.items() if r.enabled}
        in_engine = {(item["tenant"], item["rule"]["name"]) for item in (snapshot or {}).get("rules", [])}
        for tenant, name in in_engine - set(enabled):
            self.engine.delete_rule(tenant, name)
        for (tenant, name), stored in enabled.items():
            current = self.engine.get_rule(tenant, name)
            if current is None or current.to_dict() != stored.doc:
                try:
                    self.engine.put_rule(tenant, parse_rule(stored.doc))
                except RuleError as exc:  # a rule stored by an older, laxer version
                    log.error("stored rule not loaded tenant=%s rule=%s error=%s", tenant or "-", name, exc)

    async def save(self) -> None:
        await self.store.save_state(self.engine.state())
        await self.store.prune_firings(self.config.firings_kept)

    # ------------------------------------------------------------------ events

    async def tick(self) -> None:
        for firing in self.engine.tick(self.clock()):
            self.executor.submit(firing)

    def notice(self, tenant: str, notice: Notice) -> int:
        """Feed a notification to the rule whose subscription sent it; the firings queued.

        A notification from a subscription no rule owns (another client's, or one left by
        a crash) is acknowledged and ignored: each rule sees the changes its own
        subscription notifies, once."""
        name = self.by_subscription.get((tenant, notice.subscription))
        if name is None:
            log.info("notification ignored tenant=%s subscription=%s: no rule owns it", tenant or "-",
                     notice.subscription or "-")
            return 0
        only = (name,)
        now = self.clock()
        fired = 0
        for change in notice.changes:
            entity = change.entity
            if change.deleted:
                firings = self.engine.on_delete(tenant, change.service_path, str(entity.get("type", "")),
                                                str(entity["id"]), now, only)
            else:
                firings = self.engine.on_change(tenant, change.service_path, entity, now, only)
            for firing in firings:
                fired += self.executor.submit(firing)
        return fired

    def engine_failed(self, firing: Firing, index: int) -> None:
        self.engine.action_failed(firing, index)

    async def _record(self, firing: Firing, at: float, outcomes: list[Outcome]) -> None:
        if (firing.tenant, firing.rule) not in self.rules:
            return  # deleted meanwhile: its history went with it
        at = round(at * 1000) / 1000  # as answered (ISO 8601, milliseconds): fromDate/toDate compare the same
        await self.store.add_firings([FiringRecord(firing.tenant, firing.rule, at, firing.to_dict(), outcomes)])

    # ------------------------------------------------------------------ rules

    def get(self, tenant: str, name: str) -> StoredRule:
        rule = self.rules.get((tenant, name))
        if rule is None:
            raise NotFound(f"rule {name!r} not found")
        return rule

    def of_tenant(self, tenant: str) -> list[StoredRule]:
        return [r for (t, _), r in self.rules.items() if t == tenant]

    async def _checked(self, doc: Any) -> Rule:
        """The parsed rule; BadRequest for a bad document or a post URL the policy refuses."""
        try:
            rule = parse_rule(doc)
        except RuleError as exc:
            raise BadRequest(str(exc)) from None
        for index, action in enumerate(rule.actions):
            url = action.parameters.get("url") if action.type == "post" else None
            if isinstance(url, str) and "${" not in url:
                decision = await self.gate.check_created(url)
                if not decision.allowed:
                    where = "action" if len(rule.actions) == 1 and isinstance(doc.get("action"), dict) \
                        else f"action/{index}"
                    raise BadRequest(f"{where}/parameters/url: {decision.reason}")
        return rule

    async def _subscribe(self, tenant: str, rule: Rule, active: bool) -> str | None:
        """A subscription for the rule; None when the broker cannot be reached (the check
        makes it later); BadRequest when the broker refuses it."""
        try:
            return await self.subscriber.create(tenant, rule, active)
        except NGSIConnectionError as exc:
            log.warning("no subscription yet tenant=%s rule=%s error=%s", tenant or "-", rule.name, exc)
            return None
        except NGSIClientError as exc:
            if exc.status >= 500:
                log.warning("no subscription yet tenant=%s rule=%s error=%s", tenant or "-", rule.name, exc)
                return None
            raise BadRequest(f"the broker refused the rule's subscription: {exc.description or exc.error}") from None

    async def _unsubscribe(self, tenant: str, sub_id: str | None) -> None:
        if sub_id is None:
            return
        try:
            await self.subscriber.delete(tenant, sub_id)
        except NGSIClientError as exc:  # the subscription check removes it later
            log.warning("subscription not deleted tenant=%s subscription=%s error=%s", tenant or "-", sub_id, exc)

    async def _commit(self, stored: StoredRule, rule: Rule | None) -> None:
        """Make the rule live (or not, when disabled), then write it: live first, so that
        no notification of its new subscription finds it missing; a write that fails
        undoes both, and the new subscription."""
        key = (stored.tenant, stored.name)
        old = self.rules.get(key)
        self._install(stored, rule)
        try:
            await self.store.put_rule(stored)
        except StoreError:
            if old is None:
                self._uninstall(stored)
            else:
                self._install(old, parse_rule(old.doc) if old.enabled else None)
            if stored.subscription != (old.subscription if old else None):
                await self._unsubscribe(stored.tenant, stored.subscription)
            raise

    def _install(self, stored: StoredRule, rule: Rule | None) -> None:
        key = (stored.tenant, stored.name)
        old = self.rules.get(key)
        if old is not None and old.subscription:
            self.by_subscription.pop((old.tenant, old.subscription), None)
        self.rules[key] = stored
        if stored.subscription:
            self.by_subscription[(stored.tenant, stored.subscription)] = stored.name
        if stored.enabled and rule is not None:
            self.engine.put_rule(stored.tenant, rule)
        else:
            self.engine.delete_rule(stored.tenant, stored.name)

    def _uninstall(self, stored: StoredRule) -> None:
        self.rules.pop((stored.tenant, stored.name), None)
        if stored.subscription:
            self.by_subscription.pop((stored.tenant, stored.subscription), None)
        self.engine.delete_rule(stored.tenant, stored.name)

    async def create(self, tenant: str, doc: Any) -> StoredRule:
        rule = await self._checked(doc)
        async with self._lock:
            if (tenant, rule.name) in self.rules:
                raise Conflict(f"rule {rule.name!r} exists")
            now = self.clock()
            sub_id = await self._subscribe(tenant, rule, True)
            stored = StoredRule(tenant, rule.name, rule.to_dict(), True, sub_id, now, now)
            await self._commit(stored, rule)
        log.info("rule created tenant=%s rule=%s kind=%s subscription=%s", tenant or "-", rule.name, rule.kind,
                 sub_id or "pending")
        return stored

    async def replace(self, tenant: str, name: str, doc: Any) -> StoredRule:
        """PUT: a new document for an existing rule (its state starts empty, as in the
        engine); a new subscription, the old one removed."""
        if isinstance(doc, dict) and "name" not in doc:
            doc = {"name": name, **doc}
        if isinstance(doc, dict) and doc.get("name") != name:
            raise BadRequest(f"name: the document names {doc.get('name')!r}, the URL {name!r}")
        rule = await self._checked(doc)
        async with self._lock:
            old = self.get(tenant, name)
            sub_id = await self._subscribe(tenant, rule, old.enabled)
            stored = StoredRule(tenant, name, rule.to_dict(), old.enabled, sub_id, old.created, self.clock())
            await self._commit(stored, rule)
            await self._unsubscribe(tenant, old.subscription)
        log.info("rule replaced tenant=%s rule=%s subscription=%s", tenant or "-", name, sub_id or "pending")
        return stored

    async def delete(self, tenant: str, name: str) -> None:
        async with self._lock:
            old = self.get(tenant, name)
            await self.store.delete_rule(tenant, name)
            self._uninstall(old)
            await self._unsubscribe(tenant, old.subscription)
        log.info("rule deleted tenant=%s rule=%s", tenant or "-", name)

    async def set_enabled(self, tenant: str, name: str, enabled: bool) -> StoredRule:
        """Disabled: out of the engine (its state dropped), its subscription inactive."""
        async with self._lock:
            old = self.get(tenant, name)
            if old.enabled == enabled:
                return old
            stored = StoredRule(tenant, name, old.doc, enabled, old.subscription, old.created, self.clock())
            await self._commit(stored, parse_rule(old.doc) if enabled else None)
            if old.subscription:
                try:
                    await self.subscriber.set_active(tenant, old.subscription, enabled)
                except NGSIClientError as exc:
                    log.warning("subscription status not set tenant=%s rule=%s error=%s", tenant or "-", name, exc)
        log.info("rule %s tenant=%s rule=%s", "enabled" if enabled else "disabled", tenant or "-", name)
        return stored

    async def firings(self, tenant: str, name: str, since: float | None, until: float | None, limit: int,
                      offset: int) -> tuple[list[FiringRecord], int]:
        self.get(tenant, name)
        return await self.store.firings(tenant, name, since, until, limit, offset)

    # ------------------------------------------------------------------ subscriptions

    async def check_subscriptions(self) -> None:
        """Every rule has its subscription in the broker, with the right status; this
        service's subscriptions no rule references are removed. Tenant by tenant: one
        broker that cannot be reached leaves the rest for the next check."""
        tenants = sorted({tenant for tenant, _ in self.rules})
        for tenant in tenants:
            async with self._lock:
                try:
                    await self._check_tenant(tenant)
                except NGSIClientError as exc:
                    log.warning("subscriptions not checked tenant=%s error=%s", tenant or "-", exc)
                    return

    async def _check_tenant(self, tenant: str) -> None:
        owned = await self.subscriber.owned(tenant)
        referenced: set[str] = set()
        for stored in self.of_tenant(tenant):
            sub = owned.get(stored.subscription or "")
            if sub is not None and not self.subscriber.current(tenant, sub):
                sub = None  # made with another notice key: made again, the old one removed below
            if sub is None:
                rule = parse_rule(stored.doc)
                sub_id = await self.subscriber.create(tenant, rule, stored.enabled)
                fresh = StoredRule(tenant, stored.name, stored.doc, stored.enabled, sub_id, stored.created,
                                   stored.modified)
                await self._rebind(fresh)
                referenced.add(sub_id)
                log.info("subscription restored tenant=%s rule=%s subscription=%s", tenant or "-", stored.name, sub_id)
                continue
            referenced.add(sub["id"])
            if (sub.get("status") != "inactive") != stored.enabled:
                await self.subscriber.set_active(tenant, sub["id"], stored.enabled)
        for sub_id in set(owned) - referenced:
            await self.subscriber.delete(tenant, sub_id)
            log.info("orphan subscription removed tenant=%s subscription=%s", tenant or "-", sub_id)

    async def _rebind(self, stored: StoredRule) -> None:
        """A rule's new subscription, written; its engine state is kept."""
        await self.store.put_rule(stored)
        old = self.rules.get((stored.tenant, stored.name))
        if old is not None and old.subscription:
            self.by_subscription.pop((stored.tenant, old.subscription), None)
        self.rules[(stored.tenant, stored.name)] = stored
        if stored.subscription:
            self.by_subscription[(stored.tenant, stored.subscription)] = stored.name
