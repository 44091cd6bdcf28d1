"""Tests of ngsi.query, Orion's Simple Query Language (q / mq).

The example tables come from Orion's functional test cases (named in comments);
the property tests check the parser's robustness, render/parse round trips and
matching against a deliberately plain reference implementation.
"""

from __future__ import annotations

import calendar
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ngsi.errors import BadRequest, NGSIError
from ngsi.query import Query, Range, Value, ValueList, parse_mq, parse_q


# --------------------------------------------------------------------------- helpers


def attr(value: Any, md: dict[str, Any] | None = None, type_: str = "Text", **extra: Any) -> dict:
    a = {"type": type_, "value": value, "md": {k: {"type": "Text", "value": v} for k, v in (md or {}).items()}}
    a.update(extra)
    return a


def entity(eid: str, **attrs: Any) -> dict:
    """Entity in internal form; plain values become attributes, dicts made by attr() are kept."""
    built = {k: v if isinstance(v, dict) and "md" in v else attr(v) for k, v in attrs.items()}
    return {"id": eid, "type": "T", "servicePath": "/", "attrs": built, "creDate": 100.0, "modDate": 200.0}


def hits(query: Query, entities: list[dict]) -> list[str]:
    return [e["id"] for e in entities if query.matches(e)]


def ts(text: str) -> float:
    """Epoch seconds of a UTC 'YYYY-MM-DDTHH:MM:SS' text, as stored for DateTime values."""
    return float(calendar.timegm(tuple(int(x) for x in text.replace("T", "-").replace(":", "-").split("-")) + (0, 0, 0)))


# --------------------------------------------------------------------------- errors

ERRORS = [
    # 1592 query_with_all_q_ops_without_right_hand_side / 1705 csub_cache_objects_errors
    ("!", "empty right-hand-side in q-item"),
    ("A1==", "empty right-hand-side in q-item"),
    ("A1!=", "empty right-hand-side in q-item"),
    ("A1>", "empty right-hand-side in q-item"),
    ("A1<", "empty right-hand-side in q-item"),
    ("A1>=", "empty right-hand-side in q-item"),
    ("A1<=", "empty right-hand-side in q-item"),
    (";", "empty q"),
    ("", "empty q"),
    (";;", "empty q-item"),
    ("type;;", "empty q-item"),
    ("a==55;;", "empty q-item"),
    ("a==12;   ", "empty q-item"),
    ("   ", "empty q-item (only whitespace)"),
    ("==12", "empty left-hand-side in q-item"),
    ("!=12", "empty left-hand-side in q-item"),
    (">12", "empty left-hand-side in q-item"),
    ("<12", "empty left-hand-side in q-item"),
    (">=12", "empty left-hand-side in q-item"),
    ("<=12", "empty left-hand-side in q-item"),
    ("a()==12", "invalid character found in URI param /q/"),
    # 1607 / 1705: ranges and lists only for == and !=
    ("A1>=0..20", "ranges only valid for equal and not equal ops"),
    ("A1>0..20", "ranges only valid for equal and not equal ops"),
    ("A1<=0..20", "ranges only valid for equal and not equal ops"),
    ("A1<0..20", "ranges only valid for equal and not equal ops"),
    ("a<1,2", "lists only valid for equal and not equal ops"),
    ("a==10..", "empty item in range"),
    ("a==..20", "empty item in range"),
    ("a==true..20", "invalid data type for /range-from/"),
    ("a==10..null", "invalid data type for /range-to/"),
    ("a==10..string", "invalid range: types mixed"),
    ("a!=true,false", "invalid JSON value type in list"),
    ("a!=1,null", "invalid JSON value type in list"),
    ("a!=1,str", "invalid JSON value type in list"),
    ("a!=1,", "empty item in list"),
    # 1306 string2double_not_a_number
    ("A==B..14", "invalid range: types mixed"),
    ("A==0..B", "invalid range: types mixed"),
    ("A!=B..14", "invalid range: types mixed"),
    ("A!=0..B", "invalid range: types mixed"),
    # 1039 dates_in_q_uri_param_ranges
    ("birthdate==2016-02-23T10:00:00.000Z..'2016-02-24T10:00:00.000Z'", "invalid range: types mixed"),
    # 1595 query_with_q_and_string_values
    ("A1=='10'x", "non-terminated forced string"),
    ("A1=='10'x'", "quote in forced string"),
    # 1994 invalid_chars_in_q_at_sub_creation / 2226 pattern_matching_and_integers
    ("house<flat>", "forbidden characters in String Filter"),
    ("house==flat>", "forbidden characters in String Filter"),
    ("house==flat,flat>", "forbidden characters in String Filter"),
    ("house==flat..flat>", "forbidden characters in String Filter"),
    ("house'flat'", "forbidden characters in String Filter"),
    ("a==house'flat'", "forbidden characters in String Filter"),
    ("A1~='101'", "forbidden characters in String Filter"),
]


