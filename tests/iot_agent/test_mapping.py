"""Measures -> NGSI-v2 entities, following iotagent-node-lib's doc/api.md and functional cases."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from iot_agent.expressions import evaluate
from iot_agent.mapping import build_entities, format_now

NOW = 1700000000.5  # 2023-11-14T22:13:20.500Z
STAMP = "2023-11-14T22:13:20.500Z"

DEVICE = {
    "device_id": "MQTT_2",
    "entity_type": "TheLightType2",
    "service": "smartgondor",
    "service_path": "/gardens",
    "attributes": [{"object_id": "t", "name": "temperature", "type": "Number"}],
}


def ts(value: str = STAMP) -> dict[str, object]:
    return {"TimeInstant": {"type": "DateTime", "value": value}}


def test_default_entity_and_mapping() -> None:
    assert build_entities([{"t": 10, "status": False}], DEVICE, None, NOW) == [
        {
            "id": "TheLightType2:MQTT_2",
            "type": "TheLightType2",
            "temperature": {"type": "Number", "value": 10},
            "status": {"type": "Text", "value": False},  # unprovisioned: Text, JSON value kept
        }
    ]


def test_unmapped_types_compat_text() -> None:
    out = build_entities([{"a": 1, "b": "x", "c": [1], "TimeInstant": "2020-01-01T00:00:00Z"}], DEVICE, None, NOW, infer_types=False)
    # a measured TimeInstant stamps the attributes even without the timestamp flag
    # (doc/api.md §TimeInstant and Timestamp flag, rows "Not defined / Yes")
    assert out[0]["a"] == {"type": "Text", "value": 1, "metadata": ts("2020-01-01T00:00:00Z")}
    assert out[0]["c"] == {"type": "Text", "value": [1], "metadata": ts("2020-01-01T00:00:00Z")}
    assert out[0]["TimeInstant"] == {"type": "DateTime", "value": "2020-01-01T00:00:00Z"}


def test_id_and_type_measures_are_renamed() -> None:
    out = build_entities([{"id": "x", "type": "y"}], DEVICE, None, NOW)
    assert out[0]["measure_id"] == {"type": "Text", "value": "x"}
    assert out[0]["measure_type"] == {"type": "Text", "value": "y"}
    assert out[0]["id"] == "TheLightType2:MQTT_2"


def test_entity_name_and_group_type_and_conjunction() -> None:
    dev = {"device_id": "d1", "entity_name": "Room:1"}
    grp = {"entity_type": "Room", "defaultEntityNameConjunction": "-"}
    assert build_entities([{"t": 1}], dev, grp, NOW)[0]["id"] == "Room:1"
    assert build_entities([{"t": 1}], {"device_id": "d1"}, grp, NOW)[0]["id"] == "Room-d1"


def test_entity_name_exp() -> None:
    grp = {"entity_type": "Sensor", "entityNameExp": "id + '__' + sn"}
    out = build_entities([{"sn": 5, "t": 1}], {"device_id": "d1"}, grp, NOW)
    assert out[0]["id"] == "d1__5"


def test_nothing_to_send() -> None:
    assert build_entities([{}], DEVICE, None, NOW) == []


def test_expressions_in_order_with_context() -> None:
    dev = dict(
        DEVICE,
        attributes=[
            {"object_id": "t", "name": "temperature", "type": "Number", "expression": "t * 10"},
            {"name": "double", "type": "Number", "expression": "temperature * 2"},
            {"object_id": "x", "name": "x", "type": "Number", "expression": "missing * 2"},
            {"name": "who", "type": "Text", "expression": "id + '/' + type + '/' + service + subservice"},
        ],
        static_attributes=[{"name": "floor", "type": "Number", "value": 3}],
    )
    out = build_entities([{"t": 2, "x": 1}], dev, None, NOW)[0]
    assert out["temperature"] == {"type": "Number", "value": 20}
    assert out["double"] == {"type": "Number", "value": 40}
    assert "x" not in out  # null/undefined results are not sent (and the raw measure neither)
    assert out["who"]["value"] == "MQTT_2/TheLightType2/smartgondor/gardens"
    assert out["floor"] == {"type": "Number", "value": 3}


def test_skip_value() -> None:
    dev = dict(DEVICE, attributes=[{"object_id": "t", "name": "temperature", "type": "Number", "expression": "t > 100 ? 'skip' : t", "skipValue": "skip"}])
    assert build_entities([{"t": 500}], dev, None, NOW) == []
    assert build_entities([{"t": 5}], dev, None, NOW)[0]["temperature"]["value"] == 5


def test_iota_transforms() -> None:
    assert evaluate("v|tofixed(1)", {"v": 1.26}) == "1.3"
    assert evaluate("v|round", {"v": 2.5}) == 3
    assert evaluate("v|round", {"v": -2.5}) == -2
    assert evaluate("v|parsefloat", {"v": "12.5abc"}) == 12.5
    assert evaluate("v|parseint", {"v": "0x1F"}) == 31
    assert evaluate("v|split(',')", {"v": "a,b"}) == ["a", "b"]
    assert evaluate("v|mapper(['1','2'],['on','off'])", {"v": 2}) == "off"
    assert evaluate("v|thmapper([0,10,20],['low','mid','high'])", {"v": 15}) == "mid"
    assert evaluate("v|bitwisemask(15,'&',2)", {"v": 0xFE}) == 3
    assert evaluate("v|hextostring", {"v": "576f726c64"}) == "World"
    assert evaluate("v|valuePicker(true)", {"v": {"a": True, "b": False, "c": True}}) == ["a", "c"]
    assert evaluate("v|toisodate", {"v": 1700000000500}) == STAMP
    assert evaluate("v|gettime", {"v": "2023-11-14T22:13:20.500Z"}) == 1700000000500
    assert evaluate("v|mapper([1],['x'])", {"v": 3}) is None
    assert evaluate("a +", {}) is None


def test_static_attributes_and_metadata() -> None:
    dev = dict(DEVICE, attributes=[{"object_id": "t", "name": "temperature", "type": "Number", "metadata": {"unitCode": {"type": "Text", "value": "CEL"}}}])
    grp = {"static_attributes": [{"name": "location", "type": "geo:json", "value": {"type": "Point", "coordinates": [1, 2]}}]}
    out = build_entities([{"t": 1}], dev, grp, NOW)[0]
    assert out["temperature"] == {"type": "Number", "value": 1, "metadata": {"unitCode": {"type": "Text", "value": "CEL"}}}
    assert out["location"]["type"] == "geo:json"


def test_explicit_attrs() -> None:
    dev = dict(DEVICE, static_attributes=[{"name": "s", "type": "Text", "value": "v"}])
    assert set(build_entities([{"t": 1, "other": 2}], dict(dev, explicitAttrs=True), None, NOW)[0]) == {"id", "type", "temperature", "s"}
    # an unprovisioned measure is dropped even when named (doc/api.md §explicitAttrs, case 3)
    out = build_entities([{"t": 1, "other": 2}], dict(dev, explicitAttrs="['other', 's']"), None, NOW)[0]
    assert set(out) == {"id", "type", "s"}
    out = build_entities([{"t": 1, "other": 2}], dict(dev, explicitAttrs="[{object_id: 't'}]"), None, NOW)[0]
    assert set(out) == {"id", "type", "temperature"}
    assert build_entities([{"t": 1}], dict(dev, explicitAttrs="[]", timestamp=True), None, NOW) == []
    out = build_entities([{"t": 1, "other": 2}], dict(dev, explicitAttrs="other > 1 ? ['s'] : true"), None, NOW)[0]
    assert set(out) == {"id", "type", "s"}


def test_timestamp_flag_adds_time_instant() -> None:
    out = build_entities([{"t": 10}], DEVICE, {"timestamp": True}, NOW)[0]
    assert out == {
        "id": "TheLightType2:MQTT_2",
        "type": "TheLightType2",
        "temperature": {"type": "Number", "value": 10, "metadata": ts()},
        "TimeInstant": {"type": "DateTime", "value": STAMP},
    }
    # device flag wins over group; global default applies last
    assert "TimeInstant" not in build_entities([{"t": 10}], dict(DEVICE, timestamp=False), {"timestamp": True}, NOW)[0]
    assert "TimeInstant" in build_entities([{"t": 10}], DEVICE, None, NOW, timestamp_default=True)[0]


def test_measured_time_instant_and_timezone() -> None:
    out = build_entities([{"t": 10, "TimeInstant": "2016-05-30T16:25:22Z"}], dict(DEVICE, timestamp=True), None, NOW)[0]
    assert out["temperature"]["metadata"] == ts("2016-05-30T16:25:22Z")
    assert out["TimeInstant"] == {"type": "DateTime", "value": "2016-05-30T16:25:22Z"}
    out = build_entities([{"t": 10}], dict(DEVICE, timestamp=True, timezone="Europe/Madrid"), None, NOW)[0]
    assert out["TimeInstant"]["value"] == "2023-11-14T23:13:20.500+01:00"
    assert format_now(NOW) == STAMP


def test_mapped_time_instant() -> None:
    dev = dict(DEVICE, timestamp=True, attributes=[{"object_id": "ts", "name": "TimeInstant", "type": "DateTime"}])
    out = build_entities([{"ts": "2020-01-01T00:00:00Z", "h": 1}], dev, None, NOW)[0]
    assert out["TimeInstant"]["value"] == "2020-01-01T00:00:00Z"
    assert out["h"]["metadata"] == ts("2020-01-01T00:00:00Z")


def test_bad_timestamp_fails_over_to_server_time() -> None:
    """doc/api.md §TimeInstant and Timestamp flag: a TimeInstant not in ISO 8601 "is refused
    (so a failover to server timestamp will take place)"."""
    out = build_entities([{"t": 1, "TimeInstant": "boom"}], dict(DEVICE, timestamp=True), None, NOW)[0]
    assert out["TimeInstant"] == {"type": "DateTime", "value": STAMP}
    assert out["temperature"]["metadata"] == ts()
    # without the flag the value goes through untouched
    assert build_entities([{"TimeInstant": "boom"}], DEVICE, None, NOW)[0]["TimeInstant"]["value"] == "boom"


