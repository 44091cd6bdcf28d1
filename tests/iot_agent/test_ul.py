"""Ultralight 2.0 codec: grammar cases from iotagent-ul's manual and properties."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from iot_agent.codecs import ul
from iot_agent.errors import ParseError


def test_measure_values_typed_like_json_parse() -> None:
    assert ul.parse_measures("t|25|h|60.5|on|true|l|[1,2]|s|hello|n|null") == [
        {"t": 25, "h": 60.5, "on": True, "l": [1, 2], "s": "hello", "n": None}
    ]


def test_leading_timestamp_and_leading_bar() -> None:
    assert ul.parse_measures("a|1|b") == [{"TimeInstant": "a", "1": "b"}]  # odd: first field is the stamp
    assert ul.parse_measures("2016-06-13T00:35:30Z|lle|100") == [{"TimeInstant": "2016-06-13T00:35:30Z", "lle": 100}]
    assert ul.parse_measures("|t|1") == [{"t": 1}]


def test_multimeasure_groups() -> None:
    assert ul.parse_measures("gps|1.2/3.4#t|10") == [{"gps": "1.2/3.4"}, {"t": 10}]


def test_non_finite_numbers_stay_text() -> None:
    assert ul.parse_measures("a|1e400|b|NaN|c|Infinity") == [{"a": "1e400", "b": "NaN", "c": "Infinity"}]


@pytest.mark.parametrize("bad", ["", "t|", "|", "t||h|1", "t|1#", "t|1##h|2", b"\xff|1"])
def test_bad_measures(bad: str | bytes) -> None:
    with pytest.raises(ParseError):
        ul.parse_measures(bad)


def test_commands() -> None:
    assert ul.format_command("Robot1", "turn", "left") == "Robot1@turn|left"
    assert ul.format_command("dev", "cmd", {"p1": 1, "p2": True}) == "dev@cmd|p1=1|p2=true"
    assert ul.format_command("dev", "cmd", 1.0) == "dev@cmd|1"
    assert ul.format_command("dev", "cmd", [1, 2]) == "dev@cmd|1,2"
    assert ul.format_command("dev", "ping", {}) == "dev@ping"
    assert ul.parse_command("dev@cmd|p1=1|p2=2") == ("dev", "cmd", {"p1": "1", "p2": "2"})
    assert ul.parse_command("Robot1@turn|left") == ("Robot1", "turn", "left")
    assert ul.format_commands(["a@x|1", "a@y|2"]) == "a@x|1#a@y|2"


def test_command_results() -> None:
    assert ul.parse_command_result("Robot1@turn|turned left") == ("Robot1", "turn", "turned left")
    assert ul.parse_command_result("d@c|{\"ok\":1}") == ("d", "c", {"ok": 1})
    assert ul.parse_command_result("d@c|a|b") == ("d", "c", "a|b")
    for bad in ("nocommand", "d@c", "@c|1", "d@|1", "d@c@x|1"):
        with pytest.raises(ParseError):
            ul.parse_command_result(bad)


def test_configuration() -> None:
    assert ul.parse_configuration("configuration|pollingInterval|publishInterval") == (
        "configuration",
        ["pollingInterval", "publishInterval"],
    )
    assert ul.format_configuration("dev", {"pollingInterval": 200, "publishInterval": 80}, now=1561563720) == (
        "dev@configuration|pollingInterval=200|publishInterval=80|dt=20190626T154200Z"
    )
    with pytest.raises(ParseError):
        ul.parse_configuration("config|a")


# ---------------------------------------------------------------- properties

_names = st.text(st.characters(blacklist_characters="|#", blacklist_categories=("Cs",)), min_size=1, max_size=8).filter(
    lambda s: s != "TimeInstant"
)
_json_scalar = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**12), 10**12), st.floats(allow_nan=False, allow_infinity=False, width=64)
)
_json_value = st.recursive(
    _json_scalar | st.text(st.characters(blacklist_characters="|#", blacklist_categories=("Cs",)), max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text("abc", max_size=3), inner, max_size=3),
    max_leaves=6,
)


def _plain_text(s: str) -> bool:
    """Text that UL reads back as text (not JSON, not empty)."""
    return s != "" and ul.parse_value(s) == s and not isinstance(_try_json(s), (int, float, bool, list, dict, type(None)))


def _try_json(s: str) -> object:
    try:
        return json.loads(s)
    except ValueError:
        return "__text__"


_value = st.one_of(
    _json_value.filter(lambda v: not isinstance(v, str)),
    st.text(st.characters(blacklist_characters="|#", blacklist_categories=("Cs",)), min_size=1, max_size=10).filter(
        _plain_text
    ),
)


@given(st.lists(st.dictionaries(_names, _value, min_size=1, max_size=4), min_size=1, max_size=3))
def test_format_parse_round_trip(measures: list[dict[str, object]]) -> None:
    assert ul.parse_measures(ul.format_measures(measures)) == measures


@given(st.text(max_size=60))
def test_parsers_raise_only_parse_error(text: str) -> None:
    for fn in (ul.parse_measures, ul.parse_command_result, ul.parse_command, ul.parse_configuration):
        try:
            fn(text)
        except ParseError:
            pass


@given(st.binary(max_size=40))
def test_bytes_raise_only_parse_error(data: bytes) -> None:
    try:
        ul.parse_measures(data)
    except ParseError:
        pass


@given(_names.filter(lambda s: "@" not in s), _names.filter(lambda s: "@" not in s), _value)
def test_command_result_round_trip(dev: str, cmd: str, result: object) -> None:
    assert ul.parse_command_result(ul.format_command_result(dev, cmd, result)) == (dev, cmd, result)
