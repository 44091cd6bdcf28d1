"""The rules service's store: one small async contract, backends chosen by URL.

What is kept, and how safely:

* rules (``StoredRule``: tenant, name, document, enabled, the broker subscription made for
  it) are written before the API answers: an acknowledged rule is never lost;
* the engine's state (``Engine.state()``: windows, no-signal watches, throttles, anomaly
  baselines, derived members) is one JSON snapshot, replaced every ``-saveInterval``
  seconds and at shutdown: a kill loses at most that interval of state, never a rule;
* firings (``FiringRecord``) with each action's outcome, the most recent ``-firingsKept``
  per rule.

Driver errors are mapped to ``StoreError`` at each backend's boundary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ngsi.dates import format_datetime


class StoreError(Exception):
    """The store failed (a driver error, translated where it enters)."""


@dataclass(frozen=True)
class StoredRule:
    tenant: str
    name: str
    doc: dict[str, Any]
    enabled: bool = True
    subscription: str | None = None  # the broker subscription notifying this rule
    created: float = 0.0
    modified: float = 0.0


@dataclass(frozen=True)
class FiringRecord:
    """One firing and what became of its actions (``outcomes``: one per action, in order:
    ``{"type", "ok", "error"?}``)."""

    tenant: str
    rule: str
    time: float
    firing: dict[str, Any]
    outcomes: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        actions = [dict(action, outcome=outcome) for action, outcome in
                   zip(self.firing.get("actions", []), self.outcomes + [{}] * len(self.firing.get("actions", [])))]
        return {"time": format_datetime(self.time), "reason": self.firing.get("reason"),
                "servicePath": self.firing.get("servicePath"), "entity": self.firing.get("entity"),
                "values": self.firing.get("values", {}), "actions": actions}


class RulesStore:
    """The contract; every method may raise ``StoreError``."""

    async def open(self) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    async def rules(self) -> list[StoredRule]:
        """Every rule of every tenant."""
        raise NotImplementedError

    async def put_rule(self, rule: StoredRule) -> None:
        """Insert or replace (tenant, name)."""
        raise NotImplementedError

    async def delete_rule(self, tenant: str, name: str) -> None:
        """The rule and its firings."""
        raise NotImplementedError

    async def load_state(self) -> dict[str, Any] | None:
        raise NotImplementedError

    async def save_state(self, state: dict[str, Any]) -> None:
        raise NotImplementedError

    async def add_firings(self, records: list[FiringRecord]) -> None:
        raise NotImplementedError

    async def firings(self, tenant: str, rule: str, since: float | None, until: float | None, limit: int,
                      offset: int) -> tuple[list[FiringRecord], int]:
        """A rule's firings in [since, until], most recent first, and how many there are."""
        raise NotImplementedError

    async def prune_firings(self, keep: int) -> None:
        """Keep the ``keep`` most recent firings of each rule."""
        raise NotImplementedError
