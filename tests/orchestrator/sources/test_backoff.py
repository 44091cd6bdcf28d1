"""The back-off schedule: doubling from the first delay, capped, jittered within [half, all]."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from orchestrator.sources.backoff import ceiling, delay


def test_doubles_then_caps() -> None:
    assert [ceiling(n, 1.0, 10.0) for n in range(0, 7)] == [0.0, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert ceiling(10**9, 2.0, 600.0) == 600.0
    assert delay(3, 1.0, 10.0, rand=lambda: 0.0) == 2.0
    assert delay(3, 1.0, 10.0, rand=lambda: 0.999) < 4.0


@given(failures=st.integers(1, 10_000), first=st.floats(0.001, 100), cap=st.floats(0.001, 10_000),
       rand=st.floats(0, 1, exclude_max=True))
def test_bounded_and_monotone(failures: int, first: float, cap: float, rand: float) -> None:
    first = min(first, cap)
    top = ceiling(failures, first, cap)
    assert first <= top <= cap
    assert top <= ceiling(failures + 1, first, cap)
    wait = delay(failures, first, cap, rand=lambda: rand)
    assert top / 2 <= wait <= top
