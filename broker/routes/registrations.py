"""/v2/registrations and /v2/registrations/{id}: create, list, get, delete (Orion 4 has no PATCH).

A registration belongs to the tenant of the request and keeps the service path of the
request that created it ("/" without header); listing and getting with a
Fiware-ServicePath header show only the registrations that path covers (3945), without
the header every registration of the tenant. ``forwardingInformation`` is the registry's
live counters (orion-api.md, "registration.forwardingInformation": only on retrieval).
"""

from __future__ import annotations

from typing import Any

from ngsi.errors import NotFound

from .. import listing
from ..http import Call, Reply, Resource, created, json_response, no_content
from ..registrations.model import REGISTRATION_NOT_FOUND, parse_registration, render_registration, valid_reg_id
from ..registrations.registry import RegistrationRegistry
from .params import check_params


def _registry(call: Call) -> RegistrationRegistry:
    registry: RegistrationRegistry = call.state.registrations
    return registry


def _reg_id(call: Call) -> str:
    reg_id = call.path_params["id"]
    if not valid_reg_id(reg_id):
        raise NotFound(REGISTRATION_NOT_FOUND)
    return reg_id


def _render(call: Call, reg: dict[str, Any]) -> dict[str, Any]:
    return render_registration(reg, _registry(call).forwarding(call.tenant, reg["id"]))


async def list_registrations(call: Call) -> Reply:
    check_params(call)
    limit = listing.parse_limit(call.query.get("limit"))
    offset = listing.parse_offset(call.query.get("offset"))
    regs = _registry(call).visible(call.tenant, call.scopes())
    body = [_render(call, reg) for reg in regs[offset : offset + limit]]
    headers = {"Fiware-Total-Count": str(len(regs))} if "count" in call.options else None
    return json_response(body, headers=headers)


async def create_registration(call: Call) -> Reply:
    check_params(call)
    path = call.write_path()
    reg = await _registry(call).add(call.tenant, parse_registration(call.json(), path))
    return created(f"/v2/registrations/{reg['id']}")


async def get_registration(call: Call) -> Reply:
    check_params(call)
    reg = _registry(call).get(call.tenant, call.scopes(), _reg_id(call))
    return json_response(_render(call, reg))


async def delete_registration(call: Call) -> Reply:
    check_params(call)
    await _registry(call).delete(call.tenant, call.scopes(), _reg_id(call))
    return no_content()


REGISTRATIONS = Resource("POST, GET", GET=list_registrations, POST=create_registration)
REGISTRATION = Resource("GET, DELETE", GET=get_registration, DELETE=delete_registration)
