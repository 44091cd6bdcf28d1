"""/v2/op/update and /v2/op/query: Orion's batch operations."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from ngsi.errors import BadRequest
from ngsi.model import parse_entity

from .. import listing
from ..entities import ACTIONS, APPEND, APPEND_STRICT, DELETE, Outcome
from ..http import Call, Resource, json_response, no_content
from ..store import Selector
from .entities import check_params, projection, render_mode
from ngsi.render import Projection, render_entities

_ACTION_ERROR = "invalid update action type: right ones are: append, appendStric, delete, replace, update"


async def op_update(call: Call) -> Response:
    check_params(call)
    payload = call.json()
    if not isinstance(payload, dict):
        raise BadRequest("not a JSON object")
    action = payload.get("actionType")
    if not isinstance(action, str) or action not in ACTIONS:
        raise BadRequest(_ACTION_ERROR)
    entities = payload.get("entities")
    if not isinstance(entities, list):
        raise BadRequest("not a JSON array")
    key_values = "keyValues" in call.options
    parsed = [parse_entity(e, key_values=key_values, id_pattern=action not in (APPEND, APPEND_STRICT)) for e in entities]
    service = call.state.entities
    if action in (APPEND, APPEND_STRICT):
        path = call.write_path()
        scopes: tuple[tuple[str, bool], ...] = ((path, False),)
    else:
        path = None
        scopes = call.scopes()
    outcome = Outcome("already exist" if action == APPEND_STRICT else "do not exist")
    for entity in parsed:
        if entity.get("idPattern") is not None and entity.get("id") is None:
            await _write_pattern(call, entity, action, scopes, outcome)
            continue
        await service.write(
            call.tenant, scopes, entity, action,
            label_type=bool(entity.get("type")),
            override_md="overrideMetadata" in call.options,
            outcome=outcome,
            create_path=path,
        )
    outcome.raise_if_failed()
    return no_content()


async def _write_pattern(call: Call, pattern: dict[str, Any], action: str, scopes: Any, outcome: Outcome) -> None:
    service = call.state.entities
    entity_type = pattern.get("type") or None
    selector = Selector(
        id_pattern=pattern["idPattern"], types=None if entity_type is None else (entity_type,), service_paths=scopes
    )
    for entity in await service.find(call.tenant, selector):
        await service.write(
            call.tenant, ((entity["servicePath"], False),),
            {"id": entity["id"], "type": entity["type"], "attrs": pattern["attrs"]},
            action, label_type=True, outcome=outcome,
        )


def _string_list(value: Any, field: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise BadRequest(f"the field /{field}/ must be a JSON array")
    for item in value:
        if not isinstance(item, str):
            raise BadRequest("only JSON Strings allowed in attributes list")
    return tuple(value)


async def op_query(call: Call) -> Response:
    check_params(call)
    payload = call.json()
    if not isinstance(payload, dict):
        raise BadRequest("not a JSON object")
    scopes = call.scopes()
    selectors = []
    for item in payload.get("entities") or [{"idPattern": ".*"}]:
        if not isinstance(item, dict):
            raise BadRequest("not a JSON object")
        if "id" in item and "idPattern" in item:
            raise BadRequest("Incompatible parameters: id, IdPattern")
        if "id" not in item and "idPattern" not in item:
            raise BadRequest("nor /id/ nor /idPattern/ present")
        if "type" in item and "typePattern" in item:
            raise BadRequest("Incompatible parameters: type, typePattern")
        pattern = item.get("idPattern")
        selectors.append(
            Selector(
                ids=(item["id"],) if "id" in item else None,
                id_pattern=None if pattern in (None, ".*") else pattern,
                types=(item["type"],) if "type" in item else None,
                type_pattern=item.get("typePattern"),
                service_paths=scopes,
            )
        )
    attrs = _string_list(payload["attrs"], "attributes") if "attrs" in payload else None
    metadata = _string_list(payload["metadata"], "metadata") if "metadata" in payload else None
    filters: list[Any] = []
    geo = None
    expression = payload.get("expression")
    if expression is not None:
        if not isinstance(expression, dict):
            raise BadRequest("expression must be a JSON object")
        if "q" in expression:
            if not isinstance(expression["q"], str):
                raise BadRequest("q is not a string")
            if expression["q"] == "":
                raise BadRequest("q is empty")
            from ngsi.query import parse_q

            filters.append(parse_q(expression["q"]))
        if "mq" in expression:
            if not isinstance(expression["mq"], str):
                raise BadRequest("mq is not a string")
            if expression["mq"] == "":
                raise BadRequest("mq is empty")
            from ngsi.query import parse_mq

            filters.append(parse_mq(expression["mq"]))
        from ngsi.geo import parse_geo_expression

        geo = parse_geo_expression(expression)
    query = listing.EntityQuery(
        selectors=selectors,
        filters=filters,
        geo=geo,
        order=listing.parse_order(call.query.get("orderBy")),
        limit=listing.parse_limit(call.query.get("limit")),
        offset=listing.parse_offset(call.query.get("offset")),
        projection=Projection(attrs=attrs, metadata=metadata),
    )
    count = "count" in call.options
    found, total = await listing.run(call.state.entities, call.tenant, query, count=count)
    headers = {"Fiware-Total-Count": str(total)} if count else None
    return json_response(render_entities(found, render_mode(call.options), query.projection), headers=headers)


OP_UPDATE = Resource("POST", POST=op_update)
OP_QUERY = Resource("POST", POST=op_query)
