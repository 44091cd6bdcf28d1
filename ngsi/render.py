"""Entities in the internal form to Orion's response shapes: normalized, keyValues, values, unique.

Key order is Orion's (``id``, ``type``, then attributes; inside an attribute ``type``,
``value``, ``metadata``) because some clients and Orion's own tests compare bytes.
Builtin attributes (dateCreated, dateModified, dateExpires, servicePath) and builtin metadata
(dateCreated, dateModified) appear only when the ``attrs`` / ``metadata`` filters name them.
User attributes come out sorted by name (bytewise), as Orion reads them back from MongoDB,
unless an ``attrs`` list (without ``*``) gives their order; this shows most in the ``values``
mode, where the order of the array is the order of the attributes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .dates import format_datetime
from .model import DATE_TYPES

NORMALIZED = "normalized"
KEY_VALUES = "keyValues"
VALUES = "values"
UNIQUE = "unique"


@dataclass(frozen=True)
class Projection:
    """What to show of an entity: the ``attrs`` and ``metadata`` filters of a request.

    ``attrs`` None means every user attribute; a tuple lists the wanted names, where ``*``
    stands for every user attribute and builtin names add builtin attributes.
    """

    attrs: tuple[str, ...] | None = None
    metadata: tuple[str, ...] | None = None

    def wants_attr(self, name: str) -> bool:
        return self.attrs is None or name in self.attrs or "*" in self.attrs


ALL = Projection()


def _format_date(seconds: float) -> str:
    return format_datetime(seconds)


def attr_value(attr: dict[str, Any]) -> Any:
    """The value a response or a notification shows for a stored attribute."""
    value = attr["value"]
    if attr["type"] in DATE_TYPES and isinstance(value, (int, float)) and not isinstance(value, bool):
        return _format_date(value)
    if attr["type"] == "geo:json" and isinstance(value, dict) and value.get("type") in _FEATURES:
        return _feature_geometry(attr, value)
    return value


_FEATURES = ("Feature", "FeatureCollection")


def _feature_geometry(attr: dict[str, Any], value: dict[str, Any]) -> Any:
    """A geo:json ``Feature`` shows only its ``geometry``, a ``FeatureCollection`` the geometry
    of its first feature (orion-api.md, "GeoJSON"). The whole value stays stored, and
    ``ignoreType: true`` turns this off: the attribute is then no location and shows as given.
    """
    ignore = (attr.get("md") or {}).get("ignoreType")
    if isinstance(ignore, dict) and ignore.get("value") is True:
        return value
    feature: Any = value
    if value["type"] == "FeatureCollection":
        features = value.get("features")
        feature = features[0] if isinstance(features, list) and features else None
    if isinstance(feature, dict) and isinstance(feature.get("geometry"), dict):
        return feature["geometry"]
    return value  # not a valid feature: never stored as a location, shown as given


def _md_value(md: dict[str, Any]) -> Any:
    value = md["value"]
    if md["type"] in DATE_TYPES and isinstance(value, (int, float)) and not isinstance(value, bool):
        return _format_date(value)
    return value


def render_metadata(attr: dict[str, Any], wanted: tuple[str, ...] | None) -> dict[str, Any]:
    mds = attr.get("md")
    if not mds:
        if wanted is None:
            return {}
        mds = {}
    out: dict[str, Any] = {}
    if wanted is None or "*" in wanted:
        for name, md in mds.items():
            out[name] = {"type": md["type"], "value": _md_value(md)}
    else:
        for name in wanted:
            if name in mds:
                out[name] = {"type": mds[name]["type"], "value": _md_value(mds[name])}
    if wanted is not None:
        for builtin in ("dateCreated", "dateModified"):
            stamp = attr.get("creDate" if builtin == "dateCreated" else "modDate")
            if builtin in wanted and builtin not in mds and stamp is not None:
                out[builtin] = {"type": "DateTime", "value": _format_date(stamp)}
    return out


def render_attr(attr: dict[str, Any], projection: Projection = ALL) -> dict[str, Any]:
    """An attribute in normalized form."""
    return {
        "type": attr["type"],
        "value": attr_value(attr),
        "metadata": render_metadata(attr, projection.metadata),
    }


def _builtin_attrs(entity: dict[str, Any], wanted: tuple[str, ...]) -> list[tuple[str, dict[str, Any]]]:
    found = []
    stamps = (("dateCreated", "creDate"), ("dateModified", "modDate"), ("dateExpires", "expDate"))
    for name, key in stamps:
        if name in wanted and name not in entity["attrs"] and entity.get(key) is not None:
            found.append((name, {"type": "DateTime", "value": entity[key], "md": {}}))
    if "servicePath" in wanted and "servicePath" not in entity["attrs"] and entity.get("servicePath") is not None:
        found.append(("servicePath", {"type": "Text", "value": entity["servicePath"], "md": {}}))
    return found


def selected_attrs(entity: dict[str, Any], projection: Projection = ALL) -> list[tuple[str, dict[str, Any]]]:
    """The (name, attr) pairs a projection shows, in rendering order.

    An ``attrs`` list without ``*`` gives the order: "The attributes are retrieved in the
    order specified by this parameter" (orion-api.md, "Retrieve Entity"); otherwise user
    attributes come sorted by name, then the builtins asked for.
    """
    attrs = entity["attrs"]
    wanted = projection.attrs
    if wanted is None:
        return sorted(attrs.items())
    if "*" in wanted:
        return sorted(attrs.items()) + _builtin_attrs(entity, wanted)
    builtins = dict(_builtin_attrs(entity, wanted))
    chosen: dict[str, dict[str, Any]] = {}
    for name in wanted:
        attr = attrs.get(name) or builtins.get(name)
        if attr is not None and name not in chosen:
            chosen[name] = attr
    return list(chosen.items())


def render_entity(entity: dict[str, Any], mode: str = NORMALIZED, projection: Projection = ALL) -> Any:
    """One entity as Orion shows it in GET /v2/entities/{id} and in lists."""
    chosen = selected_attrs(entity, projection)
    if mode == VALUES or mode == UNIQUE:
        if projection.attrs is not None and "*" not in projection.attrs:
            by_name = dict(chosen)
            values = [attr_value(by_name[name]) for name in projection.attrs if name in by_name]
        else:
            values = [attr_value(attr) for _, attr in chosen]
        return _unique(values) if mode == UNIQUE else values
    out: dict[str, Any] = {"id": entity["id"], "type": entity["type"]}
    if mode == KEY_VALUES:
        for name, attr in chosen:
            out[name] = attr_value(attr)
    else:
        for name, attr in chosen:
            out[name] = render_attr(attr, projection)
    return out


def render_entity_attrs(entity: dict[str, Any], mode: str = NORMALIZED, projection: Projection = ALL) -> Any:
    """The attributes of an entity alone, as GET /v2/entities/{id}/attrs shows them."""
    rendered = render_entity(entity, mode, projection)
    if isinstance(rendered, dict):
        del rendered["id"], rendered["type"]
    return rendered


def _unique(values: list[Any]) -> list[Any]:
    """The values without repeats, first occurrence kept; equal means same JSON text (1 and true differ)."""
    seen: set[str] = set()
    out = []
    for value in values:
        key = json.dumps(value, sort_keys=True)
        if key not in seen:
            seen.add(key)
            out.append(value)
    return out


def render_entities(entities: list[dict[str, Any]], mode: str = NORMALIZED, projection: Projection = ALL) -> list[Any]:
    """Each entity as render_entity shows it; ``unique`` removes repeats inside each entity, as Orion does."""
    return [render_entity(entity, mode, projection) for entity in entities]
