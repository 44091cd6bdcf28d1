"""The differential-privacy budget: how much epsilon each consumer may spend per period.

Every noised release costs its epsilon, and the costs add up (sequential composition), so
a consumer who asks the same noised average a hundred times learns the true one unless
something stops them: the budget refuses a release that would take a consumer's spending
in the current period over the allowance. Periods are calendar ones (``P1D`` restarts at
midnight UTC), as ``periods.Period.floor`` draws them.

The ledger is plain data so the lead can persist it wherever it keeps state:
``Budget.from_dict(..)`` in, ``to_dict()`` out. Nothing here reads a clock: ``now`` is
epoch seconds, passed in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .periods import Period, parse_period

TOLERANCE = 1e-9  # floating sums of e.g. ten 0.1 must still fit an allowance of 1.0


@dataclass(slots=True)
class Budget:
    """One allowance per period for every consumer it tracks (keys: ``Consumer.key``)."""

    epsilon: float
    period: Period
    ledger: dict[str, tuple[float, float]] = field(default_factory=dict)  # consumer: (period start, spent)

    @classmethod
    def of(cls, epsilon: float, period: str) -> Budget:
        return cls(epsilon, parse_period(period))

    def spent(self, consumer: str, now: float) -> float:
        start = self.period.floor_seconds(now)
        held = self.ledger.get(consumer)
        return held[1] if held is not None and held[0] == start else 0.0

    def remaining(self, consumer: str, now: float) -> float:
        """What the consumer may still spend in the period holding ``now``."""
        return max(0.0, self.epsilon - self.spent(consumer, now))

    def spend(self, consumer: str, epsilon: float, now: float) -> bool:
        """Record a release of ``epsilon`` and say yes, or say no and record nothing."""
        if epsilon < 0:
            raise ValueError("a release cannot cost a negative epsilon")
        spent = self.spent(consumer, now) + epsilon
        if spent > self.epsilon + TOLERANCE:
            return False
        self.ledger[consumer] = (self.period.floor_seconds(now), spent)
        return True

    def to_dict(self) -> dict[str, Any]:
        return {"epsilon": self.epsilon, "period": self.period.text,
                "ledger": {c: {"start": s, "spent": e} for c, (s, e) in self.ledger.items()}}

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Budget:
        budget = cls.of(float(doc["epsilon"]), str(doc["period"]))
        for consumer, held in (doc.get("ledger") or {}).items():
            budget.ledger[consumer] = (float(held["start"]), float(held["spent"]))
        return budget
