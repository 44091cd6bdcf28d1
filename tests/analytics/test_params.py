"""Query parameters (``params.py``): each one read, each bad value a 400, any input one
or the other (hypothesis)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics.history.errors import BadRequest
from analytics.history.instants import MAX_MS, MIN_MS, parse_instant
from analytics.history.params import parse_flag, parse_query


def test_defaults() -> None:
    q = parse_query({}, tenant="t")
    assert (q.lo, q.hi, q.limit, q.offset, q.last_n, q.method, q.geo) == (MIN_MS, MAX_MS, 10000, 0, None, None, None)
    assert q.scopes == (("/", True),) and q.entity_ids is None and not q.one_entity


def test_everything_read() -> None:
    q = parse_query({"type": "A, B", "attrs": "x,y,x", "fromDate": "2018-01-05T15:44:34", "toDate": "2019-01-01",
                     "lastN": "5", "limit": "99999", "offset": "2", "aggrMethod": "avg", "aggrPeriod": "hour",
                     "aggrScope": "entity", "options": "keyValues", "georel": "near;maxDistance:1000",
                     "geometry": "point", "coords": "40.4,-3.7"},
                    tenant="t", service_path="/a/#, /b", entity_id="E1", max_limit=500)
    assert q.entity_types == ("A", "B") and q.attrs == ("x", "y") and q.entity_ids == ("E1",) and q.one_entity
    assert q.lo == parse_instant("2018-01-05T15:44:34") and q.hi == parse_instant("2019-01-01T00:00:00")
    assert (q.last_n, q.limit, q.offset, q.count) == (5, 500, 2, 5)
    assert (q.method, q.period) == ("avg", "hour")
    assert q.geo is not None and q.geo.georel == "near" and q.geo.max_distance == 1000
    assert q.scopes == (("/a", True), ("/b", False))


@pytest.mark.parametrize("params", [
    {"lastN": "0"}, {"lastN": "-1"}, {"limit": "0"}, {"limit": "x"}, {"offset": "-1"}, {"offset": "1.5"},
    {"limit": "١٢"}, {"fromDate": "yesterday"}, {"toDate": "2018-13-01"}, {"aggrMethod": "median"},
    {"aggrPeriod": "week", "aggrMethod": "sum"}, {"aggrPeriod": "day"}, {"aggrScope": "all"},
    {"aggrScope": "global"}, {"options": "count"}, {"idPattern": "("}, {"id": "a", "idPattern": "a"},
    {"georel": "near"}, {"georel": "within", "geometry": "point", "coords": "1,2"},
    {"georel": "intersects", "geometry": "point", "coords": "x"},
])
def test_bad_parameters_are_400(params: dict[str, str]) -> None:
    with pytest.raises(BadRequest):
        parse_query(params, tenant="")


def test_bad_service_path_and_flag() -> None:
    with pytest.raises(BadRequest):
        parse_query({}, tenant="", service_path="no-slash")
    assert parse_flag({"dropTable": "TRUE"}, "dropTable") and not parse_flag({}, "dropTable")
    with pytest.raises(BadRequest):
        parse_flag({"dropTable": "yes"}, "dropTable")


NAMES = ["type", "id", "idPattern", "attrs", "fromDate", "toDate", "lastN", "limit", "offset", "aggrMethod",
         "aggrPeriod", "aggrScope", "options", "georel", "geometry", "coords", "other"]
values = st.text(max_size=20) | st.sampled_from(["1", "0", "10001", "avg", "hour", "entity", "2018-01-05T15:44:34",
                                                  "point", "near;maxDistance:5", "1,2", ".*", "9" * 30])


@settings(max_examples=500, deadline=None, database=None)
@given(st.dictionaries(st.sampled_from(NAMES), values, max_size=6), st.none() | st.text(max_size=10))
def test_any_parameters_are_a_query_or_a_400(params: dict[str, str], path: str | None) -> None:
    try:
        q = parse_query(params, tenant="", service_path=path, max_limit=100)
    except BadRequest:
        return
    assert 1 <= q.limit <= 100 and q.offset >= 0 and (q.last_n is None or q.last_n >= 1)
    assert MIN_MS <= q.lo and q.hi <= MAX_MS
