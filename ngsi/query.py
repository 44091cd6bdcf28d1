"""Orion's Simple Query Language: the ``q`` and ``mq`` filters.

A filter is a ``;``-separated conjunction of items::

    attr                 attribute (or compound path) exists
    !attr                ... does not exist
    attr<op>rhs          op in  ==  :  !=  >  >=  <  <=  ~=

The left-hand side is a dotted path: ``a.b.c`` is attribute ``a``, compound path
``b.c`` inside its value. A component may be single-quoted to hold dots or
operator characters (``'a.b'.c``, ``'A:1'``). In ``mq`` the second component is the
metadata name (``attr.md[.path]``). The entity dates ``dateCreated``,
``dateModified``, ``dateExpires`` (q) and the attribute dates ``attr.dateCreated``,
``attr.dateModified`` (mq) are built in and take precedence over user attributes.

The right-hand side is typed the way Orion types it: ``'...'`` is always a string;
``true``/``false`` are booleans, ``null`` is null, then a number (C ``strtod``
syntax), then an ISO 8601 date (compared as epoch seconds, as DateTime values are
stored), else a plain string. ``a,b,c`` is a list and ``a..b`` an inclusive range,
both only for ``==``/``!=``. ``~=`` takes the raw text as a regular expression.

Matching follows what Orion's MongoDB queries do, because that is what clients of
GET /v2/entities observe: every binary operator needs the path to exist; values
only compare with values of the same JSON type (``10`` never equals ``'10'``);
arrays match when any element matches (and paths reach into arrays of objects);
``!=`` is the negation of ``==`` among entities that have the path.

Parse once with :func:`parse_q` / :func:`parse_mq`; :meth:`Query.matches` then runs
closures prepared at parse time.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from ngsi.dates import parse_datetime
from ngsi.errors import BadRequest
from ngsi.regex import compile_pattern, valid

__all__ = ["Query", "Item", "Target", "Value", "Range", "ValueList", "Pattern", "parse_q", "parse_mq"]


# Orion's description texts, byte for byte.
EMPTY_Q = "empty q"
EMPTY_Q_ITEM = "empty q-item"
ONLY_WHITESPACE = "empty q-item (only whitespace)"
EMPTY_LHS = "empty left-hand-side in q-item"
EMPTY_RHS = "empty right-hand-side in q-item"
FORBIDDEN = "forbidden characters in String Filter"
NON_TERMINATED = "non-terminated forced string"
QUOTE_IN_STRING = "quote in forced string"
RANGE_OPS = "ranges only valid for equal and not equal ops"
LIST_OPS = "lists only valid for equal and not equal ops"
EMPTY_RANGE_ITEM = "empty item in range"
EMPTY_LIST_ITEM = "empty item in list"
RANGE_FROM_TYPE = "invalid data type for /range-from/"
RANGE_TO_TYPE = "invalid data type for /range-to/"
RANGE_MIXED = "invalid range: types mixed"
LIST_TYPE = "invalid JSON value type in list"

# Operators, as written (":" is normalised to "==").
EXISTS = "exists"
NOT_EXISTS = "!"
EQ, NE, GT, GE, LT, LE, MATCH = "==", "!=", ">", ">=", "<", "<=", "~="
_TWO_CHAR_OPS = frozenset((EQ, NE, GE, LE, MATCH))
_ONE_CHAR_OPS = {">": GT, "<": LT, ":": EQ}
_ORDER_OPS = frozenset((GT, GE, LT, LE))

# Value kinds of a right-hand side.
NUM, DATE, STR, BOOL, NULL = "Number", "Date", "String", "Boolean", "Null"

_WS = " \t\n\r\f\v"
# Orion's forbiddenChars(): never allowed in a right-hand side outside a forced string.
_FORBIDDEN_RHS = frozenset("<>\"'=;()")
# In a left-hand side the quote is a delimiter, misplaced it is a "forbidden" char;
# the others make Orion reject the q parameter itself.
_INVALID_LHS = frozenset("<>\"=;()")

_ENTITY_DATES = {"dateCreated": "creDate", "dateModified": "modDate", "dateExpires": "expDate"}
# Entity fields a q item can name instead of an attribute (Orion: _id.servicePath, creDate...).
_ENTITY_FIELDS = {**_ENTITY_DATES, "servicePath": "servicePath"}
_ATTR_DATES = {"dateCreated": "creDate", "dateModified": "modDate"}

# C strtod() syntax, which Orion's str2double() accepts when it consumes the whole text.
_DECIMAL_RE = re.compile(r"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf(?:inity)?|nan)\Z", re.I | re.A)
_HEX_RE = re.compile(r"[+-]?0x(?:[0-9a-f]+\.?[0-9a-f]*|\.[0-9a-f]+)(?:p[+-]?\d+)?\Z", re.I | re.A)
_INDEX_RE = re.compile(r"(?:0|[1-9][0-9]{0,8})\Z", re.A)  # array positions in a path
# Components that render without quotes.
_PLAIN_COMPONENT_RE = re.compile(r"[A-Za-z0-9_\-@#$%&*+/?|{}\[\]^`]+\Z")


# --------------------------------------------------------------------------- model


@dataclass(frozen=True, slots=True)
class Value:
    """A typed right-hand-side value; ``text`` keeps the source token for rendering."""

    kind: str
    value: Any
    text: str = field(default="", compare=False)

    def render(self) -> str:
        if self.kind == STR:
            return _render_string(self.value)
        if self.text:
            return self.text
        if self.kind == BOOL:
            return "true" if self.value else "false"
        if self.kind == NULL:
            return "null"
        return repr(self.value)


@dataclass(frozen=True, slots=True)
class Range:
    """``lo..hi``, both ends included, both of the same kind."""

    lo: Value
    hi: Value

    def render(self) -> str:
        return f"{self.lo.render()}..{self.hi.render()}"


@dataclass(frozen=True, slots=True)
class ValueList:
    """``a,b,c``: equal to any / different from all."""

    items: tuple[Value, ...]

    def render(self) -> str:
        return ",".join(v.render() for v in self.items)


@dataclass(frozen=True, slots=True)
class Pattern:
    """The raw regular expression of ``~=``."""

    source: str

    def render(self) -> str:
        return self.source


Operand = Value | Range | ValueList | Pattern


@dataclass(frozen=True, slots=True)
class Target:
    """What an item looks at.

    ``builtin`` names a date field (``creDate``...) of the entity (no ``attr``) or of
    the attribute (mq); ``md`` is the metadata name (mq only; ``""``, which never
    exists, when the mq left-hand side names no metadata).
    """

    attr: str | None
    md: str | None = None
    path: tuple[str, ...] = ()
    builtin: str | None = None
    components: tuple[str, ...] = field(default=(), compare=False)

    def render(self) -> str:
        return ".".join(_render_component(c) for c in self.components)


@dataclass(frozen=True, slots=True)
class Item:
    """One ``;``-separated statement, with its matcher compiled at parse time."""

    target: Target
    op: str
    operand: Operand | None = None
    test: Callable[[dict], bool] = field(default=lambda e: True, compare=False, repr=False)

    def render(self) -> str:
        lhs = self.target.render()
        if self.op == EXISTS:
            return lhs
        if self.op == NOT_EXISTS:
            return "!" + lhs
        assert self.operand is not None
        return f"{lhs}{self.op}{self.operand.render()}"


@dataclass(frozen=True, slots=True)
class Query:
    """A parsed q or mq filter: the AND of its items."""

    items: tuple[Item, ...]
    kind: str = "q"
    _tests: tuple[Callable[[dict], bool], ...] = field(default=(), init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_tests", tuple(item.test for item in self.items))

    def matches(self, entity: dict) -> bool:
        """True if ``entity`` (internal form, see ngsi/__init__.py) passes every item."""
        for test in self._tests:
            if not test(entity):
                return False
        return True

    def render(self) -> str:
        """Canonical text that parses back to an equal Query."""
        return ";".join(item.render() for item in self.items)


# --------------------------------------------------------------------------- parsing


def parse_q(text: str) -> Query:
    """Parse a ``q`` filter; raises BadRequest with Orion's description texts."""
    return _parse(text, "q")


