"""The notification a subscription sends for a change: method, URL, headers and body, pure.

Everything here is computed from the subscription dict (the canonical form of
broker/subscriptions/model.py), the :class:`~.matcher.Change` and the request
context, so it is cheap to test and the sender only moves bytes.

Orion's rules reproduced here:

* one notification per entity; the body is ``{"subscriptionId", "data": [entity]}``
  (``normalized``, ``keyValues``, ``values``) or the bare entity
  (``simplifiedNormalized``, ``simplifiedKeyValues``);
* ``attrs`` (list order; ``*`` = every user attribute) or ``exceptAttrs`` choose the
  attributes; the builtins ``dateCreated``, ``dateModified``, ``dateExpires``,
  ``alterationType`` and ``servicePath`` only when listed; ``onlyChangedAttrs`` keeps the
  attributes the request touched (and the builtins alterationType, dateCreated and
  dateModified); ``covered`` adds listed but missing attributes as ``None``/null;
* ``metadata`` chooses metadata; the builtins ``dateCreated``, ``dateModified``,
  ``previousValue`` (every attribute that existed before an update) and ``actionType``
  (``append`` for a new attribute, ``update`` for an existing one, ``delete`` for
  entity deletion; only the attributes the request touched) only when listed;
* ``httpCustom``: ``${...}`` JEXL macros (ngsi.jexl) in url, header names and values,
  qs, payload (text, percent-decoded; ``null`` for nothing), json (a string that is
  only a macro takes the value's JSON type) and ngsi (attributes merged into the
  entity before the ``attrs`` filter, in ``evalPriority`` order; no macros in attribute
  types); headers and qs are percent-decoded and dropped when they come out empty;
  custom headers override the default ones whatever their case, except
  Fiware-Correlator and Ngsiv2-AttrsFormat;
* headers: Fiware-Service (the tenant, or the request's header, propagated even
  without -multiservice), Fiware-Servicepath (the entity's), Fiware-Correlator
  ``<correlator>; cbnotif=<n>``, Ngsiv2-AttrsFormat (``custom`` for payload/json),
  X-Auth-Token of the request, Content-Type, Accept and User-Agent.
"""

from __future__ import annotations

import itertools

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from ngsi import jexl, jsonout
from ngsi.model import infer_type
from ngsi.render import attr_value

from ..changes import Change
from .macros import (
    format_date,
    macro_context,
    md_out,
    notified_service,
    substitute,
    substitute_json,
)
from .matcher import ENTITY_DELETE

USER_AGENT = "orion/4.1.0"
JSON_TYPE = "application/json; charset=utf-8"
TEXT_TYPE = "text/plain; charset=utf-8"
FORMATS = ("normalized", "keyValues", "values", "simplifiedNormalized", "simplifiedKeyValues")
BUILTIN_ATTRS = ("dateCreated", "dateModified", "dateExpires", "alterationType", "servicePath")
# Builtins notified even with onlyChangedAttrs (orion-api.md, 'Builtin Attributes').
ALWAYS_NOTIFIED = ("alterationType", "dateCreated", "dateModified")
# Headers a custom notification cannot change (2937 nonmodifiable_headers).
PROTECTED_HEADERS = ("fiware-correlator", "ngsiv2-attrsformat", "content-length", "host")
BUILTIN_MD = ("dateCreated", "dateModified", "previousValue", "actionType")

Sub = dict[str, Any]
Attr = dict[str, Any]


@dataclass
class Notification:
    """One HTTP request to send."""

    sub_id: str
    tenant: str
    method: str
    url: str
    headers: list[tuple[str, str]]
    body: bytes
    timeout: float | None = None  # seconds; None: the broker's default
    custom: bool = False  # httpCustom: its URL, headers and body are the subscriber's words


# -- attributes and metadata ---------------------------------------------------------------


def _date_attr(seconds: float) -> Attr:
    return {"type": "DateTime", "value": seconds, "md": {}}


