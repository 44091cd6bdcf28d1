"""Does a change of an entity fire a subscription? Orion's rules, pure.

A write of the entity service becomes a :class:`~broker.changes.Change` (the entity
before and after, the attributes the request named, the request's context and whether
the update is forced). A subscription
fires on it when, in Orion's order of checks (``addTriggeredSubscriptions``):

* it is active (``status`` active, or oneshot not yet fired) and not expired;
* one of ``subject.entities`` matches the entity (id or idPattern, type or
  typePattern; no type matches any type) and its service path covers the entity's;
* the alteration type of the change is wanted: entityCreate, entityDelete, and for
  updates entityChange (some attribute really changed, or forcedUpdate) or entityUpdate
  (the request touched attributes without changing them). Without ``alterationTypes``
  a subscription wants entityCreate and entityChange; ``entityUpdate`` also covers
  entityChange;
* ``condition.attrs`` is empty or names one of the attributes the request touched;
* the ``condition.expression`` (q, mq, geo) and ``condition.jexlExpression`` (a
  ``true`` result) hold for the entity after the change (before it, for a delete);
* it is not throttled (``throttling`` seconds since ``lastNotification``).

``notifyOnMetadataChange: false`` makes a change of metadata only no change at all.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from ngsi.errors import NGSIError
from ngsi.geo import parse_geo_query
from ngsi.query import parse_mq, parse_q
from ngsi.selectors import selector_covers
from ngsi.servicepath import covers, parse_scopes

from ..changes import Change
from .macros import jexl_condition

Entity = dict[str, Any]
Sub = dict[str, Any]

ENTITY_CREATE = "entityCreate"
ENTITY_UPDATE = "entityUpdate"
ENTITY_CHANGE = "entityChange"
ENTITY_DELETE = "entityDelete"
DEFAULT_ALTERATIONS = (ENTITY_CREATE, ENTITY_CHANGE)


# -- actual changes ------------------------------------------------------------------------


def same_value(a: Any, b: Any) -> bool:
    """JSON equality where true is not 1 and "1" is not 1 (Python's == mixes bool and int)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same_value(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def _same_md(a: dict[str, Any], b: dict[str, Any]) -> bool:
    if a.keys() != b.keys():
        return False
    return all(a[k].get("type") == b[k].get("type") and same_value(a[k].get("value"), b[k].get("value")) for k in a)


def attr_changed(old: dict[str, Any] | None, new: dict[str, Any] | None, *, with_metadata: bool = True) -> bool:
    if old is None or new is None:
        return old is not new
    if old.get("type") != new.get("type") or not same_value(old.get("value"), new.get("value")):
        return True
    return with_metadata and not _same_md(old.get("md") or {}, new.get("md") or {})


def changed_attrs(change: Change, *, with_metadata: bool = True) -> list[str]:
    """The touched attributes whose type, value (or metadata) really changed."""
    if change.action != "update":
        return list(change.touched)
    before = (change.before or {}).get("attrs", {})
    after = (change.after or {}).get("attrs", {})
    names = list(change.touched)
    found = [n for n in names if attr_changed(before.get(n), after.get(n), with_metadata=with_metadata)]
    if change.before is not None and change.after is not None:
        if change.before.get("expDate") != change.after.get("expDate") and "dateExpires" in names:
            found.append("dateExpires")
    return found


def alteration_type(change: Change, *, notify_on_metadata_change: bool = True) -> str:
    if change.action == "create":
        return ENTITY_CREATE
    if change.action == "delete":
        return ENTITY_DELETE
    if change.forced or changed_attrs(change, with_metadata=notify_on_metadata_change):
        return ENTITY_CHANGE
    return ENTITY_UPDATE


def alteration_wanted(wanted: list[str] | None, alteration: str) -> bool:
    types = tuple(wanted) if wanted else DEFAULT_ALTERATIONS
    if alteration in types:
        return True
    return alteration == ENTITY_CHANGE and ENTITY_UPDATE in types


# -- subject ---------------------------------------------------------------------------------


def entity_selected(selector: dict[str, Any], entity: Entity) -> bool:
    """One item of ``subject.entities`` against the entity (Orion regexes are unanchored)."""
    return selector_covers(selector, entity["id"], entity["type"])


def service_path_covers(sub_path: str | None, entity_path: str) -> bool:
    """The subscription's Fiware-ServicePath ("/#" when none) against the entity's path."""
    try:
        scopes = parse_scopes(sub_path or "/#")
    except NGSIError:  # validated at creation: a stale bad path covers nothing
        return False
    return covers(scopes, entity_path)


# -- expression --------------------------------------------------------------------------------


@lru_cache(maxsize=1024)
def _compiled_q(text: str, kind: str) -> Any:
    try:
        return (parse_q if kind == "q" else parse_mq)(text)
    except Exception:  # validated at creation; a stale bad filter matches nothing
        return False


@lru_cache(maxsize=256)
def _compiled_geo(georel: str, geometry: str, coords: str) -> Any:
    try:
        return parse_geo_query(georel, geometry, coords, context="subscription")
    except Exception:
        return False


def _mq_attrs_exist(query: Any, entity: Entity) -> bool:
    """Orion's in-memory mq check for subscriptions wants the attribute of ``!attr.md``
    to exist (1156 mq_as_uri_param_for_metadata: ``!A2.M2`` does not fire without A2)."""
    for item in query.items:
        target = item.target
        if item.op == "!" and target.attr is not None and target.md and target.attr not in entity["attrs"]:
            return False
    return True


def expression_holds(expression: dict[str, Any] | None, entity: Entity, change: Change | None = None) -> bool:
    if not expression:
        return True
    for kind in ("q", "mq"):
        text = expression.get(kind)
        if text:
            query = _compiled_q(text, kind)
            if query is False or not query.matches(entity):
                return False
            if kind == "mq" and not _mq_attrs_exist(query, entity):
                return False
    georel, geometry, coords = expression.get("georel"), expression.get("geometry"), expression.get("coords")
    if georel and geometry and coords:
        geo = _compiled_geo(georel, geometry, coords)
        if geo is False or (geo is not None and not geo.matches(entity.get("location"))):
            return False
    jexl = expression.get("jexlExpression")
    if jexl:
        if change is None or not jexl_condition(jexl, change):
            return False
    return True


# -- the whole check ---------------------------------------------------------------------------


def is_active(sub: Sub, now: float) -> bool:
    if sub.get("status", "active") not in ("active", "oneshot"):
        return False
    expires = sub.get("expires")
    return expires is None or expires > now


def throttled(sub: Sub, now: float) -> bool:
    throttling = sub.get("throttling") or 0
    last = sub.get("notification", {}).get("lastNotification")
    return bool(throttling) and last is not None and now - last < throttling


def fires(sub: Sub, change: Change, now: float) -> str | None:
    """The alteration type the subscription is notified with, or None when it does not fire."""
    if not is_active(sub, now):
        return None
    entity = change.entity
    subject = sub.get("subject") or {}
    if not any(entity_selected(sel, entity) for sel in subject.get("entities") or []):
        return None
    if not service_path_covers(sub.get("_servicePath"), entity.get("servicePath", "/")):
        return None
    condition = subject.get("condition") or {}
    alteration = alteration_type(change, notify_on_metadata_change=condition.get("notifyOnMetadataChange", True))
    if not alteration_wanted(condition.get("alterationTypes"), alteration):
        return None
    cond_attrs = condition.get("attrs") or []
    if cond_attrs and change.action == "update":
        if not any(name in cond_attrs for name in change.touched):
            return None
    elif cond_attrs and change.action == "create":
        if not any(name in cond_attrs for name in entity["attrs"]):
            return None
    if not expression_holds(condition.get("expression"), entity, change):
        return None
    jexl = condition.get("jexlExpression")
    if jexl:
        if not jexl_condition(jexl, change):
            return None
    if throttled(sub, now):
        return None
    return alteration
