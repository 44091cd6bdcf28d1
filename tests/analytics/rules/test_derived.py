"""Derived entities: aggregates over the latest values of many entities."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics.rules.derived import DerivedState, compute, derived_attributes
from analytics.rules.model import Derive

DERIVE = Derive("Farm1", "FarmStats", "/farm1", {"avgT": ("avg", "temperature"), "maxT": ("max", "temperature"),
                                                 "fields": ("count", "temperature"), "minH": ("min", "humidity")})


def test_average_over_members_and_removal() -> None:
    state = DerivedState()
    state.update(("/farm1/a", "Field", "F1"), {"temperature": 10})
    state.update(("/farm1/b", "Field", "F2"), {"temperature": 20, "humidity": 50})
    assert compute(DERIVE, state) == {"avgT": 15.0, "maxT": 20.0, "fields": 2, "minH": 50.0}
    state.update(("/farm1/a", "Field", "F1"), {"humidity": 40})  # a partial notification keeps temperature
    assert compute(DERIVE, state)["avgT"] == 15.0 and compute(DERIVE, state)["minH"] == 40.0
    state.update(("/farm1/a", "Field", "F1"), {"temperature": "broken"})  # not a number: not counted
    assert compute(DERIVE, state)["fields"] == 1
    assert state.remove(("/farm1/b", "Field", "F2")) and not state.remove(("/farm1/b", "Field", "F2"))
    assert derived_attributes(DERIVE, state) == {
        "avgT": {"type": "Number", "value": None}, "maxT": {"type": "Number", "value": None},
        "fields": {"type": "Number", "value": 0}, "minH": {"type": "Number", "value": 40.0}}


members = st.lists(st.tuples(st.integers(0, 5), st.floats(-1e6, 1e6) | st.none()), max_size=40)


@settings(max_examples=150, deadline=None)
@given(members)
def test_aggregates_equal_a_brute_force_over_latest_values(updates: list[tuple[int, float | None]]) -> None:
    state = DerivedState()
    latest: dict[int, float] = {}
    for member, value in updates:
        key = ("/farm1", "Field", f"F{member}")
        if value is None:
            state.remove(key)
            latest.pop(member, None)
        else:
            state.update(key, {"temperature": value})
            latest[member] = value
    got = compute(DERIVE, state)
    assert got["fields"] == len(latest)
    if latest:
        assert got["avgT"] == pytest.approx(math.fsum(latest.values()) / len(latest), rel=1e-9, abs=1e-6)
        assert got["maxT"] == max(latest.values())
    else:
        assert got["avgT"] is None
    assert DerivedState.from_dict(state.to_dict()) == state