def notified_attrs(
    sub: Sub, change: Change, alteration: str, entity: dict[str, Any] | None = None
) -> list[tuple[str, Attr]]:
    """The (name, attribute) pairs the notification shows, before metadata filtering.

    ``entity`` is the entity to show when not the changed one (httpCustom.ngsi applied).
    """
    notification = sub.get("notification") or {}
    entity = change.entity if entity is None else entity
    attrs: dict[str, Attr] = entity["attrs"]
    listed = notification.get("attrs") or []
    excepted = notification.get("exceptAttrs")
    builtins: dict[str, Attr] = {
        "alterationType": {"type": "Text", "value": alteration, "md": {}},
        "servicePath": {"type": "Text", "value": entity.get("servicePath", "/"), "md": {}},
    }
    for name, key in (("dateCreated", "creDate"), ("dateModified", "modDate"), ("dateExpires", "expDate")):
        if entity.get(key) is not None:
            builtins[name] = _date_attr(entity[key])
    chosen: list[tuple[str, Attr]] = []
    if excepted:
        chosen = [(n, a) for n, a in attrs.items() if n not in excepted]
    elif not listed:
        chosen = list(attrs.items())
    else:
        seen: set[str] = set()
        for name in listed:
            if name == "*":
                for n, a in attrs.items():
                    if n not in seen and n not in listed:
                        chosen.append((n, a))
                        seen.add(n)
            elif name in attrs:
                if name not in seen:
                    chosen.append((name, attrs[name]))
                    seen.add(name)
            elif name in builtins:
                chosen.append((name, builtins[name]))
                seen.add(name)
            elif notification.get("covered"):
                chosen.append((name, {"type": "None", "value": None, "md": {}, "_covered": True}))
                seen.add(name)
    if notification.get("onlyChangedAttrs") and change.action == "update":
        touched = set(change.touched)
        chosen = [(n, a) for n, a in chosen if n in touched or n in ALWAYS_NOTIFIED and n not in attrs]
    return chosen


def notified_metadata(sub: Sub, change: Change, name: str, attr: Attr) -> dict[str, Any]:
    """The rendered metadata of one notified attribute, builtins included when listed."""
    wanted = (sub.get("notification") or {}).get("metadata") or None
    mds: dict[str, Any] = attr.get("md") or {}
    if wanted is None and not mds:
        return {}  # the common case: no metadata asked for, none held
    out: dict[str, Any] = {}
    if wanted is None or "*" in wanted:
        for md_name, md in mds.items():
            out[md_name] = md_out(md)
    else:
        for md_name in wanted:
            if md_name in mds:
                out[md_name] = md_out(mds[md_name])
    if wanted is None or attr.get("_covered"):
        return out
    if "dateCreated" in wanted and "dateCreated" not in mds and attr.get("creDate") is not None:
        out["dateCreated"] = {"type": "DateTime", "value": format_date(attr["creDate"])}
    if "dateModified" in wanted and "dateModified" not in mds and attr.get("modDate") is not None:
        out["dateModified"] = {"type": "DateTime", "value": format_date(attr["modDate"])}
    if "previousValue" in wanted and change.action == "update" and change.before is not None:
        previous = change.before["attrs"].get(name)
        if previous is not None:
            out["previousValue"] = {"type": previous["type"], "value": attr_value(previous)}
    if "actionType" in wanted:
        if change.action == ENTITY_DELETE or change.action == "delete":
            out["actionType"] = {"type": "Text", "value": "delete"}
        elif name in change.touched:
            existed = change.before is not None and name in change.before["attrs"]
            out["actionType"] = {"type": "Text", "value": "update" if existed else "append"}
    return out


def _render_value(attr: Attr) -> Any:
    return attr_value(attr)


