"""Measures against groups of many shapes, as a user of iotagent-node-lib 4.x agents sends
them (HTTP JSON and MQTT), checked on the entity the broker ends up with.

Each test cites the section of the reference it follows (under
/work/shared/reference/iot-agents/); where the reference is silent, docs/iot_agent.md
says what was chosen.
"""

from __future__ import annotations

import time
from typing import Any

import httpx

from .conftest import AgentStack, MqttDevice, new_service, tenant

Doc = dict[str, Any]


def provision(stack: AgentStack, **group: Any) -> tuple[str, str]:
    """A new tenant with one JSON group of ``Thing`` entities (plus ``group``'s fields)."""
    service = new_service()
    key = "k" + service
    stack.provision(service, groups=[{"apikey": key, "resource": "/iot/json", "entity_type": "Thing", **group}])
    return service, key


def send(stack: AgentStack, service: str, key: str, measure: Any, device: str = "d1") -> None:
    response = httpx.post(stack.south + "/iot/json", params={"i": device, "k": key}, json=measure)
    assert response.status_code == 200, response.text


def measured(stack: AgentStack, measure: Any, device: str = "d1", **group: Any) -> Doc:
    """The entity the broker holds after one JSON ``measure`` to a new group."""
    service, key = provision(stack, **group)
    send(stack, service, key, measure, device)
    return stack.wait_entity(service, f"Thing:{device}")


def attrs(entity: Doc) -> set[str]:
    return {k for k in entity if k not in ("id", "type")}


# -- unprovisioned measures --------------------------------------------------------------------


def test_unprovisioned_measures_are_text_with_their_json_values(stack: AgentStack) -> None:
    """iotagent-node-lib-api.md, "Device to NGSI Mapping" (last paragraph: measures not defined
    in the group or device are stored "using the same attribute name than the measure name")
    and iotagent-json-usermanual.md, "NGSI-v2 and NGSI-LD Measure reporting" (the
    ``measure_id`` example is ``Text``): no type is provisioned, so the agents send ``Text``;
    the value stays the JSON the device sent."""
    entity = measured(
        stack,
        {"t": 5, "on": True, "n": 2.5, "o": {"a": 1}, "l": [1, "x"], "s": "x"},
        attributes=[{"object_id": "t", "name": "temperature", "type": "Number"}],
    )
    assert entity["temperature"] == {"type": "Number", "value": 5, "metadata": {}}
    for name, value in {"on": True, "n": 2.5, "o": {"a": 1}, "l": [1, "x"], "s": "x"}.items():
        assert entity[name] == {"type": "Text", "value": value, "metadata": {}}, name


def test_unprovisioned_ul_measures_over_mqtt_are_text(stack: AgentStack, device: MqttDevice) -> None:
    """iotagent-node-lib-api.md, "Device to NGSI Mapping" (last paragraph), over MQTT with
    Ultralight: an unprovisioned measure is a ``Text`` attribute of the measure's name."""
    service = new_service()
    key = "k" + service
    stack.provision(service, groups=[{"apikey": key, "resource": "/iot/d", "entity_type": "Thing",
                                      "attributes": [{"object_id": "t", "name": "temperature", "type": "Number"}]}])
    device.publish(f"/ul/{key}/m1/attrs", "t|21|s|on|n|7")
    entity = stack.wait_entity(service, "Thing:m1")
    assert entity["temperature"]["type"] == "Number"
    assert entity["s"] == {"type": "Text", "value": "on", "metadata": {}}
    assert entity["n"]["type"] == "Text"


# -- expressions -----------------------------------------------------------------------------


