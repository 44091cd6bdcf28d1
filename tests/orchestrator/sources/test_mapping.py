"""Records to entities: ids and types always there (or the record counted as skipped),
values coerced to their declared types, timestamps normalised."""

from __future__ import annotations

from typing import Any

import jmespath
from hypothesis import given, settings
from hypothesis import strategies as st

from ngsi.dates import parse_datetime
from ngsi.names import forbidden_id_chars, forbidden_value_chars
from orchestrator.sources.definition import AttrSpec, EntitySpec
from orchestrator.sources.mapping import Mapper, coerce, normalise_timestamp, select_records, to_point

SPEC = EntitySpec(
    id="join(':', ['urn:ngsi-ld:WeatherObserved', station])",
    type="'WeatherObserved'",
    attrs=(AttrSpec("temperature", "temp", "Number", "CEL"), AttrSpec("location", "[lon, lat]", "geo:point"),
           AttrSpec("name", "label", "Text"), AttrSpec("raw", "extra")),
    timestamp="observed_at",
)


def test_a_record_becomes_an_entity() -> None:
    mapped = Mapper(SPEC).map([{"station": "P1", "temp": "21.5", "lon": 2.35, "lat": "48.85", "label": "Paris",
                                "extra": {"a": [1, 2]}, "observed_at": "2024-05-01T12:00:00+02:00"}])
    assert mapped.skipped == 0 and mapped.dropped == 0
    [entity] = mapped.entities
    stamp = {"TimeInstant": {"type": "DateTime", "value": "2024-05-01T10:00:00.000Z"}}
    assert entity == {
        "id": "urn:ngsi-ld:WeatherObserved:P1", "type": "WeatherObserved",
        "temperature": {"type": "Number", "value": 21.5,
                        "metadata": {"unitCode": {"type": "Text", "value": "CEL"}, **stamp}},
        "location": {"type": "geo:point", "value": "48.85,2.35", "metadata": stamp},
        "name": {"type": "Text", "value": "Paris", "metadata": stamp},
        "raw": {"type": "StructuredValue", "value": {"a": [1, 2]}, "metadata": stamp},
        "TimeInstant": {"type": "DateTime", "value": "2024-05-01T10:00:00.000Z"},
    }


def test_skips_and_drops_are_counted() -> None:
    records = [{"temp": 1}, {"station": None}, {"station": "a b"}, {"station": "ok", "temp": "warm"},
               {"station": "ok2", "label": "a<b"}, {"station": "ok3", "observed_at": "yesterday"}, 42]
    mapped = Mapper(SPEC).map(records)
    assert [e["id"] for e in mapped.entities] == ["urn:ngsi-ld:WeatherObserved:ok", "urn:ngsi-ld:WeatherObserved:ok2"]
    assert mapped.skipped == 5 and mapped.dropped == 2
    assert mapped.reasons[0].startswith("record 0:") and len(mapped.reasons) == 5


def test_numbers_make_ids_and_missing_values_are_left_out() -> None:
    mapper = Mapper(EntitySpec(id="n", type="kind", attrs=(AttrSpec("v", "v", "Number"),)))
    mapped = mapper.map([{"n": 7, "kind": "K"}, {"n": 7.0, "kind": "K", "v": ""}])
    assert [e["id"] for e in mapped.entities] == ["7", "7"]
    assert "v" not in mapped.entities[0] and mapped.dropped == 1


def test_coercions() -> None:
    assert coerce("3", "Number") == ("Number", 3)
    assert coerce(" 1e3 ", "Number") == ("Number", 1000.0)
    assert coerce("yes", "Boolean") == ("Boolean", True)
    assert coerce(0, "Boolean") == ("Boolean", False)
    assert coerce(1714557600, "DateTime") == ("DateTime", "2024-05-01T10:00:00.000Z")
    assert coerce(12, "Text") == ("Text", "12")
    assert coerce({"type": "Point", "coordinates": [1, 2]}, "geo:json")[0] == "geo:json"
    assert to_point({"latitude": 1, "longitude": 2}) == "1,2"
    assert to_point("45.1, 7.5") == "45.1,7.5"
    assert Mapper(EntitySpec(id="'x'", type="'T'", attrs=(AttrSpec("n", "n", "Number"),))).map(
        [{"n": "9" * 5000}]).dropped == 1


def test_timestamps() -> None:
    assert normalise_timestamp("2024-05-01 10:00:00") == "2024-05-01T10:00:00.000Z"
    assert normalise_timestamp(1714557600000) == "2024-05-01T10:00:00.000Z"
    assert normalise_timestamp("1714557600") == "2024-05-01T10:00:00.000Z"
    assert normalise_timestamp("not a date") is None
    assert normalise_timestamp(True) is None
    assert normalise_timestamp(float("inf")) is None


def test_select_records() -> None:
    expr = jmespath.compile("data.items")
    assert select_records(expr, {"data": {"items": [1, 2]}}) == [1, 2]
    assert select_records(expr, {"data": {"items": {"a": 1}}}) == [{"a": 1}]
    assert select_records(expr, {}) == []
    assert select_records(None, [1]) == [1]


scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
records = st.dictionaries(st.sampled_from(["station", "temp", "lon", "lat", "label", "extra", "observed_at"]),
                          scalars | st.lists(scalars, max_size=3), max_size=7) | scalars


@settings(max_examples=400, deadline=None)
@given(st.lists(records, max_size=8))
def test_every_entity_is_valid_and_every_record_counted(batch: list[Any]) -> None:
    mapped = Mapper(SPEC).map(batch)
    assert len(mapped.entities) + mapped.skipped == len(batch)
    for entity in mapped.entities:
        assert entity["id"] and entity["type"] == "WeatherObserved"
        assert not forbidden_id_chars(entity["id"])
        for name, attr in entity.items():
            if name in ("id", "type"):
                continue
            assert set(attr) <= {"type", "value", "metadata"}
            if attr["type"] == "Number":
                assert isinstance(attr["value"], (int, float)) and not isinstance(attr["value"], bool)
            if attr["type"] == "geo:point":
                lat, lon = map(float, attr["value"].split(","))
                assert -90 <= lat <= 90 and -180 <= lon <= 180
            if isinstance(attr["value"], str):
                assert not forbidden_value_chars(attr["value"])


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.integers(-2**40, 2**45), st.floats(allow_nan=True), st.text(max_size=30),
                 st.datetimes().map(lambda d: d.isoformat())))
def test_timestamps_are_iso_or_none(value: Any) -> None:
    stamp = normalise_timestamp(value)
    if stamp is not None:
        assert stamp.endswith("Z") and parse_datetime(stamp) is not None
        assert normalise_timestamp(stamp) == stamp
