"""Rendered actions: Perseo's update, post and email, and our device command."""

from __future__ import annotations

import json
from typing import Any

import pytest

from analytics.rules.actions import cast_update_value, render_action
from analytics.rules.model import parse_rule
from analytics.rules.templates import event_vars

METER = {"id": "bloodm1", "type": "BloodMeter", "BloodPressure": {"type": "Number", "value": 1.8},
         "Lat": {"type": "Number", "value": 40.4}, "Lon": {"type": "Number", "value": -3.7},
         "label": {"type": "Text", "value": 'say "hi"'}}
VARS = event_vars(METER, {"ruleName": "blood"})


def action(doc: dict[str, Any]) -> Any:
    return parse_rule({"name": "blood", "action": doc}).actions[0]


def test_update_defaults_to_the_firing_entity_and_substitutes() -> None:
    """plain_rules.md, "update attribute action", the NGSI-v2 example."""
    a = action({"type": "update", "parameters": {"id": "${id}_mirror", "version": 2, "attributes": [
        {"name": "abnormal", "type": "Number", "value": 7},
        {"name": "pressure", "type": "Number", "value": "${BloodPressure}"},
        {"name": "locationCopy", "type": "MyCustomTypo", "value": "{\"type\":\"Point\",\"coordinates\":[${Lat},${Lon}]}"},
    ]}})
    out = render_action(a, VARS, "openiot", "/farm1")
    assert out["entity"] == {"id": "bloodm1_mirror", "type": "BloodMeter"}
    assert (out["service"], out["servicePath"], out["actionType"]) == ("openiot", "/farm1", "append")
    assert out["attributes"]["abnormal"] == {"type": "Number", "value": 7}
    assert out["attributes"]["pressure"] == {"type": "Number", "value": 1.8}
    assert out["attributes"]["locationCopy"]["value"] == '{"type":"Point","coordinates":[40.4,-3.7]}'


@pytest.mark.parametrize(
    ("attr_type", "value", "expected"),
    [
        ("Number", "4.67", 4.67),
        ("Number", 12, 12),
        ("Text", 1234, "1234"),
        ("Text", 67.8, "67.8"),
        ("Text", True, "true"),
        ("DateTime", "2018-12-05T11:31:39.00Z", "2018-12-05T11:31:39.000Z"),
        ("DateTime", 1548843229832, "2019-01-30T10:13:49.832Z"),
        ("DateTime", "1548843229832", "2019-01-30T10:13:49.832Z"),
        ("None", "It does not matter what you put here", None),
        (None, "true", True),
        (None, "abc", "abc"),
    ],
)
def test_update_values_are_cast_by_attribute_type(attr_type: str | None, value: Any, expected: Any) -> None:
    """plain_rules.md, "Data Types for NGSI-v2"."""
    assert cast_update_value(attr_type, value) == expected


def test_update_with_filter_and_delete() -> None:
    a = action({"type": "update", "parameters": {"filter": {"type": "SensorMetter", "q": "status:on"},
                                                 "actionType": "DELETE", "attributes": [{"name": "x"}]}})
    out = render_action(a, VARS, "", "/")
    assert out["filter"] == {"type": "SensorMetter", "q": "status:on"} and "entity" not in out
    assert out["actionType"] == "delete"


def test_post_substitutes_url_headers_qs_and_template() -> None:
    """plain_rules.md, "HTTP request action", first example."""
    a = action({"type": "post", "template": "BloodPressure is ${BloodPressure}", "parameters": {
        "url": "http://localhost:9182/${type}/${id}", "method": "PUT",
        "headers": {"Content-type": "text/plain", "X-${type}-pressure": "${BloodPressure}"},
        "qs": {"${id}": "${BloodPressure}"}}})
    out = render_action(a, VARS, "s", "/")
    assert out == {"type": "post", "method": "PUT", "url": "http://localhost:9182/BloodMeter/bloodm1",
                   "headers": {"Content-type": "text/plain", "X-BloodMeter-pressure": "1.8"},
                   "qs": {"bloodm1": "1.8"}, "body": "BloodPressure is 1.8"}


def test_post_json_template_is_rendered_json_safe() -> None:
    a = action({"type": "post", "template": '{"label": "${label}", "pressure": ${BloodPressure}}',
                "parameters": {"url": "http://h", "headers": {"Content-Type": "application/json"}}})
    assert json.loads(render_action(a, VARS, "s", "/")["body"]) == {"label": 'say "hi"', "pressure": 1.8}


def test_post_json_parameter_keeps_numbers() -> None:
    a = action({"type": "post", "parameters": {"url": "http://h", "json": {"meter": "${id}", "${id}": "${type}",
                                                                          "pressure": "${BloodPressure}"}}})
    out = render_action(a, VARS, "s", "/")
    assert out["json"] == {"meter": "bloodm1", "bloodm1": "BloodMeter", "pressure": 1.8}
    assert out["headers"] == {"Content-Type": "application/json"}


def test_email_splits_recipients() -> None:
    """plain_rules.md, "email action": ``to`` separated by ``;`` or ``,``."""
    a = action({"type": "email", "template": "Meter ${id} has pressure ${BloodPressure}",
                "parameters": {"to": "someone@acme.com; another@acme.com,third@acme.com", "from": "cep@acme.com",
                               "subject": "MD ${ruleName}"}})
    assert render_action(a, VARS, "s", "/") == {
        "type": "email", "to": ["someone@acme.com", "another@acme.com", "third@acme.com"], "from": "cep@acme.com",
        "subject": "MD blood", "body": "Meter bloodm1 has pressure 1.8"}


def test_command_targets_the_firing_device() -> None:
    a = action({"type": "command", "parameters": {"command": "valve", "value": "${BloodPressure}"}})
    assert render_action(a, VARS, "openiot", "/") == {
        "type": "command", "entity": {"id": "bloodm1", "type": "BloodMeter"}, "command": "valve", "value": 1.8,
        "service": "openiot", "servicePath": "/"}
