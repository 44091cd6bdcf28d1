"""JEXL evaluator: the expressions of Orion's 4004/4555/4556/4594/4689/4085 cases, then what
orion-api.md, 'JEXL support in custom notifications' says, section by section ('Available
Transformations' with each transformation's documented example and its null cases, 'Failsafe
cases', 'Known limitations'). End-to-end tests (a broker, subscriptions, a receiver) are in
tests/broker/manual/test_jexl.py."""

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


# ---------------------------------------------------------------- orion-api.md, from the manual's text
# Each row: expression, context, expected. "Example" rows are the manual's own example for the
# transformation; the others follow its "returns null if..." sentences, or, where it says
# nothing, the failsafe rule ('Failsafe cases'): a transformation that cannot apply is null.

MISSING: dict[str, Any] = {}


def _check(rows: list[tuple[str, dict[str, Any], Any]]) -> None:
    for text, ctx, expected in rows:
        got = evaluate(text, ctx)
        assert got == expected and type(got) is not bool or got is expected, (text, ctx, got, expected)


def test_string_case_split_trim() -> None:
    """orion-api.md, 'Available Transformations' > 'uppercase', 'lowercase', 'split', 'trim':
    "Convert a string", "Split the input string", "Removes starting and trailing whitespaces";
    not a string (or missing) is null."""
    _check([
        ("c|uppercase", {"c": "fooBAR"}, "FOOBAR"),  # example
        ("c|lowercase", {"c": "fooBAR"}, "foobar"),  # example
        ("c|split(',')", {"c": "foo,bar,zzz"}, ["foo", "bar", "zzz"]),  # example
        ("c|trim", {"c": "  foo  bar  "}, "foo  bar"),  # example
        ("c|split(';')", {"c": "foo,bar"}, ["foo,bar"]),
        ("c|uppercase", {"c": 1}, None),
        ("c|lowercase", {"c": ["A"]}, None),
        ("c|split(',')", {"c": {"a": 1}}, None),
        ("c|split(1)", {"c": "a1b"}, None),
        ("c|trim", {"c": None}, None),
        ("c|uppercase", MISSING, None),
    ])


def test_index_of_len_substring_includes() -> None:
    """orion-api.md, 'Available Transformations' > 'indexOf' ("If the string is not found, returns
    null", "doesn't work if the input is an array"), 'len', 'substring' ("null in case of wrong
    parameters (eg. final position is longer than string, final position is leeser than initial
    position, etc.)"), 'includes'."""
    _check([
        ("c|indexOf('xy')", {"c": "fooxybar"}, 3),  # example
        ("c|indexOf('zz')", {"c": "fooxybar"}, None),
        ("c|indexOf('b')", {"c": ["a", "b"]}, None),
        ("c|len", {"c": "foobar"}, 6),  # example
        ("c|len", {"c": 123}, None),
        ("c|substring(3,5)", {"c": "foobar"}, "ba"),  # example
        ("c|substring(3,7)", {"c": "foobar"}, None),
        ("c|substring(4,2)", {"c": "foobar"}, None),
        ("c|substring(0-1,2)", {"c": "foobar"}, None),
        ("c|substring('a',2)", {"c": "foobar"}, None),
        ("c|substring(0,6)", {"c": "foobar"}, "foobar"),
        ("c|substring(1,3)", {"c": 123456}, None),
        ("c|includes('ba')", {"c": "foobar"}, True),  # example
        ("c|includes('zz')", {"c": "foobar"}, False),
        ("c|includes('a')", {"c": 12}, None),
    ])


def test_len_counts_array_items_as_orion_does() -> None:
    """orion-api.md, 'Available Transformations' > 'len' says strings only; Orion's 4004 case
    jexl_transformation_binary_map_accum relies on ``(slots|values|len)`` counting an array's
    items, and passing that case wins."""
    assert evaluate("c|len", {"c": [1, 2, 3]}) == 3


