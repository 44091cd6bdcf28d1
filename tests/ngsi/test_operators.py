"""Update operators ($inc, $set, ...): MongoDB's results on plain JSON values."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ngsi.operators import ABSENT, OPERATORS, OperatorError, apply, apply_one, equal, is_operation

numbers = st.one_of(st.integers(-10**6, 10**6), st.floats(-1e6, 1e6, allow_nan=False))
scalars = st.one_of(st.none(), st.booleans(), numbers, st.text(max_size=5))
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=3), inner, max_size=4)),
    max_leaves=10,
)
keys = st.text(alphabet="abcXYZ", min_size=1, max_size=2)


def test_is_operation() -> None:
    assert is_operation({"$inc": 1})
    assert is_operation({"$set": {"a": 1}, "$unset": {"b": 1}})
    assert not is_operation({})
    assert not is_operation({"$inc": 1, "x": 2})
    assert not is_operation({"inc": 1})
    assert not is_operation([{"$inc": 1}])
    assert not is_operation("$inc")
    assert set(OPERATORS) == {"$inc", "$mul", "$min", "$max", "$push", "$addToSet", "$pull", "$pullAll", "$set", "$unset"}


@given(numbers, numbers)
def test_inc_adds(a: float, b: float) -> None:
    assert apply({"$inc": b}, a) == a + b


@given(numbers, numbers)
def test_mul_multiplies(a: float, b: float) -> None:
    assert apply({"$mul": b}, a) == a * b


@given(numbers)
def test_arithmetic_on_absent(n: float) -> None:
    assert apply({"$inc": n}) == n
    assert apply({"$mul": n}) == 0


@given(st.one_of(st.text(), st.booleans(), st.none(), st.lists(numbers)), numbers)
def test_arithmetic_needs_numbers(current: Any, n: float) -> None:
    for op in ("$inc", "$mul"):
        with pytest.raises(OperatorError):
            apply({op: n}, current)


@given(numbers, numbers)
def test_min_max_numbers(a: float, b: float) -> None:
    assert apply({"$min": b}, a) == min(a, b)
    assert apply({"$max": b}, a) == max(a, b)


@given(values, values)
def test_min_max_pick_one_of_the_two(a: Any, b: Any) -> None:
    low, high = apply({"$min": b}, a), apply({"$max": b}, a)
    assert equal(low, a) or equal(low, b)
    assert equal(high, a) or equal(high, b)
    # together they are the two values, in MongoDB's order
    assert (equal(low, a) and equal(high, b)) or (equal(low, b) and equal(high, a))


def test_mongo_order_between_types() -> None:
    assert apply({"$min": "a"}, 5) == 5  # numbers sort before strings
    assert apply({"$max": True}, 5) is True  # booleans after numbers
    assert apply({"$min": None}, 5) is None  # null first


@given(st.lists(values, max_size=5), values)
def test_push_appends(items: list[Any], x: Any) -> None:
    result = apply({"$push": x}, items)
    assert result[:-1] == items and result[-1] == x
    assert len(result) == len(items) + 1


@given(st.lists(scalars, max_size=5), scalars)
def test_add_to_set_is_idempotent(items: list[Any], x: Any) -> None:
    once = apply({"$addToSet": x}, items)
    assert apply({"$addToSet": x}, once) == once
    assert any(equal(x, item) for item in once)
    assert once[: len(items)] == items


@given(st.lists(scalars, max_size=6), scalars)
def test_pull_removes_every_match(items: list[Any], x: Any) -> None:
    result = apply({"$pull": x}, items)
    assert not any(equal(x, item) for item in result)
    assert [item for item in items if not equal(x, item)] == result


@given(st.lists(scalars, max_size=6), st.lists(scalars, max_size=3))
def test_pull_all_removes_each(items: list[Any], xs: list[Any]) -> None:
    result = apply({"$pullAll": xs}, items)
    assert all(not equal(x, item) for x in xs for item in result)
    assert len(result) <= len(items)


def test_pull_object_is_a_query() -> None:
    assert apply({"$pull": {"y": 2}}, [{"x": 1}, {"y": 2, "w": 0}, ["z"]]) == [{"x": 1}, ["z"]]
    assert apply({"$pullAll": [{"y": 2}, {"x": 1}]}, [{"x": 1}, {"y": 2}, ["z"]]) == [["z"]]


def test_array_operators_need_arrays() -> None:
    for ops in ({"$push": 1}, {"$addToSet": 1}, {"$pull": 1}, {"$pullAll": [1]}):
        with pytest.raises(OperatorError):
            apply(ops, "foo")
    with pytest.raises(OperatorError):
        apply({"$pullAll": 1}, [1])


@given(st.dictionaries(keys, scalars, max_size=4), st.dictionaries(keys, scalars, min_size=1, max_size=4))
def test_set_merges(current: dict[str, Any], update: dict[str, Any]) -> None:
    assert apply({"$set": update}, current) == {**current, **update}


@given(st.dictionaries(keys, scalars, max_size=4), st.dictionaries(keys, scalars, min_size=1, max_size=4))
def test_unset_removes(current: dict[str, Any], gone: dict[str, Any]) -> None:
    result = apply({"$unset": gone}, current)
    assert result == {k: v for k, v in current.items() if k not in gone}


@given(values, st.one_of(scalars, st.lists(scalars, max_size=3)))
def test_set_non_object_replaces(current: Any, x: Any) -> None:
    if isinstance(current, dict) and isinstance(x, dict):
        return
    assert apply({"$set": x}, current) == x


def test_set_into_non_object_fails() -> None:
    with pytest.raises(OperatorError, match="Cannot create field 'Y' in element {value: \"foo\"}"):
        apply({"$set": {"Y": 20}}, "foo")


def test_set_and_unset_together() -> None:
    assert apply({"$set": {"Y": 20, "Z": 30}, "$unset": {"X": 1}}, {"X": 1, "Y": 2}) == {"Y": 20, "Z": 30}
    with pytest.raises(OperatorError, match="Updating the path 'attrs.A.value.W' would create a conflict at "
                                            "'attrs.A.value.W'"):
        apply({"$set": {"W": 40}, "$unset": {"W": 1}}, {}, base="attrs.A.value")
    with pytest.raises(OperatorError):
        apply({"$inc": 1, "$mul": 2}, 1)


def test_creation() -> None:
    """What an attribute that does not exist yet becomes: orion-api.md, "Usage in create or
    replace entity operations" (numbers from 0, arrays from [], objects from {})."""
    assert apply({"$inc": 2}) == 2
    assert apply({"$inc": -2.5}) == -2.5
    assert apply({"$mul": 5}) == 0
    assert apply({"$min": 0}) == 0
    assert apply({"$max": 8}) == 8
    assert apply({"$push": "bar"}) == ["bar"]
    assert apply({"$addToSet": "foo"}) == ["foo"]
    assert apply({"$pull": 2}) is ABSENT
    assert apply({"$pullAll": [2, 4]}) is ABSENT
    assert apply({"$set": {"Y": 20, "Z": 30}}) == {"Y": 20, "Z": 30}
    assert apply({"$unset": {"Y": 1}}) is ABSENT