def test_expressions_have_javascript_arithmetic_and_text_transforms(stack: AgentStack) -> None:
    """iotagent-node-lib-api.md, "Expression language support" (TomFrost/JEXL, JavaScript
    semantics) and "Available functions" (``substr``): booleans are numbers in arithmetic
    and a negative number goes through a text transform."""
    entity = measured(
        stack,
        {"on": True, "off": False, "v": -7},
        attributes=[
            {"object_id": "on", "name": "plus", "type": "Number", "expression": "on + 3"},
            {"object_id": "off", "name": "times", "type": "Number", "expression": "off * 3"},
            {"name": "literal", "type": "Text", "expression": "-7|substr(0,2)"},
            {"object_id": "v", "name": "text", "type": "Text", "expression": "v|substr(0,2)"},
        ],
    )
    assert entity["plus"]["value"] == 4
    assert entity["times"]["value"] == 0
    assert entity["literal"]["value"] == "-7"
    assert entity["text"]["value"] == "-7"


def test_expression_of_a_missing_measure_leaves_the_attribute_out(stack: AgentStack) -> None:
    """iotagent-node-lib-api.md, "Explicitly defined attributes (explicitAttrs)", case 2 note:
    an attribute whose expression results in ``null`` does not progress, and the rest of the
    measure does (and "Device to NGSI Mapping", ``skipValue``: ``null`` by default)."""
    entity = measured(
        stack,
        {"t": 2},
        attributes=[
            {"object_id": "t", "name": "temperature", "type": "Number", "expression": "t * 10"},
            {"object_id": "h", "name": "humidity", "type": "Number", "expression": "h * 2"},
        ],
    )
    assert entity["temperature"]["value"] == 20
    assert "humidity" not in entity


def test_expressions_in_metadata_are_expanded(stack: AgentStack) -> None:
    """iotagent-node-lib-api.md, "Expression support in metadata": a metadata item with an
    ``expression`` is sent with the expression's value (for active and static attributes)."""
    entity = measured(
        stack,
        {"l": 50, "level": 30},
        attributes=[{
            "object_id": "l", "name": "luminosity", "type": "Integer",
            "metadata": {"unitCode": {"type": "Text", "value": "CAL"},
                         "ratio": {"type": "Number", "value": 0, "expression": "l / 100"}},
        }],
        static_attributes=[{
            "name": "controlledProperty", "type": "Text", "value": ["light"],
            "metadata": {"includes": {"type": "Text", "value": ["state"], "expression": "level / 100"},
                         "alias": {"type": "Text", "value": "lamp"}},
        }],
    )
    assert entity["luminosity"]["metadata"] == {"unitCode": {"type": "Text", "value": "CAL"},
                                                "ratio": {"type": "Number", "value": 0.5}}
    assert entity["controlledProperty"]["metadata"] == {"includes": {"type": "Text", "value": 0.3},
                                                        "alias": {"type": "Text", "value": "lamp"}}


# -- static attributes -----------------------------------------------------------------------


def test_static_attributes_with_json_values_and_metadata(stack: AgentStack) -> None:
    """iotagent-node-lib-api.md, "Metadata support" (static attributes with array values and
    metadata) and "Device to NGSI Mapping" (``static``)."""
    entity = measured(
        stack,
        {"s": "on"},
        attributes=[{"object_id": "s", "name": "state", "type": "Text"}],
        static_attributes=[
            {"name": "category", "type": "Text", "value": ["actuator", "sensor"]},
            {"name": "address", "type": "StructuredValue", "value": {"city": "Dakar", "zip": 10200}},
            {"name": "controlledProperty", "type": "Text", "value": ["light"],
             "metadata": {"includes": {"type": "Text", "value": ["state", "luminosity"]},
                          "alias": {"type": "Text", "value": "lamp"}}},
        ],
    )
    assert entity["category"] == {"type": "Text", "value": ["actuator", "sensor"], "metadata": {}}
    assert entity["address"] == {"type": "StructuredValue", "value": {"city": "Dakar", "zip": 10200}, "metadata": {}}
    assert entity["controlledProperty"]["value"] == ["light"]
    assert entity["controlledProperty"]["metadata"]["includes"]["value"] == ["state", "luminosity"]