@pytest.mark.parametrize(("text", "description"), ERRORS)
def test_orion_error_texts(text: str, description: str) -> None:
    with pytest.raises(BadRequest) as info:
        parse_q(text)
    assert info.value.description == description
    assert info.value.status == 400


def test_mq_invalid_character_names_mq() -> None:
    with pytest.raises(BadRequest, match=r"^invalid character found in URI param /mq/$"):
        parse_mq("a().b==1")


def test_valid_complete_q() -> None:
    # 1705 syntax_check_for_q_uri_param: every kind of item in one q
    q = (
        "a>10;b==abc;c==1..4;d!=0..4;f==1970-04-26T17:46:40.000Z;"
        "g!=2014-04-26T17:46:40.000Z..2015-04-26T17:46:40.000Z;h==1,2,3,4,5;i==a,b,c;"
        "i!=2007-04-05T14:00:00.000Z,2008-04-05T14:00:00.000Z,2009-04-05T14:00:00.000Z"
    )
    assert len(parse_q(q).items) == 9
    assert parse_q("a==55;").render() == "a==55"


def test_typing_of_right_hand_side() -> None:
    def operand(text: str) -> Any:
        return parse_q("A==" + text).items[0].operand

    assert operand("10") == Value("Number", 10.0)
    assert operand("'10'") == Value("String", "10")
    assert operand("true") == Value("Boolean", True)
    assert operand("'true'") == Value("String", "true")
    assert operand("null") == Value("Null", None)
    assert operand("abc") == Value("String", "abc")
    assert operand("2016-02-24T10:00:00.000Z").kind == "Date"
    assert operand("'2016-02-24T10:00:00.000Z'").kind == "String"
    assert operand("'a,b'..'c;d'") == Range(Value("String", "a,b"), Value("String", "c;d"))
    assert operand("'a..b','c'") == ValueList((Value("String", "a..b"), Value("String", "c")))
    assert operand("I am M1") == Value("String", "I am M1")
    assert operand("1e3") == Value("Number", 1000.0)
    assert parse_q("A:1").items[0].op == "=="


# --------------------------------------------------------------------------- matching (Orion cases)


def test_exists_and_not_exists() -> None:
    # 1592 attribute_exists_or_not, 1589
    es = [entity("E1", A1=1, A2=2, A3=3), entity("E2", A2=1, A3=3, A4=4), entity("E3", A1=1, A2=2, A4=4, A5=5)]
    assert hits(parse_q("A1"), es) == ["E1", "E3"]
    assert hits(parse_q("!A1"), es) == ["E2"]
    assert hits(parse_q(" ! A1 "), es) == ["E2"]


