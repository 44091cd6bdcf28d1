"""Time windows and their aggregates."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics.rules.windows import WindowState, aggregate, compute, observe

AGGREGATES = {"a": ("avg", "t"), "lo": ("min", "t"), "hi": ("max", "t"), "s": ("sum", "t"), "n": ("count", "t"),
              "r": ("rate", "t")}


def test_samples_older_than_the_window_are_forgotten() -> None:
    state = WindowState()
    for t, v in [(0, 10), (60, 20), (120, 30), (180, 40)]:
        observe(state, [("t", v)], t, minutes=2)
    # at 180 the window is [60, 180]: 20, 30, 40
    assert compute(AGGREGATES, state) == {"a": 30.0, "lo": 20.0, "hi": 40.0, "s": 90.0, "n": 3, "r": 10.0}


def test_rate_is_change_per_minute_and_needs_two_times() -> None:
    assert aggregate("rate", [(0.0, 5.0)]) is None
    assert aggregate("rate", [(0.0, 5.0), (0.0, 9.0)]) is None
    assert aggregate("rate", [(0.0, 5.0), (30.0, 6.0)]) == pytest.approx(2.0)
    assert aggregate("count", []) == 0 and aggregate("avg", []) is None


def test_non_numbers_are_not_samples() -> None:
    state = WindowState()
    observe(state, [("t", "hot"), ("t", True), ("t", None), ("t", 3)], 0, minutes=1)
    assert compute({"n": ("count", "t")}, state) == {"n": 1}


def test_a_clock_that_steps_back_still_sorts_samples() -> None:
    state = WindowState()
    observe(state, [("t", 1)], 100, minutes=10)
    observe(state, [("t", 2)], 50, minutes=10)
    assert state.samples["t"] == [(50.0, 2.0), (100.0, 1.0)]


events = st.lists(st.tuples(st.floats(min_value=0, max_value=300), st.floats(-1e6, 1e6) | st.integers(-100, 100)),
                  max_size=40)


@settings(max_examples=200, deadline=None)
@given(events, st.floats(min_value=0.5, max_value=10))
def test_aggregates_equal_a_brute_force_recomputation(steps: list[tuple[float, float]], minutes: float) -> None:
    state = WindowState()
    now = 0.0
    seen: list[tuple[float, float]] = []
    for dt, value in steps:
        now += dt
        observe(state, [("t", value)], now, minutes)
        seen.append((now, float(value)))
        inside = [(t, v) for t, v in seen if t >= now - minutes * 60]
        got = compute(AGGREGATES, state)
        values = [v for _, v in inside]
        assert got["n"] == len(inside)
        if inside:
            assert got["a"] == pytest.approx(math.fsum(values) / len(values), rel=1e-9, abs=1e-9)
            assert got["s"] == pytest.approx(math.fsum(values), rel=1e-9, abs=1e-9)
            assert got["lo"] == min(values) and got["hi"] == max(values)
        rate = None
        if inside and inside[-1][0] > inside[0][0]:
            (t0, v0), (t1, v1) = inside[0], inside[-1]
            rate = (v1 - v0) / (t1 - t0) * 60
        if rate is not None and math.isfinite(rate):
            assert got["r"] == pytest.approx(rate, rel=1e-9, abs=1e-9)
        else:  # undefined, or too steep for a float
            assert "r" not in got


@settings(max_examples=100, deadline=None)
@given(events)
def test_window_state_round_trips(steps: list[tuple[float, float]]) -> None:
    state = WindowState()
    now = 0.0
    for dt, value in steps:
        now += dt
        observe(state, [("t", value), ("u", -value)], now, 5)
    copy = WindowState.from_dict(state.to_dict())
    assert copy == state
    assert compute(AGGREGATES, copy) == compute(AGGREGATES, state)
