"""ngsi.jsonout: Orion's JSON bytes, checked against the Orion functional test cases."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ngsi.errors import BadRequest
from ngsi.jsonout import _float_ok, _loads_deep, _suspect, dumps, format_number, loads


def _attr(value: Any, type_: str = "Number") -> dict[str, Any]:
    return {"type": type_, "value": value, "metadata": {}}


# --- bodies of the cases, rebuilt in Orion's key order from the request payloads ---


def test_2176_nine_decimals_and_spurious_decimals() -> None:
    body = {"A": _attr(loads(b"442.123456785551")), "B": _attr(loads(b"200"))}
    out = dumps(body)
    assert len(out) == 107
    assert b'"value":442.123456786,' in out and b'"value":200,' in out
    assert format_number(loads(b"442.123456785551")) == "442.123456786"  # text/plain, 13 bytes


def test_2176_one_to_nine_decimals() -> None:
    e1 = loads(b'{"A1":42.9,"A2":42.99,"A3":42.999,"A4":42.9999,"A5":42.99999,"A6":42.999999,'
               b'"A7":42.9999999,"A8":42.99999999,"A9":42.999999999,"A10":42.9999999999}')
    e2 = loads(b'{"A1":42.1,"A2":42.01,"A3":42.001,"A4":42.0001,"A5":42.00001,"A6":42.000001,'
               b'"A7":42.0000001,"A8":42.00000001,"A9":42.000000001,"A10":42.0000000001}')
    assert dumps(e1) == (b'{"A1":42.9,"A2":42.99,"A3":42.999,"A4":42.9999,"A5":42.99999,"A6":42.999999,'
                         b'"A7":42.9999999,"A8":42.99999999,"A9":42.999999999,"A10":43}')
    assert dumps(e2) == (b'{"A1":42.1,"A2":42.01,"A3":42.001,"A4":42.0001,"A5":42.00001,"A6":42.000001,'
                         b'"A7":42.0000001,"A8":42.00000001,"A9":42,"A10":42}')
    assert len(dumps(e1)) == 136 and len(dumps(e2)) == 126


def test_2383_gps_coordinates() -> None:
    geo = loads(b'{"type":"Point","coordinates":[-42.5124478,-22.3006726]}')
    out = dumps({"id": "E", "type": "T", "location": _attr(geo, "geo:json")})
    assert len(out) == 131
    assert b"[-42.5124478,-22.3006726]" in out


def test_2506_and_2603_integers() -> None:
    out = dumps({"id": "E", "type": "T", "A": _attr(loads(b"2523232323232323"))})
    assert out == b'{"id":"E","type":"T","A":{"type":"Number","value":2523232323232323,"metadata":{}}}'
    assert len(dumps({"id": "E", "type": "Thing", "bigInt": _attr(loads(b"2147483647"))})) == 85


def test_4642_large_float_numbers() -> None:
    vals = loads(b"[1.79e308,1.7976931348623157e308,4.9406564584124654e-324,"
                 b"-1.7976931348623157e308,-4.9406564584124654e-324]")
    body = {"id": "E", "type": "T", "A": _attr(vals[0]), "maxPositive": _attr(vals[1]),
            "minNonZeroPositive": _attr(vals[2]), "maxNegative": _attr(vals[3]),
            "minNonZeroNegative": _attr(vals[4])}
    out = dumps(body)
    assert len(out) == 358
    for text in (b":1.79e+308,", b":1.7976931348623157e+308,", b":-1.7976931348623157e+308,"):
        assert text in out
    assert out.count(b'"value":0,') == 2


def test_3280_newline_escape_and_2877_slash_not_escaped() -> None:
    out = dumps({"id": "E", "type": "T", "A": _attr("000FF\nABCDGC", "Text")})
    assert out == b'{"id":"E","type":"T","A":{"type":"Text","value":"000FF\\nABCDGC","metadata":{}}}'
    assert len(out) == 79
    ent = [{"id": i, "type": "Thing", "servicePath": _attr("/", "Text")} for i in ("E1", "E2")]
    assert len(dumps(ent)) == 167


# --- the number rules ---


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "0"), (-7, "-7"), (2.0, "2"), (-0.0, "0"), (0.5, "0.5"), (-0.5, "-0.5"),
        (0.1, "0.1"), (1e-5, "0.00001"), (1e-9, "0.000000001"), (4e-10, "0"), (-4e-10, "0"),
        (1.5e-9, "0.000000001"), (1.6e-9, "0.000000002"), (123456789.123456789, "123456789.123456791"),
        (1e15, "1000000000000000"), (1e18, "1000000000000000000"),
        (2**53, "9007199254740992"), (2**53 + 1, "9007199254740992"), (2**60, "1152921504606846976"),
        (1e19, "1e+19"), (-1e20, "-1e+20"), (18446744073709551615, "1.8446744073709552e+19"),
        (1.79e308, "1.79e+308"), (5e-324, "0"),
        (42.000000001, "42"), (42.999999999, "42.999999999"), (42.9999999999, "43"), (-42.9999999999, "-43"),
    ],
)
def test_format_number(value: float, text: str) -> None:
    assert format_number(value) == text
    assert dumps([value]) == b"[" + text.encode() + b"]"


def test_format_number_refuses_bool() -> None:
    with pytest.raises(TypeError):
        format_number(True)


def test_bools_none_and_strings_untouched() -> None:
    value = {"a": True, "b": False, "c": None, "d": "é€😀", "e": [], "f": {}, "g": "a\"b\\c\t\r\b\f"}
    assert dumps(value) == orjson.dumps(value)


def test_control_characters_upper_hex() -> None:
    assert dumps("\x01\x0b\x1f\x7f") == b'"\\u0001\\u000B\\u001F\x7f"'
    # a literal backslash followed by 'u001b' is not an escape: left alone
    assert dumps("\\u001b") == b'"\\\\u001b"'
    assert dumps("\\\x1b") == b'"\\\\\\u001B"'


# --- properties ---

_short_floats = st.builds(round, st.floats(-2e7, 2e7), st.integers(0, 10))  # typical sensor values
_json_scalars = (
    st.none() | st.booleans() | st.text() | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False) | _short_floats
)
_json_values = st.recursive(
    _json_scalars,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=5), kids, max_size=4),
    max_leaves=20,
)


def _close(a: Any, b: Any) -> bool:
    """Equal, numbers within Orion's rendering error (9 decimals, doubles)."""
    if isinstance(a, dict):
        return isinstance(b, dict) and list(a) == list(b) and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(_close, a, b))
    if isinstance(a, (int, float)) and not isinstance(a, bool):
        return isinstance(b, (int, float)) and abs(float(a) - float(b)) <= 1.01e-9 + abs(float(a)) * 2**-52
    return a == b


