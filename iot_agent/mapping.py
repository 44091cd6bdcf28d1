"""Measures -> NGSI-v2 entities, as iotagent-node-lib builds them
(``lib/services/ngsi/entities-NGSI-v2.js``, ``doc/api.md`` §Device to NGSI
Mapping, §Expression language, §explicitAttrs, §TimeInstant).

``build_entities(measures, device, group, now)`` takes the codec output (one
dict per measure group, names as the device sent them), the device record and
its group as provisioned (API field names; the agents' stored names ``active``,
``name``, ``subservice``, ``staticAttributes`` are read too) and returns the
normalized entities to send: ``[{"id", "type", <attr>: {"type", "value"[, "metadata"]}}]``.
One entity -> ``POST /v2/entities?options=upsert``; several (multimeasure or
multi-entity) -> ``POST /v2/op/update`` ``append`` in this order (sorted by
``TimeInstant`` when every entity has one).  ``[]`` means "send nothing".

Per measure:

1. ``id`` / ``type`` measures are renamed ``measure_id`` / ``measure_type``.
2. The JEXL context holds every measure, the static attributes, ``id``
   (device id), ``type`` (entity type), ``service``, ``subservice``,
   ``entity_name``, ``staticAttributes`` and ``metadata.<attr>.<md>``.
3. The entity id is ``entityNameExp`` (when it gives a string), else the
   device's ``entity_name``, else ``entity_type + conjunction + device_id``.
4. Active attributes run in order: the measure named by ``object_id`` (or
   ``name``) is renamed to ``name`` with the provisioned ``type`` and
   ``metadata``; an ``expression`` replaces the value (it runs even when the
   measure is absent) and its result joins the context under ``name``;
   ``None``/NaN results and results equal to ``skipValue`` are not sent; an
   ``entity_name`` (literal, or JEXL giving a string) sends the value to that
   entity (``entity_type`` or the device's type).
5. Other measures keep their names and JSON values; their type is the
   provisioned type of an attribute of that name, else ``Text`` as the UL/JSON
   agents send them (``TimeInstant`` is ``DateTime``); ``infer_types=True``
   infers ``Number``, ``Boolean``, ``StructuredValue``... instead.
6. Static attributes are added (measures win on a name clash).
7. ``explicitAttrs`` (device, else group): ``true`` keeps provisioned active
   and static attributes; a list (JEXL giving names, object_ids or
   ``{"object_id": x}`` items) keeps those of them that are provisioned;
   ``[]`` sends nothing at all.
8. ``timestamp`` (device, else group, else ``timestamp_default``), or a
   measured or mapped ``TimeInstant`` in ISO 8601 whatever the flag: the entity
   gets ``TimeInstant`` (that one, else ``now`` in the device ``timezone``) and
   every other attribute gets ``metadata.TimeInstant``.
9. ``autocast``: values of attributes typed ``Number``/``Boolean``/``None``/
   ``Array``/``Object`` given as text are converted (IOTA_AUTOCAST).
"""

from __future__ import annotations

import copy
import datetime as _dt
import json
import math
import re
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ngsi.model import infer_type

from .expressions import evaluate

__all__ = ["build_entities", "merge_type_information", "infer_type", "format_now", "TIMESTAMP_ATTRIBUTE"]

TIMESTAMP_ATTRIBUTE = "TimeInstant"
TIMESTAMP_TYPE = "DateTime"
DEFAULT_TYPE = "Text"

_ISO_RE = re.compile(
    r"\d{4}(-\d{2}(-\d{2}(T\d{2}(:\d{2}(:\d{2}([.,]\d+)?)?)?(Z|[+-]\d{2}(:?\d{2})?)?)?)?)?"
    r"|\d{8}T\d{2}(\d{2}(\d{2}([.,]\d+)?)?)?(Z|[+-]\d{2}(\d{2})?)?",
    re.ASCII,
)

_SENTINEL = object()
_SKIP = object()  # an active attribute that is not sent for this measure

Doc = dict[str, Any]


def _first(*values: Any) -> Any:
    for v in values:
        if v is not None:
            return v
    return None


def _get(d: dict[str, Any] | None, *keys: str) -> Any:
    if not d:
        return None
    for k in keys:
        if d.get(k) is not None:
            return d[k]
    return None