@given(numbers)
def test_min_max_on_absent_compare_with_zero(n: float) -> None:
    """"Numeric operators takes 0 as reference" (and the epoch, 0 seconds, for a DateTime)."""
    assert apply({"$min": n}) == min(0, n)
    assert apply({"$max": n}) == max(0, n)


def test_min_max_on_absent_non_numbers_are_taken_as_given() -> None:
    assert apply({"$min": "abc"}) == "abc"
    assert apply({"$max": {"x": 1}}) == {"x": 1}


@given(values)
def test_push_and_add_to_set_on_absent_start_from_the_empty_array(x: Any) -> None:
    """"$push and $addToSet take the empty array ([]) as reference": whatever x is, [x]
    (Orion itself stores [[x]] for an object or array x and notifies [x])."""
    if isinstance(x, dict) and "$each" in x:
        return
    assert apply({"$push": x}) == [x]
    assert apply({"$addToSet": x}) == [x]


def test_push_each_on_absent() -> None:
    assert apply({"$push": {"$each": [4, 5]}}) == [4, 5]
    assert apply({"$addToSet": {"$each": [4, 4, 5]}}) == [4, 5]


@given(st.one_of(scalars, st.lists(values, max_size=3), st.dictionaries(keys, values, max_size=3)))
def test_ignored_operators_on_absent_whatever_the_argument(x: Any) -> None:
    """"$pull, $pullAll and $unset are ignored" on creation, even with an argument they
    would refuse on an existing value."""
    for op in ("$pull", "$pullAll", "$unset"):
        assert apply({op: x}) is ABSENT


