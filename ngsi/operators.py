"""Orion's update operators for attribute values: ``{"$inc": 2}`` and friends, as pure functions.

An attribute value that is a JSON object whose keys are all operator names is not a value
but an instruction on the current value. On an attribute that exists, Orion hands these to
MongoDB's update operators, so their results and failures are MongoDB's; on a new entity
or a replaced one Orion works the value out itself from a reference value (orion-api.md,
"Usage in create or replace entity operations"), and so does the broker for a new attribute
of an existing entity (Orion then builds the whole attribute, value included, itself too).
This module reproduces both on plain JSON values:

    $inc n       add n            (absent: 0 + n)       $mul n      multiply by n  (absent: 0 * n)
    $min x       smaller of two   (absent: vs 0 *)      $max x      larger of two  (absent: vs 0 *)
    $push x      append x         (absent: [] + x)      $addToSet x append if new  (absent: [] + x)
    $pull x      remove matches   (absent: ignored)     $pullAll xs remove each    (absent: ignored)
    $set {k: v}  set keys         (absent: {} + k: v)   $unset {k}  remove keys    (absent: ignored)
    $set x       (not an object) replace the value      $unset x    (not an object) ignored
    $set {}      nothing changes  (absent: {})

"ignored" means the attribute is not created at all. (*) A number is compared with 0 (a
DateTime, held as epoch seconds, with the epoch); any other value is taken as it is, the
manual naming no reference for it. Numbers are Orion's doubles: an ``$inc``/``$mul``
result too large for an exact int becomes a double, one beyond a double's range is refused
(MongoDB would store an infinity that no JSON can carry). ``$set`` and ``$unset`` may be
combined in one value (on different keys); other combinations touch the same path and
fail as MongoDB fails them.
"""

from __future__ import annotations

from typing import Any, Final

from .jsonkinds import BOOLEAN, FLOAT, INTEGER, NULL, OBJECT, STRING, json_kind
from .numbers import finite_double
from .ordering import compare

OPERATORS: Final = ("$inc", "$mul", "$min", "$max", "$push", "$addToSet", "$pull", "$pullAll", "$set", "$unset")


class _Absent:
    """The value of an attribute that does not exist (before) or is not to exist (after)."""

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Final = _Absent()


class OperatorError(Exception):
    """MongoDB refused the update; the text is MongoDB's, the broker adds Orion's wrapping."""


def is_operation(value: Any) -> bool:
    """True when ``value`` is an operator instruction rather than a value."""
    return isinstance(value, dict) and bool(value) and all(key in OPERATORS for key in value)


# -- MongoDB's comparison order ----------------------------------------------------------------

def equal(a: Any, b: Any) -> bool:
    """MongoDB equality: numbers by value (1 == 1.0), booleans apart from numbers, objects key-ordered."""
    return compare(a, b) == 0


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


_BSON_TYPE_NAMES: dict[str | None, str] = {
    NULL: "null", BOOLEAN: "bool", INTEGER: "int", FLOAT: "double", STRING: "string", OBJECT: "object",
}


def _type_name(value: Any) -> str:
    """MongoDB's name of the value's BSON type, as its error messages say it."""
    return _BSON_TYPE_NAMES.get(json_kind(value), "array")


def _bson_text(value: Any) -> str:
    """A value as MongoDB prints it in messages: ``{value: "foo"}``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value + '"'
    if isinstance(value, dict):
        if not value:
            return "{}"
        return "{ " + ", ".join(f"{k}: {_bson_text(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[ " + ", ".join(_bson_text(v) for v in value) + " ]" if value else "[]"
    return repr(value)


# -- paths and conflicts -------------------------------------------------------------------------


def _paths(op: str, arg: Any) -> list[tuple[str, ...]]:
    """The value paths an operator writes, relative to the attribute value (MongoDB checks these)."""
    if op in ("$set", "$unset") and isinstance(arg, dict):
        return [tuple(key.split(".")) for key in arg]
    if op == "$unset":
        return []  # ignored (see apply_one)
    return [()]


def check_conflicts(ops: dict[str, Any], base: str = "value") -> None:
    """Two operators writing the same path (or one inside the other) is MongoDB's conflict error."""
    seen: list[tuple[str, ...]] = []
    for op, arg in ops.items():
        for path in _paths(op, arg):
            for other in seen:
                shorter = min(len(path), len(other))
                if path[:shorter] == other[:shorter]:
                    at = other if len(other) <= len(path) else path
                    raise OperatorError(
                        f"Updating the path '{'.'.join((base,) + path)}' would create a conflict at "
                        f"'{'.'.join((base,) + at)}'"
                    )
            seen.append(path)


# -- one operator ------------------------------------------------------------------------------------


def _number_text(x: int | float) -> str:
    """A number for a message; an int too long to print usefully is described instead."""
    if isinstance(x, int) and x.bit_length() > 64:
        return f"an integer of {x.bit_length()} bits"
    return repr(x)


