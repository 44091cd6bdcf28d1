"""ngsi.render: Orion's response shapes, from the functional test cases."""

from __future__ import annotations

from typing import Any

from ngsi.render import KEY_VALUES, NORMALIZED, UNIQUE, VALUES, Projection, render_entities, render_entity


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