def test_number_parsing_and_types() -> None:
    """orion-api.md, 'Available Transformations' > 'isNaN' ("true if the input is not a
    number"), 'parseInt', 'parseFloat', 'typeOf', 'toString', 'toJson' ("If the string is not a
    valid JSON, it returns null")."""
    _check([
        ("c|isNaN", {"c": "foobar"}, True),  # example
        ("c|isNaN", {"c": 23}, False),
        ("c|isNaN", {"c": [1]}, True),
        ("c|parseInt", {"c": "25"}, 25),  # example
        ("c|parseInt", {"c": "x25"}, None),
        ("c|parseFloat", {"c": "25.33"}, 25.33),  # example
        ("c|parseFloat", {"c": "pi"}, None),
        ("c|typeOf", {"c": 23}, "Number"),  # example
        ("c|typeOf", {"c": 2.5}, "Number"),
        ("c|typeOf", {"c": "23"}, "String"),
        ("c|typeOf", {"c": True}, "Boolean"),
        ("c|typeOf", {"c": [23]}, "Array"),
        ("c|typeOf", {"c": {"n": 23}}, "Object"),
        ("c|toString", {"c": 23}, "23"),  # example
        ("c|toString", {"c": {"a": [1, True]}}, '{"a":[1,true]}'),
        ("c|toString", MISSING, None),
        ("c|toJson", {"c": "[1,2]"}, [1, 2]),  # example
        ("c|toJson", {"c": '{"a": {"b": null}}'}, {"a": {"b": None}}),
        ("c|toJson", {"c": "[1,2"}, None),
        ("c|toJson", {"c": 12}, None),
    ])


def test_rounding_and_math() -> None:
    """orion-api.md, 'Available Transformations' > 'floor', 'ceil', 'round', 'toFixed', 'log',
    'log10', 'log2', 'sqrt': the manual's examples on 3.14 / 3.18; not a number is null, and so
    is a result that is not a number (log of 0, square root of a negative)."""
    _check([
        ("c|floor", {"c": 3.14}, 3),  # example
        ("c|ceil", {"c": 3.14}, 4),  # example
        ("c|round", {"c": 3.14}, 3),  # example
        ("c|toFixed(1)", {"c": 3.18}, 3.2),  # example
        ("c|log", {"c": 3.14}, 1.144222799920162),  # example
        ("c|log10", {"c": 3.14}, 0.49692964807321494),  # example
        ("c|log2", {"c": 3.14}, 1.6507645591169025),  # example
        ("c|sqrt", {"c": 3.14}, 1.772004514666935),  # example
        ("c|floor", {"c": 0 - 3.14}, -4),
        ("c|ceil", {"c": 0 - 3.14}, -3),
        ("c|round", {"c": 3.5}, 4),
        ("c|round", {"c": 7}, 7),
        ("c|floor", {"c": "3.14"}, None),
        ("c|round", {"c": None}, None),
        ("c|toFixed('x')", {"c": 3.18}, None),
        ("c|log", {"c": 0}, None),
        ("c|sqrt", {"c": -4}, None),
        ("c|sqrt", {"c": "9"}, None),
    ])
    assert type(evaluate("c|round", {"c": 3.14})) is int


def test_replace_and_regex() -> None:
    """orion-api.md, 'Available Transformations' > 'replaceStr', 'replaceRegex', 'matchRegex'
    ("In the case of invalid regex, it returns null. If no matches are found, it returns the
    empty array")."""
    _check([
        ("c|replaceStr('o','u')", {"c": "foobar"}, "fuubar"),  # example
        ("c|replaceRegex('\\d+','X')", {"c": "aba1234aba786aba"}, "abaXabaXaba"),  # example
        ("c|matchRegex('\\d+')", {"c": "abc1234fgh897hyt"}, ["1234", "897"]),  # example
        ("c|matchRegex('\\d+')", {"c": "abc"}, []),
        ("c|matchRegex('(')", {"c": "abc"}, None),
        ("c|replaceRegex('[','X')", {"c": "abc"}, None),
        ("c|replaceStr('o','u')", {"c": 100}, None),
        ("c|matchRegex('1')", {"c": [1]}, None),
    ])


MAPPER_CTX = {"values": ["es", "fr", "de"], "choices": ["Spain", "France", "Germany"]}
N_MAPPER_CTX = {"values": [10, 20, 30], "choices": ["low", "medium", "high"]}
TH_MAPPER_CTX = {"values": [-1, 1], "choices": ["low", "medium", "high"]}