def test_multimeasure_sorted_by_time_instant() -> None:
    out = build_entities(
        [{"t": 2, "TimeInstant": "2020-01-01T00:00:02Z"}, {"t": 1, "TimeInstant": "2020-01-01T00:00:01Z"}],
        dict(DEVICE, timestamp=True),
        None,
        NOW,
    )
    assert [e["temperature"]["value"] for e in out] == [1, 2]


def test_multientity() -> None:
    dev = dict(
        DEVICE,
        attributes=[
            {"object_id": "t", "name": "temperature", "type": "Number"},
            {"object_id": "h", "name": "humidity", "type": "Number", "entity_name": "Room:2", "entity_type": "Room"},
        ],
    )
    out = build_entities([{"t": 1, "h": 50}], dev, None, NOW)
    assert out == [
        {"id": "TheLightType2:MQTT_2", "type": "TheLightType2", "temperature": {"type": "Number", "value": 1}},
        {"id": "Room:2", "type": "Room", "humidity": {"type": "Number", "value": 50}},
    ]


def test_autocast() -> None:
    dev = dict(DEVICE, attributes=[{"object_id": "t", "name": "temperature", "type": "Number"}, {"object_id": "o", "name": "on", "type": "Boolean"}])
    out = build_entities([{"t": "21.5", "o": "true"}], dev, None, NOW, autocast=True)[0]
    assert out["temperature"]["value"] == 21.5 and out["on"]["value"] is True
    out = build_entities([{"t": "21.5"}], dev, None, NOW)[0]
    assert out["temperature"]["value"] == "21.5"


