"""JEXL as the FIWARE IoT agents evaluate it (``attributes[].expression``,
``entityNameExp``, ``explicitAttrs``), on top of ``ngsi.jexl``'s parser.

The grammar and operators are shared with Orion's; the transforms are the
agents' (iotagent-node-lib ``lib/jexlTranformsMap.js``): lower-case names with
JavaScript semantics (``tofixed`` gives a string, ``round`` is ``Math.round``,
``mapper`` compares with ``==``, dates are milliseconds).  Any runtime error,
``undefined`` or ``NaN`` gives ``None``, which the agents do not send.
"""

from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import json
import math
import re
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

from iot_agent.codecs.ul import js_string
from iot_agent.errors import InvalidExpression
from ngsi.errors import BadRequest as _NGSIBadRequest
from ngsi.jexl import Expr, compile_expression
from ngsi.jsonkinds import BOOLEAN, FLOAT, INTEGER, STRING, json_kind
from ngsi.regex import Pattern, compile_pattern

__all__ = ["IOTA_TRANSFORMS", "compile_iota", "evaluate", "js_number"]


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def js_number(v: Any) -> float:
    """JavaScript ``Number(v)`` (NaN as ``math.nan``)."""
    if v is None:
        return 0.0
    if isinstance(v, bool):
        return 1.0 if v else 0.0
    if _is_num(v):
        return float(v)
    if isinstance(v, str):
        s = v.strip()
        if s == "":
            return 0.0
        if re.fullmatch(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", s):
            return float(s)
        if re.fullmatch(r"0[xX][0-9a-fA-F]+", s):
            return float(int(s, 16))
        if s in ("Infinity", "+Infinity"):
            return math.inf
        if s == "-Infinity":
            return -math.inf
        return math.nan
    if isinstance(v, list):
        if not v:
            return 0.0
        if len(v) == 1:
            return js_number(v[0])
    return math.nan


def _num_out(x: float) -> int | float:
    """A JS number as JSON: NaN/Infinity fail; integral values become ints."""
    if not math.isfinite(x):
        raise ValueError("not finite")
    if isinstance(x, float) and x.is_integer() and abs(x) < 2**53:
        return int(x)
    return x


def _loose_eq(a: Any, b: Any) -> bool:
    """JavaScript ``==`` on JSON primitives."""
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, (list, dict)) or isinstance(b, (list, dict)):
        return a is b
    if isinstance(a, str) and isinstance(b, str):
        return a == b
    return js_number(a) == js_number(b)


def _parse_int(v: Any, radix: Any = None) -> int:
    s = js_string(v).strip()
    base = 10 if radix is None else int(js_number(radix))
    m = re.match(r"[+-]?(0[xX])?", s)
    sign = -1 if s.startswith("-") else 1
    if base in (10, 16) and m and m.group(1) and radix in (None, 16):
        base, s = 16, s[m.end():]
    else:
        s = s.lstrip("+-") if s[:1] in "+-" else s
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"[:base] if 2 <= base <= 36 else ""
    n = 0
    k = 0
    for ch in s.lower():
        if ch not in digits:
            break
        n = n * base + digits.index(ch)
        k += 1
    if k == 0:
        raise ValueError("NaN")
    return sign * n


def _parse_float(v: Any) -> int | float:
    m = re.match(r"\s*([+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)", js_string(v))
    if not m:
        raise ValueError("NaN")
    return _num_out(float(m.group(1)))


def _date(v: Any) -> _dt.datetime:
    """``new Date(v)``: milliseconds since the epoch, or an ISO 8601 string."""
    if _is_num(v):
        return _dt.datetime.fromtimestamp(v / 1000, tz=_dt.timezone.utc)
    if isinstance(v, str):
        s = v.strip().replace("Z", "+00:00").replace("z", "+00:00")
        d = _dt.datetime.fromisoformat(s)
        return d if d.tzinfo else d.replace(tzinfo=_dt.timezone.utc)
    raise ValueError("invalid date")


