"""/v2/entities and its sub-resources: attrs, attrs/{name}, attrs/{name}/value."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from ngsi.errors import ATTRIBUTE_NOT_FOUND, ENTITY_NOT_FOUND, BadRequest, NotAcceptable, NotFound
from ngsi.geo import parse_geo_query
from ngsi.model import DATE_TYPES, duplicate_keys, infer_type, parse_attr, parse_attrs, parse_entity
from ngsi.names import check_pattern, check_text_value
from ngsi.numbers import parse_number
from ngsi.query import parse_mq, parse_q
from ngsi.render import Projection, attr_value, render_attr, render_entities, render_entity, render_entity_attrs
from ngsi.render import selected_attrs

from .. import jsonio, listing
from ..entities import APPEND, APPEND_STRICT, REPLACE, UPDATE, Outcome
from ..http import Call, Reply, Resource, check_accept, created, json_response, no_content, text_response
from ..store import Selector
from .params import check_params, check_path, projection, render_mode, split, type_param


def location(entity: dict[str, Any]) -> str:
    """Orion writes the id and type into Location as they are, without percent-encoding."""
    return f"/v2/entities/{entity['id']}?type={entity['type']}"


# orion-api.md, "General syntax restrictions": of the geo-query parameters, ``georel`` and
# ``coords`` may hold ``;``; ``geometry`` no forbidden character. Orion lets ``=`` through in
# the first two as well: its case 2174 sends ``georel=near;maxDistance=1000`` and gets the
# georel parser's "Invalid modifier in georel parameter", not a character error.
_GEO_PARAM_FORBIDDEN = {"georel": re.compile(r"""[<>"'()]"""), "coords": re.compile(r"""[<>"'()]"""),
                        "geometry": re.compile(r"""[<>"'=;()]""")}


def _check_geo_params(call: Call) -> None:
    """The forbidden-character rule for the geo parameters (``check_params`` leaves them free)."""
    for name, forbidden in _GEO_PARAM_FORBIDDEN.items():
        for value in call.query.getlist(name):
            if forbidden.search(value):
                raise BadRequest("invalid character in URI parameter")


def build_query(call: Call) -> listing.EntityQuery:
    _check_geo_params(call)
    q = call.query
    ids, id_pattern = split(q.get("id")), q.get("idPattern")
    types, type_pattern = split(q.get("type")), q.get("typePattern")
    if ids is not None and id_pattern is not None:
        raise BadRequest("Incompatible parameters: id, IdPattern")
    if types is not None and type_pattern is not None:
        raise BadRequest("Incompatible parameters: type, typePattern")
    if id_pattern == ".*":
        id_pattern = None
    filters: list[Any] = []
    if q.get("q") is not None:
        filters.append(parse_q(q["q"]))
    if q.get("mq") is not None:
        filters.append(parse_mq(q["mq"]))
    geo = None
    if any(q.get(k) is not None for k in ("georel", "geometry", "coords")):
        geo = parse_geo_query(q.get("georel"), q.get("geometry"), q.get("coords"))
    check_pattern(id_pattern, "entity idPattern")
    check_pattern(type_pattern, "entity typePattern")
    selector = Selector(ids=ids, id_pattern=id_pattern, types=types, type_pattern=type_pattern, service_paths=call.scopes())
    return listing.EntityQuery(
        selectors=[selector],
        filters=filters,
        geo=geo,
        order=listing.parse_order(q.get("orderBy")),
        limit=listing.parse_limit(q.get("limit")),
        offset=listing.parse_offset(q.get("offset")),
        projection=projection(call),
    )


async def list_entities(call: Call) -> Reply:
    check_params(call)
    query = build_query(call)
    count = "count" in call.options
    entities, total = await listing.run(call.state.entities, call.ctx, query, count=count)
    entities, total = await call.state.forwarder.query(call.ctx, query, entities, total)
    body = render_entities(entities, render_mode(call.options), query.projection)
    headers = {"Fiware-Total-Count": str(total)} if count else None
    return json_response(body, headers=headers)