def test_numbers() -> None:
    # 1592 query_with_q_op_greater_or_equal, 1607, 0967 q_in_uri_param_to_filter
    es = [entity("E1", A1=10), entity("E2", A1=20), entity("E3", A1=30)]
    assert hits(parse_q("A1>=0"), es) == ["E1", "E2", "E3"]
    assert hits(parse_q("A1>=11"), es) == ["E2", "E3"]
    assert hits(parse_q("A1>=21"), es) == ["E3"]
    assert hits(parse_q("A1>=31"), es) == []
    assert hits(parse_q("A1==0..20"), es) == ["E1", "E2"]
    assert hits(parse_q("A1!=0..20"), es) == ["E3"]
    assert hits(parse_q("A1<20.5;A1>10"), es) == ["E2"]
    es = [entity(f"E{i}", temperature=10 + 10 * i, humidity=90 - 10 * i) for i in range(1, 6)]
    assert hits(parse_q("temperature<60;humidity==61..83"), es) == ["E1", "E2"]


def test_booleans() -> None:
    # 1594 query_with_q_and_equals_true
    es = [entity("E1", A1=True), entity("E2", A1=False), entity("E3", A1=True)]
    assert hits(parse_q("A1==true"), es) == ["E1", "E3"]
    assert hits(parse_q("A1==false"), es) == ["E2"]
    assert hits(parse_q("A2==true"), es) == []
    assert hits(parse_q("A1!=true"), es) == ["E2"]
    assert hits(parse_q("A1!=false"), es) == ["E1", "E3"]
    assert hits(parse_q("A2!=true"), es) == []
    assert not parse_q("A==1").matches(entity("E", A=True))  # a bool is not the number 1


def test_strings_versus_numbers() -> None:
    # 1595, 1129 strings_in_q_uri_param, 2807 quotes_to_stringify_in_string_filter
    es = [entity("E1", A1="10"), entity("E2", A1=10)]
    assert hits(parse_q("A1==10"), es) == ["E2"]
    assert hits(parse_q("A1=='10'"), es) == ["E1"]
    assert hits(parse_q("A1!=10"), es) == ["E1"]
    assert hits(parse_q("A1!='10'"), es) == ["E2"]
    es = [entity("E1", S="123"), entity("E2", S=123)]
    assert hits(parse_q("S:'123'"), es) == ["E1"]
    assert hits(parse_q("S:123"), es) == ["E2"]
    assert hits(parse_q("S:121,123,125"), es) == ["E2"]
    assert hits(parse_q("S:121,122,124"), es) == []
    assert hits(parse_q("S:'121','123','123'"), es) == ["E1"]
    es = [entity("E3", A1="null"), entity("E4", A1=None), entity("E5", A1="true"), entity("E6", A1=True)]
    assert hits(parse_q("A1=='null'"), es) == ["E3"]
    assert hits(parse_q("A1==null"), es) == ["E4"]
    assert hits(parse_q("A1=='true'"), es) == ["E5"]
    assert hits(parse_q("A1==true"), es) == ["E6"]


def test_string_order_and_colon() -> None:
    # 1903 filter_query_colon, 1945 filter_string_comparison
    colours = ["black", "purple", "red", "brown", "yellow"]
    es = [entity(f"E{i}", colour=c) for i, c in enumerate(colours, 1)]
    assert hits(parse_q("colour:black"), es) == ["E1"]
    assert hits(parse_q("colour:red,yellow"), es) == ["E3", "E5"]
    assert hits(parse_q("colour:brown..red"), es) == ["E2", "E3", "E4"]
    assert hits(parse_q("colour<=brown"), es) == ["E1", "E4"]
    assert hits(parse_q("colour<brown"), es) == ["E1"]
    assert hits(parse_q("colour>=red"), es) == ["E3", "E5"]
    assert hits(parse_q("colour>red"), es) == ["E5"]
    assert hits(parse_q("colour!=brown..red"), es) == ["E1", "E5"]
    # 1316 post_subs_expr_q_quoted_enum (the shell strips the quotes there)
    es = [entity("A", colour="black"), entity("B", colour="red,green"), entity("C", colour="black,white")]
    assert hits(parse_q("colour!=black,white,red,green"), es) == ["B", "C"]
    assert hits(parse_q("colour!='black,white','red,green'"), es) == ["A"]


