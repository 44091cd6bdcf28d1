"""Projects (contract §3 "Projects")."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .. import bodies
from ..errors import not_found
from ..http import caller, flag, json_response, no_content, state, text_response


async def list_projects(request: Request) -> Response:
    return json_response(await state(request).api.projects(await caller(request), flag(request, "full")))


async def create_project(request: Request) -> Response:
    new = await state(request).api.create_project(await caller(request), bodies.json_body(await request.body()))
    return text_response(new)


async def get_project(request: Request) -> Response:
    found = await state(request).api.project(await caller(request), request.path_params["project"],
                                            flag(request, "full"))
    return json_response(found)


async def delete_project(request: Request) -> Response:
    await state(request).api.delete_project(await caller(request), request.path_params["project"])
    return no_content()


async def project_field(request: Request) -> Response:
    name = request.path_params["field"]
    raw = await request.body()
    if name == "name":
        value: object = bodies.text_field(raw, request.headers.get("content-type"), name)
    elif name in ("device_ids", "gateway_ids"):
        value = bodies.json_body(raw)
    else:
        raise not_found(f"projects have no field {name}")
    await state(request).api.set_project_field(await caller(request), request.path_params["project"], name, value)
    return no_content()


P = "/api/v2/projects/{project}"
ROUTES = [
    Route("/api/v2/projects", list_projects, methods=["GET"]),
    Route("/api/v2/projects", create_project, methods=["POST"]),
    Route(P, get_project, methods=["GET"]),
    Route(P, delete_project, methods=["DELETE"]),
    Route(P + "/{field}", project_field, methods=["PUT"]),
]
