"""WAZIUP devices as broker entities, and back (pure).

A device is one entity of type ``Device`` in the API's tenant (``waziup``, as the reference
kept them in Orion), so every NGSI client, the dashboard and the history see WAZIUP devices
as they see any other entity:

* the device's own fields are attributes: ``name``, ``gateway_id``, ``owner``,
  ``visibility``, ``domain`` (``Text``), ``deployed`` (``Boolean``), ``meta``
  (``StructuredValue``, any JSON), ``location`` (``geo:json`` Point, so geo queries and the
  dashboard's map find it); ``date_created`` and ``date_modified`` are the broker's
  ``dateCreated`` and ``dateModified``;
* each sensor is an attribute named by its id, of type ``SensingDevice``: its value is the
  sensor's current value (so ``q=TC1>40`` works on the broker), its metadata the sensor's
  fields (``name``, ``sensor_kind``, ``quantity_kind``, ``unit``, ``calib``, ``meta``) and
  the current value's ``timestamp`` (``Text``, exactly as posted) and ``date_received``;
* each actuator an attribute of type ``Actuator``, its value the actuator's value.

A sensor or actuator id may therefore not be one of the device's own field names, and a
sensor and an actuator of one device may not share an id: both are refused (400).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ngsi.names import MAX_NAME_LENGTH, forbidden_id_chars

from .errors import bad_request
from .values import calib_problem, current_timestamp

ENTITY_TYPE = "Device"
SENSOR_TYPE = "SensingDevice"
ACTUATOR_TYPE = "Actuator"
TEXT_FIELDS = ("name", "gateway_id", "owner", "visibility", "domain")
DEVICE_FIELDS = frozenset(
    (*TEXT_FIELDS, "deployed", "meta", "location", "id", "type", "dateCreated", "dateModified", "dateExpires",
     "sensors", "actuators", "date_created", "date_modified")
)
SENSOR_FIELDS = ("name", "sensor_kind", "quantity_kind", "unit")
ACTUATOR_FIELDS = ("name", "actuator_kind", "actuator_value_type")
VALUE_TYPES = ("string", "number", "bool", "null", "object", "array")
VISIBILITIES = ("public", "private")


def id_problem(value: Any) -> str | None:
    """Orion's id rules (contract §3): 1-256 printable characters, no whitespace, none of
    ``<>"'=;()?/#&``."""
    if not isinstance(value, str) or not value:
        return "id must be a non-empty string"
    if len(value) > MAX_NAME_LENGTH:
        return f"id is longer than {MAX_NAME_LENGTH} characters"
    if forbidden_id_chars(value):
        return f"id {value!r} has forbidden characters (whitespace or one of <>\"'=;()?/#&)"
    return None


def check_id(value: Any) -> str:
    problem = id_problem(value)
    if problem:
        raise bad_request(problem)
    return value


def _text(value: Any) -> dict[str, Any]:
    return {"type": "Text", "value": value}


def location_attr(location: Any) -> dict[str, Any]:
    """``{"latitude": n, "longitude": n}`` as a geo:json Point (a 400 otherwise)."""
    if not isinstance(location, Mapping) or set(location) != {"latitude", "longitude"}:
        raise bad_request('location must be {"latitude": number, "longitude": number}')
    lat, lon = location["latitude"], location["longitude"]
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in (lat, lon)):
        raise bad_request("latitude and longitude must be numbers")
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise bad_request("latitude must be within [-90, 90] and longitude within [-180, 180]")
    return {"type": "geo:json", "value": {"type": "Point", "coordinates": [lon, lat]}}


def field_attr(name: str, value: Any) -> dict[str, Any]:
    """The attribute holding the device field ``name`` (checked)."""
    if name == "location":
        return location_attr(value)
    if name == "meta":
        return {"type": "StructuredValue", "value": value}
    if name == "deployed":
        if not isinstance(value, bool):
            raise bad_request("deployed must be true or false")
        return {"type": "Boolean", "value": value}
    if name == "visibility" and value not in VISIBILITIES:
        raise bad_request("visibility must be public or private")
    if not isinstance(value, str):
        raise bad_request(f"{name} must be a string")
    return _text(value)


def sensor_attr(sensor: Any) -> tuple[str, dict[str, Any]]:
    """A posted Sensor as (its id, its attribute); its current value is not taken from the
    body (it is set by pushing values)."""
    sid, sensor, metadata = _member(sensor, "sensor", SENSOR_FIELDS)
    if "calib" in sensor:
        problem = calib_problem(sensor["calib"])
        if problem:
            raise bad_request(problem)
        metadata["calib"] = {"type": "StructuredValue", "value": sensor["calib"]}
    return sid, {"type": SENSOR_TYPE, "value": None, "metadata": metadata}


def actuator_attr(actuator: Any) -> tuple[str, dict[str, Any]]:
    """A posted Actuator as (its id, its attribute), with its value when it gives one."""
    aid, actuator, metadata = _member(actuator, "actuator", ACTUATOR_FIELDS)
    if metadata.get("actuator_value_type", {}).get("value", "string") not in VALUE_TYPES:
        raise bad_request(f"actuator_value_type must be one of {' '.join(VALUE_TYPES)}")
    if "value" in actuator:
        metadata["has_value"] = {"type": "Boolean", "value": True}
    return aid, {"type": ACTUATOR_TYPE, "value": actuator.get("value"), "metadata": metadata}


