"""Retention and the roll-up pass: raw values older than N days removed, per tenant and
entity type; hourly roll-ups older than ``-hourlyRetentionDays`` removed; the daily
roll-ups and the last values stay (aggregates by day and coarser keep working over the
whole history).

Rules are ``[TENANT][/TYPE]=DAYS`` (``-retention``, repeatable): ``smartcity/Room=30``,
``smartcity=90`` (every type of a tenant), ``*/Room=7`` (a type in every tenant),
``/Room=7`` (the default tenant's rooms); 0 days keeps forever. The most specific rule
wins (tenant and type, then tenant, then type), else ``-retentionDays`` (0: keep).

A tenant's administrators may keep rules of their own in the store (``GET``/``PUT
/v2/retention``: ``{"rules": [{"entityType": "Room" | "*", "days": 30}]}``), read at
every pass: for that tenant, its stored rule for the type, else its stored ``*`` rule,
wins over every flag rule; types it has no stored rule for follow the flags.

Hourly roll-ups must outlive raw values (:meth:`Policy.problem`): an hour aggregate over
raw values whose hourly rows went first would miss them, and a DELETE could no longer sum
a partly deleted day again. They go by whole UTC days, so that a day's hourly rows are
all there or all gone.

Every pass first moves the roll-up mark to today (``store.roll_up``): the days that closed
since the last pass are summed into ``daily`` before any of their hourly rows can go. It
runs with or without retention, so day and coarser aggregates read daily rows anyway.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

from ngsi.names import MAX_NAME_LENGTH, forbidden_id_chars

from .instants import DAY, floor
from .store.base import HistoryStore

log = logging.getLogger("waziup.history.retention")

ANY = "*"
MAX_DAYS = 100 * 366
MAX_STORED = 1000  # rules one tenant may store


@dataclass(frozen=True, slots=True)
class Rule:
    tenant: str  # ANY for every tenant
    entity_type: str  # ANY for every type
    days: int


def parse_rule(text: str) -> Rule:
    """``[TENANT][/TYPE]=DAYS``; ValueError names what is wrong."""
    scope, eq, days_text = text.partition("=")
    days_text = days_text.strip()
    if not eq or not days_text.isascii() or not days_text.isdigit() or len(days_text) > 6:
        raise ValueError(f"{text!r} is not TENANT/TYPE=DAYS")
    days = int(days_text)
    if days > MAX_DAYS:
        raise ValueError(f"{text!r}: at most {MAX_DAYS} days")
    tenant, slash, entity_type = scope.strip().partition("/")
    return Rule(tenant.lower() if tenant != ANY else ANY, entity_type if slash and entity_type else ANY, days)


@dataclass(frozen=True, slots=True)
class Policy:
    default_days: int = 0
    rules: tuple[Rule, ...] = ()
    hourly_days: int = 0  # days hourly roll-ups are kept (0: for ever)
    stored: tuple[Rule, ...] = ()  # the tenants' own rules (PUT /v2/retention), from the store

    @classmethod
    def of(cls, default_days: int, rules: Iterable[str], hourly_days: int = 0) -> Policy:
        return cls(default_days, tuple(parse_rule(r) for r in rules), hourly_days)

    def with_stored(self, rules: Iterable[Rule]) -> Policy:
        """This policy with the tenants' stored rules (they win over the flags)."""
        return replace(self, stored=tuple(rules))

    @property
    def active(self) -> bool:
        return (self.default_days > 0 or any(r.days > 0 for r in self.rules + self.stored)
                or self.hourly_days > 0)

    def problem(self) -> str | None:
        """Why the policy cannot be applied (a raw retention longer than the hourly one), or None."""
        raw = [("-retentionDays", self.default_days)] + [
            (f"-retention {'*' if r.tenant == ANY else r.tenant}{'' if r.entity_type == ANY else '/' + r.entity_type}",
             r.days) for r in self.rules]
        longest = self._longer(raw)
        if longest is None:
            return None
        name, days = longest
        return (f"-hourlyRetentionDays {self.hourly_days} is shorter than the raw retention of {name} ({days} days): "
                "hourly roll-ups must be kept at least as long as raw values")

    def stored_problem(self, rules: Iterable[Rule]) -> str | None:
        """Why a tenant's rules cannot be stored (the same check as :meth:`problem`), or None."""
        longest = self._longer([(f"entityType {r.entity_type!r}", r.days) for r in rules])
        if longest is None:
            return None
        name, days = longest
        return (f"{name}: {days} days of raw values is longer than the {self.hourly_days} days hourly roll-ups "
                "are kept (-hourlyRetentionDays): hourly roll-ups must be kept at least as long as raw values")

    def _longer(self, raw: list[tuple[str, int]]) -> tuple[str, int] | None:
        """The longest raw retention past the hourly one (None: none, or hourly rows kept for ever)."""
        if self.hourly_days <= 0:
            return None
        longer = [(name, days) for name, days in raw if days > self.hourly_days]
        return max(longer, key=lambda item: item[1]) if longer else None

    def days(self, tenant: str, entity_type: str) -> int:
        """Days of raw values kept for a tenant's entities of a type (0: all)."""
        own = self._stored_days(tenant, entity_type)
        if own is not None:
            return own
        best: tuple[int, int] | None = None  # (specificity, days)
        for rule in self.rules:
            if rule.tenant not in (ANY, tenant) or rule.entity_type not in (ANY, entity_type):
                continue
            specificity = 2 * (rule.tenant != ANY) + (rule.entity_type != ANY)
            if best is None or specificity > best[0]:
                best = (specificity, rule.days)
        return self.default_days if best is None else best[1]

    def _stored_days(self, tenant: str, entity_type: str) -> int | None:
        """The tenant's stored rule for the type, else its ``*`` rule, else None."""
        found = None
        for rule in self.stored:
            if rule.tenant != tenant:
                continue
            if rule.entity_type == entity_type:
                return rule.days
            if rule.entity_type == ANY:
                found = rule.days
        return found

    def flag_rules(self, tenant: str) -> list[Rule]:
        """The flag rules that apply to a tenant (its own and those of every tenant)."""
        return [r for r in self.rules if r.tenant in (ANY, tenant)]


