"""What the platform's own documents say about its sensors (pure): a broker entity, an IoT
agent device (with its group) or a registration -> ``Sensor``s.

Only measured attributes are sensors: a number, a boolean or nothing yet, an attribute of
a measure type (``Number``, ``Quantity``, WAZIUP's ``SensingDevice``...) or one with a unit.
Where a thing is (``location``, any ``geo:*`` attribute), when it changed (``TimeInstant``,
``dateModified``), links (``Relationship``, ``ref*``), commands and actuators, and a WAZIUP
device's own fields (``owner``, ``name``...) describe the sensors; they are not sensors.

Every function takes JSON as it comes and never raises on a malformed part: what cannot be
read is left out (a registry fed by other people's entities must not stop at one of them).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import replace
from typing import Any

from ngsi.dates import parse_datetime

from .model import Sensor

Doc = Mapping[str, Any]

TIME_NAMES = frozenset({"TimeInstant", "timestamp", "dateModified", "dateCreated", "dateExpires", "dateObserved"})
# A WAZIUP device's own fields (orchestrator/waziup_api/devices.py) and common descriptive attributes.
DESCRIPTIVE_NAMES = frozenset({
    "location", "owner", "name", "gateway_id", "visibility", "domain", "deployed", "meta", "description",
    "address", "category", "status", "controlledProperty", "refDevice", "refGateway",
})
MEASURE_TYPES = frozenset({"Number", "Integer", "Float", "Quantity", "Boolean", "SensingDevice", "Measurement"})
NOT_MEASURES = frozenset({
    "Relationship", "command", "commandResult", "commandStatus", "Actuator", "DateTime", "StructuredValue",
    "Text", "None",
})
UNIT_KEYS = ("unitCode", "unit", "units")  # metadata naming a unit, most standard first
KIND_KEYS = ("quantity_kind", "sensor_kind", "quantityKind")
_REF = re.compile(r"^ref[A-Z0-9]")


# -- small readers ---------------------------------------------------------------------------


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _meta_value(metadata: Any, keys: Iterable[str]) -> str | None:
    """The first of ``keys`` the metadata gives a text value (``{"unitCode": {"value": "CEL"}}``)."""
    if not isinstance(metadata, Mapping):
        return None
    for key in keys:
        item = metadata.get(key)
        found = _text(item.get("value")) if isinstance(item, Mapping) else _text(item)
        if found:
            return found
    return None


def when(value: Any) -> float | None:
    """Epoch seconds of an ISO 8601 text (an attribute's value or a metadata item), else None."""
    if isinstance(value, Mapping):
        value = value.get("value")
    return parse_datetime(value) if isinstance(value, str) else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if number == number and abs(number) != float("inf") else None


def _positions(coordinates: Any) -> Iterator[tuple[float, float]]:
    """Every (lon, lat) of a GeoJSON coordinates array, however nested."""
    if isinstance(coordinates, list):
        if len(coordinates) >= 2 and all(_number(c) is not None for c in coordinates[:2]):
            yield float(coordinates[0]), float(coordinates[1])
        else:
            for item in coordinates:
                yield from _positions(item)


def point_of(attr_type: Any, value: Any) -> tuple[float, float] | None:
    """(lat, lon) of a location attribute: ``geo:point`` ``"lat, lon"``, or ``geo:json``
    (a point; for a line or a shape, the mean of its corners: where it roughly is)."""
    if attr_type == "geo:point" and isinstance(value, str):
        parts = value.split(",")
        if len(parts) == 2:
            try:
                lat, lon = float(parts[0]), float(parts[1])
            except ValueError:
                return None
            return (lat, lon) if -90 <= lat <= 90 and -180 <= lon <= 180 else None
        return None
    if isinstance(value, Mapping) and (attr_type in ("geo:json", None) or str(attr_type).startswith("geo:")):
        points = list(_positions(value.get("coordinates")))
        if not points:
            return None
        lon = sum(p[0] for p in points) / len(points)
        lat = sum(p[1] for p in points) / len(points)
        return (lat, lon) if -90 <= lat <= 90 and -180 <= lon <= 180 else None
    return None


def is_measure(name: str, attr: Any) -> bool:
    """Whether the attribute ``name`` of a normalized entity is something measured."""
    if name in TIME_NAMES or name in DESCRIPTIVE_NAMES or _REF.match(name) or not isinstance(attr, Mapping):
        return False
    kind = attr.get("type")
    if isinstance(kind, str) and (kind.startswith("geo:") or kind in NOT_MEASURES):
        return kind == "Text" and _meta_value(attr.get("metadata"), UNIT_KEYS) is not None
    value = attr.get("value")
    return kind in MEASURE_TYPES or value is None or _number(value) is not None or isinstance(value, bool) \
        or _meta_value(attr.get("metadata"), UNIT_KEYS) is not None


# -- broker entities -------------------------------------------------------------------------


def entity_sensors(entity: Doc, tenant: str, service_path: str = "/") -> list[Sensor]:
    """One sensor per measured attribute of a normalized entity (``GET /v2/entities`` with
    ``attrs=*,dateModified&metadata=*,dateModified``).

    Its unit is its ``unitCode`` metadata (or ``unit``); where it is, the entity's
    ``location`` (else its first ``geo:*`` attribute); when it was last seen, its
    ``TimeInstant`` (its own, else the entity's), else its ``dateModified``; its owner, the
    entity's ``owner`` attribute (WAZIUP devices keep their owner so), private when its
    ``visibility`` says so (WAZIUP's rule: missing is public)."""
    entity_id, entity_type = entity.get("id"), entity.get("type")
    if not isinstance(entity_id, str) or not isinstance(entity_type, str):
        return []
    where = None
    located = entity.get("location")
    if isinstance(located, Mapping):
        where = point_of(located.get("type"), located.get("value"))
    if where is None:
        for attr in entity.values():
            if isinstance(attr, Mapping) and str(attr.get("type", "")).startswith("geo:"):
                where = point_of(attr.get("type"), attr.get("value"))
                if where is not None:
                    break
    measured, modified = when(entity.get("TimeInstant")), when(entity.get("dateModified"))
    owner_attr, visibility = entity.get("owner"), entity.get("visibility")
    owner = _text(owner_attr.get("value")) if isinstance(owner_attr, Mapping) else None
    private = isinstance(visibility, Mapping) and visibility.get("value") == "private"
    sensors = []
    for name, attr in entity.items():
        if name in ("id", "type") or not is_measure(name, attr):
            continue
        metadata = attr.get("metadata")
        meta = metadata if isinstance(metadata, Mapping) else {}
        # When it was measured (the agents' TimeInstant, a WAZIUP value's timestamp) before
        # when the broker was told (dateModified): a late upload is not a fresh value.
        seen = when(meta.get("TimeInstant")) or measured or when(meta.get("timestamp")) \
            or when(meta.get("dateModified")) or modified
        sensors.append(Sensor(
            tenant, entity_id, entity_type, name, unit=_meta_value(meta, UNIT_KEYS),
            lat=where[0] if where else None, lon=where[1] if where else None,
            seen=seen, owner=owner, service_path=service_path, source="broker",
            kind=_meta_value(meta, KIND_KEYS), private=private,
        ))
    return sensors


# -- IoT agent devices and groups ---------------------------------------------------------------


def _unit_of(attribute: Doc) -> str | None:
    """A device or group attribute's unit: its ``metadata`` (``unitCode``), else a ``unit`` key."""
    return _meta_value(attribute.get("metadata"), UNIT_KEYS) or _text(attribute.get("unit"))


def _device_location(device: Doc) -> tuple[float, float] | None:
    for item in device.get("static_attributes") or ():
        if isinstance(item, Mapping) and str(item.get("type", "")).startswith("geo:"):
            found = point_of(item.get("type"), item.get("value"))
            if found is not None:
                return found
    return None


def device_sensors(device: Doc, group: Doc | None = None) -> list[Sensor]:
    """A provisioned device's measures (its ``attributes`` and ``lazy`` ones, then its
    group's it does not redefine: the agents apply both) as sensors of the entity it
    writes (``entity_name``, ``entity_type``, else ``<type>:<device_id>``)."""
    device_id = _text(device.get("device_id"))
    if device_id is None:
        return []
    group = group or {}
    entity_type = _text(device.get("entity_type")) or _text(group.get("entity_type")) or "Thing"
    entity_id = _text(device.get("entity_name")) or f"{entity_type}:{device_id}"
    tenant = _text(device.get("service")) or ""
    path = _text(device.get("service_path")) or "/"
    where = _device_location(device) or _device_location(group)
    sensors: dict[str, Sensor] = {}
    for source in (device, group):
        for key in ("attributes", "lazy"):
            for item in source.get(key) or ():
                if not isinstance(item, Mapping):
                    continue
                name = _text(item.get("name")) or _text(item.get("object_id"))
                where_attr = str(item.get("type", "")).startswith("geo:")
                if name is None or name in sensors or name in TIME_NAMES or where_attr:
                    continue
                sensors[name] = Sensor(
                    tenant, entity_id, entity_type, name, unit=_unit_of(item),
                    lat=where[0] if where else None, lon=where[1] if where else None,
                    service_path=path, source="iot-agent", kind=_meta_value(item.get("metadata"), KIND_KEYS),
                )
    return list(sensors.values())


def group_of(device: Doc, groups: Iterable[Doc]) -> Doc | None:
    """The group a device belongs to: same tenant and apikey (any of the tenant's when it has none)."""
    for group in groups:
        if group.get("service") == device.get("service") and group.get("subservice") == device.get("service_path") \
                and (device.get("apikey") is None or group.get("apikey") == device.get("apikey")):
            return group
    return None


def group_units(groups: Iterable[Doc]) -> dict[tuple[str, str, str], str]:
    """(tenant, entity type, attribute) -> unit, from the groups' attributes: an entity a
    group's device made on its own (autoprovisioned) has the group's units, which the broker
    may not carry."""
    units: dict[tuple[str, str, str], str] = {}
    for group in groups:
        entity_type, tenant = _text(group.get("entity_type")), _text(group.get("service")) or ""
        if entity_type is None:
            continue
        for item in group.get("attributes") or ():
            if isinstance(item, Mapping):
                name, unit = _text(item.get("name")) or _text(item.get("object_id")), _unit_of(item)
                if name and unit:
                    units.setdefault((tenant, entity_type, name), unit)
    return units


# -- registrations -------------------------------------------------------------------------------


def registration_sensors(registration: Doc, tenant: str) -> list[Sensor]:
    """Each attribute a context provider registered, for each entity (or pattern) it
    provides: the broker forwards their queries to it. No attribute named: nothing to list."""
    provided = registration.get("dataProvided")
    if not isinstance(provided, Mapping):
        return []
    attrs = [a for a in provided.get("attrs") or () if isinstance(a, str) and a not in TIME_NAMES]
    sensors = []
    for entity in provided.get("entities") or ():
        if not isinstance(entity, Mapping):
            continue
        entity_id = _text(entity.get("id")) or _text(entity.get("idPattern"))
        entity_type = _text(entity.get("type")) or _text(entity.get("typePattern")) or ""
        if entity_id is None:
            continue
        sensors.extend(Sensor(tenant, entity_id, entity_type, attr, source="registration") for attr in attrs)
    return sensors


# -- merging ---------------------------------------------------------------------------------------


def merge(broker: Iterable[Sensor], agent: Iterable[Sensor], registered: Iterable[Sensor],
          units: Mapping[tuple[str, str, str], str] | None = None) -> list[Sensor]:
    """One sensor per (tenant, entity, attribute): what the broker holds wins (it has the
    last value's time and the entity's place), completed by what the agent knows of the
    device (its unit, its place) and by the groups' ``units``; a device the broker has no
    entity of yet, and a registered attribute, are listed as they are."""
    units = units or {}
    out: dict[tuple[str, str, str], Sensor] = {}
    for sensor in broker:
        unit = sensor.unit or units.get((sensor.tenant, sensor.entity_type, sensor.attr))
        key = (sensor.tenant, sensor.entity_id, sensor.attr)
        out[key] = sensor if unit == sensor.unit else replace(sensor, unit=unit)
    for sensor in (*agent, *registered):
        key = (sensor.tenant, sensor.entity_id, sensor.attr)
        known = out.get(key)
        if known is None:
            out[key] = sensor
            continue
        changes = {name: getattr(sensor, name) for name in ("unit", "kind")
                   if getattr(known, name) is None and getattr(sensor, name) is not None}
        if known.lat is None and sensor.lat is not None:  # a place is both coordinates or none
            changes.update(lat=sensor.lat, lon=sensor.lon)
        if changes:
            out[key] = replace(known, **changes)
    return list(out.values())
