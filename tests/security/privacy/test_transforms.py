from __future__ import annotations

import math
import random
import statistics
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from security.privacy import geo
from security.privacy import transforms as tf
from security.privacy.keys import KeyRing
from security.privacy.periods import parse_period

ids = st.one_of(st.text(max_size=40), st.integers(), st.floats(allow_nan=False))
keys = st.binary(min_size=1, max_size=64)
lats = st.floats(-90, 90, allow_nan=False)
lons = st.floats(-180, 180, allow_nan=False)
EPS = 1e-9


# -- pseudonyms ------------------------------------------------------------------------------


@given(ids, keys, st.text(max_size=10))
def test_a_pseudonym_never_equals_the_original(value: object, key: bytes, consumer: str) -> None:
    out = tf.pseudonymize(value, key, consumer)
    assert out != value and out.startswith("pz:")
    assert tf.pseudonymize(value, key, consumer) == out  # stable


@given(st.text(max_size=40), keys, st.text(max_size=10), st.text(max_size=10))
def test_two_consumers_get_different_pseudonyms(value: str, key: bytes, a: str, b: str) -> None:
    if a != b:
        assert tf.pseudonymize(value, key, a) != tf.pseudonymize(value, key, b)


@given(st.text(max_size=40), st.text(max_size=40))
def test_two_ids_get_different_pseudonyms(a: str, b: str) -> None:
    if a != b:
        assert tf.pseudonymize(a, b"k" * 32, "user:bob") != tf.pseudonymize(b, b"k" * 32, "user:bob")


@given(st.text(max_size=40))
def test_rotation_changes_every_pseudonym(value: str) -> None:
    ring = KeyRing.generate(b"1" * 32)
    rotated = ring.rotate(b"2" * 32)
    assert tf.pseudonymize(value, ring.current_key, "c") != tf.pseudonymize(value, rotated.current_key, "c")


# -- locations -------------------------------------------------------------------------------


def _inside(lat: float, lon: float, bounds: geo.Bounds, slack: float = EPS) -> bool:
    lat_lo, lat_hi, lon_lo, lon_hi = bounds
    return lat_lo - slack <= lat <= lat_hi + slack and lon_lo - slack <= lon <= lon_hi + slack


@given(lats, lons, st.integers(1, 12))
def test_geohash_centres_stay_in_the_cell(lat: float, lon: float, precision: int) -> None:
    code = geo.geohash(lat, lon, precision)
    bounds = geo.geohash_bounds(code)
    assert _inside(lat, lon, bounds, 0)
    out = tf.generalize_geohash(f"{lat},{lon}", precision)
    glat, glon = (float(x) for x in out.split(","))
    assert _inside(glat, glon, bounds)
    assert geo.geohash(glat, glon, precision) == code  # the centre is in that cell, not a neighbour


@given(lats, lons, st.floats(1, 100_000))
def test_grid_centres_stay_in_the_cell(lat: float, lon: float, metres: float) -> None:
    bounds = geo.grid_cell(lat, lon, metres)
    assert _inside(lat, lon, bounds)
    point = tf.generalize_grid({"type": "Point", "coordinates": [lon, lat]}, metres)
    assert point["type"] == "Point"
    glon, glat = point["coordinates"]
    assert _inside(glat, glon, bounds, 1e-7)


def test_a_kilometre_cell_is_about_a_kilometre() -> None:
    lat_lo, lat_hi, lon_lo, lon_hi = geo.grid_cell(45.07, 7.68, 1000)
    assert lat_hi - lat_lo == pytest.approx(1000 / geo.METRES_PER_DEGREE)
    middle = (lat_lo + lat_hi) / 2
    assert (lon_hi - lon_lo) * geo.METRES_PER_DEGREE * math.cos(math.radians(middle)) == pytest.approx(1000)


@given(st.lists(st.tuples(st.floats(-80, 80), st.floats(-170, 170)), min_size=3, max_size=6))
def test_other_geometries_go_to_the_cell_of_their_centre(points: list[tuple[float, float]]) -> None:
    line = {"type": "LineString", "coordinates": [[lon, lat] for lat, lon in points]}
    out = tf.generalize_geohash(line, 3)
    assert out is not None and out["type"] == "Point"
    texts = tf.generalize_geohash([f"{lat},{lon}" for lat, lon in points], 3)
    assert isinstance(texts, str) and "," in texts


@pytest.mark.parametrize("value", ["nowhere", "91,0", 12, None, {"type": "Point"}, ["1,1", "x"], True])
def test_what_is_not_a_location_is_withheld(value: object) -> None:
    assert tf.generalize_geohash(value, 5) is None
    assert tf.generalize_grid(value, 1000) is None