def _arith(op: str, arg: Any, current: Any, base: str) -> Any:
    if not _is_number(arg):
        # orion-api.md, "How Orion deals with operators", quotes this text of MongoDB's.
        raise OperatorError(f"Cannot {'increment' if op == '$inc' else 'multiply'} with non-numeric argument: "
                            f"{{{base}: {_bson_text(arg)}}}")
    if current is ABSENT:
        return arg if op == "$inc" else arg * 0
    if not _is_number(current):
        raise OperatorError(
            f"Cannot apply {op} to a value of non-numeric type. The field 'value' has non-numeric type "
            f"{_type_name(current)}"
        )
    try:
        result = finite_double(current + arg if op == "$inc" else current * arg)
    except OverflowError:  # an int too large for a float met a float
        result = None
    if result is None:
        # A double would overflow to infinity (MongoDB stores it; Orion then writes an
        # invalid JSON number, this broker a null): refused, the value stays as it was.
        raise OperatorError(
            f"Cannot apply {op} to {_number_text(current)} with {_number_text(arg)}: the result overflows "
            "the range of a number"
        )
    return result


def _array(op: str, current: Any) -> list[Any]:
    if not isinstance(current, list):
        if op in ("$pull", "$pullAll"):
            raise OperatorError("Cannot apply $pull to a non-array value")
        raise OperatorError(f"The field 'value' must be an array but is of type {_type_name(current)}")
    return list(current)


def _each(arg: Any) -> list[Any] | None:
    """The items of MongoDB's ``{"$each": [...]}`` modifier form, None for a plain argument."""
    if isinstance(arg, dict) and isinstance(arg.get("$each"), list):
        return list(arg["$each"])
    return None


def _pull_matches(pattern: Any, item: Any) -> bool:
    """$pull with an object is a query on object elements (all its fields equal); else equality."""
    if isinstance(pattern, dict) and pattern:
        return isinstance(item, dict) and all(k in item and equal(item[k], v) for k, v in pattern.items())
    return equal(pattern, item)


def apply_one(op: str, arg: Any, current: Any, base: str = "value") -> Any:
    """The value after one operator; ``current``/result ABSENT: no such attribute.
    ``base``: the value's path in MongoDB's messages (see ``apply``)."""
    if op in ("$inc", "$mul"):
        return _arith(op, arg, current, base)
    if op in ("$min", "$max"):
        if current is ABSENT:
            if not _is_number(arg):
                return arg
            current = 0
        c = compare(arg, current)
        return arg if (c < 0 if op == "$min" else c > 0) else current
    if current is ABSENT:
        # A new attribute (orion-api.md, "Usage in create or replace entity operations"):
        # $push/$addToSet start from [], $set from {}, $pull/$pullAll/$unset create nothing.
        if op in ("$push", "$addToSet"):
            current = []
        elif op in ("$pull", "$pullAll", "$unset"):
            return ABSENT
    each = _each(arg)
    if op == "$push":
        items = _array(op, current)
        if each is None:
            return items + [arg]
        position = arg.get("$position")
        if isinstance(position, int) and not isinstance(position, bool):
            index = position if position >= 0 else max(len(items) + position, 0)
            return items[:index] + each + items[index:]
        return items + each
    if op == "$addToSet":
        items = _array(op, current)
        for new in [arg] if each is None else each:
            if not any(equal(new, item) for item in items):
                items.append(new)
        return items
    if op == "$pullAll" and not isinstance(arg, list):
        raise OperatorError(f"$pullAll requires an array argument but was given a {_type_name(arg)}")
    if op in ("$pull", "$pullAll"):
        items = _array(op, current)
        if op == "$pull":
            return [item for item in items if not _pull_matches(arg, item)]
        return [item for item in items if not any(equal(p, item) for p in arg)]
    if op == "$set":
        if not isinstance(arg, dict):
            return arg  # "the same effect than a regular update"
        if current is ABSENT:
            return dict(arg)
        if not arg:
            return current  # no sub-key to set: nothing changes
        if not isinstance(current, dict):
            first = next(iter(arg))
            raise OperatorError(f"Cannot create field '{first}' in element {{value: {_bson_text(current)}}}")
        result = dict(current)
        result.update(arg)
        return result
    if op == "$unset":
        if not isinstance(arg, dict) or not isinstance(current, dict):
            return current
        return {k: v for k, v in current.items() if k not in arg}
    raise OperatorError(f"Unknown modifier: {op}")


def apply(ops: dict[str, Any], current: Any = ABSENT, *, base: str = "value") -> Any:
    """The value after all the operators of ``ops``, in order; ABSENT when the attribute is not to exist.

    ``base`` is the path of the value in MongoDB's messages (Orion's is ``attrs.<name>.value``).
    """
    check_conflicts(ops, base)
    value = current
    for op, arg in ops.items():
        value = apply_one(op, arg, value, base)
    return value
