"""JEXL expressions as Orion 4.x evaluates them (custom notifications, conditions).

Orion (built with cjexl) evaluates ``${expression}`` macros in ``httpCustom`` /
``mqttCustom`` ``payload``, ``json``, ``ngsi``, ``headers``, ``qs``... and the
``subject.condition.jexlExpression`` of a subscription.  The context is built
by the caller: attribute name -> value, plus ``id``, ``type``, ``service``,
``servicePath``, ``authToken`` and ``metadata`` as Orion does.

Interface:

* ``compile_expression(text) -> Expr``: parse once (``BadRequest`` on syntax
  errors; Orion accepts such expressions at subscription time and evaluates
  them to ``null``, so callers that notify use ``evaluate()``).
* ``Expr.evaluate(context) -> Any``: the JSON value; every runtime error and an
  undefined result give ``None`` (Orion renders ``null``).
* ``evaluate(text, context)``: compile (cached) + evaluate; syntax errors give
  ``None``.  A subscription condition holds only when this ``is True``
  (4555: number and string results do not notify).
* ``substitute(template, context) -> str``: text templates; each ``${...}``
  (up to the first ``}``: 4085 ``${${B}}`` gives ``null}``) is replaced by
  ``render_text()`` of its value: strings raw, numbers as Orion prints them,
  ``null``/undefined as ``null``, arrays/objects as compact JSON (2560, 4004).
* ``full_macro(s)`` / ``expand(value, context)``: in ``json`` and ``ngsi``
  payloads a string that is one whole macro (``"${A}"``, ``"${{a:1}}"``)
  becomes the typed value; other strings are substituted as text.

Semantics follow Orion's manual (orion-api.md, "JEXL support in custom
notifications": "Available Transformations", "Failsafe cases", "Known
limitations") and, where it is silent, the cases (4004, 4555, 4556, 4594, 4689):

* no unary minus (``A||-1`` is a syntax error, so ``null``: 4004 B2; write
  ``0-1``) and no negation ``!`` (a syntax error too, "Known limitations";
  ``compile_expression(..., negation=True)`` allows it for JavaScript JEXL);
* an identifier missing from the context is *undefined*: ``||``/``&&``/``?:``
  treat it as falsy (``A||0`` gives 0), ``!=`` as null (``A != null ? 1 : 0``
  gives 0, "Failsafe cases"), any other operation on it fails, so
  ``(A==null)?'x':A`` is ``null`` when ``A`` is missing but ``'x'`` when A is
  ``null`` (4004 missing_attribute_as_null);
* unknown transforms fail (``A|patata`` is ``null``), and so does a transform
  given a wrong type or wrong arguments (``mapper`` wants strings, ``nMapper``
  and ``thMapper`` numbers, the ``arr*`` ones arrays of numbers, empty arrays
  give ``null`` except for ``arrSort``/``arrReverse``); ``len`` also counts the
  items of an array (4004 binary_map_accum), though the manual says strings;
* ``||`` / ``&&`` return an operand (``A||'x'``), not a boolean;
* numbers are JSON numbers: ints stay ints while exact, ``/`` is true
  division, ``%`` takes the dividend's sign, division by zero fails.

Grammar (Pratt parser, lowest to highest): ``?:``, ``||``, ``&&``,
``== !=``, ``< <= > >= in``, ``+ -``, ``* / // %``, ``^``, unary ``!`` (when allowed),
postfix ``.name``, ``[index]``, ``[.filter]``, ``|transform(args)``.
Literals: numbers, ``'..'``/``".."`` strings, ``true false null``, arrays,
objects (``{a: 1, 'b c': 2}``).  Compilation turns the tree into nested
closures, so evaluation is a few Python calls per node.
"""

from __future__ import annotations

import datetime as _dt
import functools
import math
import re
import time
from collections.abc import Mapping
from typing import Any, Callable

from ngsi.errors import BadRequest
from ngsi.jsonkinds import ARRAY, BOOLEAN, FLOAT, INTEGER, OBJECT, STRING, json_kind
from ngsi.jsonout import dumps as _json_dumps
from ngsi.jsonout import format_number
from ngsi.regex import Pattern, compile_pattern

__all__ = [
    "Expr",
    "compile_expression",
    "evaluate",
    "substitute",
    "render_text",
    "full_macro",
    "expand",
    "TRANSFORMS",
    "UNDEFINED",
]


