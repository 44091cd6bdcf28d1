"""``memory://``: everything in this process, gone at exit (tests, throw-away runs)."""

from __future__ import annotations

import copy
from typing import Any

from .base import FiringRecord, RulesStore, StoredRule


class MemoryStore(RulesStore):
    def __init__(self, url: str = "memory://") -> None:
        self._rules: dict[tuple[str, str], StoredRule] = {}
        self._state: dict[str, Any] | None = None
        self._firings: list[FiringRecord] = []

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def rules(self) -> list[StoredRule]:
        return list(self._rules.values())

    async def put_rule(self, rule: StoredRule) -> None:
        self._rules[(rule.tenant, rule.name)] = rule

    async def delete_rule(self, tenant: str, name: str) -> None:
        self._rules.pop((tenant, name), None)
        self._firings = [f for f in self._firings if (f.tenant, f.rule) != (tenant, name)]

    async def load_state(self) -> dict[str, Any] | None:
        return copy.deepcopy(self._state)

    async def save_state(self, state: dict[str, Any]) -> None:
        self._state = copy.deepcopy(state)

    async def add_firings(self, records: list[FiringRecord]) -> None:
        self._firings.extend(records)

    async def firings(self, tenant: str, rule: str, since: float | None, until: float | None, limit: int,
                      offset: int) -> tuple[list[FiringRecord], int]:
        found = [f for f in self._firings if (f.tenant, f.rule) == (tenant, rule)
                 and (since is None or f.time >= since) and (until is None or f.time <= until)]
        found.sort(key=lambda f: f.time, reverse=True)
        return found[offset:offset + limit], len(found)

    async def prune_firings(self, keep: int) -> None:
        kept: list[FiringRecord] = []
        counts: dict[tuple[str, str], int] = {}
        for record in sorted(self._firings, key=lambda f: f.time, reverse=True):
            key = (record.tenant, record.rule)
            counts[key] = counts.get(key, 0) + 1
            if counts[key] <= keep:
                kept.append(record)
        self._firings = kept[::-1]
