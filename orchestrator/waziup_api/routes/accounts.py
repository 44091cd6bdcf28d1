"""Tokens, permissions, users and ontologies (contract §2, §3 "Socials and users", §7)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from orchestrator import ontology

from .. import bodies
from ..errors import not_found
from ..http import caller, count, json_response, no_content, state, text_response
from ..permissions import permissions


async def token(request: Request) -> Response:
    return text_response(await state(request).api.token(bodies.json_body(await request.body())))


async def held(request: Request) -> Response:
    kind = request.path_params["kind"]
    if kind not in ("devices", "gateways", "projects"):
        raise not_found(f"no permissions of {kind}")
    who = await caller(request)
    return json_response(permissions(who, kind, await state(request).api.resources(who, kind)))


async def list_users(request: Request) -> Response:
    found = await state(request).api.users(await caller(request), limit=count(request, "limit", None),
                                           offset=count(request, "offset", 0) or 0,
                                           username=request.query_params.get("username") or None)
    return json_response(found)


async def me(request: Request) -> Response:
    return json_response(await state(request).api.me(await caller(request)))


async def get_user(request: Request) -> Response:
    return json_response(await state(request).api.user(await caller(request), request.path_params["user"]))


async def create_user(request: Request) -> Response:
    new = await state(request).api.create_user(await caller(request), bodies.json_body(await request.body()))
    return text_response(new)


async def sms_credit(request: Request) -> Response:
    credit = bodies.scalar_body(await request.body(), request.headers.get("content-type"))
    await state(request).api.set_sms_credit(await caller(request), request.path_params["user"], credit)
    return no_content()


_ONTOLOGIES = {"sensor_kinds": ontology.sensing_devices, "sensing_devices": ontology.sensing_devices,
               "actuator_kinds": ontology.actuating_devices, "actuating_devices": ontology.actuating_devices,
               "quantity_kinds": ontology.quantity_kinds, "units": ontology.units}


async def ontologies(request: Request) -> Response:
    """The WAZIUP ontologies, as the reference serves its files (the contract's names and
    the reference's file names both)."""
    entries = _ONTOLOGIES.get(request.path_params["name"])
    if entries is None:
        raise not_found(f"no ontology {request.path_params['name']}: {', '.join(_ONTOLOGIES)}")
    return json_response(entries(extras=False))  # the reference serves its files as they are


ROUTES = [
    Route("/api/v2/auth/token", token, methods=["POST"]),
    Route("/api/v2/auth/permissions/{kind}", held, methods=["GET"]),
    Route("/api/v2/users", list_users, methods=["GET"]),
    Route("/api/v2/users", create_user, methods=["POST"]),
    Route("/api/v2/users/me", me, methods=["GET"]),
    Route("/api/v2/users/{user}", get_user, methods=["GET"]),
    Route("/api/v2/users/{user}/sms_credit", sms_credit, methods=["PUT"]),
    Route("/api/v2/ontologies/{name}", ontologies, methods=["GET"]),
    Route("/ontologies/{name}", ontologies, methods=["GET"]),
]