async def create_entity(call: Call) -> Reply:
    check_params(call)
    path = call.write_path()
    payload = call.json()
    parsed = parse_entity(payload, key_values="keyValues" in call.options, dups=duplicate_keys(call.body, payload))
    upsert = "upsert" in call.options
    entity, is_new = await call.state.entities.create(call.ctx, path, parsed, upsert=upsert)
    if upsert:  # Orion answers an upsert 204 with Location, created or not
        return no_content({"Location": location(entity).encode("utf-8").decode("latin-1")})
    if is_new:
        return created(location(entity))
    return no_content()


async def _read_entity(call: Call, render: Callable[[dict[str, Any], str, Projection], Any]) -> Reply:
    """GET of one entity, whole or its attributes only: the same lookup (local, else a
    context provider), the same projection and options; only the rendering differs."""
    check_params(call)
    check_path(call, "id")
    shown = projection(call)
    entity = await call.state.forwarder.find_one(call.ctx, call.path_params["id"], type_param(call), shown.attrs)
    return json_response(render(entity, render_mode(call.options), shown))


async def get_entity(call: Call) -> Reply:
    return await _read_entity(call, render_entity)


async def delete_entity(call: Call) -> Reply:
    check_params(call)
    check_path(call, "id")
    await call.state.entities.delete(call.ctx, call.ctx.write_scopes("delete"), call.path_params["id"], type_param(call))
    return no_content()


async def get_attrs(call: Call) -> Reply:
    return await _read_entity(call, render_entity_attrs)


async def _write_attrs(call: Call, action: str) -> Reply:
    check_params(call)
    check_path(call, "id")
    scopes = call.ctx.write_scopes("patch")
    payload = call.json()
    attrs = parse_attrs(payload, key_values="keyValues" in call.options, dups=duplicate_keys(call.body, payload))
    entity_type = type_param(call)
    service = call.state.entities
    outcome = Outcome("already exist" if action == APPEND_STRICT else "do not exist")
    parsed = {"id": call.path_params["id"], "type": entity_type, "attrs": attrs}
    # Registered attributes go to their context provider (broker/registrations/forward.py).
    local = await call.state.forwarder.update(
        call.ctx, scopes, parsed, action, outcome, label_type=entity_type is not None, single=True
    )
    if local is not None:
        reported = len(outcome.failures)
        await service.write(
            call.ctx,
            scopes,
            local,
            action,
            label_type=entity_type is not None,
            override_md="overrideMetadata" in call.options,
            outcome=outcome,
        )
        if any(attrs is None for _, attrs in outcome.failures[reported:]):
            # A missing entity is a plain 404 here, not a partial-update report.
            raise NotFound(ENTITY_NOT_FOUND)
    outcome.raise_if_failed()
    return no_content()


async def post_attrs(call: Call) -> Reply:
    return await _write_attrs(call, APPEND_STRICT if "append" in call.options else APPEND)


async def patch_attrs(call: Call) -> Reply:
    return await _write_attrs(call, UPDATE)


async def put_attrs(call: Call) -> Reply:
    return await _write_attrs(call, REPLACE)


async def get_attr(call: Call) -> Reply:
    check_params(call)
    check_path(call, "id", "name")
    name = call.path_params["name"]
    entity = await call.state.forwarder.find_one(call.ctx, call.path_params["id"], type_param(call), (name,))
    shown = dict(selected_attrs(entity, Projection(attrs=(name,))))
    if name not in shown:
        raise NotFound(ATTRIBUTE_NOT_FOUND)
    return json_response(render_attr(shown[name], Projection(metadata=split(call.query.get("metadata")))))


async def put_attr(call: Call) -> Reply:
    check_params(call)
    check_path(call, "id")  # the name is checked as the payload's attribute name
    name = call.path_params["name"]
    attr = parse_attr(name, call.json())
    scopes = call.ctx.write_scopes("patch")
    if await call.state.forwarder.update_attr(call.ctx, scopes, call.path_params["id"], type_param(call), name, attr):
        return no_content()
    await call.state.entities.put_attr(
        call.ctx, call.ctx.write_scopes("patch"), call.path_params["id"], type_param(call), name, attr,
        override_md="overrideMetadata" in call.options,
    )
    return no_content()


async def delete_attr(call: Call) -> Reply:
    check_params(call)
    check_path(call, "id", "name")
    await call.state.entities.delete_attr(
        call.ctx, call.ctx.write_scopes("delete"), call.path_params["id"], type_param(call), call.path_params["name"]
    )
    return no_content()