def test_nulls() -> None:
    # 2359 null_values_in_string_filters, 4120 string_and_null_mixed_filter
    es = [entity("E1", A1=None), entity("E2", A1=1)]
    assert hits(parse_q("A1==null"), es) == ["E1"]
    assert hits(parse_q("A1!=null"), es) == ["E2"]
    es = [
        entity("E3", A1=attr("Step 05", {"M1": None})),
        entity("E4", A1=attr("Step 06", {"M1": 1})),
    ]
    assert hits(parse_mq("A1.M1==null"), es) == ["E3"]
    assert hits(parse_mq("A1.M1!=null"), es) == ["E4"]
    es = [entity("E5", A1={"M1": None, "M2": 9}), entity("E6", A1={"M1": 1, "M2": None})]
    assert hits(parse_q("A1.M1==null"), es) == ["E5"]
    assert hits(parse_q("A1.M1!=null"), es) == ["E6"]
    es = [
        entity("E7", A1=attr("Step 13", {"M1": {"X1": None, "X2": 13}})),
        entity("E8", A1=attr("Step 14", {"M1": {"X1": 1, "X2": None}})),
    ]
    assert hits(parse_mq("A1.M1.X1==null"), es) == ["E7"]
    assert hits(parse_mq("A1.M1.X1!=null"), es) == ["E8"]
    es = [entity("E1", A=None), entity("E2", A="foo"), entity("E3", B="zzz")]
    assert hits(parse_q("A:null"), es) == ["E1"]
    assert hits(parse_q("A:foo,null"), es) == ["E1", "E2"]
    assert hits(parse_q("A:null,foo"), es) == ["E1", "E2"]
    assert hits(parse_q("A!=null"), es) == ["E2"]
    assert hits(parse_q("A!=foo,null"), es) == []
    assert hits(parse_q("A!=null,foo"), es) == []


def test_patterns() -> None:
    # 2226 pattern_matching_and_integers, 4636 query_match_pattern_hardening, 1156
    es = [entity("E1", A1=101), entity("E2", A1="101"), entity("E3", A1=103)]
    assert hits(parse_q("A1~=100"), es) == []
    assert hits(parse_q("A1~=101"), es) == ["E2"]
    es = [entity("E-lower", description="test1907"), entity("E-upper", description="Test1907")]
    assert hits(parse_q("description~=Test"), es) == ["E-upper"]
    e = entity("E1", A1=attr("x", {"M1": {"s": "test_string"}}))
    for pattern, expected in [("ing", True), ("test_", True), ("t_st", True), ("_", True), ("none", False)]:
        assert parse_mq(f"A1.M1.s~={pattern}").matches(e) is expected
    # 1156 q_and_mq_false_and_true_is_false
    e = entity("E1", A1=attr(1, {"M1": 1}), A2=attr("a_string", {"M1": "m_string", "M2": 2}))
    assert parse_q("A2~=st;A1==1").matches(e)
    assert not parse_q("A2~=st;A1==2").matches(e)
    assert parse_mq("A2.M1~=st;A2.M2==2").matches(e)
    assert not parse_mq("A2.M1~=st;A2.M2==1").matches(e)


