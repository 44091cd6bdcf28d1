"""The bench's own tools: bench/compare.py, the judgement of ``make bench-quick`` (a row moved
when its share of the bare baseline changed by more than 15%, whatever the machine's speed
did to both), and bench/pyspy.py's reading of py-spy's collapsed stacks."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import compare
import pyspy


def report(backend: str, baseline: float, rates: dict[str, float]) -> dict[str, Any]:
    results: dict[str, Any] = {"baseline (bare Starlette)": {"rate": baseline, "vs_baseline": {"rate": 1.0}}, "preload": {"seconds": 3}}
    for name, rate in rates.items():
        results[name] = {"rate": rate, "vs_baseline": {"rate": rate / baseline}}
    return {"backends": {backend: {"results": results}}}


def test_a_row_that_lost_its_share_of_the_baseline_moved() -> None:
    before = report("sqlite", 20_000, {"W1 PATCH attrs": 4_000, "W2 GET normalized": 8_000})
    now = report("sqlite", 20_000, {"W1 PATCH attrs": 3_000, "W2 GET normalized": 8_400})
    every, moved = compare.compare(before, now)
    assert {m.row for m in every} == {"baseline (bare Starlette)", "W1 PATCH attrs", "W2 GET normalized"}
    assert [(m.row, round(m.change, 2)) for m in moved] == [("W1 PATCH attrs", -0.25)]
    text = compare.render(every, moved)
    assert "sqlite/W1 PATCH attrs -25%" in text and "<- moved" in text


def test_rows_of_another_backend_or_missing_before_are_not_compared() -> None:
    before = report("sqlite", 20_000, {"W1 PATCH attrs": 4_000})
    now = report("postgresql", 20_000, {"W1 PATCH attrs": 1_000})
    assert compare.compare(before, now) == ([], [])
    assert "no row moved" in compare.render([], [])


@given(st.floats(1_000, 50_000), st.floats(0.2, 5.0), st.floats(10, 10_000))
def test_a_machine_faster_or_slower_for_everything_moves_nothing(baseline: float, speed: float, rate: float) -> None:
    before = report("sqlite", baseline, {"W": rate})
    now = report("sqlite", baseline * speed, {"W": rate * speed})
    _, moved = compare.compare(before, now)
    assert moved == []


def test_profile_summary_counts_each_function_once_per_stack() -> None:
    lines = [
        "process 7:\"python -m broker\";thread (0x1);run (asyncio/events.py:80);handle (broker/http.py:12);handle (broker/http.py:40);dumps (orjson:1) 6",
        "run (asyncio/events.py:80);find (/work/main/broker/store/postgres.py:300) 4",
        "garbage without a count",
    ]
    total, inclusive, own = pyspy.summary(lines)
    assert total == 10
    assert inclusive["asyncio/events.py:run"] == 10
    assert inclusive["broker/http.py:handle"] == 6  # two lines of one function: counted once
    assert inclusive["broker/store/postgres.py:find"] == 4
    assert own == {"orjson:dumps": 6, "broker/store/postgres.py:find": 4}
