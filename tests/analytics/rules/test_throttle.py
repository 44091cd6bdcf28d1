"""Perseo's action ``interval`` (plain_rules.md, "Actions") and rule intervals."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from analytics.rules.throttle import Throttle

KEY = ("t", "rule", "/", "Room", "R1", "0")


def test_interval_is_the_minimum_period_between_executions() -> None:
    throttle = Throttle()
    assert throttle.allow(KEY, 100.0, 30e3)
    assert not throttle.allow(KEY, 129.9, 30e3)
    assert throttle.allow(KEY, 130.0, 30e3)
    assert throttle.allow(("other",), 130.0, 30e3)  # keys are independent


def test_no_interval_never_blocks() -> None:
    throttle = Throttle()
    assert all(throttle.allow(KEY, 1.0, None) for _ in range(3))
    assert throttle.last == {}


def test_release_after_a_failure_lets_the_next_one_run() -> None:
    throttle = Throttle()
    assert throttle.allow(KEY, 0.0, 60e3)
    throttle.release(KEY)
    assert throttle.allow(KEY, 1.0, 60e3)


def test_a_clock_stepping_back_does_not_block() -> None:
    throttle = Throttle()
    assert throttle.allow(KEY, 1000.0, 60e3)
    assert throttle.allow(KEY, 10.0, 60e3)


def test_prune_forgets_only_what_no_longer_blocks() -> None:
    throttle = Throttle()
    throttle.allow(("a",), 0.0, 10e3)
    throttle.allow(("b",), 0.0, 100e3)
    throttle.prune(50.0)
    assert list(throttle.last) == [("b",)]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 100), st.sampled_from(["a", "b"])), max_size=50),
       st.floats(min_value=1, max_value=60e3))
def test_never_fires_twice_within_the_interval(steps: list[tuple[float, str]], interval: float) -> None:
    throttle = Throttle()
    now = 0.0
    fired: dict[str, list[float]] = {"a": [], "b": []}
    for dt, key in steps:
        now += dt
        if throttle.allow((key,), now, interval):
            fired[key].append(now)
        if dt > 50:  # persistence in the middle changes nothing
            throttle = Throttle.from_dict(throttle.to_dict())
    for times in fired.values():
        assert all(b - a >= interval / 1000 for a, b in itertools.pairwise(times))
    # and it does fire whenever the interval is over: the first event always fires
    for key in ("a", "b"):
        if any(k == key for _, k in steps):
            assert fired[key]