def test_compound_paths_and_quoted_names() -> None:
    # 2995_q_in_GET q_compound_*, 2805 quotes_in_lhs_of_string_filter, 2452 colon in name
    e = entity("E1", t={"b.c": {"d": 20}})
    assert not parse_q("t.'b.c.d'>=20").matches(e)
    assert not parse_q("t.'b.c'.'d'>=21").matches(e)
    assert parse_q("t.'b.c'.'d'>=20").matches(e)
    assert parse_q("t.'b.c'.d<=20").matches(e)
    assert not parse_q("t.'b.c'.d>=aString").matches(e)
    e1 = entity("E1", **{"A1.B1": attr("A1", {"M1": "M1"})})
    e2 = entity("E2", **{"A1.B1": {"C1": 21, "C2": 22}})
    es = [e1, e2]
    assert hits(parse_q("A1.B1"), es) == []
    assert hits(parse_q("'A1.B1'"), es) == ["E1", "E2"]
    assert hits(parse_mq("'A1.B1'.M1==M1"), es) == ["E1"]
    assert hits(parse_mq("'A1.B1'.M1==M2"), es) == []
    assert hits(parse_q("'A1.B1'.M1"), es) == []
    assert hits(parse_q("A1.B1.C1"), es) == []
    assert hits(parse_q("'A1.B1'.C1"), es) == ["E2"]
    assert hits(parse_q("'A1.B1'.C1==21"), es) == ["E2"]
    assert hits(parse_q("'A1.B1'.C1==22"), es) == []
    e3 = entity("E3", A1=attr("a1 with metadata mix", {"M1.x": "mix"}))
    assert parse_mq("A1.'M1.x'").matches(e3)
    assert not parse_mq("A1.M1.x").matches(e3)
    assert parse_mq("A1.'M1.x'==mix").matches(e3)
    assert not parse_mq("A1.'M1.x'==max").matches(e3)
    es = [entity("E1", **{"A:1": 1}), entity("E2", **{"A:2": 2})]
    assert hits(parse_q("A:1"), es) == []
    assert hits(parse_q("'A:1'"), es) == ["E1"]
    assert hits(parse_q("!'A:1'"), es) == ["E2"]
    assert hits(parse_q("!'A:2'"), es) == ["E1"]
    assert hits(parse_q("'A:3'"), es) == []
    assert hits(parse_q("!'A:3'"), es) == ["E1", "E2"]


def test_metadata_filters() -> None:
    # 1156 mqfilters_and_compounds_*, 2995_q_in_GET mq_*, 2446 mq_and_vector
    e = entity("E1", A1=attr("x", {"M1": {"i": 10, "f": 3.14, "s": "test_string", "T": True, "F": False, "N": None}}))
    for mq, expected in [
        ("A1.M1.i", True), ("A1.M1.i2", False), ("A2.M1.i", False),
        ("!A1.M1.i2", True), ("!A1.M1.i", False), ("!A2.M1.i", True),
        ("A1.M1.N:null", True), ("A1.M1.N==null", True), ("A1.M1.N!=null", False),
        ("A1.M1.T:true", True), ("A1.M1.T==false", False), ("A1.M1.F==false", True),
        ("A1.M1.f==3.14", True), ("A1.M1.f:3.12,3.13,3.14", True), ("A1.M1.f!=3.11,3.12,3.13", True),
        ("A1.M1.f!=2.16..4.16", False), ("A1.M1.f:3.16..4.16", False), ("A1.M1.f<-1.0", False),
        ("A1.M1.i:10;A1.M1.s:test_string", True), ("A1.M1.i:10;A1.M1.s:teststring", False),
        ("A1.M1.s>=fest_string", True), ("A1.M1.s<fest_string", False),
        ("A1.M1.s:a_string..s_string", False), ("A1.M1.s!=a_string..s_string", True),
        ("A1.M1", True), ("A1", False), ("!A1", True),
    ]:
        assert parse_mq(mq).matches(e) is expected, mq
    e = entity("E1", t=attr(1, {"a": 20}, type_="Number"))
    assert not parse_mq("t.b<=20").matches(e)
    assert parse_mq("t.a<=20").matches(e)
    assert not parse_mq("t.a>=aString").matches(e)
    e = entity("E1", t=attr(1, {"a": {"b.c.d": 20}}))
    assert not parse_mq("t.'a.b'.'c.d'<=20").matches(e)
    assert not parse_mq("t.'a'.'b.c.d'<=19").matches(e)
    assert parse_mq("t.'a'.'b.c.d'<=20").matches(e)
    es = [entity("E1", A1=attr("01", {"M1": [1, 2]})), entity("E2", A1=attr("01", {"M1": ["one", "two", "three"]}))]
    assert hits(parse_mq("A1.M1==1"), es) == ["E1"]
    assert hits(parse_mq("A1.M1==two"), es) == ["E2"]
    assert hits(parse_mq("A1.M1!=two"), es) == ["E1"]
    assert hits(parse_mq("A1.M1==I am M1"), [entity("E1", A1=attr("01", {"M1": "I am M1"}))]) == ["E1"]


