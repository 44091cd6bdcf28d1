"""/v2/types and /v2/types/{type}: entity types with their attributes' types and counts."""

from __future__ import annotations

from typing import Any

from ngsi.errors import BadRequest, NotFound

from .. import listing
from ..http import Call, Reply, Resource, json_response
from ..store import Selector
from .params import check_params


def _summaries(entities: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """type -> {"attrs": {name: {"types": [...]}}, "count": n}, attributes and types in first-seen order."""
    summary: dict[str, dict[str, Any]] = {}
    for entity in entities:
        item = summary.setdefault(entity["type"], {"attrs": {}, "count": 0})
        item["count"] += 1
        for name, attr in entity["attrs"].items():
            types = item["attrs"].setdefault(name, {"types": []})["types"]
            if attr["type"] not in types:
                types.append(attr["type"])
    return summary


def _sorted_attrs(attrs: dict[str, Any], no_detail: bool) -> dict[str, Any]:
    """Attributes by name; with noAttrDetail Orion still writes ``"types": []``."""
    return {name: {"types": [] if no_detail else sorted(attrs[name]["types"])} for name in sorted(attrs)}


async def list_types(call: Call) -> Reply:
    check_params(call)
    limit = listing.parse_limit(call.query.get("limit"))
    offset = listing.parse_offset(call.query.get("offset"))
    entities = await call.state.entities.find(call.ctx, Selector(service_paths=call.scopes()))
    summary = _summaries(entities)
    names = sorted(summary)
    page = names[offset : offset + limit]
    headers = {"Fiware-Total-Count": str(len(names))} if "count" in call.options else None
    if "values" in call.options:
        return json_response(page, headers=headers)
    no_detail = "noAttrDetail" in call.options
    body = [
        {"type": name, "attrs": _sorted_attrs(summary[name]["attrs"], no_detail), "count": summary[name]["count"]}
        for name in page
    ]
    return json_response(body, headers=headers)


async def get_type(call: Call) -> Reply:
    check_params(call)
    name = call.path_params["type"]
    if name == "":
        raise BadRequest("entity type length: 0, min length supported: 1")
    entities = await call.state.entities.find(call.ctx, Selector(types=(name,), service_paths=call.scopes()))
    if not entities:
        raise NotFound("Entity type not found")
    item = _summaries(entities)[name]
    no_detail = "noAttrDetail" in call.options
    return json_response({"attrs": _sorted_attrs(item["attrs"], no_detail), "count": item["count"]})


TYPES = Resource("GET", GET=list_types)
TYPE = Resource("GET", GET=get_type)