def _merge_lists(primary: list[dict[str, Any]], secondary: list[dict[str, Any]], key: str = "name") -> list[dict[str, Any]]:
    """Device items first, then group items whose name (object_id for active) is new."""
    seen = {_item_key(a, key) for a in primary}
    return list(primary) + [a for a in secondary if _item_key(a, key) not in seen]


def _item_key(a: dict[str, Any], key: str) -> Any:
    if key == "object_id":
        return a.get("object_id") or a.get("name")
    return a.get("name")


def _dicts(v: Any) -> list[dict[str, Any]]:
    return [a for a in v if isinstance(a, dict)] if isinstance(v, list) else []


def merge_type_information(device: dict[str, Any], group: dict[str, Any] | None) -> dict[str, Any]:
    """The effective configuration of a device: its own fields over its group's."""
    g = group or {}
    return {
        "device_id": _get(device, "device_id", "id"),
        "entity_name": _get(device, "entity_name", "name"),
        "entity_type": _first(_get(device, "entity_type", "type"), _get(g, "entity_type", "type")),
        "service": _first(_get(device, "service"), _get(g, "service")),
        "subservice": _first(_get(device, "service_path", "subservice"), _get(g, "subservice", "service_path")),
        "timezone": _first(_get(device, "timezone"), _get(g, "timezone")),
        "timestamp": _first(_get(device, "timestamp"), _get(g, "timestamp")),
        "explicitAttrs": _first(_get(device, "explicitAttrs"), _get(g, "explicitAttrs")),
        "entityNameExp": _first(_get(device, "entityNameExp"), _get(g, "entityNameExp")),
        "conjunction": _first(_get(device, "defaultEntityNameConjunction"), _get(g, "defaultEntityNameConjunction")),
        "active": _merge_lists(
            _dicts(_get(device, "attributes", "active")), _dicts(_get(g, "attributes", "active")), "object_id"
        ),
        "static": _merge_lists(
            _dicts(_get(device, "static_attributes", "staticAttributes")),
            _dicts(_get(g, "static_attributes", "staticAttributes")),
        ),
    }


def format_now(now: float, timezone: str | None = None) -> str:
    """``new Date().toISOString()`` (UTC, ms, ``Z``) or moment-tz ``YYYY-MM-DDTHH:mm:ss.SSSZ``."""
    d = _dt.datetime.fromtimestamp(now, tz=_dt.timezone.utc)
    if timezone:
        try:
            d = d.astimezone(ZoneInfo(timezone))
        except (ZoneInfoNotFoundError, ValueError):
            pass
        else:
            off = d.strftime("%z")
            return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond // 1000:03d}{off[:3]}:{off[3:]}"
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond // 1000:03d}Z"


def _is_iso(v: Any) -> bool:
    return isinstance(v, str) and _ISO_RE.fullmatch(v.strip()) is not None


def _iso_key(v: str) -> _dt.datetime | None:
    s = v.strip().replace("Z", "+00:00")
    try:
        d = _dt.datetime.fromisoformat(s)
    except ValueError:
        return None
    return d if d.tzinfo else d.replace(tzinfo=_dt.timezone.utc)


_TRUE_TEXT = {"true": True, "false": False}


def _autocast(value: Any, attr_type: str | None) -> Any:
    if not isinstance(value, str) or not attr_type:
        return value
    try:
        if attr_type in ("Number", "Integer", "Float"):
            x = float(value)
            if math.isfinite(x):
                return int(x) if x.is_integer() and re.fullmatch(r"\s*[+-]?\d+\s*", value, re.ASCII) else x
        elif attr_type == "Boolean" and value.strip().lower() in _TRUE_TEXT:
            return _TRUE_TEXT[value.strip().lower()]
        elif attr_type == "None" and value.strip() in ("null", "None", ""):
            return None
        elif attr_type in ("Array", "Object", "StructuredValue"):
            parsed = json.loads(value)
            if isinstance(parsed, (list, dict)):
                return parsed
    except ValueError:
        pass
    return value


