"""JSON in and out, byte for byte as Orion does it.

Orion keeps every JSON number as a C ``double`` and writes it with its own
``double2string()``, which is not the shortest round-trip form that orjson (and
Python) print.  The rules, as the functional test cases show them:

* integral values print without a decimal point: ``200``, ``2523232323232323``
  (2176_not_print_spurious_decimals, 2506_fix_precission_lost_large_integers);
* a value within 1e-9 of its integer part (truncated towards zero) prints as
  that integer: 42.000000001 -> ``42`` (2176 one_to_nine_decimals, E2/A9);
* otherwise ``%.9f`` with the trailing zeros (and a bare ``.``) cut:
  442.123456785551 -> ``442.123456786``, 42.9999999999 -> ``43``,
  42.999999999 stays (2176, 2383_round_number_to_nine_digits);
  so tiny values such as 4.9e-324 print ``0`` (4642_large_float_numbers);
* values outside the ``long long`` range print in the shortest round-trip
  form with a C-style exponent: ``1.79e+308``, ``1.7976931348623157e+308``
  (4642: only that form fits its Content-Length of 358);
* input numbers are parsed as doubles, so integers above 2**53 lose precision
  the way a double does.

Strings: ``"``, ``\\``, ``\\b \\f \\n \\r \\t`` get their short escapes, other
control characters ``\\u00XX`` (Orion writes the hex digits in upper case),
``/`` and non-ASCII characters are written as they are (2877 and 3280 cases:
their Content-Length counts ``/`` and ``\\n`` as 1 and 2 bytes).

orjson does the work.  Its output is scanned for numbers that Orion could
print differently (integral floats, long decimals, exponents, huge ints); only
then is the value walked and such numbers handed over as pre-rendered
``orjson.Fragment``s.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

from ngsi.errors import BadRequest

__all__ = ["dumps", "loads", "format_number", "PARSE_ERROR"]

PARSE_ERROR = "Errors found in incoming JSON buffer"

_MAX_SAFE_INT = 2**53  # beyond this an int is not exactly a double any more
_LLONG = 2.0**63  # Orion's integer path casts to long long: only inside this range
_FAST_FLOAT = 2.0**23  # below it, %.9f of the exact binary value keeps repr's <=8 decimals
_INF = float("inf")


def format_number(x: int | float) -> str:
    """Orion's ``double2string()`` for a JSON number (a Python int or float)."""
    if isinstance(x, bool):
        raise TypeError("a bool is not a JSON number")
    if isinstance(x, int):
        if -_MAX_SAFE_INT <= x <= _MAX_SAFE_INT:
            return str(int(x))
        x = float(x)  # Orion has a double: precision is lost as in 2506/2603
    return _format_float(float(x))


def _format_float(f: float) -> str:
    if f != f or f in (_INF, -_INF):
        return "null"  # never stored by Orion (its parser rejects them); orjson's choice
    if not -_LLONG < f < _LLONG:
        return repr(f)  # shortest round trip, 'e+NNN' exponent (4642)
    ip = int(f)  # (long long) f: truncation towards zero
    diff = f - ip
    if -0.000000001 < diff < 0.000000001:
        return str(ip)
    s = "%.9f" % f
    return s.rstrip("0").rstrip(".")


def _float_ok(f: float) -> bool:
    """True when orjson already writes ``f`` the way Orion does (cheap common case).

    With at most 8 decimals in the shortest form and |f| < 2**23, ``%.9f`` of the
    exact binary value gives back those digits and the value is >= 1e-8 away from
    an integer, so Orion prints exactly the shortest form too.
    """
    if -_FAST_FLOAT < f < _FAST_FLOAT:
        r = repr(f)
        if "e" not in r:
            n = len(r) - r.index(".") - 1
            if n <= 8 and not r.endswith(".0"):
                return True
            if n == 9:
                return _format_float(f) == r
    return False