def parse_mq(text: str) -> Query:
    """Parse an ``mq`` (metadata) filter; raises BadRequest with Orion's description texts."""
    return _parse(text, "mq")


def _parse(text: str, kind: str) -> Query:
    if text == "":
        raise BadRequest(EMPTY_Q)
    if not text.strip(_WS):
        raise BadRequest(ONLY_WHITESPACE)
    raw_items = _split_unquoted(text, ";")
    # Orion tokenises like strtok() (a lone leading/trailing ';' is harmless) but
    # rejects an empty item between two separators.
    if any(r == "" for r in raw_items[1:-1]):
        raise BadRequest(EMPTY_Q_ITEM)
    raw_items = [r for r in raw_items if r != ""]
    if not raw_items:
        raise BadRequest(EMPTY_Q)
    return Query(tuple(_parse_item(r, kind) for r in raw_items), kind)


def _parse_item(raw: str, kind: str) -> Item:
    s = raw.strip(_WS)
    if not s:
        raise BadRequest(EMPTY_Q_ITEM)
    if s[0] == "!" and not s.startswith("!="):
        rest = s[1:].strip(_WS)
        if not rest:
            raise BadRequest(EMPTY_RHS)
        return _item(_parse_lhs(rest, kind), NOT_EXISTS, None)
    pos, written = _find_op(s)
    if written is None:
        return _item(_parse_lhs(s, kind), EXISTS, None)
    op = _ONE_CHAR_OPS.get(written, written)
    lhs = s[:pos].strip(_WS)
    rhs = s[pos + len(written) :].strip(_WS)
    if not lhs:
        raise BadRequest(EMPTY_LHS)
    if not rhs:
        raise BadRequest(EMPTY_RHS)
    target = _parse_lhs(lhs, kind)
    return _item(target, op, _parse_rhs(rhs, op))


