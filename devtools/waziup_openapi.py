"""Write ``orchestrator/waziup_api/openapi.json``, the WAZIUP API's OpenAPI 3.0 document,
from the routes' table below (one row per operation: what it answers, what it takes) and
the contract's JSON shapes (``shared/reference/waziup-api-v2.md`` §4).

``python -m devtools.waziup_openapi``; ``tests/orchestrator/test_waziup_openapi.py`` checks
that the document is valid and names exactly the routes the app serves.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parents[1] / "orchestrator" / "waziup_api" / "openapi.json"
ANY: dict[str, Any] = {}
TEXT = {"text/plain": {"schema": {"type": "string"}}}
LOC = {"type": "object", "properties": {"latitude": {"type": "number"}, "longitude": {"type": "number"}},
       "required": ["latitude", "longitude"]}
SCHEMAS: dict[str, Any] = {
    "Location": LOC,
    "SensorValue": {"type": "object", "required": ["value"], "properties": {
        "value": ANY, "timestamp": {"type": "string", "format": "date-time"},
        "date_received": {"type": "string", "format": "date-time"}}},
    "Sensor": {"type": "object", "required": ["id"], "properties": {
        "id": {"type": "string"}, "name": {"type": "string"}, "sensor_kind": {"type": "string"},
        "quantity_kind": {"type": "string"}, "unit": {"type": "string"},
        "value": {"$ref": "#/components/schemas/SensorValue"}, "calib": {"type": "object"}, "meta": ANY}},
    "Actuator": {"type": "object", "required": ["id"], "properties": {
        "id": {"type": "string"}, "name": {"type": "string"}, "actuator_kind": {"type": "string"},
        "actuator_value_type": {"type": "string", "enum": ["string", "number", "bool", "null", "object", "array"]},
        "value": ANY, "meta": ANY}},
    "Device": {"type": "object", "required": ["id"], "properties": {
        "id": {"type": "string"}, "name": {"type": "string"}, "gateway_id": {"type": "string"},
        "location": {"$ref": "#/components/schemas/Location"}, "domain": {"type": "string"},
        "visibility": {"type": "string", "enum": ["public", "private"]},
        "sensors": {"type": "array", "items": {"$ref": "#/components/schemas/Sensor"}},
        "actuators": {"type": "array", "items": {"$ref": "#/components/schemas/Actuator"}},
        "owner": {"type": "string"}, "meta": ANY, "deployed": {"type": "boolean"},
        "date_created": {"type": "string"}, "date_modified": {"type": "string"}}},
    "Datapoint": {"type": "object", "properties": {
        "device_id": {"type": "string"}, "sensor_id": {"type": "string"}, "value": ANY,
        "timestamp": {"type": "string"}, "date_received": {"type": "string"}}},
    "Gateway": {"type": "object", "required": ["id"], "properties": {
        "id": {"type": "string"}, "name": {"type": "string"}, "owner": {"type": "string"},
        "visibility": {"type": "string", "enum": ["public", "private"]},
        "location": {"$ref": "#/components/schemas/Location"}, "date_created": {"type": "string"},
        "date_modified": {"type": "string"}, "connected": {"type": "boolean"}, "last_seen": {"type": "string"},
        "devices": {"type": "array", "items": {"$ref": "#/components/schemas/Device"}}}},
    "Project": {"type": "object", "properties": {
        "id": {"type": "string"}, "name": {"type": "string"}, "owner": {"type": "string"},
        "device_ids": {"type": "array", "items": {"type": "string"}},
        "gateway_ids": {"type": "array", "items": {"type": "string"}},
        "devices": {"type": "array", "items": {"$ref": "#/components/schemas/Device"}},
        "gateways": {"type": "array", "items": {"$ref": "#/components/schemas/Gateway"}}}},
    "Notif": {"type": "object", "required": ["condition", "action"], "properties": {
        "id": {"type": "string", "pattern": "^[0-9a-fA-F]{24}$"}, "description": {"type": "string"},
        "condition": {"type": "object", "properties": {
            "devices": {"type": "array", "items": {"type": "string"}},
            "sensors": {"type": "array", "items": {"type": "string"}},
            "expression": {"type": "string", "description": "Orion's q over sensor ids, e.g. TC1>40;HU<50"}}},
        "action": {"type": "object", "properties": {
            "type": {"type": "string", "enum": ["SocialAction", "ActuationAction"]}, "value": {"type": "object"}}},
        "throttling": {"type": "number"}, "status": {"type": "string", "enum": ["active", "inactive"]},
        "expires": {"type": "string"}, "times_sent": {"type": "integer"}, "last_notif": {"type": "string"},
        "last_success": {"type": "string"}, "last_success_code": {"type": "integer"},
        "last_failure": {"type": "string"}, "last_failure_reason": {"type": "string"}}},
    "SocialMessage": {"type": "object", "properties": {
        "id": {"type": "string"}, "username": {"type": "string"},
        "channel": {"type": "string", "enum": ["twitter", "sms", "voice", "none"]}, "message": {"type": "string"},
        "timestamp": {"type": "string"}, "success": {"type": "boolean"}}},
    "User": {"type": "object", "properties": {
        k: {"type": "integer" if k == "sms_credit" else "boolean" if k == "admin" else "string"}
        for k in ("id", "username", "first_name", "last_name", "email", "phone", "facebook", "twitter",
                  "sms_credit", "admin")}},
    "Perm": {"type": "object", "properties": {"resource": {"type": "string"},
                                              "scopes": {"type": "array", "items": {"type": "string"}}}},
}

# (method, path, summary, body schema or "scalar"/"any"/None, answer: 204 | 200 | "text" | schema name | [name])
ROUTES: list[tuple[str, str, str, Any, Any]] = [
    ("post", "/auth/token", "A token of the identity manager (bare text)", "Credentials", "text"),
    ("get", "/auth/permissions/{kind}", "The caller's scopes on devices, gateways or projects", None, ["Perm"]),
    ("get", "/devices", "The devices the caller may view (q=, limit, offset)", None, ["Device"]),
    ("post", "/devices", "Create a device (owner: the caller)", "Device", 204),
    ("get", "/devices/{device}", "A device", None, "Device"),
    ("delete", "/devices/{device}", "Delete a device and its datapoints", None, 204),
    ("put", "/devices/{device}/{field}", "Set name, gateway_id, owner, visibility, deployed, domain (scalar), "
     "meta (any JSON) or location", "any", 204),
    ("get", "/devices/{device}/sensors", "The device's sensors", None, ["Sensor"]),
    ("post", "/devices/{device}/sensors", "Create or replace a sensor", "Sensor", 204),
    ("get", "/devices/{device}/sensors/{member}", "A sensor", None, "Sensor"),
    ("delete", "/devices/{device}/sensors/{member}", "Delete a sensor and its datapoints", None, 204),
    ("put", "/devices/{device}/sensors/{member}/{field}", "Set name, sensor_kind, quantity_kind, unit (scalar), "
     "meta or calib", "any", 204),
    ("post", "/devices/{device}/sensors/{member}/value", "Store a value: broker, history, MQTT, notifications",
     "SensorValue", 204),
    ("post", "/devices/{device}/sensors/{member}/values", "Store a batch of values", ["SensorValue"], 204),
    ("get", "/devices/{device}/sensors/{member}/values", "The sensor's datapoints (JSON or CSV)", None, ["Datapoint"]),
    ("get", "/devices/{device}/actuators", "The device's actuators", None, ["Actuator"]),
    ("post", "/devices/{device}/actuators", "Create or replace an actuator", "Actuator", 204),
    ("get", "/devices/{device}/actuators/{member}", "An actuator", None, "Actuator"),
    ("delete", "/devices/{device}/actuators/{member}", "Delete an actuator", None, 204),
    ("put", "/devices/{device}/actuators/{member}/value", "Set the actuator's value (published on MQTT)", "any", 204),
    ("put", "/devices/{device}/actuators/{member}/{field}", "Set name, actuator_kind, value_type or meta", "any", 204),
    ("get", "/sensors_data", "Datapoints of devices (device_id=a,b&sensor_id=...; JSON or CSV)", None, ["Datapoint"]),
    ("get", "/gateways", "The gateways the caller may view (full=true adds devices)", None, ["Gateway"]),
    ("post", "/gateways", "Create a gateway", "Gateway", 200),
    ("get", "/gateways/{gateway}", "A gateway", None, "Gateway"),
    ("delete", "/gateways/{gateway}", "Delete a gateway", None, 204),
    ("put", "/gateways/{gateway}/heartbeat", "The gateway is alive (last_seen)", None, 204),
    ("post", "/gateways/{gateway}/heartbeat", "The gateway is alive (last_seen)", None, 204),
    ("get", "/gateways/{gateway}/vpn", "Not available on this platform (501)", None, 501),
    ("put", "/gateways/{gateway}/{field}", "Set name, owner, visibility or location", "any", 204),
    ("get", "/projects", "The caller's projects (all for the admin)", None, ["Project"]),
    ("post", "/projects", "Create a project (its id, bare text)", "Project", "text"),
    ("get", "/projects/{project}", "A project", None, "Project"),
    ("delete", "/projects/{project}", "Delete a project", None, 204),
    ("put", "/projects/{project}/{field}", "Set name, device_ids or gateway_ids", "any", 204),
    ("get", "/notifications", "Every notification", None, ["Notif"]),
    ("post", "/notifications", "Create a notification (its id, bare text)", "Notif", "text"),
    ("get", "/notifications/{notif}", "A notification", None, "Notif"),
    ("delete", "/notifications/{notif}", "Delete a notification", None, 204),
    ("patch", "/notifications/{notif}", "Change a notification", "Notif", 204),
    ("put", "/notifications/{notif}/status", "active or inactive", "scalar", 204),
    ("get", "/socials", "Every social message sent", None, ["SocialMessage"]),
    ("post", "/socials", "Send a social message (its id, bare text)", "SocialMessage", "text"),
    ("post", "/socials/batch", "Send a message to users on channels", "any", 204),
    ("get", "/socials/{social}", "A social message", None, "SocialMessage"),
    ("delete", "/socials/{social}", "Delete a social message", None, 200),
    ("get", "/users", "Users (limit, offset, username)", None, ["User"]),
    ("post", "/users", "Create a user (administrator; its id, bare text)", "User", "text"),
    ("get", "/users/me", "The caller", None, "User"),
    ("get", "/users/{user}", "A user", None, "User"),
    ("put", "/users/{user}/sms_credit", "Set a user's SMS credit (administrator)", "scalar", 204),
    ("get", "/ontologies/{name}", "sensor_kinds, actuator_kinds, quantity_kinds or units", None, "any"),
    ("get", "/openapi.json", "This document", None, "any"),
]


def _schema(name: Any) -> dict[str, Any]:
    if isinstance(name, list):
        return {"type": "array", "items": _schema(name[0])}
    if name == "Credentials":
        return {"type": "object", "required": ["username", "password"],
                "properties": {"username": {"type": "string"}, "password": {"type": "string"}}}
    if name in ("any", "scalar"):
        return {}
    return {"$ref": f"#/components/schemas/{name}"}


def _operation(method: str, path: str, summary: str, body: Any, answer: Any) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "tags": [path.split("/")[1]],
                          "operationId": method + re.sub(r"[^A-Za-z0-9]+", "_", path).rstrip("_")}
    params = [{"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
              for p in re.findall(r"{(\w+)}", path)]
    if params:
        op["parameters"] = params
    if body is not None:
        content = {"application/json": {"schema": _schema(body)}}
        if body == "scalar" or body == "any":
            content["text/plain"] = {"schema": {"type": "string"}}
        op["requestBody"] = {"required": True, "content": content}
    responses: dict[str, Any] = {"400": {"description": "bad request (free text)", "content": TEXT},
                                 "403": {"description": "not allowed (free text)", "content": TEXT},
                                 "404": {"description": "not found (free text)", "content": TEXT}}
    if answer == "text":
        responses["200"] = {"description": "the token or the new id, bare", "content": TEXT}
    elif isinstance(answer, int):
        responses[str(answer)] = {"description": "done" if answer < 300 else "not available", "content": TEXT}
    else:
        json_body = {"application/json": {"schema": _schema(answer)}}
        if answer == ["Datapoint"]:
            json_body["text/csv"] = {"schema": {"type": "string"}}
        responses["200"] = {"description": "the answer", "content": json_body}
    op["responses"] = responses
    return op


def document() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for method, path, summary, body, answer in ROUTES:
        paths.setdefault(path, {})[method] = _operation(method, path, summary, body, answer)
    return {
        "openapi": "3.0.3",
        "info": {"title": "WAZIUP cloud API v2 (waziup)", "version": "2.0.0",
                 "description": "The WAZIUP cloud API v2 over the platform (docs/waziup-api.md). Without a token "
                 "a request is served as the guest; MQTT mirrors every value on devices/{id}/sensors/{id}/value."},
        "servers": [{"url": "/api/v2"}],
        "components": {"schemas": SCHEMAS,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{}, {"bearer": []}],
        "paths": paths,
    }


def main() -> None:
    OUT.write_text(json.dumps(document(), indent=1) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
