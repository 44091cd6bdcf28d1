"""Provisioning API payloads, pure: parse and validate groups and devices, render them back.

What the FIWARE IoT agents accept (iotagent-node-lib ``doc/api.md``, config group and
device data models) is accepted here, field by field with the same JSON types, and stored
in the API's own names, as posted: a GET gives back exactly what was POSTed, plus the
tenant the headers named (``service``/``subservice`` on groups, ``service``/``service_path``
on devices) and, for devices, ``entity_type``/``entity_name`` when provisioning could
derive them (the agents fix a device's entity name when it is provisioned). Fields the
agents do not know are dropped, as their database schema drops them; ``preprocess`` is
our extension and kept.

A body that fails validation gives the agents' 400 BAD_REQUEST "Errors found validating
request."; a missing ``fiware-service``/``fiware-servicepath`` header 400 MISSING_HEADERS,
one the broker would refuse 400 WRONG_SYNTAX; device ids, entity names and types follow
Orion's identifier rules (they become entity ids and types at the broker).
Every function here raises only ``iot_agent.errors`` exceptions, whatever the input.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ngsi.errors import BadRequest as NGSIBadRequest
from ngsi.names import MAX_NAME_LENGTH, forbidden_id_chars
from ngsi.numbers import parse_uint
from ngsi.servicepath import parse_scopes, parse_tenant

from ..errors import CBRequestError, MissingHeaders, WrongSyntax

Doc = dict[str, Any]

MANDATORY_HEADERS = ("fiware-service", "fiware-servicepath")
ALL_SUBSERVICES = "/*"
DEFAULT_LIMIT: int | None = None  # GET without ?limit lists everything
MAX_PAGE = 2**62  # limit/offset beyond this read as this (SQLite's LIMIT/OFFSET are 64-bit)
MAX_ECHO = 64  # characters of a bad parameter quoted back in an error

# JSON kinds: "string", "boolean", "array", "object", "number", "explicit" (boolean, string
# or array: explicitAttrs), "any". Attribute lists are checked item by item below.
_COMMON_FIELDS: dict[str, str] = {
    "apikey": "string",
    "entity_type": "string",
    "timezone": "string",
    "timestamp": "boolean",
    "endpoint": "string",
    "transport": "string",
    "explicitAttrs": "explicit",
    "ngsiVersion": "string",
    "payloadType": "string",
    "storeLastMeasure": "boolean",
    "useCBflowControl": "boolean",
    "cmdMode": "string",
    "attributes": "attributes",
    "lazy": "attributes",
    "commands": "attributes",
    "static_attributes": "statics",
    "internal_attributes": "any",  # an array; LoRaWAN devices carry an object ({"lorawan": {...}})
    "preprocess": "any",  # waziup extension: measure pre-processing steps (iot_agent.preprocess)
}

GROUP_FIELDS: dict[str, str] = {
    **_COMMON_FIELDS,
    "resource": "string",
    "cbHost": "string",
    "trust": "string",
    "token": "string",
    "description": "string",
    "entityNameExp": "string",
    "defaultEntityNameConjunction": "string",
    "autoprovision": "boolean",
    "expressionLanguage": "string",
    "service": "string",
    "subservice": "string",
}

DEVICE_FIELDS: dict[str, str] = {
    **_COMMON_FIELDS,
    "device_id": "string",
    "entity_name": "string",
    "protocol": "string",
    "polling": "boolean",
    "lastMeasure": "any",
    "service": "string",
    "service_path": "string",
    "consent": "boolean",  # waziup extension: false, the device's measures are dropped (docs/lifecycle.md)
}

_GROUP_REQUIRED = ("apikey", "resource")
_DEVICE_REQUIRED = ("device_id",)
# The tenant comes from the headers: what a body says about it is not what gets stored.
_GROUP_TENANT = ("service", "subservice")
_DEVICE_TENANT = ("service", "service_path")
_DEVICE_FIXED_ON_UPDATE = ("device_id", "service", "service_path")

# Attribute names and types: the agents' pattern forbids the characters Orion forbids.
_NAME = re.compile(r"^[^<>();'=\"]+$")


def _invalid() -> CBRequestError:
    """The agents' (odd but stable) answer to a body that fails their JSON schema."""
    return CBRequestError("Errors found validating request.")


# -- headers and query -----------------------------------------------------------------------