def _json_equal(a: Any, b: Any) -> bool:
    """JSON equality: a bool never equals a number, 1 equals 1.0."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    return type(a) is type(b) and a == b


class _Entity:
    __slots__ = ("id", "type", "attrs", "sources")

    def __init__(self, eid: str, etype: str) -> None:
        self.id = eid
        self.type = etype
        self.attrs: dict[str, dict[str, Any]] = {}
        self.sources: dict[str, str | None] = {}  # attr name -> measure name it came from

    def render(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "type": self.type}
        out.update(self.attrs)
        return out


class _Targets:
    """The entities of one measure: the device's own (``main``) and those that attributes
    with an ``entity_name`` send to, created as they come."""

    def __init__(self, main: _Entity, ctx: Doc) -> None:
        self.main = main
        self.ctx = ctx  # read when an entity_name is evaluated: it sees the values set so far
        self.others: dict[tuple[str, str], _Entity] = {}

    def of(self, a: Doc) -> _Entity:
        """The entity attribute ``a`` goes to."""
        en = a.get("entity_name")
        if not isinstance(en, str) or not en:
            return self.main
        r = evaluate(en, self.ctx)
        name = r if isinstance(r, str) and r else en
        declared = a.get("entity_type")
        et = declared if isinstance(declared, str) else self.main.type
        if name == self.main.id and et == self.main.type:
            return self.main
        return self.others.setdefault((name, et), _Entity(name, et))

    def all(self) -> list[_Entity]:
        return [self.main, *self.others.values()]


def _attr(value: Any, atype: str, metadata: Any, ctx: Doc) -> dict[str, Any]:
    a: dict[str, Any] = {"type": atype, "value": value}
    if isinstance(metadata, dict) and metadata:
        a["metadata"] = _expanded_metadata(metadata, ctx)
    return a


def _expanded_metadata(metadata: Doc, ctx: Doc) -> Doc:
    """Provisioned metadata as sent: an item's ``expression`` gives its ``value`` (doc/api.md
    §Expression support in metadata) and is not sent, the broker refusing unknown fields."""
    out: Doc = {}
    for key, item in metadata.items():
        item = copy.deepcopy(item)
        if isinstance(item, dict) and "expression" in item:
            expression = item.pop("expression")
            if isinstance(expression, str) and expression:
                item["value"] = evaluate(expression, ctx)
        out[key] = item
    return out


def _attr_type(provisioned: Doc | None, name: str, value: Any, infer_types: bool) -> str:
    """A measured attribute's type: as provisioned, else ``DateTime`` for ``TimeInstant``,
    else inferred from the value (or ``Text`` without inference)."""
    declared = provisioned.get("type") if provisioned is not None else None
    if isinstance(declared, str) and declared:
        return declared
    if name == TIMESTAMP_ATTRIBUTE:
        return TIMESTAMP_TYPE
    return infer_type(value) if infer_types else DEFAULT_TYPE


def build_entities(
    measures: list[dict[str, Any]],
    device: dict[str, Any],
    group: dict[str, Any] | None = None,
    now: float = 0.0,
    *,
    timestamp_default: bool = False,
    autocast: bool = False,
    infer_types: bool = False,
    conjunction: str = ":",
    info: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """NGSI-v2 entities for ``measures`` (see the module doc); ``[]`` when nothing is to be sent.

    ``info``: ``merge_type_information(device, group)`` when the caller keeps it.
    """
    if info is None:
        info = merge_type_information(device, group)
    entities: list[dict[str, Any]] = []
    for measure in measures:
        entities.extend(_one_measure(measure, info, now, timestamp_default, autocast, infer_types, conjunction))
    return _in_time_order(entities)


def _in_time_order(entities: list[Doc]) -> list[Doc]:
    """Sorted by ``TimeInstant`` when there are several and every one has a readable one."""
    if len(entities) > 1 and all(isinstance(e.get(TIMESTAMP_ATTRIBUTE, {}).get("value"), str) for e in entities):
        keys = [_iso_key(e[TIMESTAMP_ATTRIBUTE]["value"]) for e in entities]
        if all(k is not None for k in keys):
            order = sorted(range(len(entities)), key=lambda i: keys[i])  # type: ignore[arg-type,return-value]
            return [entities[i] for i in order]
    return entities


def _one_measure(
    raw: dict[str, Any],
    info: dict[str, Any],
    now: float,
    timestamp_default: bool,
    autocast: bool,
    infer_types: bool,
    conjunction: str,
) -> list[dict[str, Any]]:
    """The entities of one measure group: the module doc's steps, in order."""
    measures = _renamed(raw)  # 1
    default_name = _default_entity_name(info, conjunction)
    ctx = _expression_context(measures, info, default_name)  # 2
    targets = _Targets(_Entity(_entity_id(info, ctx, default_name), info["entity_type"] or ""), ctx)  # 3
    consumed, provisioned = _add_active(info["active"], measures, targets, infer_types, autocast)  # 4 (and 9)
    _add_other_measures(targets.main, measures, consumed, info["active"], infer_types, autocast)  # 5 (and 9)
    provisioned |= _add_statics(info["static"], targets, infer_types)  # 6
    entities = targets.all()
    if not _keep_explicit_attrs(entities, info["explicitAttrs"], ctx, provisioned):  # 7
        return []
    stamped = info["timestamp"] if isinstance(info["timestamp"], bool) else timestamp_default
    measured = targets.main.attrs.get(TIMESTAMP_ATTRIBUTE, {}).get("value")
    if stamped or _is_iso(measured):  # 8
        timezone = info["timezone"] if isinstance(info["timezone"], str) else None
        _add_time_instant(entities, targets.main, now, timezone)
    return [e.render() for e in entities if e.attrs]


