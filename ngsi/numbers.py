"""Numbers typed by users, read with explicit ASCII grammars and bounds.

Python's own conversions are too lenient for text from a request and fail in ways a
server must not: ``str.isdigit`` is true for "²" (which ``int`` then refuses: a 500),
``int`` and ``float`` take any Unicode decimal digit ("٣" is 3), underscores ("1_0" is
10) and surrounding whitespace, ``float`` takes "inf" and "nan", and ``int`` raises
ValueError past 4,300 digits. Every number the broker or the IoT agent reads from a URL,
a header or a text/plain body goes through here instead: the grammar is checked first
on the characters ``0-9`` only, then the value is computed from a bounded number of
digits, so no input can raise, take long, or give a value that cannot be stored (an
int a double cannot hold, an infinity).

Pure functions: ``None`` means "not a number of this grammar", callers word the error
the way their service does.
"""

from __future__ import annotations

import math
import re
from typing import Final

__all__ = ["is_ascii_digits", "parse_uint", "parse_number", "finite_double", "MAX_SAFE_INT", "MAX_NUMBER_LENGTH"]

MAX_SAFE_INT: Final = 2**53  # beyond it an int is not exactly a double (Orion keeps doubles)
MAX_NUMBER_LENGTH: Final = 1000  # characters of a decimal number worth reading; longer: refused

_DIGITS = frozenset("0123456789")
# A decimal number as C's strtod reads one (sign, digits with an optional point, optional
# exponent), ASCII only: no hex, no inf/nan, no underscores.
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", re.ASCII)
_INTEGER = re.compile(r"[+-]?[0-9]+", re.ASCII)


def is_ascii_digits(text: str) -> bool:
    """True for a non-empty run of ``0-9`` (unlike ``str.isdigit``, no "²" nor "٣")."""
    return bool(text) and _DIGITS.issuperset(text)


def parse_uint(text: str, *, cap: int) -> int | None:
    """The value of a decimal numeral of ASCII digits (leading zeros allowed), saturated at
    ``cap``; None when ``text`` is not such a numeral.

    Saturating rather than failing lets callers keep their own rule for large values
    (a limit over its maximum is an error; an offset past any result is an empty page)
    while no numeral, however long, is ever converted in full.
    """
    if not is_ascii_digits(text):
        return None
    significant = text.lstrip("0")
    if len(significant) > len(str(cap)):
        return cap
    return min(int(significant or "0"), cap)


def parse_number(text: str) -> int | float | None:
    """A finite JSON-compatible number from a decimal text (``12``, ``-0.5``, ``1e3``,
    ``.5``, ``+7``), None when the text is not one or its value is not finite.

    Integers come back as ``int`` while a double holds them exactly (|n| <= 2**53) and as
    ``float`` beyond, the way Orion keeps every number as a double; a text longer than
    ``MAX_NUMBER_LENGTH`` is refused before any conversion.
    """
    if len(text) > MAX_NUMBER_LENGTH or _NUMBER.fullmatch(text) is None:
        return None
    if _INTEGER.fullmatch(text) is not None:
        digits = text.lstrip("+-").lstrip("0")
        if len(digits) <= 16:  # < 10**16: exact, and cheap to convert
            value = int(text)
            if -MAX_SAFE_INT <= value <= MAX_SAFE_INT:
                return value
    number = float(text)  # the grammar is checked: float() sees plain ASCII decimal text
    return number if math.isfinite(number) else None


def finite_double(value: int | float) -> int | float | None:
    """A computed number as Orion would hold it: an int a double holds exactly stays an
    int, a larger one becomes the nearest double; None when that is not finite (the
    result overflows a double)."""
    if isinstance(value, int) and not isinstance(value, bool):
        if -MAX_SAFE_INT <= value <= MAX_SAFE_INT:
            return value
        try:
            value = float(value)
        except OverflowError:
            return None
    return value if math.isfinite(value) else None