_JSON_RANGES = ("application/json", "application/*")
_TEXT_RANGES = ("text/plain", "text/*")


def _value_media(accept: str | None, compound: bool) -> str:
    """The media type of an attribute value, by orion-api.md "Get Attribute Value": an
    object or array goes out as JSON or as text, whichever the Accept header names first
    (JSON for ``*/*``, ``q`` weights ignored); any other value only as text. No Accept header
    (or an empty one) accepts everything. Raises 406 with the manual's texts."""
    ranges = [part.split(";", 1)[0].strip().lower() for part in (accept or "*/*").split(",")]
    for media in ranges:
        if media == "*/*":
            return "application/json" if compound else "text/plain"
        if media in _TEXT_RANGES:
            return "text/plain"
        if compound and media in _JSON_RANGES:
            return "application/json"
    if compound:
        raise NotAcceptable("accepted MIME types: application/json, text/plain")
    raise NotAcceptable("accepted MIME types: text/plain")


async def get_attr_value(call: Call) -> Reply:
    check_params(call)
    check_path(call, "id", "name")
    entity = await call.state.forwarder.find_one(call.ctx, call.path_params["id"], type_param(call), (call.path_params["name"],))
    attr = entity["attrs"].get(call.path_params["name"])
    if attr is None:
        raise NotFound(ATTRIBUTE_NOT_FOUND)
    value = attr_value(attr)
    compound = isinstance(value, (dict, list))
    media = _value_media(call.headers.get("accept"), compound)
    if media == "application/json":
        return json_response(value)
    if attr["type"] in DATE_TYPES and isinstance(attr["value"], (int, float)) and isinstance(value, str):
        return text_response(value.encode())  # a date shows bare, without the quotes of a string
    return text_response(jsonio.dumps(value))


def _text_value(text: str) -> Any:
    """A text/plain value: numbers, true/false/null, or a quoted string."""
    stripped = text.strip()
    if stripped in ("true", "false", "null"):
        return {"true": True, "false": False, "null": None}[stripped]
    if stripped.startswith('"'):
        if len(stripped) < 2 or not stripped.endswith('"'):
            raise BadRequest("Missing citation-mark at end of string")
        return stripped[1:-1]
    # An ASCII decimal number only: float() would take "inf", "nan", "1_0" and "٣", and an
    # int of 400 digits would be stored, then fail every later read of the entity.
    number = parse_number(stripped)
    if number is None:
        raise BadRequest("attribute value type not recognized")
    return number


async def put_attr_value(call: Call) -> Reply:
    check_accept(call.headers.get("accept"), value=True)
    check_params(call)
    check_path(call, "id", "name")
    content_type = call.content_type()
    if content_type == "text/plain":
        value = _text_value(call.body.decode("utf-8", "replace"))
    else:
        value = call.json()
        if not isinstance(value, (dict, list)):
            raise BadRequest("Neither JSON Object nor JSON Array for attribute::value")
    check_text_value(value)  # before the entity is looked up, as Orion checks the payload first
    if await call.state.forwarder.update_attr(
        call.ctx, call.ctx.write_scopes("patch"), call.path_params["id"], type_param(call), call.path_params["name"],
        {"type": infer_type(value), "value": value, "md": {}},
    ):
        return no_content()
    await call.state.entities.update_attr_value(
        call.ctx, call.ctx.write_scopes("patch"), call.path_params["id"], type_param(call), call.path_params["name"], value
    )
    return no_content()


ENTITIES = Resource("POST, GET", GET=list_entities, POST=create_entity)
ENTITY = Resource("GET, DELETE", GET=get_entity, DELETE=delete_entity)
ATTRS = Resource("GET, PATCH, POST, PUT", GET=get_attrs, POST=post_attrs, PATCH=patch_attrs, PUT=put_attrs)
ATTR = Resource("GET, PUT, DELETE", GET=get_attr, PUT=put_attr, DELETE=delete_attr)
# The one resource that may answer text/plain: its handlers apply the Accept rules.
ATTR_VALUE = Resource("GET, PUT", negotiates=True, GET=get_attr_value, PUT=put_attr_value)
