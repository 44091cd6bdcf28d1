"""Failed logins, counted per account and per client address: too many and the login is locked.

Pure: the time is passed in (``now``), so windows and expiries are tested without a
clock. A key (an account id, or an address) collects its failures; ``limit`` failures
within ``window`` seconds lock it for ``duration`` seconds. While locked, a login is
answered "locked" whatever the password (and the password is not even checked, so
guessing goes no further), and failures are not counted.

Two counters with different limits, because they stop different attacks: the per
account one stops guessing one account's password from many addresses; the per
address one stops one address trying a few passwords on many accounts (password
spraying). A success clears the account's count, not the address's: otherwise an
attacker with one valid account could clear its address's count between guesses.

Memory is bounded: at most ``max_keys`` keys (least recently touched forgotten first),
so a flood of distinct names or addresses cannot grow it; keys whose failures all
left the window are dropped when touched. The state is per process and is lost on a
restart (a restart ends every lock).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field


@dataclass
class _Entry:
    failures: list[float] = field(default_factory=list)
    locked_until: float = 0.0


@dataclass
class Lockout:
    limit: int = 5
    window: float = 300.0
    duration: float = 300.0
    max_keys: int = 100_000
    _entries: OrderedDict[str, _Entry] = field(default_factory=OrderedDict, init=False, repr=False)

    def locked(self, key: str, now: float) -> float:
        """Seconds the key stays locked (0.0: not locked)."""
        entry = self._entries.get(key)
        if entry is None or self.limit <= 0:
            return 0.0
        if entry.locked_until > now:
            return entry.locked_until - now
        return 0.0

    def fail(self, key: str, now: float) -> bool:
        """Count a failure; True when it locks the key."""
        if self.limit <= 0:
            return False
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _Entry()
            while len(self._entries) > self.max_keys:
                self._entries.popitem(last=False)
        else:
            self._entries.move_to_end(key)
        if entry.locked_until > now:
            return False
        entry.failures = [t for t in entry.failures if now - t < self.window] + [now]
        if len(entry.failures) >= self.limit:
            entry.failures = []
            entry.locked_until = now + self.duration
            return True
        return False

    def succeed(self, key: str) -> None:
        self._entries.pop(key, None)

    def __len__(self) -> int:
        return len(self._entries)