class _Undefined:
    """An identifier or key that is not there (distinct from JSON ``null``)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "UNDEFINED"

    def __bool__(self) -> bool:
        return False


UNDEFINED: Any = _Undefined()


class _Fail(Exception):
    """A runtime error: the whole expression evaluates to ``null``."""


Fn = Callable[[Any, Any], Any]  # (context, filter element) -> value
# What evaluating may raise (transforms included): the expression, or a filter's item, fails.
_RUNTIME_ERRORS = (_Fail, ArithmeticError, TypeError, ValueError, KeyError, IndexError, AttributeError)

# ---------------------------------------------------------------- lexer

_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<num>[0-9]+(?:\.[0-9]+)?)
  | (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<id>(?:[^\W\d]|\$)(?:\w|\$)*)
  | (?P<op>\|\||&&|==|!=|<=|>=|//|[-+*/%^<>!|?:.\[\](){},])
    """,
    re.VERBOSE | re.DOTALL,
)
_KEYWORDS = {"true": True, "false": False, "null": None}
_MAX_DEPTH = 200


class _Tok:
    __slots__ = ("kind", "text", "value")

    def __init__(self, kind: str, text: str, value: Any = None) -> None:
        self.kind = kind  # 'num' 'str' 'id' 'op' 'kw' 'end'
        self.text = text
        self.value = value


def _unescape(body: str, quote: str) -> str:
    """JEXL unquoting: only ``\\<quote>`` and ``\\\\`` lose their backslash (``'\\d+'`` stays a regex)."""
    return re.sub(r"\\([\\" + quote + "])", lambda m: m.group(1), body)


# After these (or at the start), JavaScript JEXL's lexer reads ``-`` then a number as a
# negative literal (TomFrost/Jexl Lexer ``_isNegative``): ``-7|substr(0,2)`` is ``"-7"``.
_NEGATIVE_AFTER = {"||", "&&", "==", "!=", "<", "<=", ">", ">=", "in", "+", "-", "*", "/", "//", "%", "^",
                   "!", "(", "[", "{", ",", "?", ":"}


def _lex(text: str, negative_literals: bool = False) -> list[_Tok]:
    toks: list[_Tok] = []
    pos, n = 0, len(text)
    while pos < n:
        m = _TOKEN_RE.match(text, pos)
        if m is None:
            raise BadRequest(f"JEXL syntax error: unexpected character at {pos}")
        kind = m.lastgroup or ""
        s = m.group()
        pos = m.end()
        if kind == "ws":
            continue
        if kind == "num":
            value = float(s) if "." in s else int(s)
            prev = toks[-1] if toks else None
            if negative_literals and prev is not None and prev.kind == "op" and prev.text == "-" and (
                len(toks) == 1 or (toks[-2].kind == "op" and toks[-2].text in _NEGATIVE_AFTER)
            ):
                toks[-1] = _Tok("num", "-" + s, -value)
                continue
            toks.append(_Tok("num", s, value))
        elif kind == "str":
            toks.append(_Tok("str", s, _unescape(s[1:-1], s[0])))
        elif kind == "id":
            if s in _KEYWORDS:
                toks.append(_Tok("kw", s, _KEYWORDS[s]))
            elif s == "in":
                toks.append(_Tok("op", s))
            else:
                toks.append(_Tok("id", s, s))
        else:
            toks.append(_Tok("op", s))
    toks.append(_Tok("end", ""))
    return toks


# ---------------------------------------------------------------- value helpers


def _is_num(v: Any) -> bool:
    return (isinstance(v, int) and not isinstance(v, bool)) or isinstance(v, float)


def _truthy(v: Any) -> bool:
    """JavaScript truthiness: arrays and objects are true even when empty."""
    if v is None or v is UNDEFINED or v is False:
        return False
    if v is True or isinstance(v, (list, dict)):
        return True
    if isinstance(v, float):
        return v != 0.0 and v == v
    return bool(v)