def _renamed(raw: Doc) -> Doc:
    """Step 1: ``id`` and ``type`` measures would clash with the entity's: ``measure_<name>``."""
    return {f"measure_{k}" if k in ("id", "type") else k: v for k, v in raw.items()}


def _default_entity_name(info: Doc, conjunction: str) -> str:
    """The device's ``entity_name``, else ``entity_type + conjunction + device_id``."""
    conj = info["conjunction"] if isinstance(info["conjunction"], str) else conjunction
    return info["entity_name"] or f"{info['entity_type'] or ''}{conj}{info['device_id']}"


def _expression_context(measures: Doc, info: Doc, default_name: str) -> Doc:
    """Step 2: what JEXL expressions see."""
    static: list[Doc] = info["static"]
    ctx: Doc = dict(measures)
    for s in static:
        if isinstance(s.get("name"), str):
            ctx.setdefault(s["name"], s.get("value"))
    md_ctx: Doc = {}
    for a in info["active"] + static:
        if isinstance(a.get("name"), str) and isinstance(a.get("metadata"), dict):
            md_ctx[a["name"]] = {k: (m.get("value") if isinstance(m, dict) else m) for k, m in a["metadata"].items()}
    ctx.update(
        {
            "id": info["device_id"],
            "type": info["entity_type"] or "",
            "service": info["service"],
            "subservice": info["subservice"],
            "entity_name": default_name,
            "staticAttributes": static,
            "metadata": md_ctx,
        }
    )
    return ctx


def _entity_id(info: Doc, ctx: Doc, default_name: str) -> str:
    """Step 3: ``entityNameExp`` when it gives a (non-empty) string, else the default name."""
    expression = info["entityNameExp"]
    if isinstance(expression, str) and expression:
        r = evaluate(expression, ctx)
        if isinstance(r, str) and r:
            return r
    return default_name


def _active_value(a: Doc, oid: str, measures: Doc, ctx: Doc) -> Any:
    """An active attribute's value for this measure, ``_SKIP`` when it is not to be sent."""
    expr = a.get("expression")
    if isinstance(expr, str) and expr:
        value = evaluate(expr, ctx)
        if value is None:
            return _SKIP
    elif oid in measures:
        value = measures[oid]
    else:
        return _SKIP
    if "skipValue" in a and _json_equal(value, a["skipValue"]):
        return _SKIP
    return value


def _add_active(
    active: list[Doc], measures: Doc, targets: _Targets, infer_types: bool, autocast: bool
) -> tuple[set[str], set[str]]:
    """Step 4, in provisioning order (an expression sees the attributes before it).
    Returns the measure names used and the attribute names provisioned."""
    consumed: set[str] = set()
    provisioned: set[str] = set()
    for a in active:
        name = a.get("name")
        if not isinstance(name, str) or not name:
            continue
        object_id = a.get("object_id")
        oid = object_id if isinstance(object_id, str) and object_id else name
        provisioned.add(name)
        if oid in measures:
            consumed.add(oid)
        value = _active_value(a, oid, measures, targets.ctx)
        if value is _SKIP:
            continue
        atype = _attr_type(a, name, value, infer_types)
        if autocast:
            value = _autocast(value, atype)
        targets.ctx[name] = value
        ent = targets.of(a)
        ent.attrs[name] = _attr(value, atype, a.get("metadata"), targets.ctx)
        ent.sources[name] = oid
    return consumed, provisioned


