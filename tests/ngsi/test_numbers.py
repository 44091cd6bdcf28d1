"""ngsi.numbers: user-typed numbers read with ASCII grammars and bounds, never a crash."""

from __future__ import annotations

import math
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ngsi.numbers import MAX_NUMBER_LENGTH, MAX_SAFE_INT, finite_double, is_ascii_digits, parse_number, parse_uint

UNICODE_DIGITS = ["²", "٣", "３", "۵", "߁", "১", "¹", "⑤", "𝟙"]


@given(st.integers(0, 10**30), st.integers(0, 5), st.integers(1, 10**20))
def test_uint_reads_ascii_numerals_saturating_at_the_cap(n: int, zeros: int, cap: int) -> None:
    assert parse_uint("0" * zeros + str(n), cap=cap) == min(n, cap)


@given(st.text())
def test_uint_is_none_unless_ascii_digits(text: str) -> None:
    value = parse_uint(text, cap=1000)
    if text and all(c in "0123456789" for c in text):
        assert value == min(int(text), 1000)
    else:
        assert value is None


@pytest.mark.parametrize("text", UNICODE_DIGITS + ["", " 1", "1 ", "+1", "-1", "1.0", "1_0", "0x1", "1e3"])
def test_uint_refuses_what_isdigit_or_int_would_take(text: str) -> None:
    assert parse_uint(text, cap=10) is None
    assert not is_ascii_digits(text)


def test_uint_of_huge_numerals_is_immediate() -> None:
    started = time.perf_counter()
    assert parse_uint("9" * 1_000_000, cap=2**62) == 2**62  # int() would refuse past 4,300 digits
    assert parse_uint("0" * 1_000_000 + "7", cap=10) == 7
    assert time.perf_counter() - started < 1


@given(st.one_of(st.integers(-MAX_SAFE_INT, MAX_SAFE_INT), st.floats(allow_nan=False, allow_infinity=False)))
def test_number_reads_back_what_repr_writes(x: int | float) -> None:
    value = parse_number(repr(x))
    assert value == x and type(value) is type(x)


@given(st.integers())
def test_number_keeps_ints_a_double_holds_and_doubles_beyond(n: int) -> None:
    value = parse_number(str(n))
    if len(str(n)) > MAX_NUMBER_LENGTH:
        assert value is None
    elif -MAX_SAFE_INT <= n <= MAX_SAFE_INT:
        assert value == n and type(value) is int
    else:
        try:
            expected: float | None = float(n)
        except OverflowError:
            expected = None
        assert value == expected and (value is None or type(value) is float)


@given(st.text(max_size=20))
def test_number_is_finite_or_none(text: str) -> None:
    value = parse_number(text)
    assert value is None or (isinstance(value, (int, float)) and math.isfinite(value))


@pytest.mark.parametrize(
    "text",
    UNICODE_DIGITS + ["inf", "-inf", "nan", "Infinity", "1_0", "0x10", "1e400", "-1e400", "", " 1", "1 ", "1e",
                      ".", "+", "1.2.3", "１", "1" * (MAX_NUMBER_LENGTH + 1)],
)
def test_number_refuses(text: str) -> None:
    assert parse_number(text) is None


@pytest.mark.parametrize(("text", "value"), [("12", 12), ("-0.5", -0.5), ("1e3", 1000.0), (".5", 0.5), ("+7", 7),
                                             ("5.", 5.0), ("9007199254740993", 9007199254740992.0)])
def test_number_accepts_decimal_forms(text: str, value: int | float) -> None:
    assert parse_number(text) == value


@given(st.one_of(st.integers(), st.floats()))
def test_finite_double_is_what_a_double_holds(x: int | float) -> None:
    result = finite_double(x)
    try:
        as_float = float(x)
    except OverflowError:
        as_float = math.inf
    if not math.isfinite(as_float):
        assert result is None
    elif isinstance(x, int) and -MAX_SAFE_INT <= x <= MAX_SAFE_INT:
        assert result == x and type(result) is int
    else:
        assert result == as_float and type(result) is float