def _eq(a: Any, b: Any) -> bool:
    """JSON equality (a bool never equals a number)."""
    if a is UNDEFINED or b is UNDEFINED:
        raise _Fail
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if _is_num(a) and _is_num(b):
        return bool(a == b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_eq(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_eq(a[k], b[k]) for k in a)
    return type(a) is type(b) and bool(a == b)


def _num(v: Any) -> int | float:
    if not _is_num(v):
        raise _Fail
    return v  # type: ignore[no-any-return]


def _finite(r: int | float) -> int | float:
    if isinstance(r, float) and (r != r or r in (math.inf, -math.inf)):
        raise _Fail
    return r


def render_text(value: Any) -> str:
    """A value as Orion writes it inside a text template."""
    if isinstance(value, str):
        return value
    if value is None or value is UNDEFINED:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if _is_num(value):
        return format_number(value)
    return _json_dumps(value).decode()


def _add(a: Any, b: Any) -> Any:
    if _is_num(a) and _is_num(b):
        return _finite(a + b)
    if isinstance(a, str) and isinstance(b, str):
        return a + b
    if isinstance(a, str) and (_is_num(b) or isinstance(b, bool)):
        return a + render_text(b)
    if isinstance(b, str) and (_is_num(a) or isinstance(a, bool)):
        return render_text(a) + b
    raise _Fail


def _div(a: Any, b: Any) -> Any:
    a, b = _num(a), _num(b)
    if b == 0:
        raise _Fail
    return _finite(a / b)


def _floordiv(a: Any, b: Any) -> Any:
    a, b = _num(a), _num(b)
    if b == 0:
        raise _Fail
    if isinstance(a, int) and isinstance(b, int):
        return a // b
    return _finite(float(math.floor(a / b)))


def _mod(a: Any, b: Any) -> Any:
    a, b = _num(a), _num(b)
    if b == 0:
        raise _Fail
    if isinstance(a, int) and isinstance(b, int):
        r = abs(a) % abs(b)
        return -r if a < 0 else r
    return _finite(math.fmod(a, b))


def _pow(a: Any, b: Any) -> Any:
    a, b = _num(a), _num(b)
    if isinstance(a, int) and isinstance(b, int) and 0 <= b <= 64 and abs(a) < 2**53:
        return a**b
    try:
        r = float(a) ** float(b)
    except (OverflowError, ZeroDivisionError):
        raise _Fail from None
    if isinstance(r, complex):
        raise _Fail
    return _finite(r)


def _cmp(op: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def f(a: Any, b: Any) -> bool:
        if (_is_num(a) and _is_num(b)) or (isinstance(a, str) and isinstance(b, str)):
            return op(a, b)
        raise _Fail

    return f


def _in(a: Any, b: Any) -> bool:
    if a is UNDEFINED:
        raise _Fail
    if isinstance(b, list):
        return any(_eq(a, x) for x in b)
    if isinstance(b, str) and isinstance(a, str):
        return a in b
    if isinstance(b, dict) and isinstance(a, str):
        return a in b
    raise _Fail


def _arith(op: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    def f(a: Any, b: Any) -> Any:
        return _finite(op(_num(a), _num(b)))

    return f


def _js_numeric(op: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """JavaScript arithmetic: a boolean or ``null`` operand is a number (``true + 3`` is 4),
    unless ``+`` has a string operand (then it concatenates)."""

    def to_number(v: Any) -> Any:
        if isinstance(v, bool):
            return int(v)
        return 0 if v is None else v

    def f(a: Any, b: Any) -> Any:
        if isinstance(a, str) or isinstance(b, str):
            return op(a, b)
        return op(to_number(a), to_number(b))

    return f


_BINARY: dict[str, tuple[int, Callable[[Any, Any], Any]]] = {
    "==": (30, lambda a, b: _eq(a, b)),
    "!=": (30, lambda a, b: not _eq(a, b)),
    "<": (40, _cmp(lambda a, b: a < b)),
    "<=": (40, _cmp(lambda a, b: a <= b)),
    ">": (40, _cmp(lambda a, b: a > b)),
    ">=": (40, _cmp(lambda a, b: a >= b)),
    "in": (40, _in),
    "+": (50, _add),
    "-": (50, _arith(lambda a, b: a - b)),
    "*": (60, _arith(lambda a, b: a * b)),
    "/": (60, _div),
    "//": (60, _floordiv),
    "%": (60, _mod),
    "^": (70, _pow),
}
_JS_NUMERIC = {"+", "-", "*", "/", "//", "%", "^"}
_LBP: dict[str, int] = {"?": 5, "||": 10, "&&": 20, ".": 80, "[": 80, "|": 80}
_LBP.update({k: v[0] for k, v in _BINARY.items()})
_UNARY_BP = 75


def _member(obj: Any, key: Any) -> Any:
    """``obj.key`` / ``obj[key]``; anything missing is undefined."""
    if isinstance(obj, dict):
        if isinstance(key, str):
            return obj.get(key, UNDEFINED)
        return UNDEFINED
    if isinstance(obj, (list, str)):
        if isinstance(key, float) and key.is_integer():
            key = int(key)
        if isinstance(key, int) and not isinstance(key, bool) and 0 <= key < len(obj):
            return obj[key]
        return UNDEFINED
    return UNDEFINED


# ---------------------------------------------------------------- transforms

_FLOAT_RE = re.compile(r"\s*[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\s*")
_INT_RE = re.compile(r"\s*[+-]?[0-9]+\s*")


def _s(v: Any) -> str:
    if not isinstance(v, str):
        raise _Fail
    return v


def _list(v: Any) -> list[Any]:
    if not isinstance(v, list):
        raise _Fail
    return v


def _int_arg(v: Any) -> int:
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if isinstance(v, int) and not isinstance(v, bool):
        return v
    raise _Fail


def _nearest_int(v: Any) -> int:
    """A number rounded to the closest integer, halves away from zero (``nMapper``'s floats)."""
    n = _num(v)
    if isinstance(n, int):
        return n
    if not math.isfinite(n):
        raise _Fail
    return math.floor(abs(n) + 0.5) * (1 if n >= 0 else -1)


def _t_substring(x: Any, a: Any, b: Any) -> str:
    s, i, j = _s(x), _int_arg(a), _int_arg(b)
    if not 0 <= i <= j <= len(s):
        raise _Fail  # Orion: null on wrong positions (4004 substring case)
    return s[i:j]


def _t_index_of(x: Any, sub: Any) -> Any:
    r = _s(x).find(_s(sub))
    return None if r < 0 else r


def _t_len(x: Any) -> int:
    if isinstance(x, (str, list, dict)):
        return len(x)
    raise _Fail


def _t_includes(x: Any, sub: Any) -> bool:
    if isinstance(x, str):
        return _s(sub) in x
    if isinstance(x, list):
        return any(_eq(sub, e) for e in x)
    raise _Fail


def _t_is_nan(x: Any) -> bool:
    if _is_num(x):
        return False
    if isinstance(x, str):
        return _FLOAT_RE.fullmatch(x) is None
    return True


def _t_parse_int(x: Any) -> int:
    if _is_num(x):
        return int(x)
    if isinstance(x, str) and _INT_RE.fullmatch(x):
        return int(x)
    raise _Fail


def _t_parse_float(x: Any) -> float:
    if _is_num(x):
        return float(x)
    if isinstance(x, str) and _FLOAT_RE.fullmatch(x):
        return _finite(float(x))
    raise _Fail


_TYPE_OF: dict[str | None, str] = {
    STRING: "String", BOOLEAN: "Boolean", INTEGER: "Number", FLOAT: "Number", ARRAY: "Array", OBJECT: "Object",
}


def _t_type_of(x: Any) -> str:
    """``typeOf``: JEXL's name of the value's kind; null, undefined and the rest are "Null"."""
    return _TYPE_OF.get(json_kind(x), "Null")


def _t_to_json(x: Any) -> Any:
    import json

    try:
        return json.loads(_s(x))
    except ValueError:
        return None


def _t_round(x: Any, decimals: Any = None) -> Any:
    x = _num(x)
    if decimals is None:
        return _nearest_int(x)
    return _finite(round(x, _int_arg(decimals)))


def _t_to_fixed(x: Any, digits: Any) -> Any:
    n = _int_arg(digits)
    if not 0 <= n <= 100:
        raise _Fail
    return _finite(float(f"{_num(x):.{n}f}"))


def _math(f: Callable[[float], float]) -> Callable[[Any], Any]:
    def t(x: Any) -> Any:
        try:
            return _finite(f(_num(x)))
        except (ValueError, OverflowError):
            raise _Fail from None

    return t


def _t_floor_ceil(f: Callable[[float], int]) -> Callable[[Any], Any]:
    def t(x: Any) -> Any:
        x = _num(x)
        return x if isinstance(x, int) else f(x)

    return t


def _regex(p: Any) -> Pattern:
    compiled = compile_pattern(_s(p))
    if compiled is None:
        raise _Fail
    return compiled


def _t_replace_regex(x: Any, p: Any, rep: Any) -> str:
    r = _s(rep)
    return _regex(p).sub(lambda _m: r, _s(x))


def _t_match_regex(x: Any, p: Any) -> list[str]:
    return [m.group(0) for m in _regex(p).finditer(_s(x))]


def _t_mapper(x: Any, values: Any, choices: Any) -> Any:
    """``mapper``: a string input, string ``values``, same-length ``choices`` of any type."""
    x, values, choices = _s(x), _list(values), _list(choices)
    if len(values) != len(choices) or not all(isinstance(v, str) for v in values):
        raise _Fail
    for v, c in zip(values, choices):
        if x == v:
            return c
    raise _Fail


def _t_n_mapper(x: Any, values: Any, choices: Any) -> Any:
    """``nMapper``: ``mapper`` for numbers, compared as integers (floats rounded)."""
    n, values, choices = _nearest_int(x), _list(values), _list(choices)
    if len(values) != len(choices):
        raise _Fail
    keys = [_nearest_int(v) for v in values]  # every item checked: one non-number is null
    for k, c in zip(keys, choices):
        if n == k:
            return c
    raise _Fail


def _t_th_mapper(x: Any, values: Any, choices: Any) -> Any:
    """``thMapper``: ``choices[i]`` for ``values[i-1] <= x < values[i]``, the first below
    ``values[0]``, the last from the last value on."""
    x, values, choices = _num(x), _list(values), _list(choices)
    if len(choices) != len(values) + 1:
        raise _Fail
    bounds = [_num(v) for v in values]  # a non-number anywhere is null, even past the match
    for v, c in zip(bounds, choices):
        if x < v:
            return c
    return choices[-1]


def _t_dict(f: Callable[[dict[str, Any]], list[Any]]) -> Callable[[Any], Any]:
    def t(x: Any) -> Any:
        if not isinstance(x, dict):
            raise _Fail
        return f(x)

    return t


def _numbers(x: Any, *, empty_ok: bool = False) -> list[int | float]:
    """The input of the ``arr*`` transforms: an array of numbers (null otherwise, and for
    an empty one unless ``empty_ok``)."""
    arr = _list(x)
    if not arr and not empty_ok:
        raise _Fail
    return [_num(v) for v in arr]


def _t_arr_sum(x: Any) -> Any:
    total: int | float = 0
    for v in _numbers(x):
        total += v
    return _finite(total)


def _t_arr_avg(x: Any) -> Any:
    arr = _numbers(x)
    return _finite(_t_arr_sum(arr) / len(arr))


def _t_arr_med(x: Any) -> Any:
    arr = sorted(_numbers(x))
    mid = len(arr) // 2
    if len(arr) % 2:
        return arr[mid]
    return _finite((arr[mid - 1] + arr[mid]) / 2)


def _t_now(x: Any) -> Any:
    return int(time.time()) + _num(x)


def _t_to_iso_string(x: Any) -> str:
    """Seconds since the epoch to RFC 3339 (chrono's ``to_rfc3339``: ``+00:00``)."""
    secs = _num(x)
    try:
        d = _dt.datetime.fromtimestamp(secs, tz=_dt.timezone.utc)
    except (OverflowError, OSError, ValueError):
        raise _Fail from None
    base = d.strftime("%Y-%m-%dT%H:%M:%S")
    if d.microsecond:
        frac = f"{d.microsecond:06d}"
        base += "." + (frac[:3] if frac.endswith("000") else frac)
    return base + "+00:00"


def _t_get_time(x: Any) -> Any:
    """RFC 3339 / ISO 8601 to seconds since the epoch (an integer when exact)."""
    s = _s(x).strip()
    try:
        d = _dt.datetime.fromisoformat(s)
    except ValueError:
        raise _Fail from None
    if d.tzinfo is None:
        d = d.replace(tzinfo=_dt.timezone.utc)
    ts = d.timestamp()
    return int(ts) if float(ts).is_integer() else ts


def _t_to_string(x: Any) -> str:
    if x is UNDEFINED:
        raise _Fail
    return render_text(x)


TRANSFORMS: dict[str, Callable[..., Any]] = {
    "uppercase": lambda x: _s(x).upper(),
    "lowercase": lambda x: _s(x).lower(),
    "split": lambda x, sep: _s(x).split(_s(sep)) if sep != "" else list(_s(x)),
    "indexOf": _t_index_of,
    "len": _t_len,
    "trim": lambda x: _s(x).strip(),
    "substring": _t_substring,
    "includes": _t_includes,
    "isNaN": _t_is_nan,
    "parseInt": _t_parse_int,
    "parseFloat": _t_parse_float,
    "typeOf": _t_type_of,
    "toString": _t_to_string,
    "toJson": _t_to_json,
    "floor": _t_floor_ceil(math.floor),
    "ceil": _t_floor_ceil(math.ceil),
    "round": _t_round,
    "toFixed": _t_to_fixed,
    "log": _math(math.log),
    "log10": _math(math.log10),
    "log2": _math(math.log2),
    "sqrt": _math(math.sqrt),
    "replaceStr": lambda x, a, b: _s(x).replace(_s(a), _s(b)),
    "replaceRegex": _t_replace_regex,
    "matchRegex": _t_match_regex,
    "mapper": _t_mapper,
    "nMapper": _t_n_mapper,
    "thMapper": _t_th_mapper,
    "values": _t_dict(lambda d: list(d.values())),
    "keys": _t_dict(lambda d: list(d.keys())),
    "arrSum": _t_arr_sum,
    "arrAvg": _t_arr_avg,
    "arrMax": lambda x: max(_numbers(x)),
    "arrMin": lambda x: min(_numbers(x)),
    "arrMed": _t_arr_med,
    "arrSort": lambda x: sorted(_numbers(x, empty_ok=True)),
    "arrReverse": lambda x: _list(x)[::-1],
    "now": _t_now,
    "toIsoString": _t_to_iso_string,
    "getTime": _t_get_time,
}


# ---------------------------------------------------------------- parser -> closures


def _const(v: Any) -> Fn:
    return lambda ctx, el: v


class _Parser:
    def __init__(
        self,
        text: str,
        transforms: Mapping[str, Callable[..., Any]] | None = None,
        negation: bool = False,
        javascript: bool = False,
    ) -> None:
        self.transforms = TRANSFORMS if transforms is None else transforms
        self.negation = negation or javascript
        self.javascript = javascript
        self.toks = _lex(text, negative_literals=javascript)
        self.i = 0
        self.depth = 0
        self.filters = 0

    def peek(self) -> _Tok:
        return self.toks[self.i]

    def next(self) -> _Tok:
        t = self.toks[self.i]
        if t.kind != "end":
            self.i += 1
        return t

    def expect(self, op: str) -> None:
        t = self.next()
        if t.kind != "op" or t.text != op:
            raise BadRequest(f"JEXL syntax error: expected '{op}'")

    def at(self, op: str) -> bool:
        t = self.peek()
        return t.kind == "op" and t.text == op

    def lbp(self) -> int:
        t = self.peek()
        return _LBP.get(t.text, 0) if t.kind == "op" else 0

    def parse(self) -> Fn:
        fn = self.expr(0)
        if self.peek().kind != "end":
            raise BadRequest("JEXL syntax error: unexpected token")
        return fn

    def expr(self, rbp: int) -> Fn:
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise BadRequest("JEXL syntax error: expression nested too deeply")
        left = self.nud(self.next())
        while rbp < self.lbp():
            left = self.led(self.next(), left)
        self.depth -= 1
        return left

    def expr_list(self, close: str) -> list[Fn]:
        """Comma-separated expressions up to ``close`` (consumed): an array literal's items
        after ``[``, a transform's arguments after ``(``; empty when ``close`` comes first."""
        items: list[Fn] = []
        if not self.at(close):
            items.append(self.expr(0))
            while self.at(","):
                self.next()
                items.append(self.expr(0))
        self.expect(close)
        return items

    def name(self) -> str:
        t = self.next()
        if t.kind in ("id", "kw") or (t.kind == "op" and t.text == "in"):
            return t.text
        raise BadRequest("JEXL syntax error: expected a name")

    def nud(self, t: _Tok) -> Fn:
        if t.kind in ("num", "str", "kw"):
            return _const(t.value)
        if t.kind == "id":
            key = t.text
            return lambda ctx, el: ctx.get(key, UNDEFINED)
        if t.kind != "op":
            raise BadRequest("JEXL syntax error: unexpected end of expression")
        if t.text == "(":
            inner = self.expr(0)
            self.expect(")")
            return inner
        if t.text == "!":
            if not self.negation:
                raise BadRequest("JEXL syntax error: the negation operator '!' is not supported")
            operand = self.expr(_UNARY_BP)

            def not_(ctx: Any, el: Any) -> bool:
                v = operand(ctx, el)
                if v is UNDEFINED:
                    raise _Fail
                return not _truthy(v)

            return not_
        if t.text == "[":
            return self._array(self.expr_list("]"))
        if t.text == "{":
            pairs: list[tuple[str, Fn]] = []
            if not self.at("}"):
                while True:
                    k = self.next()
                    if k.kind == "str":
                        key = k.value
                    elif k.kind in ("id", "kw"):
                        key = k.text
                    else:
                        raise BadRequest("JEXL syntax error: bad object key")
                    self.expect(":")
                    pairs.append((key, self.expr(0)))
                    if not self.at(","):
                        break
                    self.next()
            self.expect("}")
            return self._object(pairs)
        if t.text == "." and self.filters:
            key = self.name()
            return lambda ctx, el: _member(el, key)
        raise BadRequest(f"JEXL syntax error: unexpected '{t.text}'")

    @staticmethod
    def _array(items: list[Fn]) -> Fn:
        def arr(ctx: Any, el: Any) -> list[Any]:
            out = []
            for f in items:
                v = f(ctx, el)
                out.append(None if v is UNDEFINED else v)
            return out

        return arr

    @staticmethod
    def _object(pairs: list[tuple[str, Fn]]) -> Fn:
        def obj(ctx: Any, el: Any) -> dict[str, Any]:
            out = {}
            for k, f in pairs:
                v = f(ctx, el)
                out[k] = None if v is UNDEFINED else v
            return out

        return obj

    def led(self, t: _Tok, left: Fn) -> Fn:
        op = t.text
        if op == ".":
            key = self.name()
            return lambda ctx, el: _member(left(ctx, el), key)
        if op == "[":
            if self.at("."):
                self.filters += 1
                cond = self.expr(0)
                self.filters -= 1
                self.expect("]")
                return self._filter(left, cond)
            index = self.expr(0)
            self.expect("]")
            return lambda ctx, el: _member(left(ctx, el), index(ctx, el))
        if op == "|":
            return self._transform(left)
        if op == "?":
            yes = self.expr(0)
            self.expect(":")
            no = self.expr(_LBP["?"] - 1)

            def cond(ctx: Any, el: Any) -> Any:
                return yes(ctx, el) if _truthy(left(ctx, el)) else no(ctx, el)

            return cond
        if op == "||":
            right = self.expr(_LBP[op])

            def or_(ctx: Any, el: Any) -> Any:
                v = left(ctx, el)
                return v if _truthy(v) else right(ctx, el)

            return or_
        if op == "&&":
            right = self.expr(_LBP[op])

            def and_(ctx: Any, el: Any) -> Any:
                v = left(ctx, el)
                return right(ctx, el) if _truthy(v) else v

            return and_
        bp, fn = _BINARY[op]
        if self.javascript and op in _JS_NUMERIC:
            fn = _js_numeric(fn)
        right = self.expr(bp)  # left associative
        if op == "!=":
            # Orion: ``A != null`` is false when A is not in the context, where ``A == null``
            # fails ("Failsafe cases"): an undefined operand compares as null here.
            def not_equal(ctx: Any, el: Any) -> bool:
                a = left(ctx, el)
                b = right(ctx, el)
                return not _eq(None if a is UNDEFINED else a, None if b is UNDEFINED else b)

            return not_equal

        def binary(ctx: Any, el: Any) -> Any:
            a = left(ctx, el)
            b = right(ctx, el)
            if a is UNDEFINED or b is UNDEFINED:
                raise _Fail
            return fn(a, b)

        return binary

    @staticmethod
    def _filter(subject: Fn, cond: Fn) -> Fn:
        """``subject[.field op value]``: the items for which the condition is truthy; one it
        cannot be evaluated on (``.p > 1`` on an item without ``p``) is left out, as JavaScript
        JEXL does, rather than failing the whole expression."""
        def filt(ctx: Any, el: Any) -> Any:
            s = subject(ctx, el)
            if s is UNDEFINED or s is None:
                return UNDEFINED
            items = s if isinstance(s, list) else [s]
            return [x for x in items if _holds(cond, ctx, x)]

        return filt

    def _transform(self, subject: Fn) -> Fn:
        name = self.name()
        args: list[Fn] = []
        if self.at("("):
            self.next()
            args = self.expr_list(")")
        impl = self.transforms.get(name)

        def transform(ctx: Any, el: Any) -> Any:
            if impl is None:
                raise _Fail  # unknown transform: null at run time (Orion accepts the sub)
            v = subject(ctx, el)
            if v is UNDEFINED:
                raise _Fail
            vals = [a(ctx, el) for a in args]
            if any(a is UNDEFINED for a in vals):
                raise _Fail
            return impl(v, *vals)

        return transform


def _holds(cond: Fn, ctx: Any, el: Any) -> bool:
    try:
        return _truthy(cond(ctx, el))
    except _RUNTIME_ERRORS:
        return False


class Expr:
    """A compiled JEXL expression; evaluate it as often as needed."""

    __slots__ = ("text", "_fn")

    def __init__(self, text: str, fn: Fn) -> None:
        self.text = text
        self._fn = fn

    def evaluate(self, context: dict[str, Any]) -> Any:
        """The JSON value of the expression; ``None`` on any runtime error."""
        try:
            v = self._fn(context, None)
        except (*_RUNTIME_ERRORS, RecursionError):
            return None
        if v is UNDEFINED:
            return None
        return v

    def __repr__(self) -> str:
        return f"Expr({self.text!r})"


def compile_expression(
    text: str,
    transforms: Mapping[str, Callable[..., Any]] | None = None,
    *,
    negation: bool = False,
    javascript: bool = False,
) -> Expr:
    """Parse ``text``; ``BadRequest`` when it is not valid JEXL.

    ``transforms`` replaces Orion's table (the IoT agent passes its own set,
    see ``iot_agent.expressions``); a transform raising ``TypeError``,
    ``ValueError``... makes the expression ``null`` like any runtime error.
    ``negation`` allows the unary ``!``: Orion does not support it ("Known
    limitations"), JavaScript JEXL (the IoT agent's) does.  ``javascript``
    (the IoT agent only; the broker never sets it) adds the rest of JavaScript
    JEXL's semantics: ``!``, negative number literals (``-7|substr(0,2)``) and
    booleans/``null`` as numbers in arithmetic (``true + 3`` is 4).
    """
    try:
        return Expr(text, _Parser(text, transforms, negation, javascript).parse())
    except RecursionError:
        raise BadRequest("JEXL syntax error: expression nested too deeply") from None


@functools.lru_cache(maxsize=4096)
def _compiled(text: str) -> Expr | None:
    try:
        return compile_expression(text)
    except BadRequest:
        return None


def evaluate(text: str, context: dict[str, Any]) -> Any:
    """Compile (cached) and evaluate; syntax errors give ``None`` as in Orion."""
    expr = _compiled(text)
    return None if expr is None else expr.evaluate(context)


# ---------------------------------------------------------------- templates


def substitute(template: str, context: dict[str, Any], missing: str = "null") -> str:
    """Replace each ``${expr}`` in a text template by its rendered value.

    A macro ends at the first ``}`` after its ``${`` (Orion's scan: 4085
    ``${${B}}`` renders ``null}``); an unterminated ``${`` stays as it is. ``missing`` stands
    for a null or undefined value (``null`` in payloads, ``""`` in urls, headers and qs).
    """
    start = template.find("${")
    if start < 0:
        return template
    out: list[str] = []
    pos = 0
    while start >= 0:
        end = template.find("}", start + 2)
        if end < 0:
            break
        out.append(template[pos:start])
        value = evaluate(template[start + 2 : end], context)
        out.append(missing if value is None else render_text(value))
        pos = end + 1
        start = template.find("${", pos)
    out.append(template[pos:])
    return "".join(out)


def full_macro(s: str) -> str | None:
    """The expression when ``s`` is one whole macro (``"${...}"``), else ``None``.

    ``"${{a:1}}"`` is one macro (its inner braces are part of the expression,
    4004 transformation_multiple); a string with a second ``${`` is not (4085).
    """
    if len(s) >= 3 and s.startswith("${") and s.endswith("}") and s.find("${", 2) < 0:
        return s[2:-1]
    return None


def expand(value: Any, context: dict[str, Any]) -> Any:
    """Macros in a JSON template (``json`` / ``ngsi`` values): whole macros typed."""
    if isinstance(value, str):
        expr = full_macro(value)
        if expr is not None:
            return evaluate(expr, context)
        return substitute(value, context)
    if isinstance(value, list):
        return [expand(v, context) for v in value]
    if isinstance(value, dict):
        return {k: expand(v, context) for k, v in value.items()}
    return value