def test_mapper() -> None:
    """orion-api.md, 'Available Transformations' > 'mapper': "Input has to be a string",
    "values elements have to be strings", "choices elements can be of any type", and null
    "if some problem with the arguments is found (i.e. input is not found among the values,
    choices length is not exacly the same as values, etc.)"."""
    _check([
        ("c|mapper(values,choices)", {"c": "fr", **MAPPER_CTX}, "France"),  # example
        ("c|mapper(values,choices)", {"c": "it", **MAPPER_CTX}, None),
        ("c|mapper(values,['Spain', 'France'])", {"c": "fr", **MAPPER_CTX}, None),
        ("c|mapper(['a', 'b'], [{x: 1}, [2]])", {"c": "a"}, {"x": 1}),
        ("c|mapper(['a', 'b'], [1, null])", {"c": "b"}, None),
        ("c|mapper(values,choices)", {"c": 20, **N_MAPPER_CTX}, None),
        ("c|mapper(['a', 1], ['x', 'y'])", {"c": "a"}, None),
        ("c|mapper('fr', choices)", {"c": "fr", **MAPPER_CTX}, None),
    ])


def test_n_mapper() -> None:
    """orion-api.md, 'Available Transformations' > 'nMapper': "Input has to be a number",
    "values elements have to be numbers", "Numbers are supposed to be integers (in the insane
    case of using floats, they are rounded to closest integer)", null on a problem with the
    arguments. (The manual's example writes ``c|mapper``, a slip: 'mapper' takes strings.)"""
    _check([
        ("c|nMapper(values,choices)", {"c": 20, **N_MAPPER_CTX}, "medium"),  # example
        ("c|nMapper(values,choices)", {"c": 19.6, **N_MAPPER_CTX}, "medium"),
        ("c|nMapper([10.4, 19.5], ['a', 'b'])", {"c": 10}, "a"),
        ("c|nMapper([10.4, 19.5], ['a', 'b'])", {"c": 20}, "b"),
        ("c|nMapper(values,choices)", {"c": 25, **N_MAPPER_CTX}, None),
        ("c|nMapper(values,choices)", {"c": "20", **N_MAPPER_CTX}, None),
        ("c|nMapper([10, '20'], ['a', 'b'])", {"c": 10}, None),
        ("c|nMapper([10, 20], ['a'])", {"c": 10}, None),
    ])


def test_th_mapper() -> None:
    """orion-api.md, 'Available Transformations' > 'thMapper': for ``values[i] <= input <
    values[i+1]`` the (i+1)-th choice; null "if some problem with the arguments is found (i.e.
    choices length is not exacly the same as values plus one, some of the items in the values
    array is not a number, etc.)"."""
    _check([
        ("c|thMapper(values,choices)", {"c": 0.5, **TH_MAPPER_CTX}, "medium"),  # example
        ("c|thMapper(values,choices)", {"c": -5, **TH_MAPPER_CTX}, "low"),
        ("c|thMapper(values,choices)", {"c": -1, **TH_MAPPER_CTX}, "medium"),
        ("c|thMapper(values,choices)", {"c": 1, **TH_MAPPER_CTX}, "high"),
        ("c|thMapper(values,choices)", {"c": 99, **TH_MAPPER_CTX}, "high"),
        ("c|thMapper(values,['low', 'high'])", {"c": 0.5, **TH_MAPPER_CTX}, None),
        ("c|thMapper([1, 'x'], ['a', 'b', 'c'])", {"c": 0}, None),
        ("c|thMapper(values,choices)", {"c": "0.5", **TH_MAPPER_CTX}, None),
    ])


def test_values_and_keys() -> None:
    """orion-api.md, 'Available Transformations' > 'values', 'keys': "(or null if input is not
    an object)"."""
    _check([
        ("c|values", {"c": {"x": 1, "y": "foo"}}, [1, "foo"]),  # example
        ("c|keys", {"c": {"x": 1, "y": "foo"}}, ["x", "y"]),  # example
        ("c|values", {"c": {}}, []),
        ("c|values", {"c": [1, 2]}, None),
        ("c|keys", {"c": "xy"}, None),
        ("c|keys", MISSING, None),
    ])