def _fixed(v: Any) -> Any:
    """``v`` with the numbers orjson would print wrongly replaced by Fragments.

    Copy on write: containers without such numbers are returned as they are, so
    the common case is one walk and no allocation (and stored data is never
    modified).
    """
    t = type(v)
    # Objects and arrays have a loop each: one loop over ``v.items() if t is dict else
    # enumerate(v)`` measured ~2% slower on container-heavy values.
    if t is dict:
        out = None
        for k, x in v.items():
            tx = type(x)
            if tx is str or tx is bool or x is None:
                continue
            y = _fixed(x)
            if y is not x:
                if out is None:
                    out = dict(v)
                out[k] = y
        return v if out is None else out
    if t is list or t is tuple:
        out_list = None
        for i, x in enumerate(v):
            tx = type(x)
            if tx is str or tx is bool or x is None:
                continue
            y = _fixed(x)
            if y is not x:
                if out_list is None:
                    out_list = list(v)
                out_list[i] = y
        return v if out_list is None else out_list
    if t is float:
        return v if _float_ok(v) else orjson.Fragment(_format_float(v))
    if t is int:
        return v if -_MAX_SAFE_INT <= v <= _MAX_SAFE_INT else orjson.Fragment(format_number(v))
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return orjson.Fragment(format_number(v))  # subclasses (e.g. IntEnum): by value
    if isinstance(v, dict):
        return _fixed(dict(v))  # subclasses (OrderedDict, ...): as a plain dict
    if isinstance(v, list):
        return _fixed(list(v))
    return v


# \u00XX escapes orjson writes in lower case; Orion's toJsonString uses upper case.
# The backslash run before the 'u' must be odd (an escaped backslash is not an escape).
_LOWER_ESCAPE = re.compile(rb"(?<!\\)((?:\\\\)*\\u00[01])([0-9a-f])")


def _upper_escape(m: re.Match[bytes]) -> bytes:
    return m.group(1) + m.group(2).upper()


_DIGITS_TO_0 = bytes.maketrans(b"123456789", b"000000000")


def _suspect(out: bytes) -> bool:
    """Can a number in orjson's output differ from Orion's rendering?

    orjson writes the shortest round-trip digits; Orion writes the same text
    when a float has at most 6 integer digits and 8 decimals (see _float_ok)
    and an int at most 15 digits.  Everything else shows up as one of these
    substrings (digits mapped to 0): ``.0`` before a closer (integral float),
    9 decimals, 7 integer digits before ``.``, 16 digits, an exponent.  Strings
    can give false alarms, which only cost the exact walk.  All substring
    searches are C memchr/memmem speed, far cheaper than walking the value.
    """
    if b"." not in out:  # no decimal point at all (the common integer-only document)
        t = out.translate(_DIGITS_TO_0)
        return b"0000000000000000" in t or b"0e+" in t or b"0e-" in t
    if b".0," in out or b".0]" in out or b".0}" in out or out.endswith(b".0"):
        return True
    t = out.translate(_DIGITS_TO_0)
    return b".000000000" in t or b"0000000." in t or b"0000000000000000" in t or b"0e+" in t or b"0e-" in t


def dumps(value: Any) -> bytes:
    """Compact JSON of ``value`` as Orion writes it (dict order kept).

    Common case: orjson plus a few substring scans of its output.  Only when a
    number may need Orion's rendering is the value walked (copy on write).
    """
    try:
        out = orjson.dumps(value)
    except orjson.JSONEncodeError:
        out = b""  # e.g. an int beyond 64 bits: the walk renders it
    if not out or _suspect(out):
        out = orjson.dumps(_fixed(value))
    if b"\\u00" in out:
        out = _LOWER_ESCAPE.sub(_upper_escape, out)
    return out


def loads(data: bytes | str) -> Any:
    """Parse a request body as Orion would store it.

    Numbers become what a double holds (integers beyond 2**53 become floats).
    Invalid JSON raises ``BadRequest(..., error="ParseError")`` (3492, 3604,
    1715, 0970 cases).  Valid documents nested deeper than orjson's limit
    (3605/3606: depth 2000+, Orion parses them and then rejects the nesting)
    are parsed by a slower iterative parser.
    """
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        if "depth" not in str(exc) and "recursion" not in str(exc):
            raise BadRequest(PARSE_ERROR, error="ParseError") from None
        value = _loads_deep(data if isinstance(data, str) else _utf8(data))
    big = _BIG_DIGITS if isinstance(data, (bytes, bytearray, memoryview)) else _BIG_DIGITS_STR
    if big.search(data):
        value = _doubles(value)
    return value


