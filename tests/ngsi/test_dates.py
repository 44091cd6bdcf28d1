"""ngsi.dates: Orion's ISO 8601 reading and writing, from the functional test cases."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ngsi.dates import format_datetime, parse_datetime

# 2631_partial_datetimes/partial_datetime_creation: all the same instant
PARTIAL = [
    "2016-10-01", "2016-10-01T00", "2016-10-01T00Z", "2016-10-01T00:00", "2016-10-01T00:00Z",
    "2016-10-01T00:00:00", "2016-10-01T00:00:00Z", "2016-10-01T00:00:00.000", "2016-10-01T00:00:00.000Z",
    "2016-10-01T0000", "2016-10-01T0000Z", "2016-10-01T000000", "2016-10-01T000000Z",
    "2016-10-01T000000.000", "2016-10-01T000000.000Z",
]

# 2632_timezones/timezones: all 2016-10-01T01:23:45.000Z
TIMEZONES = [
    "2016-10-01T01:23:45.000", "2016-10-01T01:23:45.000Z", "2016-10-01T02:23:45.000+01:00",
    "2016-10-01T02:53:45.000+01:30", "2016-10-01T02:23:45.000+0100", "2016-10-01T02:53:45.000+0130",
    "2016-10-01T02:23:45.000+01", "2016-10-01T00:23:45.000-01:00", "2016-09-30T23:53:45.000-01:30",
    "2016-10-01T00:23:45.000-0100", "2016-09-30T23:53:45.000-0130", "2016-10-01T00:23:45.000-01",
]


@pytest.mark.parametrize("text", PARTIAL)
def test_2631_partial_datetimes(text: str) -> None:
    assert format_datetime(parse_datetime(text)) == "2016-10-01T00:00:00.000Z"  # type: ignore[arg-type]


@pytest.mark.parametrize("text", TIMEZONES)
def test_2632_timezones(text: str) -> None:
    assert format_datetime(parse_datetime(text)) == "2016-10-01T01:23:45.000Z"  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "rendered"),
    [
        ("2016-04-05T14:10:00.000+01.00", "2016-04-05T13:10:00.000Z"),  # 2303 step 04
        ("2020-07-03T09:24:04.456", "2020-07-03T09:24:04.456Z"),  # 2670
        ("2020-07-03T09:24:04.456+0100", "2020-07-03T08:24:04.456Z"),  # 2670
        ("2051-01-01T00:00:00.666", "2051-01-01T00:00:00.666Z"),  # 0876
        ("2035-06-15T07:21:24.238Z", "2035-06-15T07:21:24.238Z"),  # 1885
        ("2050-04-05T14:00:00.00Z", "2050-04-05T14:00:00.000Z"),  # 1039
        ("2020-05-10T01:02:03Z", "2020-05-10T01:02:03.000Z"),  # 2670
        ("2016-09-30T21:18:52-0130", "2016-09-30T22:48:52.000Z"),  # 2632 filters
        ("1900-01-01T00:00:00Z", "1900-01-01T00:00:00.000Z"),
        ("1982-06-14T17:15:00.00Z", "1982-06-14T17:15:00.000Z"),
        ("2017", "2017-01-01T00:00:00.000Z"),  # reduced precision (ISO 8601)
        ("2017-06", "2017-06-01T00:00:00.000Z"),
        ("2020-02-29", "2020-02-29T00:00:00.000Z"),
        ("2017-06-17T07:21:24.2386Z", "2017-06-17T07:21:24.239Z"),  # nearest millisecond
    ],
)
def test_accepted(text: str, rendered: str) -> None:
    assert format_datetime(parse_datetime(text)) == rendered  # type: ignore[arg-type]


def test_epoch_values() -> None:
    assert parse_datetime("1970-01-01T00:00:00Z") == 0.0
    assert parse_datetime("2016-10-01T01:23:45.000Z") == 1475285025.0
    assert parse_datetime("2020-05-10T01:02:03.123Z") == 1589072523.123
    assert parse_datetime("2016-09-30T22:48:52") < parse_datetime("2016-09-30T22:48:52.001Z")  # type: ignore[operator]


@pytest.mark.parametrize(
    "text",
    [
        "foo", "bar", "just a string", "", " 2016-10-01", "2016-10-01 ", "2016-10-01T00:00:00.000z",
        # 2303_subs_with_invalid_expires_dates
        "2016-04-05T14:10:0x.00Z", "2016-04-05T14:10:00,00Z", "2016-04-05T14:10:00.h00Z",
        "2016-04-05T14:10:00.0h0Z", "2016-04-05T14:10:00.,00L",
        # 4541_wrong_date_values_in_subscription
        "2022-12-21T17:16:63.00Z", "2022-12-21T17:65:03.00Z", "2022-12-21T25:16:11.00Z",
        "2022-12-34T17:16:23.00Z", "2022-13-21T17:16:43.00Z", "1899-12-21T17:16:23.00Z",
        # 4585 errors, 2106
        "2025x-04-15T10:59:59.000Z", "205604-05T14:00:00.00Z",
        # malformed in other ways
        "2016-10-01T", "2016-10-01T0", "2016-10-01T00:0000", "2016-10-01T00:00:", "2016-10-01T00:00:00.",
        "2016-10-01Z", "2016-1-01", "16-10-01", "2016-10-01T00:00:00+1", "2016-10-01T00:00:00+01:0",
        "2016-00-10", "2016-10-00", "2021-02-29", "2016-10-01T24:00:00", "1234", "12345",
        "2016-10-01T00:00:00.000Z+01:00", "２０１６-10-01",
    ],
)
def test_rejected(text: str) -> None:
    assert parse_datetime(text) is None


_instants = st.datetimes(min_value=datetime(1900, 1, 2), max_value=datetime(9999, 12, 30))


def _epoch(dt: datetime) -> float:
    return (dt.replace(tzinfo=timezone.utc) - datetime(1970, 1, 1, tzinfo=timezone.utc)).total_seconds()


@given(_instants)
def test_format_matches_datetime(dt: datetime) -> None:
    dt = dt.replace(microsecond=dt.microsecond // 1000 * 1000)
    text = format_datetime(_epoch(dt))
    assert text == dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"
    assert parse_datetime(text) == _epoch(dt)
    assert format_datetime(parse_datetime(text)) == text  # type: ignore[arg-type]


@given(_instants, st.integers(-23 * 60 - 59, 23 * 60 + 59), st.sampled_from(["{h}:{m}", "{h}{m}", "{h}.{m}"]),
       st.booleans())
def test_offsets_and_basic_form(dt: datetime, offset_min: int, tz_form: str, basic: bool) -> None:
    dt = dt.replace(microsecond=dt.microsecond // 1000 * 1000)
    local = dt + timedelta(minutes=offset_min)
    if not 1900 <= local.year <= 9999:
        return
    sign = "+" if offset_min >= 0 else "-"
    h, m = divmod(abs(offset_min), 60)
    tz = sign + tz_form.format(h=f"{h:02d}", m=f"{m:02d}")
    time_fmt = "%H%M%S" if basic else "%H:%M:%S"
    text = local.strftime("%Y-%m-%dT" + time_fmt) + f".{local.microsecond // 1000:03d}" + tz
    assert parse_datetime(text) == _epoch(dt)


@given(st.floats(min_value=-2208988800.0, max_value=253402300799.0))
def test_format_parse_round_trip_to_the_millisecond(seconds: float) -> None:
    back = parse_datetime(format_datetime(seconds))
    assert back is not None and abs(back - seconds) <= 0.0005 + abs(seconds) * 2**-50


@pytest.mark.parametrize("digits", [10, 4299, 4301, 100_000])
def test_long_fractions_are_read_in_bounded_time(digits: int) -> None:
    """Any number of fraction digits is accepted, as before; int() of more than 4,300 digits
    would raise (a 500) and take quadratic time: only the first digits count."""
    text = "2017-06-17T07:21:24.2386" + "9" * digits + "Z"
    assert format_datetime(parse_datetime(text)) == "2017-06-17T07:21:24.239Z"  # type: ignore[arg-type]
    assert parse_datetime("2017-06-17T07:21:24." + "0" * digits + "Z") == parse_datetime("2017-06-17T07:21:24Z")


@given(st.text(alphabet="0123456789", min_size=1, max_size=60))
def test_fractions_keep_their_value(frac: str) -> None:
    whole = parse_datetime("2020-05-10T01:02:03Z")
    assert parse_datetime(f"2020-05-10T01:02:03.{frac}Z") == pytest.approx(whole + int(frac) / 10 ** len(frac), abs=1e-6)  # type: ignore[operator]
