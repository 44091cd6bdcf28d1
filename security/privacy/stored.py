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

from .engine import DROPPED, SYSTEM_RANDOM, Context, apply, pseudonym, steps_of, transform_value
from .keys import KeyRing
from .policy import Consumer, Drop, Policy, Steps


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


def _touched(policy: Policy, steps: Steps, name: str) -> bool:
    return policy.drops(name) or policy.named_steps(name) is not None or (name == "previousValue" and bool(steps))


def _metadata(policy: Policy, steps: Steps, mds: dict[str, Any], ctx: Context) -> dict[str, Any]:
    """The metadata as ``engine`` releases them (its ``_metadata``); the same dict when no
    step touches them, so an untouched attribute is not copied."""
    if not any(_touched(policy, steps, name) for name in mds):
        return mds
    out: dict[str, Any] = {}
    for md_name, md in mds.items():
        if policy.drops(md_name):
            continue
        md_steps = steps if md_name == "previousValue" else policy.named_steps(md_name)
        if md_steps is None:
            out[md_name] = md
            continue
        value = transform_value(md_steps, _shown(md["type"], md.get("value")), ctx)
        if value is not DROPPED:
            out[md_name] = {**md, "value": _stored(md["type"], value)}
    return out


def apply_stored(policy: Policy, entity: Mapping[str, Any], *, keys: KeyRing, consumer: Consumer,
                 rng: random.Random | None = None) -> dict[str, Any]:
    """``entity`` (internal form) as ``consumer`` may see it; a new dict, sharing the
    attributes no step touches. The same release as ``engine.apply`` on the rendered
    entity (``tests/security/privacy/test_stored.py`` holds them equal), without
    rendering and parsing back every attribute on the notifier's path."""
    ctx = Context(keys, consumer, rng if rng is not None else SYSTEM_RANDOM)
    attrs: dict[str, Any] = {}
    for name, attr in (entity.get("attrs") or {}).items():
        kind = attr["type"]
        steps = steps_of(policy, name, kind)
        if any(isinstance(step, Drop) for step in steps):
            continue
        mds = attr.get("md") or {}
        if not steps:
            new_mds = _metadata(policy, steps, mds, ctx) if mds else mds
            attrs[name] = attr if new_mds is mds else {**attr, "md": new_mds}
            continue
        value = transform_value(steps, attr_value(attr), ctx)  # the value first, then its metadata, as engine
        if value is DROPPED:
            continue
        new_mds = _metadata(policy, steps, mds, ctx) if mds else mds
        if isinstance(attr["value"], list) and isinstance(value, str):
            kind = "geo:point"  # a geo:line, geo:box or geo:polygon generalized to its cell
        attrs[name] = {**attr, "type": kind, "value": _stored(kind, value), "md": new_mds}
    entity_id = entity["id"]
    return {**entity, "id": pseudonym(entity_id, ctx) if policy.pseudonymize_ids else entity_id, "attrs": attrs}


def apply_rendered(policy: Policy, entity: Mapping[str, Any], *, keys: KeyRing, consumer: Consumer,
                   rng: random.Random | None = None) -> dict[str, Any]:
    """The reference: ``entity`` rendered as a reply would, through ``engine.apply``, and
    back into the internal form. Tests compare :func:`apply_stored` with it."""
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
