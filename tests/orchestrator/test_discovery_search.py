"""Sensor discovery's engine (``orchestrator/discovery``): typo-tolerant, synonym-aware
matching through WAZIUP's ontology, each hit with its reason, and the filters (issue 17 §2)."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.discovery.model import Query, Sensor
from orchestrator.discovery.search import Index, distance_m, distances_m, inside, inside_all
from orchestrator.discovery.vocabulary import concepts_of, words

NOW = 1_000_000.0
SENSORS = [
    Sensor("farm", "Room1", "Room", "temperature", lat=5.300, lon=4.000, seen=NOW - 60),
    Sensor("waziup", "LoRa-1", "Device", "TC1", unit="Cel", lat=5.305, lon=4.002, seen=NOW - 600),
    Sensor("waziup", "LoRa-2", "Device", "TC1", lat=45.0, lon=6.0, seen=NOW - 60),  # far away
    Sensor("waziup", "LoRa-3", "Device", "TC1", lat=5.301, lon=4.001, seen=NOW - 7200),  # not seen for 2 h
    Sensor("farm", "Probe1", "Probe", "value", unit="degC", lat=5.302, lon=4.003, seen=NOW - 30),  # by its unit
    Sensor("farm", "Field1", "Field", "soilMoisture", unit="%", lat=5.31, lon=4.01, seen=NOW - 30),
    Sensor("farm", "Room1", "Room", "HU", seen=NOW - 60),
    Sensor("other", "Tank", "Tank", "level", unit="cm"),
]
INDEX = Index(SENSORS)


def ids(hits: list) -> list[tuple[str, str]]:  # type: ignore[type-arg]
    return [(h.sensor.entity_id, h.sensor.attr) for h in hits]


def test_a_typo_finds_every_temperature_whatever_its_name() -> None:
    hits = INDEX.search(Query("tempreature"))
    assert set(ids(hits)) == {("Room1", "temperature"), ("LoRa-1", "TC1"), ("LoRa-2", "TC1"), ("LoRa-3", "TC1"),
                              ("Probe1", "value")}
    first = hits[0].reasons[0]
    assert "`tempreature` ~ `temperature` (91)" in first  # the reason, with the fuzzy score
    tc = next(h for h in hits if h.sensor.entity_id == "LoRa-1")
    assert any(r.startswith("`TC1`: names AirTemperature") for r in tc.reasons)  # the alias its name is


def test_the_issues_example_near_a_point_seen_in_the_last_hour() -> None:
    """``tempreature near <point> seen in the last hour``: the right sensors, nothing else."""
    hits = INDEX.search(Query("tempreature", near=(5.30, 4.00, 2_000), seen_within=3600, now=NOW))
    assert set(ids(hits)) == {("Room1", "temperature"), ("LoRa-1", "TC1"), ("Probe1", "value")}
    assert all(h.score >= 80 for h in hits)


def test_aliases_units_and_words() -> None:
    assert ids(INDEX.search(Query("soil moisture"))) == [("Field1", "soilMoisture")]
    assert ("Room1", "HU") in ids(INDEX.search(Query("humidity")))
    assert ("Probe1", "value") in ids(INDEX.search(Query("degC")))  # a unit of temperatures only
    assert ("Field1", "soilMoisture") not in ids(INDEX.search(Query("battery")))  # "%" alone is not telling
    assert INDEX.search(Query("xylophone")) == []


def test_tenant_and_polygon_filters() -> None:
    mine = INDEX.search(Query("temperature", tenants=frozenset({"farm"})))
    assert {h.sensor.tenant for h in mine} == {"farm"}
    square = ((5.29, 3.99), (5.29, 4.006), (5.306, 4.006), (5.306, 3.99))
    within = INDEX.search(Query("temperature", within=square))
    assert set(ids(within)) == {("Room1", "temperature"), ("LoRa-1", "TC1"), ("LoRa-3", "TC1"), ("Probe1", "value")}


def test_limit_keeps_the_best() -> None:
    hits = INDEX.search(Query("temperature", limit=2))
    assert len(hits) == 2 and hits[0].score >= hits[1].score


def test_words_of_names() -> None:
    assert words("soilMoisture") == ["soil", "moisture"]
    assert words("TC1") == ["tc", "1"]
    assert concepts_of("PM25", "Device", None)[0]  # a gateway's sensor name


@settings(max_examples=100, deadline=None)
@given(st.floats(-80, 80), st.floats(-179, 179), st.floats(-80, 80), st.floats(-179, 179))
def test_distance_is_a_metric(lat1: float, lon1: float, lat2: float, lon2: float) -> None:
    d = distance_m(lat1, lon1, lat2, lon2)
    assert d >= 0 and math.isclose(d, distance_m(lat2, lon2, lat1, lon1), abs_tol=1e-6)
    assert distance_m(lat1, lon1, lat1, lon1) == 0
    assert d <= math.pi * 6_371_000 + 1


@given(st.floats(0.01, 0.99), st.floats(0.01, 0.99))
def test_inside_a_square(y: float, x: float) -> None:
    square = ((0, 0), (0, 1), (1, 1), (1, 0))
    assert inside(y, x, square) and not inside(y + 1, x, square) and not inside(y, x - 1, square)


@settings(max_examples=50, deadline=None)
@given(st.text(max_size=30))
def test_any_text_is_searched_without_error(text: str) -> None:
    for hit in INDEX.search(Query(text)):
        assert 0 <= hit.score <= 100 and hit.reasons


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.floats(-80, 80), st.floats(-179, 179)), min_size=1, max_size=20),
       st.lists(st.tuples(st.floats(-10, 10), st.floats(-10, 10)), min_size=3, max_size=6),
       st.floats(-80, 80), st.floats(-179, 179))
def test_the_vector_filters_agree_with_the_plain_ones(
    points: list[tuple[float, float]], polygon: list[tuple[float, float]], lat: float, lon: float,
) -> None:
    """The index filters candidates with numpy (``distances_m``, ``inside_all``): the same
    answers as the one-point functions."""
    lats, lons = np.array([p[0] for p in points]), np.array([p[1] for p in points])
    far = distances_m(lat, lon, lats, lons)
    for (plat, plon), d in zip(points, far, strict=True):
        assert math.isclose(d, distance_m(lat, lon, plat, plon), rel_tol=1e-9, abs_tol=1e-6)
    assert inside_all(lats, lons, polygon).tolist() == [inside(plat, plon, polygon) for plat, plon in points]
    assert not inside_all(np.array([math.nan]), np.array([math.nan]), polygon)[0]  # no place: outside


def test_a_private_sensor_is_for_its_owner_and_the_platform() -> None:
    index = Index([Sensor("waziup", "Mine", "Device", "TC1", owner="bob", private=True),
                   Sensor("waziup", "Public", "Device", "TC1", owner="alice")])
    assert {h.sensor.entity_id for h in index.search(Query("temperature", viewer="bob"))} == {"Mine", "Public"}
    assert {h.sensor.entity_id for h in index.search(Query("temperature", viewer="eve"))} == {"Public"}
    assert {h.sensor.entity_id for h in index.search(Query("temperature", viewer=""))} == {"Public"}  # the guest
    assert {h.sensor.entity_id for h in index.search(Query("temperature"))} == {"Mine", "Public"}  # admin, platform


def test_the_entity_type_speaks_only_for_an_attribute_that_names_nothing() -> None:
    """A TemperatureAlert's `active` and `threshold` are no temperature sensors; a
    TemperatureSensor's `value` is one, and a Room's `temperature` of course (seen on
    `make run`: the alert entities of examples/nodered-app once ranked with the rooms)."""
    sensors = [
        Sensor("", "urn:alert:Room1", "TemperatureAlert", "active"),
        Sensor("", "urn:alert:Room1", "TemperatureAlert", "threshold"),
        Sensor("", "Probe7", "TemperatureSensor", "value"),
        Sensor("", "Room1", "Room", "temperature"),
    ]
    found = {(hit.sensor.entity_id, hit.sensor.attr) for hit in Index(sensors).search(Query("tempreature"))}
    assert ("Room1", "temperature") in found and ("Probe7", "value") in found
    assert ("urn:alert:Room1", "active") not in found and ("urn:alert:Room1", "threshold") not in found
