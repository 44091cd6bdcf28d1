"""The engine on the platform's internal entity form (``{"id", "type", "servicePath",
"attrs": {name: {"type", "value", "md", ...}}, ...}``), for the seams that hold entities
that way: the broker's reads and its notifier (``ngsi/release.py``).

The entity is shown to the engine as an NGSI-v2 normalized entity, exactly as a reply
would render it (dates as ISO 8601 text, a GeoJSON Feature as its geometry), so a step
sees what the consumer would have seen; the result goes back into the internal form,
dates parsed back to epoch seconds, every other key of the entity and its attributes
(creation and modification dates, the derived location) kept.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from ngsi.dates import format_datetime, parse_datetime
from ngsi.model import DATE_TYPES
from ngsi.render import attr_value

from .engine import apply
from .keys import KeyRing
from .policy import Consumer, Policy


def _shown(kind: str, value: Any) -> Any:
    if kind in DATE_TYPES and isinstance(value, (int, float)) and not isinstance(value, bool):
        return format_datetime(value)
    return value


def _stored(kind: str, value: Any) -> Any:
    if kind in DATE_TYPES and isinstance(value, str):
        seconds = parse_datetime(value)
        return seconds if seconds is not None else value
    return value


def _normalized(entity: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"id": entity["id"], "type": entity.get("type")}
    for name, attr in (entity.get("attrs") or {}).items():
        mds = attr.get("md") or {}
        out[name] = {
            "type": attr["type"], "value": attr_value(attr),
            "metadata": {n: {"type": md["type"], "value": _shown(md["type"], md.get("value"))} for n, md in mds.items()},
        }
    return out


def apply_stored(policy: Policy, entity: Mapping[str, Any], *, keys: KeyRing, consumer: Consumer,
                 rng: random.Random | None = None) -> dict[str, Any]:
    """``entity`` (internal form) as ``consumer`` may see it; a new dict."""
    released = apply(policy, _normalized(entity), keys=keys, consumer=consumer, rng=rng)
    attrs: dict[str, Any] = {}
    for name, attr in (entity.get("attrs") or {}).items():
        new = released.get(name)
        if new is None:
            continue
        old_md = attr.get("md") or {}
        md = {n: {**old_md.get(n, {}), "type": m["type"], "value": _stored(m["type"], m["value"])}
              for n, m in new.get("metadata", {}).items()}
        attrs[name] = {**attr, "type": new["type"], "value": _stored(new["type"], new["value"]), "md": md}
    return {**entity, "id": released["id"], "attrs": attrs}
