"""A rule's actions rendered for one firing: plain dicts the service executes.

The shapes (all JSON; ``service``/``servicePath`` are the Fiware headers to use)::

    {"type": "update", "service", "servicePath", "actionType": "append"|"update"|"delete",
     "entity": {"id", "type"},            # or "filter": {"type", "id", "idPattern", "q"}
     "attributes": {name: {"type"?, "value"}}}
    {"type": "post", "method", "url", "headers": {}, "qs": {}, "body": str} # or "json": value
    {"type": "command", "service", "servicePath", "entity": {"id", "type"}, "command", "value"}
    {"type": "email", "to": [addresses], "from": str | None, "subject": str, "body": str}

``update`` follows Perseo's NGSI-v2 update action (plain_rules.md, "update attribute
action"): ``id``/``type`` default to the firing entity's, values are substituted then
cast by attribute type (``Number``, ``Text``, ``DateTime``, ``None``; other types get
the number/boolean/null cast of any string). ``post`` follows "HTTP request action";
a ``template`` under a JSON Content-Type is rendered JSON-safe. ``email`` follows
"email action" (``to`` split on ``;`` and ``,``). ``command`` is ours: the update the IoT
agent turns into a device command (docs/iot_agent.md, "Commands").
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ngsi.dates import format_datetime, parse_datetime

from .model import Action
from .templates import (
    Vars,
    cast_text,
    render_json_text,
    render_text,
    render_value,
    to_text,
)
from .windows import numeric


def _date_text(value: Any) -> Any:
    """Perseo's DateTime values: epoch milliseconds (number or numeric text) or ISO 8601 text."""
    if isinstance(value, str):
        cast = cast_text(value)
        if isinstance(cast, str):
            seconds = parse_datetime(value.strip())
            return value if seconds is None else format_datetime(seconds)
        value = cast
    millis = numeric(value)
    if millis is not None and abs(millis) < 1e14:  # beyond year 5000 is no date
        return format_datetime(millis / 1000.0)
    return value


def cast_update_value(attr_type: str | None, value: Any) -> Any:
    """An update value after substitution, cast for its attribute type."""
    if attr_type == "None":
        return None
    if attr_type == "Text":
        return to_text(value)
    if attr_type == "DateTime":
        return _date_text(value)
    if isinstance(value, str):
        return cast_text(value)
    return value


def _update(action: Action, v: Vars) -> dict[str, Any]:
    p = action.parameters
    out: dict[str, Any] = {"type": "update", "actionType": str(p.get("actionType", "append")).lower()}
    if "filter" in p:
        out["filter"] = {k: render_text(f, v) for k, f in p["filter"].items()}
    else:
        out["entity"] = {"id": render_text(p.get("id", "${id}"), v), "type": render_text(p.get("type", "${type}"), v)}
    attributes: dict[str, dict[str, Any]] = {}
    for attr in p["attributes"]:
        body: dict[str, Any] = {}
        if "type" in attr:
            body["type"] = attr["type"]
        body["value"] = cast_update_value(attr.get("type"), render_value(attr.get("value"), v))
        attributes[render_text(attr["name"], v)] = body
    out["attributes"] = attributes
    return out


def _json_content(headers: Mapping[str, str]) -> bool:
    return any(k.lower() == "content-type" and "json" in value.lower() for k, value in headers.items())


def _post(action: Action, v: Vars) -> dict[str, Any]:
    p = action.parameters
    headers = {render_text(k, v): render_text(h, v) for k, h in p.get("headers", {}).items()}
    out: dict[str, Any] = {
        "type": "post",
        "method": p.get("method", "POST"),
        "url": render_text(p["url"], v),
        "headers": headers,
        "qs": {render_text(k, v): render_text(q, v) for k, q in p.get("qs", {}).items()},
    }
    if "json" in p:  # Perseo: "If present, it overrides template"
        out["json"] = render_value(p["json"], v)
        if not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = "application/json"
    else:
        template = action.template or ""
        out["body"] = render_json_text(template, v) if _json_content(headers) else render_text(template, v)
        if not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = "text/plain; charset=utf-8"
    return out


def _command(action: Action, v: Vars) -> dict[str, Any]:
    p = action.parameters
    return {
        "type": "command",
        "entity": {"id": render_text(p.get("id", "${id}"), v), "type": render_text(p.get("type", "${type}"), v)},
        "command": p["command"],
        "value": render_value(p.get("value", ""), v),
    }


def _email(action: Action, v: Vars) -> dict[str, Any]:
    p = action.parameters
    return {
        "type": "email",
        "to": [a.strip() for a in re.split(r"[;,]", render_text(p["to"], v)) if a.strip()],
        "from": render_text(p["from"], v) if "from" in p else None,
        "subject": render_text(p.get("subject", ""), v),
        "body": render_text(action.template or "", v),
    }


_RENDERERS = {"update": _update, "post": _post, "command": _command, "email": _email}


def render_action(action: Action, variables: Vars, service: str, service_path: str) -> dict[str, Any]:
    """The action for one firing; NGSI actions (update, command) carry the tenant and the
    service path of the firing entity."""
    out = _RENDERERS[action.type](action, variables)
    if action.type in ("update", "command"):
        out["service"] = service
        out["servicePath"] = service_path
    return out
