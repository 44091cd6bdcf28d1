"""Gateways (contract §3 "Gateways"; §7 ``full``, heartbeat, location, VPN)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .. import bodies
from ..errors import ApiError, not_found
from ..http import caller, flag, json_response, no_content, state


async def list_gateways(request: Request) -> Response:
    return json_response(await state(request).api.gateways(await caller(request), flag(request, "full")))


async def create_gateway(request: Request) -> Response:
    await state(request).api.create_gateway(await caller(request), bodies.json_body(await request.body()))
    return Response(status_code=200)  # the reference's empty 200 (contract §3)


async def get_gateway(request: Request) -> Response:
    found = await state(request).api.gateway(await caller(request), request.path_params["gateway"],
                                            flag(request, "full"))
    return json_response(found)


async def delete_gateway(request: Request) -> Response:
    await state(request).api.delete_gateway(await caller(request), request.path_params["gateway"])
    return no_content()


async def gateway_field(request: Request) -> Response:
    name = request.path_params["field"]
    raw, kind = await request.body(), request.headers.get("content-type")
    if name == "location":
        value = bodies.json_body(raw)
    elif name in ("name", "owner", "visibility"):
        value = bodies.text_field(raw, kind, name)
    else:
        raise not_found(f"gateways have no field {name}")
    await state(request).api.set_gateway_field(await caller(request), request.path_params["gateway"], name, value)
    return no_content()


async def heartbeat(request: Request) -> Response:
    await state(request).api.heartbeat(await caller(request), request.path_params["gateway"])
    return no_content()


async def vpn(request: Request) -> Response:
    """The reference asks an external VPN server for the gateway's credentials; there is
    none on this platform, and saying so beats pretending (contract §7)."""
    await state(request).api.gateway(await caller(request), request.path_params["gateway"], False)
    raise ApiError(501, "VPN is not available on this platform: gateways reach it directly (HTTP or MQTT)")


G = "/api/v2/gateways/{gateway}"
ROUTES = [
    Route("/api/v2/gateways", list_gateways, methods=["GET"]),
    Route("/api/v2/gateways", create_gateway, methods=["POST"]),
    Route(G, get_gateway, methods=["GET"]),
    Route(G, delete_gateway, methods=["DELETE"]),
    Route(G + "/heartbeat", heartbeat, methods=["PUT", "POST"]),
    Route(G + "/vpn", vpn, methods=["GET"]),
    Route(G + "/{field}", gateway_field, methods=["PUT"]),
]