def _member(doc: Any, what: str, fields: tuple[str, ...]) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """A posted sensor or actuator checked: (its id, its present fields, the metadata of its
    text ``fields`` and ``meta``)."""
    if not isinstance(doc, Mapping):
        raise bad_request(f"a{'n' if what[0] == 'a' else ''} {what} must be a JSON object")
    doc = _present(doc)
    if "id" not in doc:
        raise bad_request(f"the {what} has no id")
    member_id = _member_id(doc["id"], what)
    metadata: dict[str, Any] = {}
    for name in fields:
        if name in doc:
            if not isinstance(doc[name], str):
                raise bad_request(f"{what} {name} must be a string")
            metadata[name] = _text(doc[name])
    if "meta" in doc:
        metadata["meta"] = {"type": "StructuredValue", "value": doc["meta"]}
    return member_id, doc, metadata


ANY_JSON = frozenset(("meta", "value"))  # fields whose value is any JSON, null included


def _present(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The fields a posted object sets: ``null`` for a text, list or object field is an
    absent field, as the reference's aeson reads its ``Maybe`` fields (it was a 400 here,
    which refused what the reference's clients send). ``meta`` and an actuator's ``value``
    are any JSON: a posted ``null`` there is the client's value and comes back deep-equal."""
    return {key: value for key, value in doc.items() if value is not None or key in ANY_JSON}


def _member_id(value: Any, what: str) -> str:
    sid = check_id(value)
    if sid in DEVICE_FIELDS:
        raise bad_request(f"{sid!r} is a field of the device and cannot be a {what} id")
    if "," in sid:  # lists of sensors (sensor_id=a,b and the history's attrs=) are comma-separated
        raise bad_request(f"a {what} id cannot hold a comma: {sid!r} could not be told from a list of ids")
    return sid


def device_entity(doc: Any, owner: str) -> dict[str, Any]:
    """A posted Device as a new entity: ``owner`` is the caller, never the body's."""
    if not isinstance(doc, Mapping):
        raise bad_request("a device must be a JSON object")
    doc = _present(doc)
    if "id" not in doc:
        raise bad_request("the device has no id")
    entity: dict[str, Any] = {"id": check_id(doc["id"]), "type": ENTITY_TYPE}
    for name in (*TEXT_FIELDS, "deployed", "meta", "location"):
        if name in doc and name != "owner":
            entity[name] = field_attr(name, doc[name])
    entity["owner"] = _text(owner)
    for key, make in (("sensors", sensor_attr), ("actuators", actuator_attr)):
        members = doc.get(key, [])
        if not isinstance(members, list):
            raise bad_request(f"{key} must be a list")
        for member in members:
            mid, attr = make(member)
            if mid in entity:
                raise bad_request(f"{mid!r} is given twice among the device's sensors and actuators")
            entity[mid] = attr
    return entity


# -- entity -> JSON ------------------------------------------------------------------------


def _meta_value(metadata: Mapping[str, Any], name: str) -> Any:
    item = metadata.get(name)
    return item.get("value") if isinstance(item, Mapping) else None


def sensor_json(sid: str, attr: Mapping[str, Any]) -> dict[str, Any]:
    metadata = attr.get("metadata") or {}
    out: dict[str, Any] = {"id": sid}
    for name in SENSOR_FIELDS:
        if name in metadata:
            out[name] = _meta_value(metadata, name)
    received = _meta_value(metadata, "date_received")
    if received is not None:
        value: dict[str, Any] = {"value": attr.get("value")}
        stamp = _meta_value(metadata, "timestamp")
        if stamp is not None:
            value["timestamp"] = current_timestamp(stamp)
        value["date_received"] = current_timestamp(received)
        out["value"] = value
    for name in ("calib", "meta"):
        if name in metadata:
            out[name] = _meta_value(metadata, name)
    return out


def actuator_json(aid: str, attr: Mapping[str, Any]) -> dict[str, Any]:
    metadata = attr.get("metadata") or {}
    out: dict[str, Any] = {"id": aid}
    for name in ACTUATOR_FIELDS:
        if name in metadata:
            out[name] = _meta_value(metadata, name)
    if _meta_value(metadata, "has_value"):
        out["value"] = attr.get("value")
    if "meta" in metadata:
        out["meta"] = _meta_value(metadata, "meta")
    return out


def device_json(entity: Mapping[str, Any]) -> dict[str, Any]:
    """A normalized entity (with ``dateCreated``/``dateModified``) as the contract's Device."""
    out: dict[str, Any] = {"id": entity["id"]}
    sensors: list[dict[str, Any]] = []
    actuators: list[dict[str, Any]] = []
    for name, attr in entity.items():
        if not isinstance(attr, Mapping):
            continue
        kind = attr.get("type")
        if name == "location":
            lon, lat = (attr.get("value") or {}).get("coordinates", [None, None])[:2]
            out["location"] = {"latitude": lat, "longitude": lon}
        elif name in TEXT_FIELDS or name in ("deployed", "meta"):
            out[name] = attr.get("value")
        elif name == "dateCreated":
            out["date_created"] = attr.get("value")
        elif name == "dateModified":
            out["date_modified"] = attr.get("value")
        elif kind == SENSOR_TYPE:
            sensors.append(sensor_json(name, attr))
        elif kind == ACTUATOR_TYPE:
            actuators.append(actuator_json(name, attr))
    out["sensors"] = sensors
    out["actuators"] = actuators
    return out


def members(entity: Mapping[str, Any], kind: str) -> dict[str, Mapping[str, Any]]:
    """The sensor (``SENSOR_TYPE``) or actuator attributes of an entity, by id."""
    return {name: attr for name, attr in entity.items() if isinstance(attr, Mapping) and attr.get("type") == kind}


def sensor_values(entity: Mapping[str, Any]) -> dict[str, Any]:
    """Each sensor's current value (sensors that never got one left out): what
    notifications' expressions are evaluated against."""
    return {
        sid: attr.get("value") for sid, attr in members(entity, SENSOR_TYPE).items()
        if _meta_value(attr.get("metadata") or {}, "date_received") is not None
    }
