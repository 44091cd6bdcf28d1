"""When a failing source is tried again: exponential back-off with jitter, capped. Pure.

A source that fails (its server down, its answers unreadable, the broker refusing the
batch) must not be hammered at its polling rate, nor all failing sources retried in the
same instant after a shared outage: the n-th consecutive failure waits
``first * 2**(n-1)`` seconds, at most ``cap``, and a random part of that ("equal jitter":
between half and all of it) spreads the retries.
"""

from __future__ import annotations

import random
from collections.abc import Callable


def ceiling(failures: int, first: float, cap: float) -> float:
    """The delay after ``failures`` consecutive failures, before jitter (0 failures: 0)."""
    if failures <= 0:
        return 0.0
    # 2**60 is far past any cap: no float overflow for a source that failed for years
    return min(cap, first * 2.0 ** min(failures - 1, 60))


def delay(failures: int, first: float, cap: float, rand: Callable[[], float] = random.random) -> float:
    """The wait before the next try: between half and all of ``ceiling`` (``rand()`` in [0, 1))."""
    top = ceiling(failures, first, cap)
    return top / 2 + top / 2 * rand()