def test_dates() -> None:
    # 1039 dates_in_q_uri_param*, 2631 partial datetimes, 2632 timezones, 3533 null DateTime
    def dt(text: str) -> dict:
        return attr(ts(text), type_="DateTime")

    es = [
        entity("E24", birthdate=dt("2016-02-24T10:00:00")),
        entity("E23", birthdate=dt("2016-02-23T10:00:00")),
        entity("E22", birthdate=dt("2016-02-22T10:00:00")),
        entity("E25", birthdate=attr("2016-02-25T10:00:00.000Z", type_="string")),
        entity("E26", birthdate=attr(None, type_="DateTime")),
    ]
    assert hits(parse_q("birthdate==2016-02-24T10:00:00.000Z"), es) == ["E24"]
    assert hits(parse_q("birthdate>2016-02-24T10:00:00.000Z"), es) == []
    assert hits(parse_q("birthdate<2016-02-25T10:00:00.000Z"), es) == ["E24", "E23", "E22"]
    assert hits(parse_q("birthdate>=2016-02-23T10:00:00.000Z"), es) == ["E24", "E23"]
    assert hits(parse_q("birthdate<=2016-02-23T10:00:00.000Z"), es) == ["E23", "E22"]
    assert hits(parse_q("birthdate=='2016-02-23T10:00:00.000Z'"), es) == []
    assert hits(parse_q("birthdate==2016-02-25T10:00:00.000Z"), es) == []
    assert hits(parse_q("birthdate=='2016-02-25T10:00:00.000Z'"), es) == ["E25"]
    assert hits(parse_q("birthdate==2016-02-22T10:00:00.000Z,2016-02-26T10:00:00.000Z"), es) == ["E22"]
    assert hits(parse_q("birthdate==2016-02-23T10:00:00.000Z..2016-02-24T10:00:00.000Z"), es) == ["E24", "E23"]
    es = [entity("E1", D=dt("2016-09-30T22:48:51")), entity("E2", D=dt("2016-10-01T01:23:45"))]
    assert hits(parse_q("D>2016-10-01"), es) == ["E2"]
    assert hits(parse_q("D<2016-10-01T0000Z"), es) == ["E1"]
    es = [entity("E1", D=dt("2016-09-30T22:48:51")), entity("E2", D=dt("2016-09-30T22:48:53"))]
    for q in ["D>2016-09-30T22:48:52", "D>2016-09-30T23:48:52+01:00", "D>2016-10-01T00:18:52+0130",
              "D>2016-09-30T23:48:52+01", "D>2016-09-30T21:18:52-01:30", "D>2016-09-30T21:48:52-01"]:
        assert hits(parse_q(q), es) == ["E2"], q


def test_builtin_dates() -> None:
    # 0876 filter_entity_dates / filter_attr_dates / *_overridden_by_user_subs
    e = entity("E1", A=attr("x", creDate=50.0, modDate=60.0), dateCreated=999999.0)
    assert parse_q("dateCreated<1970-01-01T00:01:41Z").matches(e)  # entity creDate 100, not the attribute
    assert parse_q("dateModified==1970-01-01T00:03:00Z..1970-01-01T00:03:20Z").matches(e)
    assert not parse_q("dateExpires").matches(e)
    assert parse_q("dateExpires>1970-01-01").matches({**e, "expDate": 5.0})
    assert parse_mq("A.dateCreated<1970-01-01T00:00:51Z").matches(e)
    assert not parse_mq("A.dateModified<1970-01-01T00:00:51Z").matches(e)
    assert not parse_mq("B.dateModified<1970-01-01T00:00:51Z").matches(e)


