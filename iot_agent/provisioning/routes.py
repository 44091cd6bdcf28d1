"""Provisioning API routes (north port), as the FIWARE IoT agents serve them.

``/iot/groups`` (body key ``groups``) and its deprecated twin ``/iot/services`` (key
``services``); ``/iot/devices``, ``/iot/devices/{device_id}``, ``/iot/op/delete``,
``/iot/about`` and ``/version``. Handlers only glue: parsing and errors live in ``model``,
storage in ``store``; a ``preprocess`` pipeline is checked here (``_checked``), as
``model`` takes it as it comes; every failure is an ``iot_agent.errors`` exception rendered by the app.

Other parts of the agent (command registrations, LoRaWAN subscriptions) follow provisioning
through ``app.state.provisioning_listeners``: coroutines called as
``listener(event, old, new)`` with event ``"group"`` or ``"device"``, ``old`` None on
creation and ``new`` None on deletion, after the registry has been written.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .. import preprocess
from ..errors import (
    DeviceGroupNotFound,
    DeviceNotFound,
    DuplicateDevice,
    DuplicateGroup,
    MissingConfigParams,
    WrongSyntax,
)
from . import model
from .store import Conflict, ProvisioningStore, device_key, group_key

Listener = Callable[[str, dict[str, Any] | None, dict[str, Any] | None], Awaitable[None]]


def json_response(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json; charset=utf-8")


def no_content() -> Response:
    return Response(status_code=204)


def _registry(request: Request) -> ProvisioningStore:
    registry: ProvisioningStore = request.app.state.registry
    return registry


async def _notify(request: Request, event: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
    for listener in getattr(request.app.state, "provisioning_listeners", ()):
        await listener(event, old, new)


async def _json(request: Request) -> Any:
    raw = await request.body()
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise WrongSyntax("the body is not valid JSON") from None


_WRONG_SYNTAX = WrongSyntax("").message  # the template's head, to re-word a pipeline's error


def _checked(docs: list[dict[str, Any]], what: str, *, one: bool = False) -> list[dict[str, Any]]:
    """``docs`` (groups or devices, parsed), once each ``preprocess`` pipeline they carry
    parses: a bad one is refused now (WRONG_SYNTAX, 400, naming the item and the step), not
    at the first reading, where MQTT and LoRa could only drop it. ``what`` names the items
    in the message: ``devices`` (``devices[1] (d7): preprocess[0]: ...``), ``groups``, or,
    with ``one``, the item a PUT changes (``device d7``)."""
    for index, doc in enumerate(docs):
        if "preprocess" not in doc:
            continue
        try:
            preprocess.parse_config(doc["preprocess"])
        except WrongSyntax as exc:
            where = what if one else f"{what}[{index}]"
            name = doc.get("device_id")
            if isinstance(name, str) and not one:
                where += f" ({name})"
            raise WrongSyntax(f"{where}: {exc.message.removeprefix(_WRONG_SYNTAX)}") from None
    return docs


# -- groups ----------------------------------------------------------------------------------


def _group_endpoint(key: str) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        service, subservice = model.tenant(request.headers, write=request.method == "POST")
        registry = _registry(request)
        if request.method == "POST":
            groups = _checked(model.parse_groups(await _json(request), key, service, subservice), key)
            try:
                await registry.insert_groups(groups)
            except Conflict as exc:
                raise DuplicateGroup(*group_key(groups[exc.index])) from None
            for group in groups:
                await _notify(request, "group", None, group)
            return json_response({}, 201)
        resource = request.query_params.get("resource")
        apikey = request.query_params.get("apikey")
        if request.method == "GET":
            limit, offset = model.paging(request.query_params)
            found = await registry.find_groups(
                service=service, subservice=model.subservice_filter(subservice), resource=resource, apikey=apikey
            )
            page = found[offset:] if limit is None else found[offset : offset + limit]
            return json_response(model.render_groups(page, key, len(found)))
        # PUT and DELETE act on the one group that resource and apikey name (node-lib
        # doc/api.md: both mandatory); without them any group of the tenant would do.
        missing = [name for name, value in (("resource", resource), ("apikey", apikey)) if not value]
        if missing:
            raise MissingConfigParams(missing)
        matches = await registry.find_groups(service=service, subservice=subservice, resource=resource, apikey=apikey, limit=1)
        if not matches:
            raise DeviceGroupNotFound(["service", "subservice", "resource", "apikey"], [service, subservice, resource, apikey])
        old = matches[0]
        if request.method == "PUT":
            new = {**old, **_checked([model.parse_group_update(await _json(request))], f"group {apikey}", one=True)[0]}
            try:
                await registry.replace_group(group_key(old), new)
            except Conflict:
                raise DuplicateGroup(*group_key(new)) from None
            await _notify(request, "group", old, new)
        else:
            await registry.delete_group(group_key(old))
            await _notify(request, "group", old, None)
        return no_content()

    return endpoint


# -- devices ---------------------------------------------------------------------------------


async def _group_for(registry: ProvisioningStore, device: dict[str, Any]) -> dict[str, Any] | None:
    """The group a device belongs to: its tenant's group with the device's apikey (any when it has none)."""
    found = await registry.find_groups(
        service=device.get("service"), subservice=device.get("service_path"), apikey=device.get("apikey"), limit=1
    )
    return found[0] if found else None


async def devices(request: Request) -> Response:
    service, subservice = model.tenant(request.headers, write=request.method == "POST")
    registry = _registry(request)
    config = getattr(request.app.state, "config", None)
    if request.method == "POST":
        parsed = _checked(model.parse_devices(await _json(request), service, subservice), "devices")
        docs = [
            model.complete_device(
                d,
                await _group_for(registry, d),
                default_type=getattr(config, "default_type", None),
                conjunction=getattr(config, "default_entity_name_conjunction", ":"),
            )
            for d in parsed
        ]
        try:
            await registry.insert_devices(docs)
        except Conflict as exc:
            raise DuplicateDevice(docs[exc.index]["device_id"]) from None
        for doc in docs:
            await _notify(request, "device", None, doc)
        return json_response({}, 201)
    limit, offset = model.paging(request.query_params)
    scope = {"service": service, "subservice": model.subservice_filter(subservice)}
    page = await registry.find_devices(**scope, limit=limit, offset=offset)
    return json_response(model.render_devices(page, await registry.count_devices(**scope)))


async def _one_device(request: Request, device_id: str) -> dict[str, Any]:
    service, subservice = model.tenant(request.headers)
    found = await _registry(request).find_devices(
        service=service, subservice=subservice, device_id=device_id, apikey=request.query_params.get("apikey"), limit=1
    )
    if not found:
        raise DeviceNotFound(device_id)
    return found[0]


async def device(request: Request) -> Response:
    device_id: str = request.path_params["device_id"]
    old = await _one_device(request, device_id)
    registry = _registry(request)
    if request.method == "GET":
        return json_response(model.render_device(old))
    if request.method == "PUT":
        new = {**old, **_checked([model.parse_device_update(await _json(request))], f"device {device_id}", one=True)[0]}
        try:
            await registry.replace_device(device_key(old), new)
        except Conflict:
            raise DuplicateDevice(device_id) from None
        await _notify(request, "device", old, new)
    else:
        await registry.delete_device(device_key(old))
        await _notify(request, "device", old, None)
    return no_content()


async def op_delete(request: Request) -> Response:
    """Deletes every listed device that exists; 404 naming the first missing one, if any."""
    service, subservice = model.tenant(request.headers)
    registry = _registry(request)
    missing: list[str] = []
    for device_id, apikey in model.parse_delete_devices(await _json(request)):
        found = await registry.find_devices(service=service, subservice=subservice, device_id=device_id, apikey=apikey, limit=1)
        if not found:
            missing.append(device_id)
            continue
        await registry.delete_device(device_key(found[0]))
        await _notify(request, "device", found[0], None)
    if missing:
        raise DeviceNotFound(missing[0])
    return no_content()


def _version() -> str:
    try:
        return metadata.version("waziup")
    except metadata.PackageNotFoundError:
        return "0.0.0"


async def about(request: Request) -> Response:
    config = getattr(request.app.state, "config", None)
    return json_response(model.about(getattr(config, "north_port", 4041), _version()))


_OPENAPI = Path(__file__).resolve().parents[1] / "openapi.json"


async def openapi(request: Request) -> Response:
    """GET /openapi.json: the document of the provisioning API (iot_agent/openapi.json)."""
    return Response(_OPENAPI.read_bytes(), media_type="application/json")


ROUTES = [
    Route("/iot/groups", _group_endpoint("groups"), methods=["GET", "POST", "PUT", "DELETE"]),
    Route("/iot/services", _group_endpoint("services"), methods=["GET", "POST", "PUT", "DELETE"]),
    Route("/iot/devices", devices, methods=["GET", "POST"]),
    Route("/iot/devices/{device_id}", device, methods=["GET", "PUT", "DELETE"]),
    Route("/iot/op/delete", op_delete, methods=["POST"]),
    Route("/iot/about", about, methods=["GET"]),
    Route("/version", about, methods=["GET"]),
    Route("/openapi.json", openapi, methods=["GET"]),
]