def test_a_feature_loses_its_properties() -> None:
    feature = {"type": "Feature", "geometry": {"type": "Point", "coordinates": [7.68, 45.07]},
               "properties": {"owner": "bob"}}
    out = tf.generalize_grid(feature, 1000)
    assert out["properties"] == {} and out["geometry"]["type"] == "Point"


# -- times -----------------------------------------------------------------------------------

instants = st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1),
                        timezones=st.sampled_from([timezone.utc, timezone(timedelta(hours=2)),
                                                   timezone(timedelta(hours=-5, minutes=-30))]))
periods = st.sampled_from(["PT1S", "PT15M", "PT1H", "PT6H", "P1D", "P1W", "P1M", "P3M", "P1Y"])


@given(instants, periods)
def test_times_are_floored_within_their_period(instant: datetime, text: str) -> None:
    period = parse_period(text)
    out = tf.generalize_period(instant.isoformat(), period)
    start = datetime.fromisoformat(out)
    assert start <= instant < period.end(start)
    assert period.floor(start) == start  # a floor is its own floor


@pytest.mark.parametrize(("value", "period", "expected"), [
    ("2024-03-05T10:34:12.345Z", "PT1H", "2024-03-05T10:00:00.000Z"),
    ("2024-03-05T10:34:12+02:00", "P1D", "2024-03-05T00:00:00+00:00"),
    ("2024-03-05T01:34:12+02:00", "P1D", "2024-03-04T00:00:00+00:00"),
    ("2024-03-07T10:34:12", "P1W", "2024-03-04T00:00:00"),  # a Monday
    ("2024-08-17T10:34:12Z", "P3M", "2024-07-01T00:00:00Z"),
    ("2024-08-17T10:34:12Z", "P1Y", "2024-01-01T00:00:00Z"),
])
def test_time_examples(value: str, period: str, expected: str) -> None:
    assert tf.generalize_period(value, parse_period(period)) == expected


@pytest.mark.parametrize("value", ["yesterday", 1700000000, None, "2024-13-01T00:00:00Z"])
def test_what_is_not_a_time_is_withheld(value: object) -> None:
    assert tf.generalize_period(value, parse_period("PT1H")) is None


@pytest.mark.parametrize("text", ["P", "PT", "P1M1D", "P0D", "PT1.5H", "1H"])
def test_bad_periods(text: str) -> None:
    with pytest.raises(ValueError):
        parse_period(text)


# -- numbers ---------------------------------------------------------------------------------


@given(st.one_of(st.integers(-10**9, 10**9), st.floats(-1e9, 1e9)),
       st.one_of(st.integers(1, 1000), st.floats(0.001, 1000)))
def test_buckets_contain_the_value(value: float, size: float) -> None:
    lower = tf.generalize_bucket(value, size)
    exact, step = Decimal(repr(value)), Decimal(repr(size))
    assert Decimal(repr(lower)) <= exact < Decimal(repr(lower)) + step + Decimal("1e-12") * abs(exact)
    assert float(lower) <= value


def test_bucket_examples() -> None:
    assert tf.generalize_bucket(0.3, 0.1) == 0.3
    assert tf.generalize_bucket(17, 5) == 15 and isinstance(tf.generalize_bucket(17, 5), int)
    assert tf.generalize_bucket(-3, 5) == -5
    assert tf.generalize_bucket(21.7, 0.5) == 21.5
    assert tf.generalize_bucket("21", 5) is None and tf.generalize_bucket(True, 5) is None


# -- noise -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("epsilon", "sensitivity"), [(0.5, 100.0), (1.0, 1.0), (2.0, 0.1)])
def test_laplace_noise_has_the_stated_distribution(epsilon: float, sensitivity: float) -> None:
    rng = random.Random(18)
    b = sensitivity / epsilon
    draws = [tf.noise(0, epsilon, sensitivity, rng) for _ in range(20_000)]
    # mean 0 (sd sqrt(2) b / sqrt(n) = 0.01 b); mean |x| = b (sd b / sqrt(n) = 0.007 b)
    assert abs(statistics.fmean(draws)) < 0.05 * b
    assert statistics.fmean(abs(x) for x in draws) == pytest.approx(b, rel=0.04)
    # median 0 and P(|x| > b) = 1/e
    assert abs(statistics.median(draws)) < 0.05 * b
    assert sum(abs(x) > b for x in draws) / len(draws) == pytest.approx(0.3679, abs=0.015)


def test_noise_is_added_to_the_value_and_withholds_non_numbers() -> None:
    rng = random.Random(1)
    assert statistics.fmean(tf.noise(1000, 1, 1, rng) for _ in range(2000)) == pytest.approx(1000, abs=0.2)
    assert tf.noise("12", 1, 1, rng) is None and tf.noise(None, 1, 1, rng) is None
