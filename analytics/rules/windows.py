"""Time windows over an entity's updates and their aggregates (avg, min, max, sum, count,
rate of change).

One ``WindowState`` per rule and entity keeps the numeric samples ``(time, value)`` of
the attributes its aggregates read, in time order, and forgets those older than the
window. Aggregates are recomputed from the samples on each update: windows are short
(minutes of one entity's readings) and a plain recomputation cannot drift the way a
running sum of floats does. ``MAX_SAMPLES`` bounds the memory of a chatty entity.

``rate`` is the change per minute between the oldest and the newest sample of the
window: ``(v_last - v_first) / (t_last - t_first) * 60``, absent until two samples have
different times.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from .model import Aggregate

MAX_SAMPLES: Final = 10_000

Sample = tuple[float, float]  # (epoch seconds, value)


def numeric(value: Any) -> float | None:
    """The value as a float if it is a finite JSON number (booleans are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def total(values: list[float]) -> float:
    """Exact sum (``math.fsum``), falling back to a plain one when an intermediate overflows."""
    try:
        return math.fsum(values)
    except (OverflowError, ValueError):  # ValueError: inf and -inf among the values
        return sum(values)


def aggregate(function: str, samples: list[Sample]) -> float | int | None:
    """One aggregate of time-ordered samples; None where it is undefined (no samples, or a
    rate without two distinct times)."""
    if function == "count":
        return len(samples)
    if not samples:
        return None
    values = [v for _, v in samples]
    if function == "avg":
        return total(values) / len(values)
    if function == "sum":
        return total(values)
    if function == "min":
        return min(values)
    if function == "max":
        return max(values)
    if function == "rate":
        (t0, v0), (t1, v1) = samples[0], samples[-1]
        if t1 <= t0:
            return None
        rate = (v1 - v0) / (t1 - t0) * 60.0
        return rate if math.isfinite(rate) else None
    raise ValueError(f"unknown aggregate {function!r}")


@dataclass
class WindowState:
    """The samples of one rule's window for one entity, per attribute."""

    samples: dict[str, list[Sample]] = field(default_factory=dict)

    def add(self, attribute: str, t: float, value: float) -> None:
        """Keep a sample, in time order (a clock that steps back still sorts right)."""
        series = self.samples.setdefault(attribute, [])
        if not series or series[-1][0] <= t:
            series.append((t, value))
        else:
            bisect.insort(series, (t, value), key=lambda s: s[0])
        if len(series) > MAX_SAMPLES:
            del series[: len(series) - MAX_SAMPLES]

    def evict(self, oldest: float) -> None:
        """Forget samples taken before ``oldest``."""
        for attribute in list(self.samples):
            series = self.samples[attribute]
            cut = bisect.bisect_left(series, oldest, key=lambda s: s[0])
            if cut:
                del series[:cut]
            if not series:
                del self.samples[attribute]

    def empty(self) -> bool:
        return not self.samples

    def to_dict(self) -> dict[str, Any]:
        return {"samples": {a: [[t, v] for t, v in s] for a, s in self.samples.items()}}

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> WindowState:
        return cls({a: [(float(t), float(v)) for t, v in s] for a, s in doc.get("samples", {}).items()})


def attributes(aggregates: Mapping[str, Aggregate]) -> set[str]:
    """The attributes a set of aggregates reads."""
    return {attribute for _, attribute in aggregates.values()}


def observe(state: WindowState, values: Iterable[tuple[str, Any]], now: float, minutes: float) -> None:
    """Add the numeric ``(attribute, value)`` pairs of one update at ``now``, then drop
    what fell out of the window (samples exactly ``minutes`` old are kept)."""
    for attribute, value in values:
        number = numeric(value)
        if number is not None:
            state.add(attribute, now, number)
    state.evict(now - minutes * 60.0)


def compute(aggregates: Mapping[str, Aggregate], state: WindowState) -> dict[str, float | int]:
    """Every defined aggregate by name (undefined ones are left out, so that a ``q`` on
    them is false, as on a missing attribute)."""
    out: dict[str, float | int] = {}
    for name, (function, attribute) in aggregates.items():
        value = aggregate(function, state.samples.get(attribute, []))
        if value is not None:
            out[name] = value
    return out
