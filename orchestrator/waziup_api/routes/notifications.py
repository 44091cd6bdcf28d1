"""Notifications and socials (contract §3 "Notifications", "Socials and users"): no
permission checks, as the reference (its clients call them without a token)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .. import bodies
from ..errors import bad_request, not_found
from ..http import json_response, no_content, state, text_response
from ..notifier import Notifier


def _notifier(request: Request) -> Notifier:
    return state(request).api.notifier


async def list_notifs(request: Request) -> Response:
    return json_response(_notifier(request).list())


async def create_notif(request: Request) -> Response:
    return text_response(await _notifier(request).create(bodies.json_body(await request.body())))


async def get_notif(request: Request) -> Response:
    return json_response(_notifier(request).get(request.path_params["notif"]))


async def delete_notif(request: Request) -> Response:
    await _notifier(request).delete(request.path_params["notif"])
    return no_content()


async def patch_notif(request: Request) -> Response:
    await _notifier(request).patch(request.path_params["notif"], bodies.json_body(await request.body()))
    return no_content()


async def notif_status(request: Request) -> Response:
    status = bodies.text_field(await request.body(), request.headers.get("content-type"), "status")
    await _notifier(request).set_status(request.path_params["notif"], status)
    return no_content()


async def list_socials(request: Request) -> Response:
    return json_response(await state(request).api.store.list("socials"))


async def send_social(request: Request) -> Response:
    return text_response(await _notifier(request).send(bodies.json_body(await request.body())))


async def social_batch(request: Request) -> Response:
    body = bodies.json_body(await request.body())
    if not isinstance(body, dict) or not all(isinstance(body.get(k), list) for k in ("usernames", "channels")) \
            or not isinstance(body.get("message"), str):
        raise bad_request('a batch needs "usernames" and "channels" (lists) and "message"')
    await _notifier(request).batch(body["usernames"], body["channels"], body["message"])
    return no_content()


async def get_social(request: Request) -> Response:
    found = await state(request).api.store.get("socials", request.path_params["social"])
    if found is None:
        raise not_found(f"social message {request.path_params['social']} not found")
    return json_response(found)


async def delete_social(request: Request) -> Response:
    if not await state(request).api.store.delete("socials", request.path_params["social"]):
        raise not_found(f"social message {request.path_params['social']} not found")
    return Response(status_code=200)  # 200, not 204, as the reference (contract §3)


N = "/api/v2/notifications/{notif}"
ROUTES = [
    Route("/api/v2/notifications", list_notifs, methods=["GET"]),
    Route("/api/v2/notifications", create_notif, methods=["POST"]),
    Route(N, get_notif, methods=["GET"]),
    Route(N, delete_notif, methods=["DELETE"]),
    Route(N, patch_notif, methods=["PATCH"]),
    Route(N + "/status", notif_status, methods=["PUT"]),
    Route("/api/v2/socials", list_socials, methods=["GET"]),
    Route("/api/v2/socials", send_social, methods=["POST"]),
    Route("/api/v2/socials/batch", social_batch, methods=["POST"]),
    Route("/api/v2/socials/{social}", get_social, methods=["GET"]),
    Route("/api/v2/socials/{social}", delete_social, methods=["DELETE"]),
]