def test_agent_stored_field_names() -> None:
    dev = {"id": "d", "type": "T", "name": "E1", "active": [{"object_id": "a", "name": "A", "type": "Number"}], "staticAttributes": [{"name": "s", "type": "Text", "value": "x"}]}
    assert build_entities([{"a": 1}], dev, None, NOW) == [{"id": "E1", "type": "T", "A": {"type": "Number", "value": 1}, "s": {"type": "Text", "value": "x"}}]


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8,
)
_attr = st.fixed_dictionaries(
    {"name": st.text(min_size=1, max_size=4)},
    optional={
        "object_id": st.text(min_size=1, max_size=3),
        "type": st.sampled_from(["Number", "Text", "Boolean", "DateTime"]),
        "expression": st.sampled_from(["a*2", "a + b", "b|tofixed(1)", "a|mapper([1],['x'])", "id", "(", "c|split(',')"]),
        "skipValue": _json,
        "entity_name": st.sampled_from(["E2", "'E' + id", ""]),
    },
)


@given(
    st.lists(st.dictionaries(st.sampled_from(["a", "b", "c", "id", "type", "TimeInstant", "x"]), _json, max_size=5), min_size=1, max_size=3),
    st.lists(_attr, max_size=4),
    st.one_of(st.none(), st.booleans(), st.sampled_from(["['a']", "[]", "true", "nonsense(", "a ? ['b'] : false"])),
    st.one_of(st.none(), st.booleans()),
    st.booleans(),
)
def test_random_measures_give_entities(measures, attrs, explicit, timestamp, autocast) -> None:  # type: ignore[no-untyped-def]
    dev = {"device_id": "d", "entity_type": "T", "attributes": attrs, "explicitAttrs": explicit, "timestamp": timestamp}
    out = build_entities(measures, dev, {"static_attributes": [{"name": "s", "type": "Text", "value": 1}]}, NOW, autocast=autocast)
    for e in out:
        assert isinstance(e["id"], str) and isinstance(e["type"], str)
        attrs_out = {k: v for k, v in e.items() if k not in ("id", "type")}
        assert attrs_out
        for v in attrs_out.values():
            assert set(v) <= {"type", "value", "metadata"} and isinstance(v["type"], str)


