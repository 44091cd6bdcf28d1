"""NGSIv1 forwarding bodies, for registrations with ``legacyForwarding: true``.

orion-api.md, "Registration Operations": such a registration is forwarded to with
NGSIv1's ``POST <url>/queryContext`` and ``POST <url>/updateContext`` instead of NGSIv2's
``/op/query`` and ``/op/update``, for context providers never migrated to NGSIv2. Pure
code: the forwarder sends what these functions build and hands them what came back.

NGSIv1 shapes (Orion 1.x)::

    queryContext   {"entities": [{"id", "type"?, "isPattern": "false"|"true"}], "attributes"?: [names]}
                   -> {"contextResponses": [{"contextElement": {"id", "type", "isPattern",
                          "attributes": [{"name", "type", "value", "metadatas"?: [{"name", "type", "value"}]}]},
                        "statusCode": {"code": "200", "reasonPhrase": "OK"}}]}
                   or {"errorCode": {"code": "404", "reasonPhrase": "No context element found"}}
    updateContext  {"contextElements": [{"id", "type"?, "isPattern": "false", "attributes": [...]}],
                    "updateAction": "UPDATE" | "REPLACE" | "DELETE"}
                   -> the same ``contextResponses``, one statusCode per element
"""

from __future__ import annotations

from typing import Any

from ngsi.render import attr_value, render_metadata

QUERY_OP = "/queryContext"
UPDATE_OP = "/updateContext"
_ACTIONS = {"update": "UPDATE", "replace": "REPLACE", "delete": "DELETE"}


def _entity_id(spec: dict[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    if "type" in spec:
        out["type"] = spec["type"]
    if "idPattern" in spec:
        out["isPattern"], out["id"] = "true", spec["idPattern"]
    else:
        out["isPattern"], out["id"] = "false", spec["id"]
    return out


def query_body(entities: list[dict[str, str]], attrs: list[str] | None) -> dict[str, Any]:
    """The queryContext request for NGSIv2 entity specs ({"id"|"idPattern", "type"?})."""
    body: dict[str, Any] = {"entities": [_entity_id(e) for e in entities]}
    if attrs is not None:
        body["attributes"] = list(attrs)
    return body


def _attribute(name: str, attr: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "type": attr["type"], "value": attr_value(attr)}
    metadatas = [{"name": md_name, **md} for md_name, md in render_metadata(attr, None).items()]
    if metadatas:
        out["metadatas"] = metadatas
    return out


def update_body(entity_id: str, entity_type: str | None, attrs: dict[str, Any], action: str) -> dict[str, Any]:
    """The updateContext request for one entity's attributes (the model's attribute dicts)."""
    element: dict[str, Any] = {"id": entity_id, "isPattern": "false"}
    if entity_type:
        element["type"] = entity_type
    element["attributes"] = [_attribute(name, attr) for name, attr in attrs.items()]
    return {"contextElements": [element], "updateAction": _ACTIONS.get(action, "UPDATE")}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _ok(status: Any) -> bool:
    return isinstance(status, dict) and str(status.get("code")) == "200"


def query_entities(answer: Any) -> list[dict[str, Any]]:
    """The NGSIv2 entities (``{"id", "type", attr: {"type", "value", "metadata"}}``) of a
    queryContext answer; an error answer, or a malformed one, has none."""
    if not isinstance(answer, dict) or not isinstance(answer.get("contextResponses"), list):
        return []
    found: list[dict[str, Any]] = []
    for item in answer["contextResponses"]:
        if not isinstance(item, dict) or not _ok(item.get("statusCode")):
            continue
        element = item.get("contextElement")
        if not isinstance(element, dict) or not isinstance(element.get("id"), str):
            continue
        entity: dict[str, Any] = {"id": element["id"]}
        if isinstance(element.get("type"), str) and element["type"]:
            entity["type"] = element["type"]
        for attribute in _list(element.get("attributes")):
            if not isinstance(attribute, dict) or not isinstance(attribute.get("name"), str):
                continue
            attr: dict[str, Any] = {"value": attribute.get("value")}
            if isinstance(attribute.get("type"), str) and attribute["type"]:
                attr["type"] = attribute["type"]
            metadata = {
                md["name"]: {k: md[k] for k in ("type", "value") if k in md}
                for md in _list(attribute.get("metadatas"))
                if isinstance(md, dict) and isinstance(md.get("name"), str)
            }
            if metadata:
                attr["metadata"] = metadata
            entity[attribute["name"]] = attr
        found.append(entity)
    return found


def update_succeeded(answer: Any) -> bool:
    """Did an updateContext answer (already a 2xx) accept the update? An ``errorCode`` or
    no context response with code 200 means it did not."""
    if answer is None:
        return True  # an empty 2xx: nothing says it failed
    if not isinstance(answer, dict):
        return False
    if "errorCode" in answer and not _ok(answer["errorCode"]):
        return False
    responses = answer.get("contextResponses")
    if isinstance(responses, list):
        return any(isinstance(r, dict) and _ok(r.get("statusCode")) for r in responses)
    return "errorCode" not in answer


__all__ = ["QUERY_OP", "UPDATE_OP", "query_body", "query_entities", "update_body", "update_succeeded"]