@given(_json_values)
def test_dumps_parses_back(value: Any) -> None:
    assert _close(json.loads(dumps(value)), value)


def _reference(value: Any) -> Any:
    """Every number pre-rendered by format_number: the slow, obviously right way."""
    if isinstance(value, dict):
        return {k: _reference(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_reference(v) for v in value]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return orjson.Fragment(format_number(value))
    return value


@given(_json_values)
def test_dumps_matches_reference(value: Any) -> None:
    assert dumps(value) == dumps(_reference(value))


@given(st.floats(allow_nan=False, allow_infinity=False) | _short_floats)
def test_fast_float_check_is_sound(f: float) -> None:
    if _float_ok(f):
        assert orjson.dumps(f).decode() == format_number(f)


@given(st.lists(st.floats(allow_nan=False, allow_infinity=False) | _short_floats | st.integers(-(2**63), 2**64 - 1)))
def test_output_scan_misses_nothing(values: list[float]) -> None:
    """When the scan of orjson's output finds nothing suspect, orjson's text is Orion's."""
    out = orjson.dumps(values)
    if not _suspect(out):
        assert out == b"[" + ",".join(map(format_number, values)).encode() + b"]"


@given(st.floats(-(2.0**62), 2.0**62, allow_nan=False))
def test_numbers_never_use_exponent_inside_long_long(f: float) -> None:
    text = format_number(f)
    assert "e" not in text and not text.endswith(".") and (text == "0" or not text.startswith("-0") or "." in text)
    assert abs(float(text) - f) <= 1.01e-9 + abs(f) * 2**-52


# --- loads ---


@pytest.mark.parametrize(
    "data",
    [b"", b" ", b"{", b"[1,]", b'{"a":1,}', b'{"a"}', b"nul", b"{} x", b"NaN", b"[Infinity]", b"1e400",
     b"'a'", b'{"a":1 "b":2}', b'"\xff"', b"\xef\xbb\xbf{}", b'["\x01"]'],
)
def test_loads_parse_error(data: bytes) -> None:
    with pytest.raises(BadRequest) as info:
        loads(data)
    assert info.value.status == 400
    assert info.value.body() == {"error": "ParseError", "description": "Errors found in incoming JSON buffer"}


def test_loads_numbers_as_doubles() -> None:
    assert loads(b'{"a":9007199254740993,"b":[18446744073709551617],"c":2523232323232323,"d":"9007199254740993"}') == {
        "a": 9007199254740992.0, "b": [18446744073709551616.0], "c": 2523232323232323, "d": "9007199254740993",
    }
    assert type(loads(b"[9007199254740993]")[0]) is float
    assert type(loads(b"12345678901234567")) is float
    assert type(loads(b"[2523232323232323]")[0]) is int
    assert loads("{\"é\": 1.5}") == {"é": 1.5}


def test_loads_deeply_nested() -> None:
    """3605/3606: valid but 2000-5000 levels deep; Orion parses, then rejects the nesting."""
    depth = 5000
    deep = b'{"v":' * depth + b'[1, "x", 12345678901234567]' + b"}" * depth
    value = loads(deep)
    for _ in range(depth):
        value = value["v"]
    assert value == [1, "x", 12345678901234567.0]
    assert loads(b"[" * 3000 + b"]" * 3000) is not None
    with pytest.raises(BadRequest):
        loads(b'{"v":' * 3000 + b"1" + b"}" * 2999)  # 3604: deep and malformed
    with pytest.raises(BadRequest):
        loads(b"[" * 3000 + b"]" * 3000 + b",")


_texts = st.text(alphabet='[]{}:,"\\ 01.e-tru', max_size=12)


@settings(max_examples=300)
@given(_texts)
def test_deep_parser_agrees_with_orjson(text: str) -> None:
    try:
        expected = orjson.loads(text)
    except orjson.JSONDecodeError:
        with pytest.raises(BadRequest):
            _loads_deep(text)
    else:
        assert _loads_deep(text) == expected


def _as_orjson(value: Any) -> Any:
    """``value`` as orjson reads it: integers outside int64/uint64 are doubles."""
    if type(value) is int and not -(2**63) <= value <= 2**64 - 1:
        return float(value)
    if isinstance(value, list):
        return [_as_orjson(v) for v in value]
    if isinstance(value, dict):
        return {k: _as_orjson(v) for k, v in value.items()}
    return value


@given(_json_values)
def test_deep_parser_round_trip(value: Any) -> None:
    text = json.dumps(value, ensure_ascii=False)
    assert _loads_deep(text) == _as_orjson(json.loads(text))


@pytest.mark.parametrize("text", [
    "-100000000000000001", "1000000000000000001", "9223372036854775807", "-9223372036854775808",
    "18446744073709551615", "18446744073709551616", "-9223372036854775809", "123456789012345678901",
])
def test_deep_parser_reads_integers_as_orjson_does(text: str) -> None:
    # found by hypothesis: an 18-digit negative integer was read as a double (the sign counted as a digit)
    expected = orjson.loads(text)
    assert _loads_deep(text) == expected and type(_loads_deep(text)) is type(expected)


def test_loads_bare_scalar_with_many_digits() -> None:
    # found by the API fuzz test: a top-level float with 16+ digits crashed the big-int walk
    assert loads(b"1000000000000000.0") == 1e15
    assert loads(b"12345678901234567890") == float(12345678901234567890)