_MIN_I64, _MAX_U64 = -(2**63), 2**64 - 1  # the integers orjson reads as ints

# an int beyond 2**53 has 16+ digits; only then is the (rare) converting walk needed
_BIG_DIGITS = re.compile(rb"\d{16}")
_BIG_DIGITS_STR = re.compile(r"\d{16}")


def _doubles(value: Any) -> Any:
    """Convert the ints a double cannot hold exactly to floats, in place.

    Iterative, as the value may be nested thousands deep (3605/3606 cases).
    """
    if type(value) is int:
        return value if -_MAX_SAFE_INT <= value <= _MAX_SAFE_INT else float(value)
    if type(value) is not dict and type(value) is not list:
        return value
    todo = [value]
    while todo:
        v = todo.pop()
        items = v.items() if type(v) is dict else enumerate(v)
        for k, x in items:
            tx = type(x)
            if tx is int:
                if not -_MAX_SAFE_INT <= x <= _MAX_SAFE_INT:
                    v[k] = float(x)
            elif tx is dict or tx is list:
                todo.append(x)
    return value


def _utf8(data: bytes | bytearray | memoryview) -> str:
    try:
        return bytes(data).decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest(PARSE_ERROR, error="ParseError") from None


_TOKEN = re.compile(
    r"""[ \t\n\r]*(?:
      (?P<open>[{\[]) | (?P<close>[}\]]) | (?P<colon>:) | (?P<comma>,)
    | (?P<str>"(?:[^"\\\x00-\x1f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*")
    | (?P<num>-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)
    | (?P<lit>true|false|null)
    )""",
    re.VERBOSE,
)
_LITERALS = {"true": True, "false": False, "null": None}
_VALUE, _KEY, _COLON, _AFTER = range(4)


def _loads_deep(text: str) -> Any:
    """An iterative (explicit stack) JSON parser for documents too deep for orjson."""
    err = BadRequest(PARSE_ERROR, error="ParseError")
    stack: list[Any] = []  # open containers, innermost last
    keys: list[str | None] = []  # the current member name of each open container
    root: Any = None
    state, may_close, pos = _VALUE, False, 0  # _AFTER with an empty stack: the end
    while (m := _TOKEN.match(text, pos)) is not None:
        pos = m.end()
        kind = m.lastgroup
        tok = m.group(kind)  # type: ignore[arg-type]
        if kind == "close":
            if not stack or not (state == _AFTER or may_close) or (tok == "}") != (type(stack[-1]) is dict):
                raise err
            stack.pop()
            keys.pop()
            state, may_close = _AFTER, False
        elif kind == "comma":
            if state != _AFTER or not stack:
                raise err
            state = _KEY if type(stack[-1]) is dict else _VALUE
        elif kind == "colon":
            if state != _COLON:
                raise err
            state = _VALUE
        elif state == _KEY:
            if kind != "str":
                raise err
            keys[-1] = json.loads(tok)
            state, may_close = _COLON, False
        elif state != _VALUE:
            raise err
        else:
            may_close = False
            value: Any
            if kind == "open":
                value = {} if tok == "{" else []
            elif kind == "str":
                value = json.loads(tok)
            elif kind == "num":
                # as orjson reads them: integers within int64/uint64 stay ints, others are
                # doubles (``loads`` then makes every int beyond 2**53 a double). Past 21
                # characters no integer is in range, and int() of over 4,300 digits would
                # raise: float() reads any length (inf: refused below)
                if len(tok) > 21 or any(c in tok for c in ".eE"):
                    value = float(tok)
                else:
                    value = int(tok)
                    if not _MIN_I64 <= value <= _MAX_U64:
                        value = float(tok)
                if value in (_INF, -_INF):
                    raise err  # rapidjson: "Number too big to be stored in double"
            else:
                value = _LITERALS[tok]
            if not stack:
                root = value
            elif type(stack[-1]) is dict:
                stack[-1][keys[-1]] = value
            else:
                stack[-1].append(value)
            if kind == "open":
                stack.append(value)
                keys.append(None)
                state, may_close = (_KEY if tok == "{" else _VALUE), True
            else:
                state = _AFTER
    if stack or state != _AFTER or text[pos:].strip(" \t\n\r"):
        raise err
    return root