def render_notified_entity(
    entity_id: str, entity_type: str, attrs: list[tuple[str, Attr]], mds: list[dict[str, Any]], fmt: str
) -> Any:
    if fmt == "values":
        return [_render_value(a) for _, a in attrs]
    out: dict[str, Any] = {"id": entity_id, "type": entity_type}
    if fmt in ("keyValues", "simplifiedKeyValues"):
        for name, attr in attrs:
            out[name] = _render_value(attr)
    else:
        for (name, attr), md in zip(attrs, mds):
            out[name] = {"type": attr["type"], "value": _render_value(attr), "metadata": md}
    return out


def wrap(sub_id: str, rendered: Any, fmt: str) -> Any:
    if fmt in ("simplifiedNormalized", "simplifiedKeyValues"):
        return rendered
    return {"subscriptionId": sub_id, "data": [rendered]}


# -- macros ----------------------------------------------------------------------------------

def _ngsi_text(template: str, original: str, context: dict[str, Any]) -> str:
    """id/type of httpCustom.ngsi: a whole macro that gives nothing keeps the original (4085)."""
    expr = jexl.full_macro(template)
    if expr is not None:
        value = jexl.evaluate(expr, context)
        return original if value is None or value == "" else jexl.render_text(value)
    return substitute(template, context, "null")


def _priority(body: Any) -> float:
    md = body.get("metadata") if isinstance(body, dict) else None
    value = (md or {}).get("evalPriority", {}).get("value") if isinstance(md, dict) else None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return float("inf")  # no evalPriority: evaluated last (4556)


