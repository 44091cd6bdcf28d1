"""ngsi.render: Orion's response shapes, from the functional test cases."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from ngsi.jsonout import dumps
from ngsi.render import KEY_VALUES, NORMALIZED, UNIQUE, VALUES, Projection, attr_value, render_entities, render_entity


def _attr(value: Any, type_: str = "Text") -> dict[str, Any]:
    return {"type": type_, "value": value, "md": {}, "creDate": 1.0, "modDate": 2.0}


def _entity(**attrs: Any) -> dict[str, Any]:
    return {
        "id": "E1", "type": "T", "servicePath": "/Madrid/A", "creDate": 1.0, "modDate": 2.0,
        "attrs": {name: _attr(value) for name, value in attrs.items()},
    }


def test_values_come_in_attribute_name_order() -> None:
    # 1259_new_json_for_v2/v2_render_modes: Orion reads attributes back sorted by name
    entity = _entity(string_object="a1", int_object=21, false_object=False)
    assert render_entity(entity, VALUES) == [False, 21, "a1"]
    assert list(render_entity(entity, KEY_VALUES)) == ["id", "type", "false_object", "int_object", "string_object"]


def test_attrs_filter_orders_values() -> None:
    entity = _entity(A="foo", B="bar")
    shown = render_entity(entity, VALUES, Projection(attrs=("B", "dateCreated", "A")))
    assert shown == ["bar", "1970-01-01T00:00:01.000Z", "foo"]


def test_attrs_filter_orders_attributes_in_every_mode() -> None:
    # orion-api.md, "Retrieve Entity", attrs: "retrieved in the order specified by this parameter"
    entity = _entity(A="foo", B="bar")
    shown = Projection(attrs=("B", "dateCreated", "A", "B"))
    assert list(render_entity(entity, NORMALIZED, shown)) == ["id", "type", "B", "dateCreated", "A"]
    assert list(render_entity(entity, KEY_VALUES, shown)) == ["id", "type", "B", "dateCreated", "A"]
    assert list(render_entity(entity, KEY_VALUES, Projection(attrs=("B", "*")))) == ["id", "type", "A", "B"]


def test_unique_removes_repeats_inside_each_entity() -> None:
    # 1050_options_unique/options_unique
    entity = _entity(Car1="Mercedes", Car2="BMW", Car3="Audi", Car4="BMW", Car5="Mercedes", Car6="BMW")
    assert render_entity(entity, UNIQUE) == ["Mercedes", "BMW", "Audi"]
    assert render_entities([entity, entity], UNIQUE) == [["Mercedes", "BMW", "Audi"]] * 2


def test_unique_tells_true_from_one() -> None:
    assert render_entity(_entity(a=1, b=True, c=1, d=True), UNIQUE) == [1, True]


def test_service_path_is_a_builtin_attribute() -> None:
    # 2877_return_ServicePath_in_entity_response
    entity = _entity(temperature=35)
    assert render_entity(entity, NORMALIZED, Projection(attrs=("servicePath",))) == {
        "id": "E1", "type": "T", "servicePath": {"type": "Text", "value": "/Madrid/A", "metadata": {}},
    }
    assert "servicePath" not in render_entity(entity)
    assert "servicePath" not in render_entity(entity, NORMALIZED, Projection(attrs=("*",)))


# -- geo:json Feature and FeatureCollection (orion-api.md, "GeoJSON") -------------------------

_POINT = {"type": "Point", "coordinates": [1, 2]}
_FEATURE = {"type": "Feature", "geometry": _POINT, "properties": {"label": "x"}}


def _geo(value: Any, **md: Any) -> dict[str, Any]:
    entity = _entity()
    entity["attrs"]["loc"] = {"type": "geo:json", "value": value, "creDate": 1.0, "modDate": 2.0,
                              "md": {name: {"type": "Boolean", "value": v} for name, v in md.items()}}
    return entity


def test_a_feature_renders_as_its_geometry() -> None:
    entity = _geo(_FEATURE)
    assert render_entity(entity, KEY_VALUES)["loc"] == _POINT
    assert render_entity(entity)["loc"]["value"] == _POINT
    assert render_entity(entity, VALUES) == [_POINT]
    assert attr_value(entity["attrs"]["loc"]) == _POINT
    assert entity["attrs"]["loc"]["value"] == _FEATURE  # the stored value is whole


def test_a_feature_collection_renders_as_the_geometry_of_its_first_feature() -> None:
    assert attr_value(_geo({"type": "FeatureCollection", "features": [_FEATURE]})["attrs"]["loc"]) == _POINT


def test_ignore_type_renders_the_whole_feature() -> None:
    assert attr_value(_geo(_FEATURE, ignoreType=True)["attrs"]["loc"]) == _FEATURE
    assert attr_value(_geo(_FEATURE, ignoreType=False)["attrs"]["loc"]) == _POINT


def test_features_of_other_types_and_broken_features_render_as_stored() -> None:
    text = _entity()
    text["attrs"]["loc"] = {"type": "StructuredValue", "value": _FEATURE, "md": {}}
    assert attr_value(text["attrs"]["loc"]) == _FEATURE
    for broken in ({"type": "Feature"}, {"type": "FeatureCollection", "features": []},
                   {"type": "FeatureCollection", "features": "x"}, {"type": "Feature", "geometry": 3}):
        assert attr_value(_geo(broken)["attrs"]["loc"]) == broken


# -- properties -------------------------------------------------------------------------------

_names = st.text(alphabet="abcdefghABCDEF_0123", min_size=1, max_size=6)
_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3),
    max_leaves=6,
)
_entities = st.dictionaries(_names, _values, max_size=6).map(lambda attrs: _entity(**attrs))


@given(_entities)
def test_key_values_holds_the_normalized_values(entity: dict[str, Any]) -> None:
    normalized = render_entity(entity, NORMALIZED)
    key_values = render_entity(entity, KEY_VALUES)
    assert list(normalized) == list(key_values)
    for name, shown in key_values.items():
        if name not in ("id", "type"):
            assert normalized[name]["value"] == shown
            assert set(normalized[name]) == {"type", "value", "metadata"}


@given(_entities, st.lists(_names, max_size=4, unique=True))
def test_values_follow_the_attrs_filter(entity: dict[str, Any], wanted: list[str]) -> None:
    shown = render_entity(entity, VALUES, Projection(attrs=tuple(wanted)))
    assert shown == [entity["attrs"][name]["value"] for name in wanted if name in entity["attrs"]]


@given(st.lists(_entities, max_size=4))
def test_unique_rows_have_no_repeats_and_come_from_values(entities: list[dict[str, Any]]) -> None:
    for row, values in zip(render_entities(entities, UNIQUE), render_entities(entities, VALUES)):
        assert all(item in values for item in row)
        assert all(row.count(item) == 1 for item in row)


@given(st.lists(_entities, max_size=3))
def test_rendered_bytes_parse_back(entities: list[dict[str, Any]]) -> None:
    rendered = render_entities(entities, NORMALIZED)
    assert json.loads(dumps(rendered)) == rendered