def _add_other_measures(
    main: _Entity, measures: Doc, consumed: set[str], active: list[Doc], infer_types: bool, autocast: bool
) -> None:
    """Step 5: the measures no active attribute took, under their own names."""
    by_name = {a["name"]: a for a in active if isinstance(a.get("name"), str)}
    for k, v in measures.items():
        if k in consumed or k in main.attrs:
            continue
        atype = _attr_type(by_name.get(k), k, v, infer_types)
        main.attrs[k] = _attr(_autocast(v, atype) if autocast else v, atype, None, {})
        main.sources[k] = k


def _add_statics(static: list[Doc], targets: _Targets, infer_types: bool) -> set[str]:
    """Step 6: static attributes where no measure set the name; returns their names."""
    names: set[str] = set()
    for s in static:
        name = s.get("name")
        if not isinstance(name, str) or not name:
            continue
        names.add(name)
        ent = targets.of(s)
        if name in ent.attrs:
            continue
        declared = s.get("type")
        stype = declared if isinstance(declared, str) else (infer_type(s.get("value")) if infer_types else DEFAULT_TYPE)
        ent.attrs[name] = _attr(s.get("value"), stype, s.get("metadata"), targets.ctx)
        ent.sources[name] = None
    return names


def _explicit_names(explicit: list[Any]) -> set[str]:
    """The names an ``explicitAttrs`` list keeps: names, object_ids, ``{"object_id": x}``."""
    wanted: set[str] = set()
    for item in explicit:
        if isinstance(item, str):
            wanted.add(item)
        elif isinstance(item, dict) and isinstance(item.get("object_id"), str):
            wanted.add(item["object_id"])
    return wanted


def _keep_explicit_attrs(entities: list[_Entity], explicit: Any, ctx: Doc, provisioned: set[str]) -> bool:
    """Step 7: filter the attributes by ``explicitAttrs``; False when nothing is to be sent."""
    if isinstance(explicit, str):
        explicit = evaluate(explicit, ctx)
    if explicit is True:
        keep_names = provisioned | {TIMESTAMP_ATTRIBUTE}
        for ent in entities:
            ent.attrs = {k: v for k, v in ent.attrs.items() if k in keep_names}
    elif isinstance(explicit, list):
        if not explicit:
            return False
        wanted = _explicit_names(explicit)
        for ent in entities:
            ent.attrs = {
                k: v
                for k, v in ent.attrs.items()
                if k == TIMESTAMP_ATTRIBUTE
                or (k in provisioned and (k in wanted or (ent.sources.get(k) or _SENTINEL) in wanted))
            }
    return True


def _add_time_instant(entities: list[_Entity], main: _Entity, now: float, timezone: str | None) -> None:
    """Step 8: ``TimeInstant`` on every entity sent, and as metadata of its attributes."""
    server = format_now(now, timezone)
    measured = main.attrs.get(TIMESTAMP_ATTRIBUTE)
    stamp = measured["value"] if measured is not None and _is_iso(measured.get("value")) else server
    for ent in entities:
        if not ent.attrs:
            continue
        ts_attr = ent.attrs.get(TIMESTAMP_ATTRIBUTE)
        if ts_attr is None:
            ts_attr = {"type": TIMESTAMP_TYPE, "value": stamp}
        elif not _is_iso(ts_attr.get("value")):
            # doc/api.md §TimeInstant and Timestamp flag: a TimeInstant that is not ISO 8601
            # "is refused (so a failover to server timestamp will take place)"
            ts_attr = {**ts_attr, "type": TIMESTAMP_TYPE, "value": server}
        value = ts_attr["value"]
        for k, a in ent.attrs.items():
            if k == TIMESTAMP_ATTRIBUTE:
                continue
            md = a.setdefault("metadata", {})
            md[TIMESTAMP_ATTRIBUTE] = {"type": TIMESTAMP_TYPE, "value": value}
        ent.attrs[TIMESTAMP_ATTRIBUTE] = ts_attr