def test_array_statistics() -> None:
    """orion-api.md, 'Available Transformations' > 'arrSum', 'arrAvg', 'arrMax', 'arrMin',
    'arrMed': the examples; null when "The input is not an array", "The array is empty", "The
    array contains some non numeric item"."""
    _check([
        ("c|arrSum", {"c": [1, 5]}, 6),  # example
        ("c|arrAvg", {"c": [1, 5]}, 3),  # example
        ("c|arrMax", {"c": [1, 5]}, 5),  # example
        ("c|arrMin", {"c": [1, 5]}, 1),  # example
        ("c|arrMed", {"c": [1, 3, 3, 6, 7, 8, 9]}, 6),  # example
        ("c|arrMed", {"c": [1, 2, 3, 4, 5, 6, 8, 9]}, 4.5),  # example
        ("c|arrMed", {"c": [9, 1, 5]}, 5),
        ("c|arrSum", {"c": [0.5, 0.25]}, 0.75),
        ("c|arrMax", {"c": [-2.5, -7]}, -2.5),
    ])
    wrong: list[dict[str, Any]] = [{"c": 5}, {"c": "15"}, {"c": {"a": 1}}, {"c": []}, {"c": [1, "2"]},
                                   {"c": [1, None]}, {"c": [True]}, MISSING]
    for name in ("arrSum", "arrAvg", "arrMax", "arrMin", "arrMed"):
        for ctx in wrong:
            assert evaluate(f"c|{name}", ctx) is None, (name, ctx)


def test_array_sort_and_reverse() -> None:
    """orion-api.md, 'Available Transformations' > 'arrSort' (null when "The input is not an
    array", "The array contains some non numeric item"), 'arrReverse' (null when "The input
    is not an array")."""
    _check([
        ("c|arrSort", {"c": [3, 1, 3, 9, 7, 8, 6]}, [1, 3, 3, 6, 7, 8, 9]),  # example
        ("c|arrReverse", {"c": [3, 1, 3, 9, 7, 8, 6]}, [6, 8, 7, 9, 3, 1, 3]),  # example
        ("c|arrSort", {"c": [2.5, -1, 2]}, [-1, 2, 2.5]),
        ("c|arrSort", {"c": []}, []),
        ("c|arrSort", {"c": [1, "a"]}, None),
        ("c|arrSort", {"c": "31"}, None),
        ("c|arrReverse", {"c": ["a", {"b": 1}, None]}, [None, {"b": 1}, "a"]),
        ("c|arrReverse", {"c": []}, []),
        ("c|arrReverse", {"c": "abc"}, None),
        ("c|arrReverse", {"c": {"a": 1}}, None),
    ])


def test_time_transformations() -> None:
    """orion-api.md, 'Available Transformations' > 'toIsoString' (seconds since the epoch to
    ISO 8601), 'getTime' (the reverse): the examples, and null for input of the wrong kind."""
    _check([
        ("c|toIsoString", {"c": 1720606949}, "2024-07-10T10:22:29+00:00"),  # example
        ("c|getTime", {"c": "2024-07-10T10:22:29+00:00"}, 1720606949),  # example
        ("c|toIsoString", {"c": "1720606949"}, None),
        ("c|getTime", {"c": "yesterday"}, None),
        ("c|getTime", {"c": 1720606949}, None),
    ])


def test_transformations_chain_and_take_context_arguments() -> None:
    """orion-api.md, 'Available Transformations': arguments are expressions of the context (the
    mapper example passes ``values`` and ``choices``), and transformations chain left to right
    ('JEXL usage example': ``(speed|split(' '))[0]|parseInt``)."""
    _check([
        ("(speed|split(' '))[0]|parseInt", {"speed": "10 m/s"}, 10),
        ("c|split(sep)|arrReverse", {"c": "a-b-c", "sep": "-"}, ["c", "b", "a"]),
        ("c|matchRegex('\\d+')|len", {"c": "a1b22c333"}, 3),
        ("(c|values|arrSort)[0]", {"c": {"x": 9, "y": 2}}, 2),
    ])