def parse_stored(tenant: str, data: Any) -> tuple[Rule, ...]:
    """A tenant's rules from a ``PUT /v2/retention`` body (``{"rules": [{"entityType",
    "days"}]}``); ValueError names what is wrong."""
    if not isinstance(data, dict) or set(data) != {"rules"}:
        raise ValueError('the body must be {"rules": [{"entityType": TYPE or "*", "days": DAYS}, ...]}')
    items = data["rules"]
    if not isinstance(items, list):
        raise ValueError("rules must be a list")
    if len(items) > MAX_STORED:
        raise ValueError(f"at most {MAX_STORED} rules")
    rules = tuple(_stored_rule(tenant, i, item) for i, item in enumerate(items))
    types = [r.entity_type for r in rules]
    if len(set(types)) != len(types):
        raise ValueError("an entityType is given more than once")
    return rules


def _stored_rule(tenant: str, position: int, item: Any) -> Rule:
    where = f"rules[{position}]"
    if not isinstance(item, dict) or set(item) != {"entityType", "days"}:
        raise ValueError(f'{where} must be {{"entityType": TYPE or "*", "days": DAYS}}')
    entity_type, days = item["entityType"], item["days"]
    if not isinstance(entity_type, str) or not entity_type or len(entity_type.encode()) > MAX_NAME_LENGTH \
            or (entity_type != ANY and forbidden_id_chars(entity_type)):
        raise ValueError(f"{where}.entityType must be an entity type or \"*\"")
    if not isinstance(days, int) or isinstance(days, bool) or not 0 <= days <= MAX_DAYS:
        raise ValueError(f"{where}.days must be an integer from 0 to {MAX_DAYS}")
    return Rule(tenant, entity_type, days)


def described(policy: Policy, tenant: str, stored: Iterable[Rule]) -> dict[str, Any]:
    """``GET /v2/retention``: the tenant's rules, and the flags' that apply to it."""
    return {
        "rules": [{"entityType": r.entity_type, "days": r.days} for r in stored],
        "defaults": [{"tenant": r.tenant, "entityType": r.entity_type, "days": r.days}
                     for r in policy.flag_rules(tenant)],
        "defaultDays": policy.default_days,
        "hourlyRetentionDays": policy.hourly_days,
    }


class Swept(NamedTuple):
    """What one pass did."""

    days: int  # daily rows written by the roll-up
    points: int  # raw values deleted
    hours: int  # hourly rows deleted


def _usable(policy: Policy, stored: list[Rule]) -> list[Rule]:
    """The stored rules the hourly retention allows: one stored before ``-hourlyRetentionDays``
    was lowered is ignored (its tenant's type follows the flags), and logged."""
    usable = []
    for rule in stored:
        problem = policy.stored_problem([rule])
        if problem is None:
            usable.append(rule)
        else:
            log.warning("stored retention rule ignored tenant=%s %s", rule.tenant or "-", problem)
    return usable


async def apply(store: HistoryStore, policy: Policy, now_ms: int) -> Swept:
    """One pass: the days closed before ``now_ms`` rolled up, then the raw values and
    hourly roll-ups past their retention deleted (the tenants' stored rules read anew,
    so that a PUT takes effect at the next pass)."""
    days = await store.roll_up(floor(now_ms, DAY))
    policy = policy.with_stored(_usable(policy, [Rule(*row) for row in await store.retention_rules()]))
    if not policy.active:
        return Swept(days, 0, 0)
    every = await store.all_series()
    by_cutoff: dict[int, list[int]] = {}
    kept_for = functools.cache(policy.days)  # one lookup per (tenant, type), not per series
    for series in every:
        kept = kept_for(series.tenant, series.entity_type)
        if kept > 0:
            by_cutoff.setdefault(now_ms - kept * DAY, []).append(series.id)
    points = 0
    for cutoff, ids in by_cutoff.items():
        points += await store.purge(ids, cutoff)
    hours = 0
    if policy.hourly_days > 0 and every:
        hours = await store.purge_hourly([s.id for s in every], floor(now_ms - policy.hourly_days * DAY, DAY))
    return Swept(days, points, hours)


async def run(store: HistoryStore, policy: Policy, interval: float,
              clock: Callable[[], float] = time.time) -> None:
    """Apply the policy now and every ``interval`` seconds, until cancelled; ``clock`` is
    the app's (seconds since the epoch)."""
    while True:
        started = time.monotonic()
        try:
            swept = await apply(store, policy, int(clock() * 1000))
            log.info("retention pass rolled_up=%d deleted=%d hourly_deleted=%d ms=%.0f", swept.days, swept.points,
                     swept.hours, (time.monotonic() - started) * 1000)
        except Exception:  # a failed pass is retried at the next one; the service goes on
            log.exception("retention pass failed")
        await asyncio.sleep(interval)
