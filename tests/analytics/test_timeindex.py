"""The time index policy (``timeindex.py``), property-based.

The model below is QuantumLeap's list (using.md, "Time Index") read literally: the first
source present with a valid instant wins; a metadata source is the most recent valid
instant of that name in any attribute's metadata; the arrival time when none is.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from analytics.history.instants import format_instant, parse_instant
from analytics.history.timeindex import time_index

NOW = 1_700_000_000_000
CUSTOM = "myTime"
NAMES = ["TimeInstant", "timestamp", "observedAt", "modifiedAt", "dateModified", CUSTOM]


def policy(custom: str | None) -> list[tuple[str, str]]:
    first = [("attr", custom), ("md", custom)] if custom else []
    return first + [
        ("attr", "TimeInstant"), ("md", "TimeInstant"), ("attr", "timestamp"), ("md", "timestamp"),
        ("md", "observedAt"), ("md", "modifiedAt"), ("attr", "observedAt"), ("attr", "modifiedAt"),
        ("attr", "dateModified"), ("md", "dateModified"),
    ]


def _valid(value: Any) -> int | None:
    return parse_instant(value) if isinstance(value, str) else None


def expected(entity: dict[str, Any], custom: str | None) -> int:
    for kind, name in policy(custom):
        if kind == "attr":
            raw = entity.get(name)
            value = raw["value"] if isinstance(raw, dict) and "value" in raw else raw
            found = _valid(value)
        else:
            candidates = [
                _valid(md[name]["value"] if isinstance(md[name], dict) else md[name])
                for key, attr in entity.items() if key not in ("id", "type") and isinstance(attr, dict)
                for md in [attr.get("metadata") or {}] if name in md
            ]
            found = max((c for c in candidates if c is not None), default=None)
        if found is not None:
            return found
    return NOW


instants = st.integers(0, 4_000_000_000_000).map(format_instant)
bad_dates = st.sampled_from(["not a date", "2020-13-01T00:00:00Z", "", "1899-01-01T00:00:00Z"]) | st.integers() \
    | st.just({"value": 1})
dates = instants | bad_dates


@st.composite
def entities(draw: st.DrawFn) -> dict[str, Any]:
    entity: dict[str, Any] = {"id": "E", "type": "T"}
    for i in range(draw(st.integers(0, 3))):  # ordinary attributes, with time metadata maybe
        names = draw(st.lists(st.sampled_from(NAMES), unique=True, max_size=3))
        metadata = {n: ({"type": "DateTime", "value": draw(dates)} if draw(st.booleans()) else draw(dates))
                    for n in names}
        entity[f"a{i}"] = {"type": "Number", "value": i, "metadata": metadata}
    for name in draw(st.lists(st.sampled_from(NAMES), unique=True, max_size=4)):  # time attributes
        value = draw(dates)
        entity[name] = {"type": "DateTime", "value": value, "metadata": {}} if draw(st.booleans()) else value
    return entity


@settings(max_examples=250, deadline=None, database=None)
@given(entities(), st.sampled_from([None, CUSTOM, "a0", "absent"]))
def test_the_first_valid_source_of_the_policy_wins(entity: dict[str, Any], custom: str | None) -> None:
    assert time_index(entity, custom, NOW) == expected(entity, custom)


@settings(max_examples=100, deadline=None, database=None)
@given(entities(), instants)
def test_a_valid_custom_attribute_always_wins(entity: dict[str, Any], instant: str) -> None:
    entity[CUSTOM] = {"type": "DateTime", "value": instant}
    assert time_index(entity, CUSTOM, NOW) == parse_instant(instant)


@settings(max_examples=100, deadline=None, database=None)
@given(entities(), bad_dates)
def test_invalid_dates_change_nothing(entity: dict[str, Any], bad: Any) -> None:
    before = time_index(entity, None, NOW)
    entity["a9"] = {"type": "Text", "value": "x", "metadata": {"TimeInstant": {"type": "DateTime", "value": bad}}}
    if "TimeInstant" not in entity:
        entity["TimeInstant"] = bad
    assert time_index(entity, None, NOW) == before


def test_examples() -> None:
    orion = {"id": "R", "type": "Room", "temperature": {"type": "Number", "value": 1, "metadata": {
        "dateModified": {"type": "DateTime", "value": "2017-06-19T11:46:45.00Z"}}}}
    assert time_index(orion, None, NOW) == parse_instant("2017-06-19T11:46:45Z")
    agent = {**orion, "TimeInstant": {"type": "DateTime", "value": "2020-01-01T00:00:00Z"}}
    assert time_index(agent, None, NOW) == parse_instant("2020-01-01T00:00:00Z")
    key_values = {"id": "R", "type": "Room", "t": 1, "timestamp": "2021-01-01T00:00:00Z"}
    assert time_index(key_values, None, NOW) == parse_instant("2021-01-01T00:00:00Z")
    linked = {"id": "R", "type": "Room", "t": {"type": "Property", "value": 1, "observedAt": "2022-01-01T00:00:00Z"}}
    assert time_index(linked, None, NOW) == parse_instant("2022-01-01T00:00:00Z")
    assert time_index({"id": "R", "type": "Room"}, "x", NOW) == NOW