def apply_ngsi(ngsi: dict[str, Any], entity: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    """httpCustom.ngsi on a copy of the notified entity: id/type replaced, attributes replaced
    or added. Attributes are evaluated by ``evalPriority`` (lowest first, those without it
    last; 4556, 4689), each level's results joining the context of the next levels only:
    "expressions in the same priority level must be considered independent" (orion-api.md,
    'Evaluation priority'), and the manual's 'JEXL usage example' evaluates ``count`` from the
    notified ``speed``, not from the ``speed`` its own template computes beside it."""
    patched = dict(entity)
    patched["attrs"] = dict(entity["attrs"])
    context = dict(context)
    named = [(n, b) for n, b in ngsi.items() if n not in ("id", "type") and isinstance(b, dict)]
    for _, level in itertools.groupby(sorted(named, key=lambda item: _priority(item[1])),
                                      key=lambda item: _priority(item[1])):
        results: dict[str, Any] = {}
        for name, body in level:
            value = substitute_json(body.get("value"), context)
            attr_type = body.get("type")
            if attr_type is None:  # no macros in an attribute type ('NGSI payload patching')
                attr_type = infer_type(value)
            new_md = {}
            for md_name, md_body in (body.get("metadata") or {}).items():
                if isinstance(md_body, dict):
                    md_value = substitute_json(md_body.get("value"), context)
                    new_md[md_name] = {"type": md_body.get("type") or infer_type(md_value), "value": md_value}
            patched["attrs"][name] = {"type": attr_type, "value": value, "md": new_md}
            results[name] = value
        context.update(results)
    if isinstance(ngsi.get("id"), str):
        patched["id"] = _ngsi_text(ngsi["id"], entity["id"], context)
    if isinstance(ngsi.get("type"), str):
        patched["type"] = _ngsi_text(ngsi["type"], entity["type"], context)
    return patched


# -- the whole notification ---------------------------------------------------------------------


def _qs_join(url: str, params: list[tuple[str, str]]) -> str:
    if not params:
        return url
    query = "&".join(f"{k}={v}" for k, v in params)
    return url + ("&" if "?" in url else "?") + query


def prepare(
    sub: Sub, change: Change, alteration: str, custom: dict[str, Any] | None
) -> tuple[str, dict[str, Any], dict[str, Any], list[tuple[str, Any]]] | None:
    """What every notification channel (HTTP, MQTT) starts from: the attrsFormat, the entity
    (patched by a custom ``ngsi``), the macro context and the attributes to notify; None when
    ``onlyChangedAttrs`` leaves nothing to notify (Orion then sends nothing, 3190)."""
    notification = sub.get("notification") or {}
    fmt = notification.get("attrsFormat") or "normalized"
    if fmt not in FORMATS:
        fmt = "normalized"
    entity = change.entity
    context: dict[str, Any] = {}
    if custom is not None:
        context = macro_context(change)
        if isinstance(custom.get("ngsi"), dict) and "payload" not in custom and custom.get("json") is None:
            entity = apply_ngsi(custom["ngsi"], entity, context)
    attrs = notified_attrs(sub, change, alteration, entity)
    if not attrs and notification.get("onlyChangedAttrs") and change.action == "update":
        return None
    return fmt, entity, context, attrs


def build(sub: Sub, change: Change, alteration: str, cbnotif: int) -> Notification | None:
    """The request for one (subscription, change) pair; None for a subscription without HTTP target."""
    notification = sub.get("notification") or {}
    http = notification.get("http")
    custom = notification.get("httpCustom")
    if http is None and custom is None:
        return None  # MQTT is not supported by this broker
    prepared = prepare(sub, change, alteration, custom)
    if prepared is None:
        return None
    fmt, entity, context, attrs = prepared
    content_type = JSON_TYPE
    attrs_format = fmt
    body: bytes
    if custom is not None and "payload" in custom and custom.get("json") is None:
        payload = custom["payload"]
        text = substitute(unquote(payload), context, "null") if isinstance(payload, str) else ""
        body = text.encode("utf-8")
        content_type = TEXT_TYPE if body else ""
        attrs_format = "custom"
    elif custom is not None and custom.get("json") is not None:
        body = jsonout.dumps(substitute_json(custom["json"], context))
        attrs_format = "custom"
    else:
        mds = [notified_metadata(sub, change, name, attr) for name, attr in attrs]
        rendered = render_notified_entity(entity["id"], entity["type"], attrs, mds, fmt)
        body = jsonout.dumps(wrap(sub["id"], rendered, fmt))
    target = custom if custom is not None else http
    url = target.get("url", "")
    method = "POST"
    qs: list[tuple[str, str]] = []
    custom_headers: list[tuple[str, str]] = []
    if custom is not None:
        url = substitute(url, context, "")
        method = (custom.get("method") or "POST").upper()
        for key in sorted((custom.get("qs") or {})):
            value = unquote(substitute(str(custom["qs"][key]), context, ""))
            if value != "":
                qs.append((substitute(key, context, ""), value))
        for key, raw in (custom.get("headers") or {}).items():
            name = substitute(key, context, "")
            if name:
                custom_headers.append((name, unquote(substitute(str(raw), context, ""))))
    url = _qs_join(url, qs)
    headers: list[tuple[str, str]] = []
    ctx = change.ctx
    service = notified_service(change)
    if service:
        headers.append(("Fiware-Service", service))
    headers.append(("Fiware-Servicepath", entity.get("servicePath", "/")))
    if ctx.auth_token:
        headers.append(("X-Auth-Token", ctx.auth_token))
    if content_type:
        headers.append(("Content-Type", content_type))
    headers.append(("Accept", "application/json"))
    headers.append(("User-Agent", USER_AGENT))
    headers.append(("Ngsiv2-AttrsFormat", attrs_format))
    headers.append(("Fiware-Correlator", f"{ctx.correlator}; cbnotif={cbnotif}"))
    for key, value in custom_headers:
        lower = key.lower()
        if lower in PROTECTED_HEADERS:
            continue
        headers = [(k, v) for k, v in headers if k.lower() != lower]
        if value != "":
            headers.append((key, value))
    timeout = target.get("timeout", notification.get("timeout"))
    return Notification(
        sub_id=sub["id"],
        tenant=change.tenant,
        method=method,
        url=url,
        headers=headers,
        body=body,
        timeout=timeout / 1000.0 if isinstance(timeout, (int, float)) and timeout > 0 else None,
        custom=custom is not None,
    )
