from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from security.privacy.budget import TOLERANCE, Budget
from security.privacy.keys import KeyRing, KeyRingError
from security.privacy.periods import parse_period

DAY = 86400.0
MIDNIGHT = 1_704_067_200.0  # 2024-01-01T00:00:00Z


def test_rotation_adds_a_current_key_and_keeps_the_old_ones() -> None:
    ring = KeyRing.generate()
    rotated = ring.rotate()
    assert rotated.current == "k2" and list(rotated.keys) == ["k1", "k2"]
    assert rotated.keys["k1"] == ring.current_key != rotated.current_key
    assert rotated.rotate().current == "k3"
    assert list(rotated.prune().keys) == ["k2"]


def test_a_ring_round_trips_through_its_dict() -> None:
    ring = KeyRing.generate().rotate()
    assert KeyRing.from_dict(ring.to_dict()) == ring
    assert "keys" not in repr(ring)  # keys stay out of logs


@pytest.mark.parametrize("doc", [None, {}, {"keys": {}}, {"current": "k2", "keys": {"k1": "AAAA"}},
                                 {"current": "k1", "keys": {"k1": "!!"}}, {"current": "k1", "keys": {"k1": ""}}])
def test_bad_rings_are_refused(doc: object) -> None:
    with pytest.raises(KeyRingError):
        KeyRing.from_dict(doc)


def test_the_budget_refuses_once_spent_and_starts_again_next_period() -> None:
    budget = Budget.of(1.0, "P1D")
    now = MIDNIGHT + 3600
    assert all(budget.spend("user:bob", 0.1, now) for _ in range(10))  # 0.1 ten times is 1.0
    assert not budget.spend("user:bob", 0.1, now)
    assert budget.remaining("user:bob", now) == pytest.approx(0, abs=TOLERANCE)
    assert budget.spend("user:eve", 0.5, now)  # per consumer
    assert budget.remaining("user:bob", MIDNIGHT + DAY) == 1.0  # the next day
    assert budget.spend("user:bob", 1.0, MIDNIGHT + DAY)
    again = Budget.from_dict(budget.to_dict())
    assert again.ledger == budget.ledger and not again.spend("user:bob", 0.01, MIDNIGHT + DAY + 60)


@given(st.floats(0.1, 10), st.lists(st.tuples(st.floats(0, 3), st.floats(0, 30_000)), max_size=60))
def test_the_budget_is_never_exceeded(allowance: float, releases: list[tuple[float, float]]) -> None:
    budget = Budget.of(allowance, "PT6H")
    period = parse_period("PT6H")
    now = MIDNIGHT
    spent: dict[float, float] = {}
    for epsilon, step in releases:
        now += step
        window = period.floor_seconds(now)
        before = spent.get(window, 0.0)
        if budget.spend("c", epsilon, now):
            spent[window] = before + epsilon
        else:
            assert before + epsilon > allowance  # refused only when it would not fit
        assert spent.get(window, 0.0) <= allowance + TOLERANCE
        assert budget.remaining("c", now) == pytest.approx(max(0.0, allowance - spent.get(window, 0.0)), abs=1e-9)
    # a persisted budget carries on where it was
    assert Budget.from_dict(budget.to_dict()).remaining("c", now) == budget.remaining("c", now)
