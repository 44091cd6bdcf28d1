"""The names a subscription's templates and JEXL conditions see, and the macro substitution.

``${...}`` in httpCustom/mqttCustom and ``condition.jexlExpression`` are evaluated in
one context built from the change: the entity's id, type, service path, attribute values
and metadata, plus the service and ``X-Auth-Token`` of the request that caused it (its
:class:`~ngsi.context.RequestContext`, carried by the change). Both the matcher (does a
JEXL condition hold?) and the notification builders (what goes out?) use it.
"""

from __future__ import annotations

from typing import Any

from ngsi import jexl
from ngsi.dates import format_datetime as format_date
from ngsi.model import DATE_TYPES
from ngsi.render import attr_value

from ..changes import DELETE, UPDATE, Change


def md_out(md: dict[str, Any]) -> dict[str, Any]:
    value = md.get("value")
    if md.get("type") in DATE_TYPES and isinstance(value, (int, float)) and not isinstance(value, bool):
        value = format_date(value)
    return {"type": md.get("type"), "value": value}


def notified_service(change: Change) -> str:
    """Fiware-Service of a notification: the tenant, or the request's header, which Orion
    propagates even without -multiservice (1898, 4031)."""
    return change.tenant or change.ctx.service


def macro_context(change: Change, entity: dict[str, Any] | None = None) -> dict[str, Any]:
    """What ``${...}`` can name: id, type, service, servicePath, authToken, the attribute values.

    Attribute values take precedence over the special names except id, type and
    metadata (``metadata.<attr>.<md>``).
    """
    source = entity if entity is not None else change.entity
    context: dict[str, Any] = {
        "service": change.tenant or change.ctx.service,
        "servicePath": source.get("servicePath", "/"),
        "authToken": change.ctx.auth_token or "",
    }
    for name, attr in source["attrs"].items():
        context[name] = attr_value(attr)
    context["metadata"] = _metadata_context(source, change)  # wins over an attribute so named (4594)
    context["id"] = source["id"]
    context["type"] = source["type"]
    return context


def _metadata_context(entity: dict[str, Any], change: Change) -> dict[str, Any]:
    """``metadata.<attr>.<md>``: the attribute's metadata values, and the builtin metadata,
    which the manual says are added too ("Metadata support"): dateCreated and dateModified
    (ISO 8601 text, as rendered), previousValue (4594) and actionType (only for the
    attributes the request named; ``delete`` for all of them when the entity is deleted).
    User metadata of the same name win, as in renderings."""
    out: dict[str, Any] = {}
    before = change.before["attrs"] if change.action == UPDATE and change.before is not None else {}
    for name, attr in entity["attrs"].items():
        mds = {md: md_out(v)["value"] for md, v in (attr.get("md") or {}).items()}
        if attr.get("creDate") is not None:
            mds.setdefault("dateCreated", format_date(attr["creDate"]))
        if attr.get("modDate") is not None:
            mds.setdefault("dateModified", format_date(attr["modDate"]))
        if name in before:
            mds.setdefault("previousValue", attr_value(before[name]))
        if change.action == DELETE:
            mds.setdefault("actionType", "delete")
        elif name in change.touched:
            mds.setdefault("actionType", "update" if name in before else "append")
        out[name] = mds
    return out


def substitute(template: str, context: dict[str, Any], missing: str = "null") -> str:
    """Text with each ``${...}`` replaced by the value's text.

    ``missing`` stands for a null/undefined value: ``null`` in payloads, ``""`` in url,
    headers and qs (where an empty result drops the header or parameter).
    """
    return jexl.substitute(template, context, missing)


def substitute_json(value: Any, context: dict[str, Any]) -> Any:
    """A JSON template: a string that is one whole macro becomes the value itself."""
    return jexl.expand(value, context)


def jexl_condition(expression: str, change: Change) -> bool:
    """condition.expression.jexlExpression: the subscription fires only on a ``true`` result
    (numbers and strings do not count, 4555); the context is the macros' one."""
    return jexl.evaluate(expression, macro_context(change)) is True