@given(
    st.sampled_from(["replaceregexp('(', 'x')", "toisodate", "gettime", "jsonparse", "hextostring", "substr(1, 2)", "bitwisemask(3, '&', 1)", "tofixed(200)", "parseint(99)", "thmapper([1],[])", "slice(1)", "addset(1)", "urldecode"]),
    _json,
)
def test_transforms_never_raise(transform: str, value: object) -> None:
    evaluate(f"v|{transform}", {"v": value})


def test_javascript_jexl_semantics_stay_in_the_agent() -> None:
    """iotagent-node-lib-api.md, "Expression language support" (TomFrost/JEXL): booleans are
    numbers in arithmetic and ``-`` starts a negative literal after an operator; the broker's
    JEXL (Orion's, ngsi.jexl.evaluate) keeps refusing both."""
    from ngsi.jexl import evaluate as orion_evaluate

    ctx = {"a": 5, "on": True}
    assert [evaluate(e, ctx) for e in ("true + 3", "false * 3", "on - 1", "3 - -2", "a -1", "a ? -1 : 2", "[-1, 2]")] == [
        4, 0, 0, 5, 4, -1, [-1, 2]
    ]
    assert evaluate("'x' + true", ctx) == "xtrue"
    assert orion_evaluate("true + 3", ctx) is None
    assert orion_evaluate("3 - -2", ctx) is None
