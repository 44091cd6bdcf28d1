"""The renderers (``render.py``, ``csvout.py``) on any answer the engine can give
(hypothesis): every route's JSON serializes, keeps index and values parallel, drops only
alignment gaps; the CSV has one line per value and reads back."""

from __future__ import annotations

import csv
import io
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics.history import csvout, render
from analytics.history.engine import Answer, Block, LastValue
from analytics.history.instants import format_instant

values = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.floats(allow_nan=False, allow_infinity=False) \
    | st.text(max_size=6) | st.lists(st.integers(-9, 9), max_size=2) | st.dictionaries(st.text(max_size=3), st.integers(-9, 9),
                                                                                  max_size=2)
ATTRS = ["a", "b", "c"]


@st.composite
def answers(draw: st.DrawFn) -> Answer:
    aggregate_total = draw(st.booleans())
    blocks = []
    for n, etype in enumerate(draw(st.lists(st.sampled_from(["T", "U"]), min_size=1, max_size=3))):
        rows = 1 if aggregate_total else draw(st.integers(1, 4))
        index: list[int | None] = [None] if aggregate_total else sorted(
            draw(st.lists(st.integers(0, 2**40), min_size=rows, max_size=rows)))
        block = Block(etype, f"E{n}", index)
        present = draw(st.lists(st.sampled_from(ATTRS), min_size=1, max_size=3, unique=True))
        for attr in present:
            column = draw(st.lists(values, min_size=rows, max_size=rows))
            gaps = set(draw(st.lists(st.integers(0, rows - 1), max_size=rows - 1)))
            block.values[attr] = [None if i in gaps else v for i, v in enumerate(column)]
            if gaps:
                block.missing[attr] = gaps
        blocks.append(block)
    return Answer(blocks, ATTRS)


def _parallel(item: dict[str, Any]) -> None:
    assert len(item["index"]) in (0, len(item["values"]))


@settings(max_examples=200, deadline=None, database=None)
@given(answers())
def test_every_shape_of_every_answer(answer: Answer) -> None:
    shapes = [render.entity_value(answer), render.entity(answer), render.type_entities(answer, "T"),
              render.type_entities_value(answer), render.attrs(answer), render.attrs_value(answer)]
    for attr in ATTRS:
        shapes += [render.entity_attr(answer, attr), render.entity_attr_value(answer, attr),
                   render.type_attr(answer, "T", attr), render.type_attr_value(answer, attr),
                   render.attr(answer, attr), render.attr_value(answer, attr)]
        for group in render.attr(answer, attr)["types"]:
            for entity in group["entities"]:
                _parallel(entity)
        for entity in render.type_attr(answer, "T", attr)["entities"]:
            block = next(b for b in answer.blocks if b.entity_id == entity["entityId"])
            assert len(entity["values"]) == len(block.index) - len(block.missing.get(attr, ()))
    for shape in shapes:
        orjson.dumps(shape)
    lines = list(csv.reader(io.StringIO(csvout.history(answer).decode())))
    expected = sum(len(b.index) - len(b.missing.get(a, ())) for b in answer.blocks for a in b.values)
    assert lines[0] == ["entityId", "entityType", "attrName", "index", "value"] and len(lines) == 1 + expected
    for line in lines[1:]:
        assert len(line) == 5 and (line[3] == "" or line[3].endswith("+00:00"))


def test_cells_and_other_tables() -> None:
    assert [csvout.cell(v) for v in (None, True, 1.5, "a,b", {"x": [1]})] == ["", "true", "1.5", "a,b", '{"x":[1]}']
    assert csvout.entity_list([("T", "E", 0)]).decode().splitlines()[1] == f"E,T,{format_instant(0)}"
    row = csvout.last([(("T", "E"), [LastValue("a", "Number", 1.0, 0, 1000)])]).decode().splitlines()[1]
    assert row == f"E,T,a,Number,{format_instant(0)},1.0,{format_instant(1000)}"
    assert csvout.wanted("text/csv") and csvout.wanted("application/json, text/csv;q=0.5")
    assert not csvout.wanted("text/csv;q=0") and not csvout.wanted(None) and not csvout.wanted("*/*")