@given(values, st.one_of(scalars, st.lists(scalars, max_size=3)))
def test_unset_with_a_non_object_is_ignored(current: Any, x: Any) -> None:
    """"if the value of $unset is not an object, it will be ignored" (orion-api.md, '$unset')."""
    assert apply({"$unset": x}, current) == current


@given(values)
def test_set_with_no_key_changes_nothing(current: Any) -> None:
    assert apply({"$set": {}}, current) == current
    assert apply({"$set": {}}) == {}


def test_non_numeric_argument_message_names_the_path() -> None:
    """orion-api.md, "How Orion deals with operators": MongoDB's text for $inc "foo"."""
    with pytest.raises(OperatorError) as err:
        apply({"$inc": "foo"}, 10, base="attrs.A.value")
    assert str(err.value) == 'Cannot increment with non-numeric argument: {attrs.A.value: "foo"}'


@given(values)
def test_inputs_are_not_mutated(current: Any) -> None:
    snapshot = repr(current)
    for op, arg in (("$push", 1), ("$addToSet", 1), ("$pull", 1), ("$set", {"a": 1}), ("$unset", {"a": 1})):
        try:
            apply_one(op, arg, current)
        except OperatorError:
            pass
    assert repr(current) == snapshot


def test_equal_is_mongo_equality() -> None:
    assert equal(1, 1.0)
    assert not equal(1, True)
    assert not equal({"a": 1, "b": 2}, {"b": 2, "a": 1})  # documents compare in key order
    assert equal([1, {"a": "x"}], [1.0, {"a": "x"}])


def test_push_each_and_position() -> None:
    assert apply_one("$push", {"$each": [2, 3]}, [1]) == [1, 2, 3]
    assert apply_one("$push", {"$each": [-1, 0], "$position": 0}, [1, 2]) == [-1, 0, 1, 2]
    assert apply_one("$addToSet", {"$each": [1, 5, 5]}, [1, 2]) == [1, 2, 5]


@pytest.mark.parametrize(
    ("op", "arg", "current"),
    [("$inc", 1e308, 1e308), ("$inc", -1e308, -1e308), ("$mul", 1e300, 1e300), ("$mul", 2.0, 1.7e308),
     ("$inc", 1, float("inf")), ("$mul", 1, 10**400)],
)
def test_arithmetic_overflow_is_refused_never_stored(op: str, arg: float, current: float) -> None:
    """MongoDB would store an infinity (Orion then writes invalid JSON, the broker a null)."""
    with pytest.raises(OperatorError, match="overflows"):
        apply({op: arg}, current)


@given(st.one_of(st.integers(-2**60, 2**60), st.floats(allow_nan=False)), st.one_of(st.integers(-2**60, 2**60), st.floats(allow_nan=False, allow_infinity=False)))
def test_arithmetic_results_are_doubles_or_refused(a: float, b: float) -> None:
    """Any result is a finite number an Orion double holds (an exact int, else a float)."""
    for op in ("$inc", "$mul"):
        try:
            result = apply({op: b}, a)
        except OperatorError:
            continue
        assert math.isfinite(result)
        assert not isinstance(result, int) or -2**53 <= result <= 2**53