def test_static_attributes_inside_expressions(stack: AgentStack) -> None:
    """iotagent-node-lib-api.md, "Expression language support" (the context holds the
    measures and the static attributes) and "Examples of JEXL expressions"."""
    entity = measured(
        stack,
        {"t": 2},
        attributes=[{"object_id": "t", "name": "temperature", "type": "Number", "expression": "t * factor + offset.c"},
                    {"name": "label", "type": "Text", "expression": "site + '/' + id"}],
        static_attributes=[{"name": "factor", "type": "Number", "value": 10},
                           {"name": "offset", "type": "StructuredValue", "value": {"c": 1}},
                           {"name": "site", "type": "Text", "value": "dakar"}],
    )
    assert entity["temperature"]["value"] == 21
    assert entity["label"]["value"] == "dakar/d1"


# -- timestamps ------------------------------------------------------------------------------


def test_measure_mapped_to_time_instant_stamps_the_entity(stack: AgentStack) -> None:
    """iotagent-node-lib-api.md, "TimeInstant and Timestamp flag": an attribute mapping a
    measure to ``TimeInstant`` (after its expression) gives the entity's ``TimeInstant`` and
    the ``TimeInstant`` metadata of the other attributes."""
    entity = measured(
        stack,
        {"t": 3, "ts": "2024-05-01T10:00:00", "h": 4},
        timestamp=True,
        attributes=[{"object_id": "t", "name": "temperature", "type": "Number"},
                    {"object_id": "ts", "name": "TimeInstant", "type": "DateTime", "expression": "ts + 'Z'"}],
    )
    assert entity["TimeInstant"]["value"].startswith("2024-05-01T10:00:00")
    for name in ("temperature", "h"):
        assert entity[name]["metadata"]["TimeInstant"]["value"].startswith("2024-05-01T10:00:00"), name
    assert "ts" not in entity


