"""Anomaly flags: is a new reading an outlier against the entity's own recent readings?

A ``Detector`` (``model.parse_detector``) is set per entity type and attribute; each
entity gets its own ``DetectorState``, so every sensor is judged against its own
baseline. Two methods:

* ``rolling``: mean and (population) standard deviation of the last ``window`` readings;
* ``ewma``: exponentially weighted mean and variance with weight ``alpha``, which needs
  constant memory and adapts to slow drifts.

A reading is scored *before* it is learnt: ``score = |x - mean| / deviation``, with the
deviation at least ``minDeviation`` (so a sensor that sat on one value does not flag
every tiny change; with 0, any change after a flat run scores infinity). It is an
outlier when the score exceeds ``threshold`` after ``minSamples`` readings. Outliers are
learnt too: a lasting level shift stops being flagged once the baseline has followed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .model import Detector
from .windows import total


@dataclass(frozen=True)
class Flag:
    """The verdict on one reading, with the baseline it was judged against."""

    attribute: str
    value: float
    score: float
    mean: float
    deviation: float
    outlier: bool

    def vars(self) -> dict[str, Any]:
        """Template variables of an anomaly firing."""
        return {"anomalyAttribute": self.attribute, "anomalyValue": self.value, "anomalyScore": self.score,
                "anomalyMean": self.mean, "anomalyDeviation": self.deviation}


@dataclass
class DetectorState:
    """One entity's baseline for one attribute. ``values`` serve ``rolling``; ``count``,
    ``mean`` and ``var`` serve ``ewma``."""

    values: list[float] = field(default_factory=list)
    count: int = 0
    mean: float = 0.0
    var: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"values": list(self.values), "count": self.count, "mean": self.mean, "var": self.var}

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> DetectorState:
        return cls([float(v) for v in doc.get("values", [])], int(doc.get("count", 0)),
                   float(doc.get("mean", 0.0)), float(doc.get("var", 0.0)))


def baseline(detector: Detector, state: DetectorState) -> tuple[int, float, float]:
    """(readings seen, mean, standard deviation) before the next reading."""
    if detector.method == "ewma":
        return state.count, state.mean, math.sqrt(max(state.var, 0.0))
    n = len(state.values)
    if n == 0:
        return 0, 0.0, 0.0
    mean = total(state.values) / n
    var = total([(v - mean) * (v - mean) for v in state.values]) / n
    return n, mean, math.sqrt(var) if var >= 0 else math.nan


def learn(detector: Detector, state: DetectorState, value: float) -> None:
    if detector.method == "ewma":
        if state.count == 0:
            state.mean, state.var = value, 0.0
        else:
            diff = value - state.mean
            incr = detector.alpha * diff
            state.mean += incr
            state.var = (1.0 - detector.alpha) * (state.var + diff * incr)
        state.count += 1
        return
    state.values.append(value)
    if len(state.values) > detector.window:
        del state.values[: len(state.values) - detector.window]
    state.count = len(state.values)


def observe(detector: Detector, state: DetectorState, value: float) -> Flag:
    """Score ``value`` against the baseline, then learn it."""
    n, mean, std = baseline(detector, state)
    deviation = max(std, detector.min_deviation)
    diff = abs(value - mean)
    if not math.isfinite(diff):  # readings so large that their difference overflows
        score = math.inf
    elif deviation > 0:
        score = diff / deviation
    else:
        score = 0.0 if diff == 0 else math.inf
    outlier = n >= detector.min_samples and score > detector.threshold
    learn(detector, state, value)
    return Flag(detector.attribute, value, score, mean, deviation, outlier)
