"""JEXL evaluator: the expressions of Orion's 4004/4555/4556/4594/4689/4085 cases."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ngsi.errors import BadRequest
from ngsi.jexl import compile_expression, evaluate, expand, full_macro, render_text, substitute

MISSING_AS_NULL = {
    "B0": "(A==null)?'is null':A",
    "B1": "A||'is null'",
    "B2": "A||-1",
    "B3": "A||0-1",
    "B4": "A||('-1'|parseInt)",
    "B5": "A||0",
}


@pytest.mark.parametrize(
    "ctx,expected",
    [
        ({"A": 1}, [1, 1, None, 1, 1, 1]),
        ({"A": None}, ["is null", "is null", None, -1, -1, 0]),
        ({"C": 2}, [None, "is null", None, -1, -1, 0]),
    ],
)
def test_missing_attribute_as_null(ctx: dict[str, Any], expected: list[Any]) -> None:
    assert [evaluate(e, ctx) for e in MISSING_AS_NULL.values()] == expected


@pytest.mark.parametrize(
    "text,ctx,expected",
    [
        ("A+B", {"A": 1, "B": 2}, 3),
        ("A+B", {"A": "foo", "B": "bar"}, "foobar"),
        ("A*B", {"A": 2.1, "B": -3.8}, 2.1 * -3.8),
        ("A+1", {"B": 1}, None),
        ("A-B", {"A-B": 1, "A:B": 2}, None),
        ("A:B", {"A-B": 1, "A:B": 2}, None),
        ("A[0] + A[1].A1 + B.B1[2].C", {"A": [10, {"A1": 20}], "B": {"B1": [11, 22, {"C": 30}]}}, 60),
        ("(A||0-1)+(B||0-2)", {"A": 1, "B": 2}, 3),
        ("(A||0-1)+(B||0-2)", {"B": 1}, 0),
        ("(A||0-1)+(B||0-2)", {}, -3),
        ("S|substring(0,2)", {"S": "X1:X2"}, "X1"),
        ("S|substring(3,5)", {"S": "X1:X2"}, "X2"),
        ("S|substring(3,50)", {"S": "X1:X2"}, None),
        ("S|substring(5,3)", {"S": "X1:X2"}, None),
        ("A|getTime|toIsoString", {"A": "2060-02-04T23:28:10+00:00"}, "2060-02-04T23:28:10+00:00"),
        ("B|toIsoString|getTime", {"B": 122501038}, 122501038),
        ("slots|values|arrSum", {"slots": {"s1": 0, "s2": 1, "s3": 0, "s4": 1, "s5": 0}}, 2),
        ("(slots|values|len)-(slots|values|arrSum)", {"slots": {"s1": 0, "s2": 1, "s3": 0, "s4": 1, "s5": 0}}, 3),
        ("address||''", {}, ""),
        ("humidity||0-1", {"humidity": 3}, 3),
        ("(inactive==true)?(0-1) : ((status == 'noData')?(0-2) : spots)", {"inactive": True, "status": "noData", "spots": 2344}, -1),
        ("(inactive==true)?(0-1) : ((status == 'noData')?(0-2) : spots)", {"inactive": False, "status": "noData", "spots": 2344}, -2),
        ("(inactive==true)?(0-1) : ((status == 'noData')?(0-2) : spots)", {"inactive": False, "status": "ok", "spots": 2344}, 2344),
        ("(speed|split(' '))[0]|parseInt", {"speed": "10 m/s"}, 10),
        ("count.sum/count.count", {"count": {"count": 5, "sum": 100}}, 20),
        ("code||'invalid'", {"code": None}, "invalid"),
        ("(value>max)?'nok':'ok'", {"value": 75, "max": 50}, "nok"),
        (
            "{count:count.count+1, sum:count.sum+((speed|split(' '))[0]|parseInt)}",
            {"count": {"count": 5, "sum": 500}, "speed": "30 m/s"},
            {"count": 6, "sum": 530},
        ),
        ("A|lowercase", {"A": "FooBar"}, "foobar"),
        ("A|uppercase", {"A": "FooBar"}, "FOOBAR"),
        ("A|patata", {"A": 1}, None),
        ("metadata.A.MD1+metadata.B.MD2", {"metadata": {"A": {"MD1": 1}, "B": {"MD2": 2}}}, 3),
        ("A-metadata.A.previousValue", {"A": 5, "metadata": {"A": {"previousValue": 2}}}, 3),
        ("(SO2Status >= NO2Status) ? SO2Status : NO2Status", {"SO2Status": 3, "NO2Status": 2}, 3),
        ('id=="E1" && type=="T"', {"id": "E1", "type": "T"}, True),
        ('id=="E1" && type=="T"', {"id": "E2", "type": "T"}, False),
        ("A == 1 || A == 2", {"A": 2}, True),
        ("(A + B) == 3", {"A": 1, "B": 2}, True),
        ("(A + B) == 3", {"A": "foo", "B": "bar"}, False),
        ("(A|isNaN) && (B|isNaN)", {"A": "foo", "B": "bar"}, True),
        ("(A|isNaN) && (B|isNaN)", {"A": 1, "B": "bar"}, False),
        ("(A|isNaN) && (B|isNaN)", {"A": "zzzz", "B": -3.8}, False),
        ("A|parseInt", {"A": "1"}, 1),
        ("c|parseFloat", {"c": "25.33"}, 25.33),
        ("c|toString", {"c": [1, 2]}, "[1,2]"),
        ("(A|patatacase)==3", {"A": 3}, None),
    ],
)
def test_case_expressions(text: str, ctx: dict[str, Any], expected: Any) -> None:
    assert evaluate(text, ctx) == expected
    assert type(evaluate(text, ctx)) is not bool or type(expected) is bool


def test_air_quality_nested_ternaries() -> None:
    text = (
        "((airQualityIndex == 1) ? 'Buena' : ((airQualityIndex == 2)  ? 'Razonablemente Buena' : "
        "((airQualityIndex == 3) ? 'Regular' :((airQualityIndex == 4) ? 'Desfavorable' : "
        "((airQualityIndex == 5) ? 'Muy Desfavorable' : ((airQualityIndex == 6) ? "
        "'Extremadamente desfavorable' : 'Sin datos'))))))"
    )
    assert evaluate(text, {"airQualityIndex": 3}) == "Regular"
    assert evaluate(text, {"airQualityIndex": 9}) == "Sin datos"
    assert evaluate(text, {}) is None


@pytest.mark.parametrize("text", ["A == 1 &&", "A||-1", "A:B", "", "A[0", "(A", "{a:}", "a.", "1 2", "'abc", "a|"])
def test_syntax_errors_raise_bad_request(text: str) -> None:
    with pytest.raises(BadRequest):
        compile_expression(text)
    assert evaluate(text, {"A": 1}) is None


@pytest.mark.parametrize(
    "text,expected",
    [
        ("1 + 2 * 3", 7),
        ("(1 + 2) * 3", 9),
        ("7 // 2", 3),
        ("7 % 3", 1),
        ("(0-7) % 3", -1),
        ("2 ^ 10", 1024),
        ("1 / 0", None),
        ("1 < 2 && 2 <= 2", True),
        ("'a' < 'b'", True),
        ("1 < 'b'", None),
        ("!true", False),
        ("!(1 == 2)", True),
        ("1 == true", False),
        ("null == null", True),
        ("[1, 'x', null]", [1, "x", None]),
        ("{'a b': 1, c: [2]}", {"a b": 1, "c": [2]}),
        ("'x' in ['x', 'y']", True),
        ("'ell' in 'hello'", True),
        ("'a' + 1", "a1"),
        ("\"it's\"", "it's"),
        ("'it\\'s'", "it's"),
        ("true ? 1 : 2", 1),
        ("false ? 1 : true ? 2 : 3", 2),
        ("[{b: 1}, {b: 34}, {b: 4}][.b > 1]", [{"b": 34}, {"b": 4}]),
        ("[{b: 1}, {b: 34}][.b > 1][0].b", 34),
    ],
)
def test_grammar(text: str, expected: Any) -> None:
    assert evaluate(text, {}) == expected


@pytest.mark.parametrize(
    "text,ctx,expected",
    [
        ("c|split(',')", {"c": "foo,bar,zzz"}, ["foo", "bar", "zzz"]),
        ("c|indexOf('B')", {"c": "fooBAR"}, 3),
        ("c|indexOf('x')", {"c": "fooBAR"}, None),
        ("c|len", {"c": "fooBAR"}, 6),
        ("c|trim", {"c": "  foo  "}, "foo"),
        ("c|includes('BA')", {"c": "fooBAR"}, True),
        ("c|typeOf", {"c": 1}, "Number"),
        ("c|toJson", {"c": '[1,"a"]'}, [1, "a"]),
        ("c|toJson", {"c": "[1,"}, None),
        ("c|floor", {"c": 3.7}, 3),
        ("c|ceil", {"c": 3.2}, 4),
        ("c|round", {"c": 3.5}, 4),
        ("c|round", {"c": 3.1416}, 3),
        ("c|toFixed(2)", {"c": 3.18945}, 3.19),
        ("c|log10", {"c": 100}, 2),
        ("c|log2", {"c": 8}, 3),
        ("c|sqrt", {"c": 9}, 3),
        ("c|sqrt", {"c": -1}, None),
        ("c|replaceStr('o','u')", {"c": "foobar"}, "fuubar"),
        ("c|replaceRegex('\\d+','X')", {"c": "aba1234aba786aba"}, "abaXabaXaba"),
        ("c|matchRegex('\\d+')", {"c": "abc1234fgh897hyt"}, ["1234", "897"]),
        ("c|mapper(['es','fr'],['Spain','France'])", {"c": "fr"}, "France"),
        ("c|thMapper([1,2],['low','medium','high'])", {"c": 1.5}, "medium"),
        ("c|thMapper([1,2],['low','medium','high'])", {"c": 0.5}, "low"),
        ("c|thMapper([1,2],['low','medium','high'])", {"c": 7}, "high"),
        ("c|keys", {"c": {"x": 1, "y": "foo"}}, ["x", "y"]),
        ("c|values", {"c": {"x": 1, "y": "foo"}}, [1, "foo"]),
        ("c|arrAvg", {"c": [1, 2, 3]}, 2),
        ("c|arrSum", {"c": [1, "x"]}, None),
        ("c|toIsoString", {"c": 1720606949}, "2024-07-10T10:22:29+00:00"),
        ("c|getTime", {"c": "2024-07-10T10:22:29+00:00"}, 1720606949),
        ("c|getTime", {"c": "2024-07-10T10:22:29.000Z"}, 1720606949),
        ("c|isNaN", {"c": "3.5"}, False),
    ],
)
def test_transforms(text: str, ctx: dict[str, Any], expected: Any) -> None:
    assert evaluate(text, ctx) == expected


def test_now_is_current_epoch_seconds() -> None:
    import time

    before = int(time.time())
    assert before + 10 <= evaluate("10|now", {}) <= int(time.time()) + 10


def test_substitute_renders_like_orion() -> None:
    ctx = {
        "text": "foo",
        "number": 10,
        "bool": True,
        "null": None,
        "array": ["22", {"x": ["x1", "x2"], "y": 3}, ["z1", "z2"]],
        "object": {"x": {"x1": "a", "x2": "b"}, "y": ["y1", "y2"]},
        "f": 2.1 + -3.8,
    }
    assert substitute("ns:${text}", ctx) == "ns:foo"
    assert substitute("ns:${number}", ctx) == "ns:10"
    assert substitute("ns:${bool}", ctx) == "ns:true"
    assert substitute("ns:${null}", ctx) == "ns:null"
    assert substitute("ns:${array}", ctx) == 'ns:["22",{"x":["x1","x2"],"y":3},["z1","z2"]]'
    assert substitute("ns:${object}", ctx) == 'ns:{"x":{"x1":"a","x2":"b"},"y":["y1","y2"]}'
    assert substitute("${f}", ctx) == "-1.7"
    assert substitute("X:${A|patata}:Y", {"A": 1}) == "X:null:Y"
    assert substitute("X:${A}:Y", {}) == "X:null:Y"
    assert substitute("A string with double-quotes: \"${A1}\"", {"A1": "a1"}) == 'A string with double-quotes: "a1"'
    # 4085 unbalanced macros
    assert substitute("${B", {"B": 1}) == "${B"
    assert substitute("B}", {"B": 1}) == "B}"
    assert substitute("${${B}}", {"B": 3}) == "null}"
    assert substitute("id: ${id}, S: ${service}", {"id": "E1", "service": "s"}) == "id: E1, S: s"
    assert render_text(20.0) == "20"


def test_whole_macros_in_json_are_typed() -> None:
    assert full_macro("${A}") == "A"
    assert full_macro("${{a:1}}") == "{a:1}"
    assert full_macro("${${B}}") is None
    assert full_macro("x${A}") is None
    assert full_macro("${A}${B}") is None
    tpl = {"B1": "${A|patata}", "B2": "X:${A|patata}:Y", "n": "${A}", "l": ["${A}", 3, None]}
    assert expand(tpl, {"A": 1}) == {"B1": None, "B2": "X:null:Y", "n": 1, "l": [1, 3, None]}
    assert expand("${${B}}", {"B": 3}) == "null}"


def test_compiled_expression_is_reusable() -> None:
    expr = compile_expression("A * 2")
    assert [expr.evaluate({"A": i}) for i in range(3)] == [0, 2, 4]
    assert expr.evaluate({"A": "x"}) is None


# ---------------------------------------------------------------- properties

_leaf = st.one_of(
    st.integers(min_value=0, max_value=10**6).map(str),
    st.floats(min_value=0, max_value=1e6, allow_nan=False).map(lambda f: f"{f:.3f}"),
)


def _combine(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    binary = st.tuples(children, st.sampled_from(["+", "-", "*", "/"]), children).map(lambda t: f"{t[0]} {t[1]} {t[2]}")
    return st.one_of(binary, children.map(lambda s: f"({s})"))


_arith_expr = st.recursive(_leaf, _combine, max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(_arith_expr)
def test_arithmetic_agrees_with_python(text: str) -> None:
    try:
        expected: Any = eval(text, {"__builtins__": {}}, {})  # noqa: S307 - digits and + - * / only
    except ZeroDivisionError:
        expected = None
    if isinstance(expected, float) and (expected != expected or abs(expected) == float("inf")):
        expected = None
    assert evaluate(text, {}) == expected


_jexl_alphabet = st.sampled_from(list("AB01 .,:?|&=!<>+-*/%^()[]{}'\"$_\\") + ["in", "null", "true", "A|len", "A.b"])
_contexts = st.dictionaries(
    st.sampled_from(["A", "B", "b"]),
    st.recursive(
        st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=5)),
        lambda c: st.one_of(st.lists(c, max_size=3), st.dictionaries(st.sampled_from(["b", "c"]), c, max_size=2)),
        max_leaves=6,
    ),
)


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(max_size=40), st.lists(_jexl_alphabet, max_size=25).map("".join)), _contexts)
def test_parser_only_raises_bad_request_and_evaluation_never_raises(text: str, ctx: dict[str, Any]) -> None:
    try:
        expr = compile_expression(text)
    except BadRequest:
        return
    expr.evaluate(ctx)
    substitute("${" + text + "}", ctx)


def test_deep_nesting_is_a_bad_request() -> None:
    with pytest.raises(BadRequest):
        compile_expression("(" * 5000 + "1" + ")" * 5000)
    long_chain = "+".join(["1"] * 5000)
    assert compile_expression(long_chain).evaluate({}) in (5000, None)