def _find_op(s: str) -> tuple[int, str | None]:
    """Leftmost operator outside quotes, as written (two-char operators win at a position)."""
    quoted = False
    for i, c in enumerate(s):
        if c == "'":
            quoted = not quoted
        elif not quoted:
            if s[i : i + 2] in _TWO_CHAR_OPS:
                return i, s[i : i + 2]
            if c in _ONE_CHAR_OPS:
                return i, c
    return -1, None


def _split_unquoted(s: str, sep: str) -> list[str]:
    """Split on ``sep`` outside single quotes (an unbalanced quote runs to the end)."""
    if "'" not in s:
        return s.split(sep)
    parts: list[str] = []
    start, quoted, i, n, w = 0, False, 0, len(s), len(sep)
    while i < n:
        c = s[i]
        if c == "'":
            quoted = not quoted
        elif not quoted and s.startswith(sep, i):
            parts.append(s[start:i])
            start = i + w
            i += w
            continue
        i += 1
    parts.append(s[start:])
    return parts


def _parse_lhs(lhs: str, kind: str) -> Target:
    comps: list[str] = []
    i, n = 0, len(lhs)
    while True:
        if i < n and lhs[i] == "'":
            j = lhs.find("'", i + 1)
            if j < 0:
                raise BadRequest(FORBIDDEN)
            comp, i = lhs[i + 1 : j], j + 1
            if i < n and lhs[i] != ".":
                raise BadRequest(FORBIDDEN)
        else:
            j = lhs.find(".", i)
            if j < 0:
                j = n
            comp, i = lhs[i:j], j
            if "'" in comp:
                raise BadRequest(FORBIDDEN)
            if not _INVALID_LHS.isdisjoint(comp):
                raise BadRequest(f"invalid character found in URI param /{kind}/")
        comps.append(comp)
        if i >= n:
            break
        i += 1  # the dot
    components = tuple(comps)
    if kind == "q":
        if len(comps) == 1 and comps[0] in _ENTITY_FIELDS:
            return Target(None, builtin=_ENTITY_FIELDS[comps[0]], components=components)
        return Target(comps[0], path=components[1:], components=components)
    if len(comps) == 1:  # no metadata named: "" never exists
        return Target(comps[0], "", components=components)
    if len(comps) == 2 and comps[1] in _ATTR_DATES:
        return Target(comps[0], builtin=_ATTR_DATES[comps[1]], components=components)
    return Target(comps[0], comps[1], components[2:], components=components)