def tenant(headers: Mapping[str, str], *, write: bool = False) -> tuple[str, str]:
    """(service, subservice) from the mandatory headers; the service is kept lower-cased.

    Both are what the agent later sends the broker for the devices' entities, so they
    follow the broker's rules (``ngsi.servicepath``, Orion's): a service of at most 50
    letters, digits and underscores; one absolute service path of at most 10 components
    of at most 50 such characters. ``/*`` (every subservice) only lists: ``write``
    refuses it. A bad one is 400 WRONG_SYNTAX naming the header, not an entity the
    broker refuses at the first measure."""
    missing = [name for name in MANDATORY_HEADERS if not headers.get(name)]
    if missing:
        raise MissingHeaders(missing)
    service, subservice = headers["fiware-service"], headers["fiware-servicepath"]
    try:
        parse_tenant(service)
    except NGSIBadRequest as exc:
        raise WrongSyntax(f"fiware-service: {exc.description}") from None
    if write or subservice != ALL_SUBSERVICES:
        try:
            scopes = parse_scopes(subservice)
        except NGSIBadRequest as exc:
            raise WrongSyntax(f"fiware-servicepath: {exc.description}") from None
        if len(scopes) != 1 or scopes[0][1]:
            raise WrongSyntax("fiware-servicepath: one service path, without #, is where devices are")
    return service.lower(), subservice


def subservice_filter(subservice: str) -> str | None:
    """``/*`` lists every subservice of the service."""
    return None if subservice == ALL_SUBSERVICES else subservice


def paging(query: Mapping[str, str], default_limit: int | None = DEFAULT_LIMIT) -> tuple[int | None, int]:
    """(limit, offset) from ``?limit=&offset=``: non-negative integers or a 400."""
    values: list[int | None] = []
    for name, default in (("limit", default_limit), ("offset", 0)):
        raw = query.get(name)
        if raw is None or raw == "":
            values.append(default)
            continue
        # ASCII digits, read without converting a numeral of thousands of digits (int()
        # refuses past 4,300: a 500); any value past MAX_PAGE is past every list anyway.
        value = parse_uint(raw, cap=MAX_PAGE)
        if value is None:
            raise WrongSyntax(f"{name} must be a non-negative integer: {raw[:MAX_ECHO]}")
        values.append(value)
    return values[0], values[1] or 0


# -- validation ------------------------------------------------------------------------------


def _check_attribute(item: Any, *, statics: bool) -> None:
    if not isinstance(item, dict):
        raise _invalid()
    for key in ("name", "type"):
        value = item.get(key)
        if not isinstance(value, str) or not _NAME.match(value):
            raise _invalid()
    for key in ("object_id", "expression", "entity_name", "entity_type"):
        if key in item and not isinstance(item[key], str):
            raise _invalid()
    if "metadata" in item and not isinstance(item["metadata"], dict):
        raise _invalid()
    if statics and "value" not in item:
        raise _invalid()


def _check_kind(kind: str, value: Any) -> None:
    ok: bool
    if kind == "string":
        ok = isinstance(value, str)
    elif kind == "boolean":
        ok = isinstance(value, bool)
    elif kind == "number":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif kind == "object":
        ok = isinstance(value, dict)
    elif kind == "array":
        ok = isinstance(value, list)
    elif kind == "explicit":
        ok = isinstance(value, (bool, str, list))
    elif kind in ("attributes", "statics"):
        if not isinstance(value, list):
            raise _invalid()
        for item in value:
            _check_attribute(item, statics=kind == "statics")
        ok = True
    else:
        ok = True
    if not ok:
        raise _invalid()


def _clean(item: Any, schema: Mapping[str, str], required: tuple[str, ...]) -> Doc:
    """The known fields of ``item``, type-checked; unknown ones dropped."""
    if not isinstance(item, dict):
        raise _invalid()
    for name in required:
        if name not in item:
            raise _invalid()
    doc: Doc = {}
    for name, value in item.items():
        kind = schema.get(name)
        if kind is None:
            continue
        _check_kind(kind, value)
        doc[name] = value
    return doc


def _list_body(body: Any, key: str) -> list[Any]:
    if not isinstance(body, dict) or not isinstance(body.get(key), list):
        raise _invalid()
    items: list[Any] = body[key]
    return items


# -- groups ----------------------------------------------------------------------------------


def parse_groups(body: Any, key: str, service: str, subservice: str) -> list[Doc]:
    """``{"groups": [...]}`` (or ``"services"``) -> group documents of the header's tenant."""
    groups = []
    for item in _list_body(body, key):
        doc = _clean(item, GROUP_FIELDS, _GROUP_REQUIRED)
        internal = doc.get("internal_attributes")
        lorawan = any(isinstance(i, dict) and "lorawan" in i for i in (internal if isinstance(internal, list) else [internal]))
        if not doc["resource"].startswith("/") and not lorawan:  # the LoRaWAN agent's resource is the AppEUI
            raise _invalid()
        _check_entity_fields(doc)
        groups.append({**doc, "service": service, "subservice": subservice})
    return groups