def test_arrays_follow_mongodb() -> None:
    e = entity("E", A=[1, 5, "x"], B=[{"c": 1}, {"c": 2}], C=[[1]])
    assert parse_q("A==5").matches(e)
    assert parse_q("A==x").matches(e)
    assert not parse_q("A!=5").matches(e)
    assert parse_q("A!=7").matches(e)
    assert parse_q("A>4").matches(e)
    assert parse_q("A==2..3").matches(e)  # 5>=2 and 1<=3, like MongoDB without $elemMatch
    assert parse_q("B.c==2").matches(e)
    assert parse_q("B.1.c==2").matches(e)
    assert not parse_q("B.c==3").matches(e)
    assert parse_q("B.c").matches(e)
    assert not parse_q("C==1").matches(e)  # one level of unwinding only


def test_render_round_trip_examples() -> None:
    for text in ["A==1", "'A.B'.c!='x,y'", "a~=^t.*$", "!'A:1'", "A==1,2,3", "x=='a'..'b'", "A1.M1.s:S1,S2"]:
        q = parse_q(text)
        assert parse_q(q.render()) == q


# --------------------------------------------------------------------------- properties

_TEXT_ALPHABET = st.sampled_from(list("aAz0129.-_:'!=<>~;,() TZ+\"\t\\^$*?[]{}|"))


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(), st.text(_TEXT_ALPHABET, max_size=40)), st.booleans())
def test_parser_only_raises_ngsi_errors(text: str, metadata: bool) -> None:
    try:
        query = (parse_mq if metadata else parse_q)(text)
    except NGSIError as exc:
        assert exc.status == 400 and exc.description
        return
    query.matches(entity("E", a=1, b="x", c={"d": [1, {"e": None}]}))
    (parse_mq if metadata else parse_q)(query.render())


_NAME = st.text(st.characters(codec="utf-8", exclude_characters="'\x00"), min_size=1, max_size=8)
_STRING = st.text(st.characters(codec="utf-8", exclude_characters="'"), max_size=10)
_NUMBER = st.one_of(st.integers(-10**6, 10**6), st.floats(allow_nan=False, allow_infinity=False, width=32))


def _quote(s: str) -> str:
    return f"'{s}'"


@st.composite
def _values(draw: st.DrawFn) -> tuple[str, str]:
    """(kind, text) of a right-hand-side value."""
    kind = draw(st.sampled_from(["Number", "String", "Date"]))
    if kind == "Number":
        return kind, repr(draw(_NUMBER))
    if kind == "Date":
        return kind, draw(st.sampled_from(["2016-02-24T10:00:00.000Z", "2016-10-01", "2020-05-10T01:02:03.2Z"]))
    return kind, _quote(draw(_STRING))


@st.composite
def _items(draw: st.DrawFn) -> str:
    lhs = ".".join(_quote(c) for c in draw(st.lists(_NAME, min_size=1, max_size=3)))
    shape = draw(st.sampled_from(["exists", "not", "value", "order", "list", "range", "pattern"]))
    if shape == "exists":
        return lhs
    if shape == "not":
        return "!" + lhs
    if shape == "pattern":
        return lhs + "~=" + draw(st.sampled_from(["^a", "b$", "t_st", "[0-9]+", "x|y"]))
    if shape == "order":
        return lhs + draw(st.sampled_from([">", ">=", "<", "<="])) + draw(_values())[1]
    op = draw(st.sampled_from(["==", "!=", ":"]))
    if shape == "value":
        return lhs + op + draw(st.one_of(_values().map(lambda v: v[1]), st.sampled_from(["true", "false", "null"])))
    kind, first = draw(_values())
    rest = draw(st.lists(_values().filter(lambda v: v[0] == kind).map(lambda v: v[1]), min_size=1, max_size=3))
    if shape == "list":
        return lhs + op + ",".join([first, *rest])
    return lhs + op + first + ".." + rest[0]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_items(), min_size=1, max_size=4), st.booleans())
def test_render_parse_round_trip(items: list[str], metadata: bool) -> None:
    parse = parse_mq if metadata else parse_q
    query = parse(";".join(items))
    assert len(query.items) == len(items)
    again = parse(query.render())
    assert again == query
    assert again.render() == query.render()


# Matching against a plain reference: attributes A/B/C with scalar or list values,
# items on those attributes with every operator.

