"""Hypothesis strategies shared by the privacy tests: names, entities, policies."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

NAMES = ["power", "serial", "owner", "location", "TimeInstant", "refHouse", "note", "unitCode"]

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6),
                    st.floats(allow_nan=False, allow_infinity=False, width=32), st.text(max_size=8))
values = st.one_of(scalars, st.lists(scalars, max_size=3))


@st.composite
def normalized_entities(draw: st.DrawFn) -> dict[str, Any]:
    entity: dict[str, Any] = {"id": draw(st.text(min_size=1, max_size=10)), "type": "Meter"}
    for name in draw(st.lists(st.sampled_from(NAMES), unique=True, max_size=len(NAMES))):
        metadata = {md: {"type": "Text", "value": draw(values)}
                    for md in draw(st.lists(st.sampled_from([*NAMES, "previousValue"]), unique=True, max_size=3))}
        entity[name] = {"type": draw(st.sampled_from(["Number", "Text", "Relationship"])), "value": draw(values),
                        "metadata": metadata}
    return entity


@st.composite
def key_values_entities(draw: st.DrawFn) -> dict[str, Any]:
    entity: dict[str, Any] = {"id": draw(st.text(min_size=1, max_size=10)), "type": "Meter"}
    for name in draw(st.lists(st.sampled_from(NAMES), unique=True, max_size=len(NAMES))):
        entity[name] = draw(values)
    return entity


steps = st.lists(st.sampled_from([
    {"transform": "drop"}, {"transform": "pseudonymize"}, {"transform": "generalize", "bucket": 10},
    {"transform": "generalize", "geohash": 4}, {"transform": "generalize", "period": "PT1H"},
    {"transform": "noise", "epsilon": 1, "sensitivity": 1},
]), max_size=2)


@st.composite
def policy_docs(draw: st.DrawFn) -> dict[str, Any]:
    names = draw(st.lists(st.sampled_from([*NAMES, "*"]), unique=True, max_size=5))
    return {"id": "p", "consumer": {"kind": "user", "id": "bob"},
            "attributes": {n: draw(steps) for n in names},
            **({"idTransform": {"transform": "pseudonymize"}} if draw(st.booleans()) else {}),
            "budget": {"epsilon": 10, "period": "P1D"}}