def _parse_rhs(rhs: str, op: str) -> Operand:
    if op == MATCH:
        if not _FORBIDDEN_RHS.isdisjoint(rhs):
            raise BadRequest(FORBIDDEN)
        if not valid(rhs):
            raise BadRequest(f"error compiling filter regex: '{rhs}'")
        return Pattern(rhs)
    range_parts = _split_unquoted(rhs, "..")
    if len(range_parts) > 1:
        if op not in (EQ, NE):
            raise BadRequest(RANGE_OPS)
        lo_text = range_parts[0].strip(_WS)
        hi_text = "..".join(range_parts[1:]).strip(_WS)
        if not lo_text or not hi_text:
            raise BadRequest(EMPTY_RANGE_ITEM)
        lo, hi = _value(lo_text), _value(hi_text)
        if lo.kind in (BOOL, NULL):
            raise BadRequest(RANGE_FROM_TYPE)
        if hi.kind in (BOOL, NULL):
            raise BadRequest(RANGE_TO_TYPE)
        if lo.kind != hi.kind:
            raise BadRequest(RANGE_MIXED)
        return Range(lo, hi)
    list_parts = _split_unquoted(rhs, ",")
    if len(list_parts) > 1:
        if op not in (EQ, NE):
            raise BadRequest(LIST_OPS)
        items: list[Value] = []
        for part in list_parts:
            part = part.strip(_WS)
            if not part:
                raise BadRequest(EMPTY_LIST_ITEM)
            items.append(_value(part))
        kinds = {v.kind for v in items if v.kind != NULL}
        # One kind per list; null only alongside strings (Orion issue 4120).
        with_null = any(v.kind == NULL for v in items)
        if BOOL in kinds or len(kinds) > 1 or (with_null and kinds - {STR}):
            raise BadRequest(LIST_TYPE)
        return ValueList(tuple(items))
    value = _value(rhs)
    if op in _ORDER_OPS and value.kind in (BOOL, NULL):
        raise BadRequest(f"values of type /{value.kind}/ not supported for operator /{op}/")
    return value


def _value(tok: str) -> Value:
    """Type a single token as Orion does: forced string, literal, number, date, string."""
    if tok[0] == "'":
        if len(tok) < 2 or tok[-1] != "'":
            raise BadRequest(NON_TERMINATED)
        inner = tok[1:-1]
        if "'" in inner:
            raise BadRequest(QUOTE_IN_STRING)
        return Value(STR, inner, tok)
    if not _FORBIDDEN_RHS.isdisjoint(tok):
        raise BadRequest(FORBIDDEN)
    if tok == "true":
        return Value(BOOL, True, tok)
    if tok == "false":
        return Value(BOOL, False, tok)
    if tok == "null":
        return Value(NULL, None, tok)
    number = _number(tok)
    if number is not None:
        return Value(NUM, number, tok)
    date = _date(tok)
    if date is not None:
        return Value(DATE, date, tok)
    return Value(STR, tok, tok)


def _number(tok: str) -> float | None:
    if _DECIMAL_RE.match(tok):
        x = float(tok)
        if math.isinf(x) and "inf" not in tok.lower():
            return None  # strtod overflow (ERANGE): not a number for Orion
        return x
    if _HEX_RE.match(tok):
        try:
            return float.fromhex(tok)
        except OverflowError:
            return None
    return None


