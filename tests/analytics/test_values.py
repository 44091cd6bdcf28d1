"""Types, casting and storage of attribute values (``values.py``), and instants (``instants.py``).

The casting cases are QuantumLeap's table (using.md, "Data Casting"), with the choices
docs/history.md records where it is not kept: containers cast to Text are JSON (not
Python's repr), and values are read back with the type they were stored with.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics.history.instants import (
    DAY,
    HOUR,
    MAX_MS,
    MIN_MS,
    bucket,
    floor,
    format_instant,
    month_bounds,
    parse_instant,
)
from analytics.history.values import cast, decode, derive, effective_type, location

ISO = "2017-06-19T11:46:45.00Z"
ISO_OUT = "2017-06-19T11:46:45.000+00:00"

# (declared type, value, what is read back) -- QuantumLeap's casting table
CASTING = [
    ("Number", 1.0, 1.0), ("Number", 1, 1.0), ("Number", True, None), ("Number", "1.0", 1.0), ("Number", ISO, None),
    ("Integer", 1.0, 1), ("Integer", 1, 1), ("Integer", True, None), ("Integer", "1.0", 1), ("Integer", ISO, None),
    ("DateTime", 1.0, None), ("DateTime", 1, None), ("DateTime", True, None), ("DateTime", "error", None),
    ("DateTime", ISO, ISO_OUT),
    ("Text", 1.0, "1.0"), ("Text", 1, "1"), ("Text", True, "True"), ("Text", "1.0", "1.0"), ("Text", ISO, ISO),
    ("Text", ["a", "b"], '["a","b"]'), ("Text", {"test": "test"}, '{"test":"test"}'),  # JSON, not repr
    ("StructuredValue", 1.0, None), ("StructuredValue", 1, None), ("StructuredValue", True, None),
    ("StructuredValue", "1.0", None), ("StructuredValue", ISO, None),
    ("StructuredValue", {"test": "test"}, {"test": "test"}), ("StructuredValue", ["a", "b"], ["a", "b"]),
    ("Property", 1.0, 1.0), ("Property", 1, 1), ("Property", True, True), ("Property", "1.0", "1.0"),
    ("Property", ISO, ISO_OUT), ("Property", {"test": "test"}, {"test": "test"}), ("Property", ["a", "b"], ["a", "b"]),
]


@pytest.mark.parametrize(("declared", "value", "expected"), CASTING)
def test_casting_table(declared: str, value: Any, expected: Any) -> None:
    kind, num, txt = cast(declared, value)
    assert decode(kind, num, txt) == expected
    assert type(decode(kind, num, txt)) is type(expected)


@pytest.mark.parametrize(("value", "kind"), [
    ([1], "Array"), ({"a": 1}, "StructuredValue"), (True, "Boolean"), (3, "Integer"), (3.5, "Number"),
    ("2020-01-01T00:00:00Z", "DateTime"), ("2020", "Text"), ("hello", "Text"), (None, "Text"),
])
def test_types_derived_from_the_value(value: Any, kind: str) -> None:
    assert derive(value) == kind
    assert effective_type(None, value) == kind
    assert effective_type("Float", value) == kind  # not a type QuantumLeap knows: derived


def test_known_types_are_kept_and_iso8601_is_datetime() -> None:
    assert effective_type("Number", "x") == "Number"
    assert effective_type("ISO8601", ISO) == "DateTime"
    assert effective_type("geo:point", "1, 2") == "geo:point"
    assert derive({"@type": "DateTime", "@value": ISO}, "Property") == "DateTime"
    assert decode(*cast("Property", {"@type": "DateTime", "@value": ISO})) == ISO_OUT


def test_booleans_text_and_odd_numbers() -> None:
    assert decode(*cast("Boolean", "TRUE")) is True
    assert decode(*cast("Boolean", 1)) is None
    assert decode(*cast("Number", "nan")) is None  # not a JSON number
    assert decode(*cast("Number", 1e308 * 10)) is None
    assert decode(*cast("Number", " 12 ")) == 12.0
    assert decode(*cast("Text", "a\x00b")) == "a\ufffdb"  # PostgreSQL text has no NUL
    assert cast("Number", None) == ("Number", None, None)


def test_geo_values_and_their_locations() -> None:
    kind, num, txt = cast("geo:point", "40.4, -3.7")
    assert decode(kind, num, txt) == "40.4, -3.7"
    assert location(kind, txt) == {"type": "Point", "coordinates": [-3.7, 40.4]}
    polygon = {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]}
    kind, num, txt = cast("geo:json", polygon)
    assert decode(kind, num, txt) == polygon and location(kind, txt) == polygon
    assert location(*cast("geo:point", "not a point")[::2]) is None
    assert location("Text", "1, 2") is None


# what orjson.loads gives a notification: integers within 64 bits (signed or not)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text() | st.sampled_from([1e30, -1e300, 2**63, "1e30", "9" * 40]),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=10,
)
declared_types = st.none() | st.sampled_from(["Number", "Integer", "Text", "Boolean", "DateTime", "ISO8601",
                                              "StructuredValue", "Array", "geo:point", "geo:json", "geo:line",
                                              "Property", "Float", "None"]) | st.text(max_size=8)


@settings(max_examples=300, deadline=None, database=None)
@given(declared_types, json_values)
def test_every_value_casts_and_reads_back_as_its_type(declared: Any, value: Any) -> None:
    kind, num, txt = cast(declared, value)
    assert num is None or txt is None
    again = decode(kind, num, txt)
    orjson.dumps(again)  # whatever is stored can be answered
    if kind == "Number":
        assert again is None or (isinstance(again, float) and math.isfinite(again))
    elif kind == "Integer":
        assert again is None or type(again) is int
    elif kind == "Boolean":
        assert again is None or type(again) is bool
    elif kind in ("Text", "geo:point"):
        assert again is None or isinstance(again, str)
    if effective_type(None, value) == kind and kind in ("StructuredValue", "Array", "Boolean") \
            or kind == "Integer" == effective_type(None, value) and abs(value) <= 2**53:
        assert again == value  # a value whose own type is kept comes back unchanged


# -- instants ----------------------------------------------------------------------------------

instants = st.integers(parse_instant("1900-01-01T00:00:00Z") or 0, parse_instant("9999-12-31T23:59:59.999Z") or 0)


@settings(max_examples=300, deadline=None, database=None)
@given(instants)
def test_instants_render_and_parse_back(ms: int) -> None:
    text = format_instant(ms)
    assert text.endswith("+00:00") and len(text) == 29
    assert parse_instant(text) == ms


@settings(max_examples=300, deadline=None, database=None)
@given(instants, st.sampled_from(["year", "month", "day", "hour", "minute", "second"]))
def test_a_bucket_starts_its_period(ms: int, period: str) -> None:
    start = bucket(ms, period)
    assert start <= ms and bucket(start, period) == start
    moment = datetime.fromtimestamp(start / 1000, tz=UTC)
    assert moment.microsecond == 0
    if period in ("year", "month", "day"):
        assert (moment.hour, moment.minute, moment.second) == (0, 0, 0)
        assert period != "month" or moment.day == 1
        assert period != "year" or (moment.month, moment.day) == (1, 1)
    low, high = month_bounds(ms)
    assert low <= ms < high and low == bucket(ms, "month")
    assert high > parse_instant("9999-12-31T23:59:59.999Z") or bucket(high, "month") == high  # type: ignore[operator]


def test_parse_instant_forms() -> None:
    assert parse_instant("2018-01-05T15:44:34") == parse_instant("2018-01-05T15:44:34Z") == 1515167074000
    assert parse_instant("2018-01-05 15:44:34") == 1515167074000
    assert parse_instant("2018-01-05T16:44:34+01:00") == 1515167074000
    for bad in ("", "yesterday", "2018-13-01", "1899-12-31T00:00:00", "9" * 200, "9999-12-31T23:00:00-05:00"):
        assert parse_instant(bad) is None
    assert floor(-1, HOUR) == -HOUR and floor(DAY + 5, DAY) == DAY
    assert MIN_MS < parse_instant("1900-01-01T00:00:00Z") < parse_instant("9999-12-31T23:59:59Z") < MAX_MS  # type: ignore[operator]
