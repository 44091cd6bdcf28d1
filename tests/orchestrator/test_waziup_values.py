"""Sensor values of the WAZIUP API (orchestrator/waziup_api/values.py), against the contract
(shared/reference/waziup-api-v2.md; § numbers below are its sections)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.waziup_api.values import (
    CSV_HEADER,
    ValueError400,
    calib_problem,
    calibrate,
    current_timestamp,
    datapoints_csv,
    history_timestamp,
    iso_ms,
    sensor_value,
    sensor_values,
)

NOW = 1_700_000_000_123

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
utc_datetimes = st.datetimes(
    min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30), timezones=st.just(dt.UTC)
)
offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(
    lambda m: dt.timezone(dt.timedelta(minutes=m))
)


def _linear(s_min: float, r_min: float, s_max: float, r_max: float, enabled: bool = True
            ) -> dict[str, Any]:
    return {"linear": {
        "enabled": enabled,
        "value_min": {"sensor_value": s_min, "real_value": r_min},
        "value_max": {"sensor_value": s_max, "real_value": r_max},
    }}


# --- POST …/value (§3) -------------------------------------------------------------------


def test_json_value_with_timestamp_keeps_the_string_as_posted() -> None:
    body = b'{"value": 22.5, "timestamp": "2016-06-08T18:20:27.873Z"}'
    assert sensor_value(body, "application/json", NOW) == {
        "value": 22.5, "timestamp": "2016-06-08T18:20:27.873Z", "date_received": NOW,
    }


def test_json_value_without_timestamp() -> None:
    assert sensor_value(b'{"value": 25.6}', "application/json; charset=utf-8", NOW) == {
        "value": 25.6, "date_received": NOW,
    }


def test_text_plain_is_stored_as_a_string() -> None:
    # §3: "text/plain raw, which is stored as a string (26.6 becomes "26.6")".
    assert sensor_value(b"26.6", "text/plain;charset=utf-8", NOW) == {
        "value": "26.6", "date_received": NOW,
    }
    assert sensor_value(b"26.6", "Text/Plain", NOW)["value"] == "26.6"


def test_text_plain_honours_its_charset() -> None:
    assert sensor_value("été".encode("latin-1"), "text/plain; charset=latin-1", NOW)["value"] == (
        "été"
    )
    with pytest.raises(ValueError400):
        sensor_value(b"\xff", "text/plain", NOW)


@pytest.mark.parametrize("content_type", [None, "", "application/x-www-form-urlencoded",
                                          "application/vnd.api+json"])
def test_no_or_other_content_type_is_read_as_json(content_type: str | None) -> None:
    assert sensor_value(b'{"value": true}', content_type, NOW)["value"] is True


@pytest.mark.parametrize("value", [56, 56.6, "x", True, False, [1, "a"], {"a": {"b": 1}}, None])
def test_value_types_are_kept_exactly(value: Any) -> None:
    # §3: "number, string, boolean, array and object all round-trip".
    body = json.dumps({"value": value}).encode()
    assert sensor_value(body, "application/json", NOW)["value"] == value
    assert type(sensor_value(body, "application/json", NOW)["value"]) is type(value)


@given(json_values)
def test_any_json_value_round_trips(value: Any) -> None:
    body = json.dumps({"value": value}).encode()
    assert sensor_value(body, None, NOW) == {"value": value, "date_received": NOW}


def test_null_timestamp_means_none_and_extra_keys_are_ignored() -> None:
    body = b'{"value": 1, "timestamp": null, "date_received": "forged", "x": 2}'
    assert sensor_value(body, "application/json", NOW) == {"value": 1, "date_received": NOW}


@pytest.mark.parametrize("body", [
    b"", b"26.6", b'"x"', b"[1]", b"{}", b'{"values": 1}', b"{not json", b'{"value": NaN}',
    b'{"value": Infinity}', b'{"value": 1e999}', b"\xff\xfe", b"[" * 100_000,
])
def test_bad_json_bodies_are_400(body: bytes) -> None:
    with pytest.raises(ValueError400):
        sensor_value(body, "application/json", NOW)


@pytest.mark.parametrize("timestamp", [
    "yesterday", "2016-06-08", "2016-13-08T00:00:00Z", "2016-06-08T25:00:00Z", 1465410027,
    " 2016-06-08T18:20:27Z", "2016-06-08T18:20:27ZZ", True, {"$date": 1},
])
def test_bad_timestamps_are_400(timestamp: Any) -> None:
    body = json.dumps({"value": 1, "timestamp": timestamp}).encode()
    with pytest.raises(ValueError400):
        sensor_value(body, "application/json", NOW)


def test_gateway_timestamps_are_accepted() -> None:
    # LowCostLoRaGw sends local ISO times without a zone, with microseconds.
    body = b'{"value": 21.5, "timestamp": "2016-10-04T02:03:28.783385"}'
    assert sensor_value(body, None, NOW)["timestamp"] == "2016-10-04T02:03:28.783385"


# --- POST …/values (§3, §7) --------------------------------------------------------------


def test_values_batch() -> None:
    body = b'[{"value": 1, "timestamp": "2016-06-08T18:20:27Z"}, {"value": "b"}]'
    assert sensor_values(body, NOW) == [
        {"value": 1, "timestamp": "2016-06-08T18:20:27Z", "date_received": NOW},
        {"value": "b", "date_received": NOW},
    ]
    assert sensor_values(b"[]", NOW) == []


@pytest.mark.parametrize("body", [b'{"value": 1}', b"[1]", b'[{"value": 1}, {}]',
                                  b'[{"value": 1, "timestamp": "no"}]', b"", b"[1,"])
def test_bad_batches_are_400(body: bytes) -> None:
    with pytest.raises(ValueError400):
        sensor_values(body, NOW)


# --- timestamps (§3, §6) -----------------------------------------------------------------


def test_current_value_timestamps_are_whole_seconds() -> None:
    # §3: "posting 2016-06-08T18:20:27.873Z reads back as 2016-06-08T18:20:27Z".
    assert current_timestamp("2016-06-08T18:20:27.873Z") == "2016-06-08T18:20:27Z"
    assert current_timestamp("2016-06-08T18:20:27.999Z") == "2016-06-08T18:20:27Z"


def test_history_timestamps_keep_milliseconds() -> None:
    # §3: "The history (/sensors_data) keeps milliseconds: 2016-06-08T18:20:27.873Z".
    assert history_timestamp("2016-06-08T18:20:27.873Z") == "2016-06-08T18:20:27.873Z"
    assert history_timestamp("2016-06-08T18:20:27.8Z") == "2016-06-08T18:20:27.800Z"
    assert history_timestamp("2016-10-04T02:03:28.783385") == "2016-10-04T02:03:28.783Z"


def test_timestamps_without_a_fraction_come_back_identical() -> None:
    # §3 and §6: "A timestamp posted without a fraction must come back identical", "…27Z
    # stays …27Z".
    assert current_timestamp("2016-06-08T18:20:27Z") == "2016-06-08T18:20:27Z"
    assert history_timestamp("2016-06-08T18:20:27Z") == "2016-06-08T18:20:27Z"


@pytest.mark.parametrize(("posted", "utc"), [
    ("2016-06-08T20:20:27+02:00", "2016-06-08T18:20:27Z"),
    ("2016-06-08T13:20:27-0500", "2016-06-08T18:20:27Z"),
    ("2016-06-08T18:20:27", "2016-06-08T18:20:27Z"),
    ("2016-06-08T18:20Z", "2016-06-08T18:20:00Z"),
    ("2016-06-09T00:20:27+06", "2016-06-08T18:20:27Z"),
])
def test_offsets_become_utc_z(posted: str, utc: str) -> None:
    # §1: "Times are ISO-8601 UTC with Z".
    assert current_timestamp(posted) == utc
    assert history_timestamp(posted) == utc


def test_bad_timestamps_raise_400() -> None:
    for render in (current_timestamp, history_timestamp):
        with pytest.raises(ValueError400):
            render("2016-06-08T18:20:27.Z")
        with pytest.raises(ValueError400):
            render("0001-01-01T00:00:00+01:00")


def test_iso_ms() -> None:
    assert iso_ms(0) == "1970-01-01T00:00:00.000Z"
    assert iso_ms(1_465_410_027_873) == "2016-06-08T18:20:27.873Z"
    assert iso_ms(1_465_410_027_000) == "2016-06-08T18:20:27.000Z"
    assert iso_ms(-1) == "1969-12-31T23:59:59.999Z"


@given(utc_datetimes, offsets)
def test_rendering_keeps_the_instant(when: dt.datetime, zone: dt.timezone) -> None:
    posted = when.astimezone(zone).isoformat(timespec="milliseconds")
    ms = when.replace(microsecond=when.microsecond // 1000 * 1000)
    epoch_ms = (ms - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(milliseconds=1)
    assert history_timestamp(posted) == iso_ms(epoch_ms)
    assert dt.datetime.fromisoformat(history_timestamp(posted)) == ms
    assert dt.datetime.fromisoformat(current_timestamp(posted)) == when.replace(microsecond=0)


@given(utc_datetimes)
def test_whole_second_z_timestamps_are_fixed_points(when: dt.datetime) -> None:
    text = current_timestamp(when.isoformat())
    assert current_timestamp(text) == text
    assert history_timestamp(text) == text
    millis = history_timestamp(when.isoformat(timespec="milliseconds"))
    assert history_timestamp(millis) == millis


@given(st.integers(min_value=-62_135_596_800_000, max_value=253_402_300_799_999))
def test_iso_ms_round_trips(ms: int) -> None:
    text = iso_ms(ms)
    assert len(text) == 24 and text.endswith("Z")
    assert history_timestamp(text) == text
    back = dt.datetime.fromisoformat(text) - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    assert back // dt.timedelta(milliseconds=1) == ms


# --- calibration (§3 PUT …/calib, §7) ----------------------------------------------------


def test_linear_calibration_maps_the_sensor_range_onto_the_real_range() -> None:
    calib = _linear(0, 10, 100, 30)
    assert calibrate(0, calib) == 10
    assert calibrate(100, calib) == 30
    assert calibrate(50, calib) == 20
    assert calibrate(25.5, calib) == pytest.approx(15.1)
    assert calibrate(200, calib) == 50  # extrapolated, as the formula does


def test_integral_results_are_ints() -> None:
    assert type(calibrate(50, _linear(0, 10, 100, 30))) is int


@pytest.mark.parametrize("calib", [
    None, {}, _linear(0, 10, 100, 30, enabled=False), _linear(5, 1, 5, 2),
    {"linear": {"enabled": True}}, {"function": {"enabled": True, "func": "x*2"}}, "linear",
])
def test_no_usable_calibration_leaves_the_value(calib: Any) -> None:
    assert calibrate(42, calib) == 42


@pytest.mark.parametrize("value", ["26.6", True, None, [1], {"v": 1}])
def test_non_numbers_are_not_calibrated(value: Any) -> None:
    assert calibrate(value, _linear(0, 10, 100, 30)) == value


def test_values_beyond_float_range_are_left_alone() -> None:
    assert calibrate(10**400, _linear(0, 10, 100, 30)) == 10**400
    assert calibrate(1e308, _linear(0, 0, 1e-308, 1e308)) == 1e308


finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


@given(finite, finite, finite, finite, finite)
def test_calibration_is_the_linear_formula(v: float, s_min: float, r_min: float, s_max: float,
                                           r_max: float) -> None:
    got = calibrate(v, _linear(s_min, r_min, s_max, r_max))
    if s_min == s_max:
        assert got == v
    else:
        expected = r_min + (v - s_min) * (r_max - r_min) / (s_max - s_min)
        assert got == pytest.approx(expected, rel=1e-9, abs=1e-6)


@given(finite, finite)
def test_identity_calibration_changes_nothing(v: float, top: float) -> None:
    if top != 0:
        assert calibrate(v, _linear(0, 0, top, top)) == pytest.approx(v, rel=1e-9, abs=1e-9)


def test_valid_calibrations() -> None:
    assert calib_problem(_linear(0, 10, 100, 30)) is None
    assert calib_problem(_linear(0.5, -1, 2, 3.25, enabled=False)) is None
    assert calib_problem({"function": {"enabled": False, "func": "x"}}) is None
    assert calib_problem({**_linear(0, 1, 2, 3), "extra": 1}) is None


@pytest.mark.parametrize("calib", [
    None, [], "x", {}, {"linear": 1}, {"linear": {}},
    {"linear": {"enabled": "true", "value_min": {"sensor_value": 0, "real_value": 0},
                "value_max": {"sensor_value": 1, "real_value": 1}}},
    {"linear": {"enabled": True, "value_min": {"sensor_value": 0, "real_value": 0}}},
    {"linear": {"enabled": True, "value_min": {"sensor_value": "0", "real_value": 0},
                "value_max": {"sensor_value": 1, "real_value": 1}}},
    {"linear": {"enabled": True, "value_min": {"sensor_value": True, "real_value": 0},
                "value_max": {"sensor_value": 1, "real_value": 1}}},
    {"linear": {"enabled": True, "value_min": {"sensor_value": 0},
                "value_max": {"sensor_value": 1, "real_value": 1}}},
    {"function": {"enabled": True}}, {"function": {"func": "x"}}, {"function": "x"},
])
def test_invalid_calibrations_are_explained(calib: Any) -> None:
    problem = calib_problem(calib)
    assert isinstance(problem, str) and problem


# --- CSV (§7) ----------------------------------------------------------------------------


def test_csv_header_and_lines() -> None:
    # §7: header device_id,sensor_id,value,timestamp,date_received, no quoting, value
    # JSON-encoded.
    points = [
        {"device_id": "MyDevice", "sensor_id": "TC1", "value": 25.6,
         "timestamp": "2016-06-08T18:20:27.873Z", "date_received": "2016-06-08T18:20:28.001Z"},
        {"device_id": "MyDevice", "sensor_id": "TC1", "value": "26.6",
         "date_received": "2016-06-08T18:21:00.000Z"},
    ]
    assert datapoints_csv(points) == (
        "device_id,sensor_id,value,timestamp,date_received\n"
        "MyDevice,TC1,25.6,2016-06-08T18:20:27.873Z,2016-06-08T18:20:28.001Z\n"
        'MyDevice,TC1,"26.6",,2016-06-08T18:21:00.000Z\n'
    )


def test_csv_of_nothing_is_the_header() -> None:
    assert datapoints_csv([]) == CSV_HEADER + "\n"
    assert datapoints_csv(iter([])) == CSV_HEADER + "\n"


@pytest.mark.parametrize(("value", "cell"), [
    (True, "true"), (None, "null"), (7, "7"), ([1, 2], "[1,2]"), ({"a": "é"}, '{"a":"é"}'),
])
def test_csv_values_are_json(value: Any, cell: str) -> None:
    line = datapoints_csv([{"device_id": "d", "sensor_id": "s", "value": value}]).split("\n")[1]
    assert line == f"d,s,{cell},,"


@given(st.lists(st.fixed_dictionaries({"device_id": st.just("d"), "sensor_id": st.just("s"),
                                       "value": st.integers() | st.booleans()}), max_size=10))
def test_csv_has_one_line_per_point(points: list[dict[str, Any]]) -> None:
    lines = datapoints_csv(points).split("\n")
    assert lines[0] == CSV_HEADER and lines[-1] == ""
    assert len(lines) == len(points) + 2
    assert [json.loads(line.split(",")[2]) for line in lines[1:-1]] == [p["value"] for p in points]