def parse_group_update(body: Any) -> Doc:
    """PUT /iot/groups: the fields to overwrite (the tenant cannot move)."""
    doc = _clean(body, GROUP_FIELDS, ())
    if "resource" in doc and not doc["resource"].startswith("/"):
        raise _invalid()
    _check_entity_fields(doc)
    for name in _GROUP_TENANT:
        doc.pop(name, None)
    return doc


def render_group(group: Doc) -> Doc:
    return dict(group)


def render_groups(groups: list[Doc], key: str, count: int | None = None) -> Doc:
    return {"count": len(groups) if count is None else count, key: [render_group(g) for g in groups]}


# -- devices ---------------------------------------------------------------------------------


def _check_identifier(value: Any, *, allow_empty: bool = False) -> None:
    """A device id, entity name or type: it becomes (part of) an entity id or type at the
    broker, so Orion's rules apply (printable ASCII without ``<>"'=;()&?/#``, at most 256
    bytes): refused here, as the agents' schema refuses a bad one, rather than by the
    broker at the device's first measure."""
    if isinstance(value, str) and (
        (not value and not allow_empty) or len(value.encode()) > MAX_NAME_LENGTH or forbidden_id_chars(value)
    ):
        raise _invalid()


def _check_entity_fields(doc: Doc) -> None:
    for name in ("entity_name", "entity_type"):
        if name in doc:
            _check_identifier(doc[name], allow_empty=True)  # empty: the agent derives it


def parse_devices(body: Any, service: str, subservice: str) -> list[Doc]:
    """``{"devices": [...]}`` -> device documents of the header's tenant."""
    devices = []
    for item in _list_body(body, "devices"):
        doc = _clean(item, DEVICE_FIELDS, _DEVICE_REQUIRED)
        _check_identifier(doc["device_id"])
        _check_entity_fields(doc)
        devices.append({**doc, "service": service, "service_path": subservice})
    return devices


def parse_device_update(body: Any) -> Doc:
    """PUT /iot/devices/{id}: the fields to overwrite (id and tenant cannot change)."""
    doc = _clean(body, DEVICE_FIELDS, ())
    for name in _DEVICE_FIXED_ON_UPDATE:
        doc.pop(name, None)
    _check_entity_fields(doc)
    return doc


def complete_device(device: Doc, group: Doc | None, *, default_type: str | None = None, conjunction: str = ":") -> Doc:
    """Fill ``entity_type`` (device, else group, else ``default_type``) and ``entity_name``
    (``<type><conjunction><device_id>``) as the agents do when provisioning."""
    doc = dict(device)
    entity_type = doc.get("entity_type") or (group or {}).get("entity_type") or default_type
    if entity_type and "entity_type" not in doc:
        doc["entity_type"] = entity_type
    if entity_type and not doc.get("entity_name"):
        joint = (group or {}).get("defaultEntityNameConjunction") or conjunction
        doc["entity_name"] = f"{entity_type}{joint}{doc['device_id']}"
        _check_identifier(doc["entity_name"])  # too long, or a bad conjunction or group type
    return doc


def is_polling(device: Doc, group: Doc | None) -> bool:
    """Commands wait to be polled for an HTTP device with no endpoint (its own or its group's);
    MQTT devices are always pushed to. An explicit ``polling`` wins."""
    if isinstance(device.get("polling"), bool):
        return bool(device["polling"])
    transport = device.get("transport") or (group or {}).get("transport") or ""
    if str(transport).upper() == "MQTT":
        return False
    return not (device.get("endpoint") or (group or {}).get("endpoint"))


def render_device(device: Doc) -> Doc:
    return dict(device)


def render_devices(devices: list[Doc], count: int) -> Doc:
    return {"count": count, "devices": [render_device(d) for d in devices]}


def parse_delete_devices(body: Any) -> list[tuple[str, str | None]]:
    """POST /iot/op/delete ``{"devices": [{"deviceId": ..., "apikey": ...}]}`` -> (id, apikey) pairs."""
    pairs: list[tuple[str, str | None]] = []
    for item in _list_body(body, "devices"):
        if not isinstance(item, dict) or not isinstance(item.get("deviceId"), str):
            raise _invalid()
        apikey = item.get("apikey")
        if apikey is not None and not isinstance(apikey, str):
            raise _invalid()
        pairs.append((item["deviceId"], apikey))
    return pairs


def about(port: int, version: str) -> Doc:
    """GET /iot/about and /version."""
    return {"libVersion": version, "port": port, "baseRoot": "/", "version": version}
