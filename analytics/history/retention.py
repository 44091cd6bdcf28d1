"""Retention and the roll-up pass: raw values older than N days removed, per tenant and
entity type; hourly roll-ups older than ``-hourlyRetentionDays`` removed; the daily
roll-ups and the last values stay (aggregates by day and coarser keep working over the
whole history).

Rules are ``[TENANT][/TYPE]=DAYS`` (``-retention``, repeatable): ``smartcity/Room=30``,
``smartcity=90`` (every type of a tenant), ``*/Room=7`` (a type in every tenant),
``/Room=7`` (the default tenant's rooms); 0 days keeps forever. The most specific rule
wins (tenant and type, then tenant, then type), else ``-retentionDays`` (0: keep).

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
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import NamedTuple

from .instants import DAY, floor
from .store.base import HistoryStore

log = logging.getLogger("waziup.history.retention")

ANY = "*"
MAX_DAYS = 100 * 366


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

    @classmethod
    def of(cls, default_days: int, rules: Iterable[str], hourly_days: int = 0) -> Policy:
        return cls(default_days, tuple(parse_rule(r) for r in rules), hourly_days)

    @property
    def active(self) -> bool:
        return self.default_days > 0 or any(r.days > 0 for r in self.rules) or self.hourly_days > 0

    def problem(self) -> str | None:
        """Why the policy cannot be applied (a raw retention longer than the hourly one), or None."""
        if self.hourly_days <= 0:
            return None
        raw = [("-retentionDays", self.default_days)] + [
            (f"-retention {'*' if r.tenant == ANY else r.tenant}{'' if r.entity_type == ANY else '/' + r.entity_type}",
             r.days) for r in self.rules]
        longer = [(name, days) for name, days in raw if days > self.hourly_days]
        if not longer:
            return None
        name, days = max(longer, key=lambda item: item[1])
        return (f"-hourlyRetentionDays {self.hourly_days} is shorter than the raw retention of {name} ({days} days): "
                "hourly roll-ups must be kept at least as long as raw values")

    def days(self, tenant: str, entity_type: str) -> int:
        """Days of raw values kept for a tenant's entities of a type (0: all)."""
        best: tuple[int, int] | None = None  # (specificity, days)
        for rule in self.rules:
            if rule.tenant not in (ANY, tenant) or rule.entity_type not in (ANY, entity_type):
                continue
            specificity = 2 * (rule.tenant != ANY) + (rule.entity_type != ANY)
            if best is None or specificity > best[0]:
                best = (specificity, rule.days)
        return self.default_days if best is None else best[1]


class Swept(NamedTuple):
    """What one pass did."""

    days: int  # daily rows written by the roll-up
    points: int  # raw values deleted
    hours: int  # hourly rows deleted


async def apply(store: HistoryStore, policy: Policy, now_ms: int) -> Swept:
    """One pass: the days closed before ``now_ms`` rolled up, then the raw values and
    hourly roll-ups past their retention deleted."""
    days = await store.roll_up(floor(now_ms, DAY))
    if not policy.active:
        return Swept(days, 0, 0)
    every = await store.all_series()
    by_cutoff: dict[int, list[int]] = {}
    for series in every:
        kept = policy.days(series.tenant, series.entity_type)
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
