"""Retention: raw values older than N days removed, per tenant and entity type; the
hourly roll-ups and the last values stay (aggregates by hour and coarser keep working
over the whole history).

Rules are ``[TENANT][/TYPE]=DAYS`` (``-retention``, repeatable): ``smartcity/Room=30``,
``smartcity=90`` (every type of a tenant), ``*/Room=7`` (a type in every tenant),
``/Room=7`` (the default tenant's rooms); 0 days keeps forever. The most specific rule
wins (tenant and type, then tenant, then type), else ``-retentionDays`` (0: keep).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass

from .instants import DAY
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

    @classmethod
    def of(cls, default_days: int, rules: Iterable[str]) -> Policy:
        return cls(default_days, tuple(parse_rule(r) for r in rules))

    @property
    def active(self) -> bool:
        return self.default_days > 0 or any(r.days > 0 for r in self.rules)

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


async def apply(store: HistoryStore, policy: Policy, now_ms: int) -> int:
    """One pass: the raw values past their retention deleted. The count."""
    by_cutoff: dict[int, list[int]] = {}
    for series in await store.all_series():
        days = policy.days(series.tenant, series.entity_type)
        if days > 0:
            by_cutoff.setdefault(now_ms - days * DAY, []).append(series.id)
    deleted = 0
    for cutoff, ids in by_cutoff.items():
        deleted += await store.purge(ids, cutoff)
    return deleted


async def run(store: HistoryStore, policy: Policy, interval: float) -> None:
    """Apply the policy now and every ``interval`` seconds, until cancelled."""
    while True:
        started = time.monotonic()
        try:
            deleted = await apply(store, policy, int(time.time() * 1000))
            log.info("retention pass deleted=%d ms=%.0f", deleted, (time.monotonic() - started) * 1000)
        except Exception:  # a failed pass is retried at the next one; the service goes on
            log.exception("retention pass failed")
        await asyncio.sleep(interval)