# --------------------------------------------------------------------------- dates


def _date(tok: str) -> float | None:
    """ISO 8601 text to epoch seconds, with the parser that stores DateTime values."""
    try:
        return parse_datetime(tok)
    except ValueError:  # e.g. a fraction longer than Python's int conversion limit
        return None


# --------------------------------------------------------------------------- rendering


def _render_component(comp: str) -> str:
    if _PLAIN_COMPONENT_RE.match(comp):
        return comp
    if "'" in comp:
        raise ValueError(f"name {comp!r} cannot be written in the query language")
    return f"'{comp}'"


def _render_string(s: str) -> str:
    if (
        s
        and s.strip(_WS) == s
        and _FORBIDDEN_RHS.isdisjoint(s)
        and "," not in s
        and ".." not in s
        and s[0] != "." and s[-1] != "."  # next to a range's ".." it would merge with it
        and s not in ("true", "false", "null")
        and _number(s) is None
        and _date(s) is None
    ):
        return s
    if "'" in s:
        raise ValueError(f"string {s!r} cannot be written in the query language")
    return f"'{s}'"


# --------------------------------------------------------------------------- matching

_MISSING: Any = object()
_NUMS = frozenset((int, float))


class _Fanout(list):
    """Several values reached through arrays on the way down a compound path."""


def _item(target: Target, op: str, operand: Operand | None) -> Item:
    return Item(target, op, operand, _compile(target, op, operand))


def _getter(t: Target) -> Callable[[dict], Any]:
    """A function from entity to the value the target designates, or _MISSING."""
    if t.attr is None:
        key = t.builtin
        return lambda e: e.get(key, _MISSING)
    name, md, path, builtin = t.attr, t.md, t.path, t.builtin
    if builtin is not None:

        def get_attr_date(e: dict) -> Any:
            a = e["attrs"].get(name)
            return _MISSING if a is None else a.get(builtin, _MISSING)

        return get_attr_date
    if md is None:

        def get_value(e: dict) -> Any:
            a = e["attrs"].get(name)
            if a is None:
                return _MISSING
            v = a.get("value")
            return _descend(v, path) if path else v

        return get_value

    def get_md(e: dict) -> Any:
        a = e["attrs"].get(name)
        if a is None:
            return _MISSING
        m = (a.get("md") or {}).get(md)
        if m is None:
            return _MISSING
        v = m.get("value")
        return _descend(v, path) if path else v

    return get_md


def _descend(v: Any, path: tuple[str, ...]) -> Any:
    """Follow a compound path the way MongoDB dotted paths do (arrays fan out)."""
    found: list[Any] = [v]
    for key in path:
        nxt: list[Any] = []
        for cur in found:
            if type(cur) is dict:
                if key in cur:
                    nxt.append(cur[key])
            elif type(cur) is list:
                if _INDEX_RE.match(key):
                    idx = int(key)
                    if idx < len(cur):
                        nxt.append(cur[idx])
                for elem in cur:
                    if type(elem) is dict and key in elem:
                        nxt.append(elem[key])
        if not nxt:
            return _MISSING
        found = nxt
    return found[0] if len(found) == 1 else _Fanout(found)


def _leaves(found: Any) -> Iterator[Any]:
    """Scalars a comparison sees: values reached, arrays unwound one level."""
    for v in found if type(found) is _Fanout else (found,):
        if type(v) is list:
            yield from v
        else:
            yield v


def _any(found: Any, pred: Callable[[Any], bool]) -> bool:
    if type(found) is list:
        for v in found:
            if pred(v):
                return True
        return False
    if type(found) is _Fanout:
        return any(pred(v) for v in _leaves(found))
    return pred(found)