def test_failsafe_cases() -> None:
    """orion-api.md, 'Failsafe cases': null for an unknown transformation, for an operation on
    an identifier not in the context (``(A==null)?0:A``; but ``A||0`` is 0, and ``A != null ?
    1: 0`` is 0 "if A is not in the context"), and for a syntax error (``A[0|uppercase``)."""
    _check([
        ("A|undefinedExpression", {"A": 1}, None),
        ("(A==null)?0:A", MISSING, None),
        ("(A==null)?0:A", {"A": None}, 0),
        ("A||0", MISSING, 0),
        ("A != null ? 1: 0", MISSING, 0),
        ("A != null ? 1: 0", {"A": 5}, 1),
        ("A != null ? 1: 0", {"A": None}, 0),
        ("A != 5", {"A": 5}, False),
        ("A[0|uppercase", {"A": ["a"]}, None),
    ])
    with pytest.raises(BadRequest):
        compile_expression("A[0|uppercase")


def test_known_limitations() -> None:
    """orion-api.md, 'Known limitations': "The unitary minus operator is not working properly"
    (``A||-1`` is null; ``A||0-1`` and ``A||('-1'|parseInt)`` work); "Negation operator ! ...
    is not supported"; ``temperature-basic`` is ``temperature`` minus ``basic``, or null when
    one of them is missing."""
    _check([
        ("A||-1", MISSING, None),
        ("A||0-1", MISSING, -1),
        ("A||('-1'|parseInt)", MISSING, -1),
        ("!A", {"A": True}, None),
        ("!(A == 1)", {"A": 2}, None),
        ("temperature-basic", {"temperature": 20, "basic": 5, "temperature-basic": 1}, 15),
        ("temperature-basic", {"temperature": 20, "temperature-basic": 1}, None),
    ])
    with pytest.raises(BadRequest):
        compile_expression("!A")


def test_negation_is_available_to_javascript_jexl_callers() -> None:
    """``!`` is JavaScript JEXL's (the IoT agents'), where a caller asks for it; Orion's dialect
    ('Known limitations') refuses it, whatever the transform table."""
    assert compile_expression("!A", negation=True).evaluate({"A": False}) is True
    assert compile_expression("!(A == 1) && !!B", negation=True).evaluate({"A": 2, "B": 1}) is True
    assert compile_expression("!A", {}, negation=True).evaluate({"A": 0}) is True
    for table in (None, {}):
        with pytest.raises(BadRequest):
            compile_expression("!A", table)


def test_metadata_context_navigation() -> None:
    """orion-api.md, 'Metadata support': ``${metadata.A.MD1}`` is metadata MD1 of attribute A
    and ``${A-metadata.A.previousValue}`` a difference; a missing metadata is null."""
    ctx = {"A": 5, "metadata": {"A": {"MD1": "x", "previousValue": 2}}}
    _check([
        ("metadata.A.MD1", ctx, "x"),
        ("A-metadata.A.previousValue", ctx, 3),
        ("metadata.A.MD2", ctx, None),
        ("metadata.B.MD1", ctx, None),
        ("A-metadata.A.MD2", ctx, None),
    ])


def test_array_filtering() -> None:
    """JEXL's collection filter (``list[.field op value]``), which Orion's JEXL has ('JEXL
    support in custom notifications' links to JEXL's grammar; the manual lists no limitation
    of it): the matching items, in order, as an array; an index then picks one."""
    items = {"items": [{"n": "a", "p": 5}, {"n": "b", "p": 15}, {"n": "c", "p": 25}, {"n": "d"}]}
    _check([
        ("items[.p > 10]", items, [{"n": "b", "p": 15}, {"n": "c", "p": 25}]),
        ("items[.p > 10][0].n", items, "b"),
        ("items[.p > 10 && .p < 20]|len", items, 1),
        ("items[.n == 'd']", items, [{"n": "d"}]),
        ("items[.p > 100]", items, []),
        ("items[.p == limit]", {**items, "limit": 25}, [{"n": "c", "p": 25}]),
        ("items[1].n", items, "b"),
        ("missing[.p > 1]", MISSING, None),
    ])
