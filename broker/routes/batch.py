"""/v2/op/update and /v2/op/query: Orion's batch operations.

Both read their payload the way Orion does: members in payload order, each checked as it
comes (so the first faulty member names the error), unknown members refused, and the
whole payload parsed before anything is written or read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ngsi.errors import BadRequest, NGSIError
from ngsi.geo import parse_geo_query
from ngsi.model import duplicate_keys, parse_entity
from ngsi.names import check_identifier, check_pattern
from ngsi.query import parse_mq, parse_q
from ngsi.render import Projection, render_entities

from .. import listing
from ..jsonio import member
from ..entities import ACTIONS, APPEND, APPEND_STRICT, DELETE, REPLACE, UPDATE, Outcome
from ..http import Call, Reply, Resource, json_response, no_content
from ..store import Selector
from .params import check_params, render_mode

_ACTION_ERROR = "invalid update action type: right ones are: append, appendStric, delete, replace, update"
# NGSIv1's action types, deprecated since Orion 1.14.0 but still accepted (deprecated.md; orion-api.md,
# "Deprecated features"): each is its lower-case counterpart. Orion's error text above does not list them.
_LEGACY_ACTIONS = {
    "APPEND": APPEND, "APPEND_STRICT": APPEND_STRICT, "UPDATE": UPDATE, "DELETE": DELETE, "REPLACE": REPLACE,
}


def _action(raw: Any) -> str | None:
    """The update action ``actionType`` names, None when it names none."""
    if not isinstance(raw, str):
        return None
    return raw if raw in ACTIONS else _LEGACY_ACTIONS.get(raw)


def _not_implemented() -> NGSIError:
    """Orion answers batch updates by idPattern with a plain 501."""
    return NGSIError("NotImplemented", error="NotImplemented", status=501)


def _check_object(payload: Any) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise BadRequest("not a JSON object")
    if not payload:
        raise BadRequest("empty payload")
    return payload


def _unrecognized(name: str) -> BadRequest:
    return BadRequest(f"Unrecognized field in JSON payload: /{name}/")


async def op_update(call: Call) -> Reply:
    check_params(call)
    payload = _check_object(call.json())
    if "entities" not in payload:
        raise BadRequest("Invalid JSON payload, mandatory field /entities/ not found")
    if "actionType" not in payload:
        raise BadRequest("Invalid JSON payload, mandatory field /actionType/ not found")
    action = _action(payload["actionType"])
    key_values = "keyValues" in call.options
    parsed: list[dict[str, Any]] = []
    for name, value in payload.items():
        if name == "actionType":
            if action is None:
                raise BadRequest(_ACTION_ERROR)
        elif name == "entities":
            if not isinstance(value, list):
                raise BadRequest("not a JSON array")
            dups = duplicate_keys(call.body, payload)
            entities_dups = dups.get("entities") if isinstance(dups, dict) else None
            for i, item in enumerate(value):
                item_dups = entities_dups[i] if isinstance(entities_dups, list) and i < len(entities_dups) else None
                parsed.append(
                    parse_entity(
                        item, key_values=key_values, batch=True,
                        id_pattern=action not in (APPEND, APPEND_STRICT), dups=item_dups,
                    )
                )
        else:
            raise _unrecognized(name)
    if not parsed:
        raise BadRequest("empty entities vector")
    if any(entity.get("idPattern") is not None and not entity.get("id") for entity in parsed):
        raise _not_implemented()
    assert action is not None
    service = call.state.entities
    if action in (APPEND, APPEND_STRICT):
        path: str | None = call.write_path()
        scopes: tuple[tuple[str, bool], ...] = ((path, False),)  # type: ignore[assignment]
    else:
        path = None
        scopes = call.scopes()
    outcome = Outcome("already exist" if action == APPEND_STRICT else "do not exist")
    override_md = "overrideMetadata" in call.options
    if not call.state.forwarder.may_forward(call.ctx, action):
        await service.write_many(call.ctx, scopes, parsed, action, outcome, override_md=override_md, create_path=path)
        outcome.raise_if_failed()
        return no_content()
    for entity in parsed:
        # Registered attributes go to their context provider (broker/registrations/forward.py).
        entity = await call.state.forwarder.update(
            call.ctx, scopes, entity, action, outcome, label_type=bool(entity.get("type"))
        )
        if entity is None:
            continue
        await service.write(
            call.ctx, scopes, entity, action,
            label_type=bool(entity.get("type")),
            override_md=override_md,
            outcome=outcome,
            create_path=path,
        )
    outcome.raise_if_failed()
    return no_content()


def _string_list(value: Any, field: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise BadRequest(f"the field /{field}/ must be a JSON array")
    for item in value:
        if not isinstance(item, str):
            raise BadRequest(f"only JSON Strings allowed in {field} list")
    return tuple(value)


@dataclass(frozen=True)
class HasAnyAttr:
    """The legacy ``attributes`` field of /v2/op/query also selects: entities with one of them."""

    names: tuple[str, ...]

    def matches(self, entity: dict[str, Any]) -> bool:
        return any(name in entity["attrs"] for name in self.names)


def _query_selector(item: Any, scopes: tuple[tuple[str, bool], ...]) -> Selector:
    if not isinstance(item, dict):
        raise BadRequest("not a JSON object")
    if "id" in item and "idPattern" in item:
        raise BadRequest("Incompatible parameters: id, IdPattern")
    if "id" not in item and "idPattern" not in item:
        raise BadRequest("nor /id/ nor /idPattern/ present")
    if "type" in item and "typePattern" in item:
        raise BadRequest("Incompatible parameters: type, typePattern")
    for key in ("id", "idPattern", "type", "typePattern"):
        if key in item and not isinstance(item[key], str):
            raise BadRequest(f"invalid JSON type for entity {key}")
    if "id" in item:
        check_identifier("entity id", item["id"])
    if "type" in item:
        check_identifier("entity type", item["type"], allow_empty=True)
    pattern = item.get("idPattern")
    return Selector(
        ids=(item["id"],) if "id" in item else None,
        id_pattern=None if pattern in (None, ".*") else check_pattern(pattern, "entity idPattern"),
        types=(item["type"],) if "type" in item else None,
        type_pattern=check_pattern(item.get("typePattern"), "entity typePattern"),
        service_paths=scopes,
    )


def _text_field(expression: dict[str, Any], key: str) -> str | None:
    value = member(expression, key, str, f"{key} is not a string")
    if value == "":
        raise BadRequest(f"{key} is empty")
    return value


def _expression(expression: Any) -> tuple[list[Any], Any]:
    """The ``expression`` member: q and mq filters and the geo query."""
    if not isinstance(expression, dict):
        raise BadRequest("expression is not an object")
    if not expression:
        raise BadRequest("expression is empty")
    filters: list[Any] = []
    q = _text_field(expression, "q")
    mq = _text_field(expression, "mq")
    geo_fields = [_text_field(expression, key) for key in ("georel", "geometry", "coords")]
    if q is not None:
        filters.append(parse_q(q))
    if mq is not None:
        filters.append(parse_mq(mq))
    geo = None
    if any(f is not None for f in geo_fields):
        geo = parse_geo_query(*geo_fields)
    return filters, geo


_QUERY_FIELDS = ("entities", "attributes", "attrs", "expression", "metadata")


async def op_query(call: Call) -> Reply:
    check_params(call)
    payload = _check_object(call.json())
    if not any(key in payload for key in _QUERY_FIELDS):
        raise BadRequest("Invalid JSON payload, no relevant fields found")
    scopes = call.scopes()
    selectors: list[Selector] = []
    filters: list[Any] = []
    geo = None
    attributes: tuple[str, ...] | None = None
    attrs: tuple[str, ...] | None = None
    metadata: tuple[str, ...] | None = None
    for name, value in payload.items():
        if name == "entities":
            if not isinstance(value, list):
                raise BadRequest("not a JSON array")
            selectors.extend(_query_selector(item, scopes) for item in value)
        elif name == "attributes":
            attributes = _string_list(value, "attributes")
        elif name == "attrs":
            attrs = _string_list(value, "attrs")
        elif name == "metadata":
            metadata = _string_list(value, "metadata")
        elif name == "expression":
            filters, geo = _expression(value)
        else:
            raise _unrecognized(name)
    if not selectors:
        selectors = [Selector(service_paths=scopes)]
    if attributes:
        filters.append(HasAnyAttr(attributes))
    query = listing.EntityQuery(
        selectors=selectors,
        filters=filters,
        geo=geo,
        order=listing.parse_order(call.query.get("orderBy")),
        limit=listing.parse_limit(call.query.get("limit")),
        offset=listing.parse_offset(call.query.get("offset")),
        projection=Projection(attrs=attrs if attrs is not None else (attributes or None), metadata=metadata),
    )
    count = "count" in call.options
    found, total = await listing.run(call.state.entities, call.ctx, query, count=count)
    found, total = await call.state.forwarder.query(call.ctx, query, found, total)
    headers = {"Fiware-Total-Count": str(total)} if count else None
    return json_response(render_entities(found, render_mode(call.options), query.projection), headers=headers)


OP_UPDATE = Resource("POST", POST=op_update)
OP_QUERY = Resource("POST", POST=op_query)