def test_without_a_time_measure_the_server_time_is_used(stack: AgentStack) -> None:
    """iotagent-node-lib-api.md, "TimeInstant and Timestamp flag" (table, row "true / No"):
    a ``timestamp: true`` group without a TimeInstant measure gets the arrival time."""
    before = time.time()
    entity = measured(stack, {"t": 3}, timestamp=True)
    stamp = entity["TimeInstant"]["value"]
    assert stamp.endswith("Z")
    assert abs(time.mktime(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone - before) < 60
    assert entity["t"]["metadata"]["TimeInstant"]["value"] == stamp


def test_a_time_instant_that_is_not_iso_8601_fails_over_to_the_server_time(stack: AgentStack) -> None:
    """iotagent-node-lib-api.md, "TimeInstant and Timestamp flag": a resulting TimeInstant that
    does not follow ISO 8601 "is refused (so a failover to server timestamp will take place)"."""
    entity = measured(
        stack,
        {"t": 3, "ts": "yesterday"},
        timestamp=True,
        attributes=[{"object_id": "ts", "name": "TimeInstant", "type": "DateTime"}],
    )
    stamp = entity["TimeInstant"]["value"]
    assert stamp != "yesterday" and stamp.startswith(time.strftime("%Y-", time.gmtime()))
    assert entity["t"]["metadata"]["TimeInstant"]["value"] == stamp


# -- explicitAttrs ---------------------------------------------------------------------------

EXPLICIT_GROUP: Doc = {
    "attributes": [{"object_id": "t", "name": "temperature", "type": "Number"},
                   {"object_id": "h", "name": "humidity", "type": "Number"}],
    "static_attributes": [{"name": "floor", "type": "Number", "value": 3}],
}
MEASURE = {"t": 1, "h": 2, "x": 3}


def test_explicit_attrs_false_or_absent_sends_every_measure(stack: AgentStack) -> None:
    """iotagent-node-lib-api.md, "Explicitly defined attributes (explicitAttrs)", case 1."""
    everything = {"temperature", "humidity", "x", "floor"}
    assert attrs(measured(stack, MEASURE, **EXPLICIT_GROUP)) == everything
    assert attrs(measured(stack, MEASURE, explicitAttrs=False, **EXPLICIT_GROUP)) == everything


def test_explicit_attrs_true_sends_the_provisioned_ones(stack: AgentStack) -> None:
    """iotagent-node-lib-api.md, "Explicitly defined attributes (explicitAttrs)", case 2."""
    assert attrs(measured(stack, MEASURE, explicitAttrs=True, **EXPLICIT_GROUP)) == {"temperature", "humidity", "floor"}


def test_explicit_attrs_array_and_jexl_array(stack: AgentStack) -> None:
    """iotagent-node-lib-api.md, "Explicitly defined attributes (explicitAttrs)", cases 3 and 4:
    a JSON array or a JEXL array of names (and ``{object_id: ...}``) keeps those attributes."""
    assert attrs(measured(stack, MEASURE, explicitAttrs=["temperature", "floor"], **EXPLICIT_GROUP)) == {"temperature", "floor"}
    assert attrs(measured(stack, MEASURE, explicitAttrs="['humidity']", **EXPLICIT_GROUP)) == {"humidity"}
    assert attrs(measured(stack, MEASURE, explicitAttrs="['floor',{object_id:'t'}]", **EXPLICIT_GROUP)) == {"temperature", "floor"}


def test_explicit_attrs_jexl_expression_is_accepted_and_evaluated_per_measure(stack: AgentStack) -> None:
    """iotagent-node-lib-api.md, "Explicitly defined attributes (explicitAttrs)", case 5: a
    JEXL expression giving a boolean (cases 1/2) or an array (case 3), per measure."""
    service, key = provision(stack, explicitAttrs="t > 10 ? ['temperature'] : (h > 10)", **EXPLICIT_GROUP)
    got = httpx.get(stack.north + "/iot/groups", headers=tenant(service)).json()
    assert got["groups"][0]["explicitAttrs"] == "t > 10 ? ['temperature'] : (h > 10)"
    send(stack, service, key, {"t": 11, "h": 2, "x": 3}, "a")
    assert attrs(stack.wait_entity(service, "Thing:a")) == {"temperature"}
    send(stack, service, key, {"t": 1, "h": 20, "x": 3}, "b")
    assert attrs(stack.wait_entity(service, "Thing:b")) == {"temperature", "humidity", "floor"}
    send(stack, service, key, {"t": 1, "h": 2, "x": 3}, "c")
    assert attrs(stack.wait_entity(service, "Thing:c")) == {"temperature", "humidity", "x", "floor"}


def test_explicit_attrs_expression_on_a_device(stack: AgentStack) -> None:
    """iotagent-node-lib-api.md, "Explicitly defined attributes (explicitAttrs)": the device
    level takes precedence over the group's, in any of the forms (here case 5)."""
    service, key = provision(stack, explicitAttrs=True, **EXPLICIT_GROUP)
    response = httpx.post(stack.north + "/iot/devices", headers=tenant(service), json={"devices": [
        {"device_id": "dv", "apikey": key, "explicitAttrs": "x > 0 ? ['x', 'temperature'] : true"}]})
    assert response.status_code == 201, response.text
    send(stack, service, key, MEASURE, "dv")
    # "Not defined measures (object_id) will be dropped, even if they are defined in the
    # explicitAttrs array" (case 3)
    assert attrs(stack.wait_entity(service, "Thing:dv")) == {"temperature"}


def test_a_measured_time_instant_stamps_the_attributes_without_the_flag(stack: AgentStack) -> None:
    """iotagent-node-lib-api.md, "TimeInstant and Timestamp flag" (table, rows "false / Yes"
    and "Not defined / Yes"): a measure carrying ``TimeInstant`` updates the entity's and the
    attributes' TimeInstant with its value whatever the ``timestamp`` flag."""
    for flag in ({"timestamp": False}, {}):
        entity = measured(stack, {"t": 3, "TimeInstant": "2024-05-01T10:00:00Z"}, **flag)
        assert entity["TimeInstant"]["value"].startswith("2024-05-01T10:00:00"), flag
        assert entity["t"]["metadata"]["TimeInstant"]["value"].startswith("2024-05-01T10:00:00"), flag