def _iso(d: _dt.datetime) -> str:
    d = d.astimezone(_dt.timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond // 1000:03d}Z"


def _round(v: Any) -> int | float:
    return _num_out(float(math.floor(js_number(v) + 0.5)))


def _to_fixed(v: Any, digits: Any = 0) -> str:
    x = float(_parse_float(v))
    n = int(js_number(digits))
    if not 0 <= n <= 100:
        raise ValueError("toFixed digits")
    return f"{x:.{n}f}"


def _substr(v: Any, start: Any, length: Any = None) -> str:
    s = js_string(v)
    i = int(js_number(start))
    if i < 0:
        i = max(len(s) + i, 0)
    if length is None:
        return s[i:]
    n = int(js_number(length))
    return s[i : i + max(n, 0)]


def _mapper(v: Any, values: list[Any], choices: list[Any]) -> Any:
    for i, x in enumerate(values):
        if _loose_eq(x, v):
            if i < len(choices):
                return choices[i]
            break
    raise ValueError("no mapping")


def _thmapper(v: Any, values: list[Any], choices: list[Any]) -> Any:
    """The choice of the last threshold ``<= v`` (the first choice below every threshold)."""
    x = js_number(v)
    idx = 0
    for i, th in enumerate(values):
        if js_number(th) <= x:
            idx = i
    if idx >= len(choices):
        raise ValueError("no choice")
    return choices[idx]


def _bitwisemask(i: Any, mask: Any, op: Any, shift: Any) -> int:
    x = _parse_int(i)
    m = int(js_number(mask))
    if op == "&":
        x &= m
    elif op == "|":
        x |= m
    elif op == "^":
        x ^= m
    return x >> int(js_number(shift))


def _hextostring(v: Any) -> str:
    s = js_string(v)
    return bytes.fromhex(s).decode("utf-8", errors="replace")


_JS_TYPEOF: dict[str | None, str] = {STRING: "string", BOOLEAN: "boolean", INTEGER: "number", FLOAT: "number"}


def _js_type(v: Any) -> str:
    """JavaScript's ``typeof`` of a JSON value: null, arrays and objects are all "object"."""
    return _JS_TYPEOF.get(json_kind(v), "object")


def _user_regex(pattern: Any) -> Pattern:
    """A regex from a provisioned expression: RE2, linear time (ngsi/regex.py)."""
    compiled = compile_pattern(js_string(pattern))
    if compiled is None:
        raise ValueError(f"invalid regular expression {js_string(pattern)!r}")
    return compiled


def _replace_first(s: Any, old: Any, new: Any) -> str:
    return js_string(s).replace(js_string(old), js_string(new), 1)


def _list(v: Any) -> list[Any]:
    if not isinstance(v, list):
        raise TypeError("not an array")
    return v


def _value_picker(v: Any, pick: Any) -> list[str]:
    if not isinstance(v, dict):
        raise TypeError("not an object")
    return [k for k, x in v.items() if x == pick and type(x) is type(pick)]


def _value_picker_multi(v: Any, picks: Any) -> list[str]:
    if not isinstance(v, dict):
        raise TypeError("not an object")
    picks = _list(picks)
    return [k for k, x in v.items() if any(x == p and type(x) is type(p) for p in picks)]


def _addreduce(arr: Any) -> Any:
    items = _list(arr)
    if not items:
        raise ValueError("reduce of empty array")
    total = items[0]
    for x in items[1:]:
        if isinstance(total, str) or isinstance(x, str):
            total = js_string(total) + js_string(x)
        else:
            total = _num_out(js_number(total) + js_number(x))
    return total


IOTA_TRANSFORMS: dict[str, Callable[..., Any]] = {
    "jsonparse": lambda s: json.loads(js_string(s)),
    "jsonstringify": lambda o: json.dumps(o, separators=(",", ":"), ensure_ascii=False),
    "indexOf": lambda v, ch: js_string(v).find(js_string(ch)),
    "length": lambda v: len(js_string(v)),
    "trim": lambda v: js_string(v).strip(),
    "substr": _substr,
    "addreduce": _addreduce,
    "lengtharray": lambda a: len(_list(a)),
    "typeof": _js_type,
    "isarray": lambda a: isinstance(a, list),
    "isnan": lambda v: math.isnan(js_number(v)),
    "parseint": _parse_int,
    "parsefloat": _parse_float,
    "toisodate": lambda v: _iso(_date(v)),
    "timeoffset": lambda v: (_date(v), 0)[1],  # the agent runs in UTC
    "tostring": js_string,
    "urlencode": lambda v: urllib.parse.quote(js_string(v), safe=";,/?:@&=+$-_.!~*'()#"),
    "urldecode": lambda v: urllib.parse.unquote(js_string(v)),
    "replacestr": _replace_first,
    "replaceregexp": lambda s, r, t: _user_regex(r).sub(js_string(t).replace("\\", "\\\\"), js_string(s), count=1),
    "replaceallstr": lambda s, a, b: js_string(s).replace(js_string(a), js_string(b)),
    "replaceallregexp": lambda s, r, t: _user_regex(r).sub(js_string(t).replace("\\", "\\\\"), js_string(s)),
    "split": lambda s, ch: js_string(s).split(js_string(ch)) if js_string(ch) != "" else list(js_string(s)),
    "joinarrtostr": lambda a, ch: js_string(ch).join(js_string(x) if x is not None else "" for x in _list(a)),
    "concatarr": lambda a, b: _list(a) + (b if isinstance(b, list) else [b]),
    "mapper": lambda v, vs, cs: _mapper(v, _list(vs), _list(cs)),
    "thmapper": lambda v, vs, cs: _thmapper(v, _list(vs), _list(cs)),
    "bitwisemask": _bitwisemask,
    "slice": lambda a, i, j=None: _list(a)[int(js_number(i)) : None if j is None else int(js_number(j))],
    "addset": lambda a, x: list(dict.fromkeys(_list(a) + [x])) if all(not isinstance(e, (list, dict)) for e in a + [x]) else _list(a) + [x],
    "removeset": lambda a, x: [e for e in dict.fromkeys(_list(a)) if e != x],
    "touppercase": lambda v: js_string(v).upper(),
    "tolowercase": lambda v: js_string(v).lower(),
    "floor": lambda v: _num_out(float(math.floor(js_number(v)))),
    "ceil": lambda v: _num_out(float(math.ceil(js_number(v)))),
    "round": _round,
    "tofixed": _to_fixed,
    "gettime": lambda v: _num_out(_date(v).timestamp() * 1000),
    "toisostring": lambda v: _iso(_date(v)),
    "localestring": lambda v, *_a: _date(v).strftime("%m/%d/%Y, %I:%M:%S %p").lstrip("0"),
    "now": lambda *_a: int(time.time() * 1000),
    "hextostring": _hextostring,
    "valuePicker": _value_picker,
    "valuePickerMulti": _value_picker_multi,
    "hash": lambda v: hashlib.sha256(js_string(v).encode()).hexdigest(),
}


def _guarded(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Any failure of a transform (bad regex, date out of range...) is a runtime error: ``null``."""

    @functools.wraps(fn)
    def call(*args: Any) -> Any:
        try:
            return fn(*args)
        except Exception as exc:  # re.error and OSError are not caught by Expr.evaluate
            raise ValueError(str(exc)) from None

    return call


IOTA_TRANSFORMS = {name: _guarded(fn) for name, fn in IOTA_TRANSFORMS.items()}


@functools.lru_cache(maxsize=4096)
def compile_iota(text: str) -> Expr:
    """Compile with the agents' transforms; ``InvalidExpression`` on syntax errors."""
    if not isinstance(text, str):
        raise InvalidExpression(str(text))
    try:
        return compile_expression(text, IOTA_TRANSFORMS, javascript=True)  # JavaScript JEXL's semantics
    except _NGSIBadRequest:
        raise InvalidExpression(text) from None


def evaluate(text: str, context: dict[str, Any]) -> Any:
    """The value, or ``None`` for syntax errors, runtime errors, undefined and NaN."""
    try:
        expr = compile_iota(text)
    except InvalidExpression:
        return None
    v = expr.evaluate(context)
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v
