"""The PEP's memory of answers: bounded, expiring, and forgotten when policies change (pure).

Each entry keeps a value until a wall-clock time (a token's ``exp``, or ``cache_time``
after it was learnt, whichever is first) and, when it depends on roles and permissions,
the *epoch* it was learnt in: the PEP's count of policy-version changes
(``freshness.Freshness``). A lookup with another epoch misses, so a change of the identity
manager's policy version forgets every such entry at once, with no sweep. An entry
learnt with ``epoch=None`` (a JWT's claims, which no role change alters) ignores epochs.

At most ``max_entries`` are kept; the least recently used go first (a flood of distinct
tokens evicts old entries instead of growing memory).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class Cache(Generic[V]):
    __slots__ = ("_entries", "max_entries")

    def __init__(self, max_entries: int = 100_000) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_entries = max_entries
        self._entries: OrderedDict[Hashable, tuple[V, float, int | None]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable, now: float, epoch: int) -> V | None:
        """The value kept for ``key``, if it is not past its time and was learnt in
        ``epoch`` (or ignores epochs)."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        value, until, learnt = entry
        if now >= until or (learnt is not None and learnt != epoch):
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return value

    def put(self, key: Hashable, value: V, until: float, epoch: int | None) -> None:
        """Keep ``value`` until ``until`` (wall-clock seconds), for ``epoch`` (None: any)."""
        entries = self._entries
        entries[key] = (value, until, epoch)
        entries.move_to_end(key)
        while len(entries) > self.max_entries:
            entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()