def _compile(target: Target, op: str, operand: Operand | None) -> Callable[[dict], bool]:
    get = _getter(target)
    if op == EXISTS:
        return lambda e: get(e) is not _MISSING
    if op == NOT_EXISTS:
        return lambda e: get(e) is _MISSING
    assert operand is not None
    if isinstance(operand, Range):
        ge, le = _pred(GE, operand.lo), _pred(LE, operand.hi)
        inside = op == EQ

        def test_range(e: dict) -> bool:
            found = get(e)
            if found is _MISSING:
                return False
            # MongoDB: {$gte, $lte} on an array holds when some element satisfies
            # each bound (not necessarily the same one).
            return (_any(found, ge) and _any(found, le)) is inside

        return test_range
    if isinstance(operand, Pattern):
        pred = _pattern_pred(operand.source)
    elif isinstance(operand, ValueList):
        pred = _list_pred(operand)
    else:
        pred = _pred(EQ if op == NE else op, operand)
    differs = op == NE
    if target.attr is not None and target.md is None and target.builtin is None and not target.path:
        return _plain_attr_test(target.attr, pred, differs)
    if differs:

        def test_differs(e: dict) -> bool:
            found = get(e)
            return found is not _MISSING and not _any(found, pred)

        return test_differs

    def test(e: dict) -> bool:
        found = get(e)
        return found is not _MISSING and _any(found, pred)

    return test


def _plain_attr_test(name: str, pred: Callable[[Any], bool], differs: bool) -> Callable[[dict], bool]:
    """The usual ``attr<op>value`` item, with the lookup inlined (the hot path)."""
    if differs:

        def test_differs(e: dict) -> bool:
            a = e["attrs"].get(name)
            if a is None:
                return False
            v = a["value"]
            if type(v) is list:
                return not any(map(pred, v))
            return not pred(v)

        return test_differs

    def test(e: dict) -> bool:
        a = e["attrs"].get(name)
        if a is None:
            return False
        v = a["value"]
        if type(v) is list:
            return any(map(pred, v))
        return pred(v)

    return test


def _pred(op: str, value: Value) -> Callable[[Any], bool]:
    """Predicate on one scalar for ``op value`` (values only compare within a JSON type)."""
    x = value.value
    if value.kind == BOOL:
        return lambda v: v is x
    if value.kind == NULL:
        return lambda v: v is None
    # One lambda per type and operator, on purpose: the type test is inline (``type(v) is
    # str`` beats a set lookup by ~15% here) and no operator function is called. This runs
    # once per entity and candidate value when a q filter is matched.
    if value.kind == STR:
        if op == EQ:
            return lambda v: type(v) is str and v == x
        if op == GT:
            return lambda v: type(v) is str and v > x
        if op == GE:
            return lambda v: type(v) is str and v >= x
        if op == LT:
            return lambda v: type(v) is str and v < x
        return lambda v: type(v) is str and v <= x
    # numbers and dates (DateTime values are stored as epoch seconds)
    if op == EQ:
        return lambda v: type(v) in _NUMS and v == x
    if op == GT:
        return lambda v: type(v) in _NUMS and v > x
    if op == GE:
        return lambda v: type(v) in _NUMS and v >= x
    if op == LT:
        return lambda v: type(v) in _NUMS and v < x
    return lambda v: type(v) in _NUMS and v <= x


def _list_pred(values: ValueList) -> Callable[[Any], bool]:
    kinds = {v.kind for v in values.items}
    with_null = NULL in kinds
    members = frozenset(v.value for v in values.items if v.kind != NULL)
    if STR in kinds:
        if with_null:
            return lambda v: v is None or (type(v) is str and v in members)
        return lambda v: type(v) is str and v in members
    if kinds == {NULL}:
        return lambda v: v is None
    return lambda v: type(v) in _NUMS and v in members


def _pattern_pred(source: str) -> Callable[[Any], bool]:
    compiled = compile_pattern(source)
    if compiled is None:
        return lambda v: False
    search = compiled.search
    return lambda v: type(v) is str and search(v) is not None
