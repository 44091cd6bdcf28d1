"""Throttling: Perseo's action ``interval`` (plain_rules.md, "Actions"), and ours per rule.

Perseo: "An action can optionally have a field interval for limiting the frequency of
the action execution (for the rule and entity which fired it). The value is expressed in
milliseconds and is the minimum period between executions." The key decides the scope:
(tenant, rule, entity, action index) for an action's ``interval``, (tenant, rule) for a
rule's. Perseo counts only successful executions; this pure core cannot know about
success, so it counts an execution when it hands the action out, and the service calls
``release`` when the action failed.

A clock that steps back (``now`` before the recorded time) is not held against the
next firing, so a corrected clock never blocks a rule for the size of the correction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

Key = tuple[str, ...]


@dataclass
class Throttle:
    """Last execution per key: ``(when, interval)``, both in seconds."""

    last: dict[Key, tuple[float, float]] = field(default_factory=dict)

    def blocked(self, key: Key, now: float) -> bool:
        entry = self.last.get(key)
        return entry is not None and 0 <= now - entry[0] < entry[1]

    def record(self, key: Key, now: float, interval_ms: float | None) -> None:
        if interval_ms:
            self.last[key] = (now, interval_ms / 1000.0)

    def allow(self, key: Key, now: float, interval_ms: float | None) -> bool:
        """May ``key`` run at ``now``? If so it counts as run (no interval: always)."""
        if not interval_ms:
            return True
        if self.blocked(key, now):
            return False
        self.record(key, now, interval_ms)
        return True

    def release(self, key: Key) -> None:
        """Forget an execution that failed, so that the next firing is not held back."""
        self.last.pop(key, None)

    def prune(self, now: float) -> None:
        """Drop entries whose interval is over: they no longer hold anything back."""
        for key in [k for k, (at, seconds) in self.last.items() if now - at >= seconds]:
            del self.last[key]

    def to_dict(self) -> dict[str, Any]:
        return {"last": [{"key": list(k), "at": at, "seconds": sec} for k, (at, sec) in self.last.items()]}

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> Throttle:
        return cls({tuple(str(p) for p in e["key"]): (float(e["at"]), float(e["seconds"])) for e in doc.get("last", [])})