_SCALARS = st.one_of(
    st.integers(-3, 3), st.sampled_from([0.5, 2.0, -1.5]), st.sampled_from(["a", "b", "ab", "c", ""]),
    st.booleans(), st.none(),
)
_ATTR_VALUE = st.one_of(_SCALARS, st.lists(_SCALARS, max_size=3))
_OPERAND = st.one_of(
    st.integers(-3, 3).map(lambda i: (i, str(i))),
    st.sampled_from([0.5, -1.5]).map(lambda f: (f, repr(f))),
    st.sampled_from(["a", "b", "ab", "c"]).map(lambda s: (s, s)),
    st.sampled_from(["a", "b", "1", ""]).map(lambda s: (s, _quote(s))),
    st.sampled_from([(True, "true"), (False, "false"), (None, "null")]),
)


def _ref_eq(v: Any, x: Any) -> bool:
    if x is None or isinstance(x, bool):
        return v is x
    if isinstance(x, str):
        return isinstance(v, str) and v == x
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v == x


def _ref_cmp(v: Any, x: Any, op: str) -> bool:
    same = (isinstance(x, str) and isinstance(v, str)) or (
        isinstance(x, (int, float)) and isinstance(v, (int, float)) and not isinstance(v, bool)
    )
    if not same:
        return False
    return {">": v > x, ">=": v >= x, "<": v < x, "<=": v <= x}[op]


def _reference(attrs: dict[str, Any], name: str, op: str, operands: list[Any], shape: str) -> bool:
    if op == "exists":
        return name in attrs
    if op == "not":
        return name not in attrs
    if name not in attrs:
        return False
    value = attrs[name]
    elems = value if isinstance(value, list) else [value]
    if shape == "range":
        lo, hi = operands
        inside = any(_ref_cmp(v, lo, ">=") for v in elems) and any(_ref_cmp(v, hi, "<=") for v in elems)
        return inside if op == "==" else not inside
    if op in ("==", "!="):
        hit = any(_ref_eq(v, x) for v in elems for x in operands)
        return hit if op == "==" else not hit
    return any(_ref_cmp(v, operands[0], op) for v in elems)


@st.composite
def _reference_items(draw: st.DrawFn) -> tuple[str, str, str, list[Any], str]:
    name = draw(st.sampled_from(["A", "B", "C"]))
    op = draw(st.sampled_from(["exists", "not", "==", "!=", ">", ">=", "<", "<="]))
    if op == "exists":
        return name, name, op, [], "value"
    if op == "not":
        return "!" + name, name, op, [], "value"
    first = draw(_OPERAND)
    if op in (">", ">=", "<", "<=") and (first[0] is None or isinstance(first[0], bool)):
        first = (1, "1")
    shape = draw(st.sampled_from(["value", "list", "range"])) if op in ("==", "!=") else "value"
    if shape == "value" or first[0] is None or isinstance(first[0], bool):
        return f"{name}{op}{first[1]}", name, op, [first[0]], "value"
    same = _OPERAND.filter(lambda o: type(o[0]) is type(first[0]) or (
        not isinstance(o[0], (str, bool)) and o[0] is not None and not isinstance(first[0], str)))
    second = draw(same)
    if shape == "list":
        return f"{name}{op}{first[1]},{second[1]}", name, op, [first[0], second[0]], "list"
    return f"{name}{op}{first[1]}..{second[1]}", name, op, [first[0], second[0]], "range"


@settings(max_examples=500, deadline=None)
@given(
    st.dictionaries(st.sampled_from(["A", "B", "C"]), _ATTR_VALUE, max_size=3),
    st.lists(_reference_items(), min_size=1, max_size=3),
)
def test_matching_agrees_with_reference(attrs: dict[str, Any], items: list[tuple]) -> None:
    e = entity("E", **{k: attr(v) for k, v in attrs.items()})
    query = parse_q(";".join(text for text, *_ in items))
    expected = all(_reference(attrs, name, op, operands, shape) for _, name, op, operands, shape in items)
    assert query.matches(e) is expected
