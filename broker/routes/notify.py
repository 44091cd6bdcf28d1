"""POST /v2/op/notify: receive an NGSI-v2 notification and apply it as an update.

Orion treats a notification as an ``append`` of each entity of ``data`` (entities
are created when missing), so one broker can feed another through a subscription.
The answer is ``200 OK`` with an empty body.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from ngsi.errors import BadRequest
from ngsi.model import parse_entity

from ..entities import APPEND, Outcome
from ..http import Call, Resource
from ..jsonio import required
from .params import check_params


def parse_notification(payload: Any, *, key_values: bool = False) -> list[dict[str, Any]]:
    """The entities of a notification payload, parsed and checked before anything is written."""
    if not isinstance(payload, dict):
        raise BadRequest("not a JSON object")
    # (guess) both texts
    required(payload, "subscriptionId", str, "subscriptionId field not found", "subscriptionId field must be a string")
    data = required(payload, "data", list, "data field not found", "data field must be a JSON array")
    for key in payload:
        if key not in ("subscriptionId", "data"):
            raise BadRequest(f"Unrecognized field in JSON payload: /{key}/")  # (guess)
    return [parse_entity(item, key_values=key_values) for item in data]


async def op_notify(call: Call) -> Response:
    check_params(call)
    entities = parse_notification(call.json(), key_values="keyValues" in call.options)
    path = call.write_path()
    service = call.state.entities
    outcome = Outcome("do not exist")
    for entity in entities:
        await service.write(
            call.ctx, ((path, False),), entity, APPEND,
            label_type=bool(entity.get("type")),
            override_md="overrideMetadata" in call.options,
            outcome=outcome,
            create_path=path,
        )
    outcome.raise_if_failed()
    return Response(status_code=200)


OP_NOTIFY = Resource("POST", POST=op_notify)
