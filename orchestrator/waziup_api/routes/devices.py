"""Devices, sensors, actuators, values and datapoints (contract §3 "Devices", "Sensors and
values", "Actuators"; §7 CSV, ``q=``, calibration, batches)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .. import bodies, values
from ..devices import ACTUATOR_TYPE, SENSOR_TYPE, VALUE_TYPES, device_json
from ..errors import bad_request, not_found
from ..history import Window
from ..http import caller, count, csv_wanted, json_response, no_content, state


def _api(request: Request) -> Any:
    return state(request).api


def _p(request: Request, name: str) -> str:
    return str(request.path_params[name])


async def list_devices(request: Request) -> Response:
    who = await caller(request)
    found = await _api(request).backend.list(who, q=request.query_params.get("q") or None,
                                             limit=count(request, "limit", None), offset=count(request, "offset", 0) or 0)
    return json_response(found)


async def create_device(request: Request) -> Response:
    who = await caller(request)
    await _api(request).backend.create(who, bodies.json_body(await request.body()))
    return no_content()


async def get_device(request: Request) -> Response:
    who = await caller(request)
    return json_response(device_json(await _api(request).backend.readable(who, _p(request, "device"))))


async def delete_device(request: Request) -> Response:
    await _api(request).backend.delete(await caller(request), _p(request, "device"))
    return no_content()


DEVICE_SCALARS = ("name", "meta", "location", "gateway_id", "owner", "visibility", "deployed", "domain")


async def device_field(request: Request) -> Response:
    name = _p(request, "field")
    if name not in DEVICE_SCALARS:
        raise not_found(f"devices have no field {name}")
    raw, kind = await request.body(), request.headers.get("content-type")
    if name in ("meta", "location"):
        value = bodies.json_body(raw)
    elif name == "deployed":
        value = bodies.bool_field(raw, kind, name)
    else:
        value = bodies.text_field(raw, kind, name)
    await _api(request).backend.set_field(await caller(request), _p(request, "device"), name, value)
    return no_content()


# -- sensors and actuators --------------------------------------------------------------


def _kind(request: Request) -> str:
    return SENSOR_TYPE if request.url.path.split("/")[5] == "sensors" else ACTUATOR_TYPE


async def list_members(request: Request) -> Response:
    who = await caller(request)
    return json_response(await _api(request).backend.members(who, _p(request, "device"), _kind(request)))


async def create_member(request: Request) -> Response:
    who = await caller(request)
    await _api(request).backend.upsert_member(who, _p(request, "device"), _kind(request),
                                              bodies.json_body(await request.body()))
    return no_content()


async def get_member(request: Request) -> Response:
    who = await caller(request)
    return json_response(await _api(request).backend.member(who, _p(request, "device"), _kind(request),
                                                            _p(request, "member")))


async def delete_member(request: Request) -> Response:
    await _api(request).backend.delete_member(await caller(request), _p(request, "device"), _kind(request),
                                              _p(request, "member"))
    return no_content()


SENSOR_TEXT = ("name", "sensor_kind", "quantity_kind", "unit")
ACTUATOR_TEXT = ("name", "actuator_kind")


async def member_field(request: Request) -> Response:
    kind, name = _kind(request), _p(request, "field")
    raw, content_type = await request.body(), request.headers.get("content-type")
    texts = SENSOR_TEXT if kind == SENSOR_TYPE else ACTUATOR_TEXT
    if name in texts:
        value: Any = bodies.text_field(raw, content_type, name)
    elif name == "meta":
        value = bodies.json_body(raw)
    elif name == "calib" and kind == SENSOR_TYPE:
        value = bodies.json_body(raw)
        problem = values.calib_problem(value)
        if problem:
            raise bad_request(problem)
    elif name == "value_type" and kind == ACTUATOR_TYPE:
        value = bodies.text_field(raw, content_type, name)
        if value not in VALUE_TYPES:
            raise bad_request(f"value_type must be one of {' '.join(VALUE_TYPES)}")
        name = "actuator_value_type"
    else:
        raise bad_request(f"{name} is not a field of a {'sensor' if kind == SENSOR_TYPE else 'actuator'}")
    await _api(request).backend.set_member_field(await caller(request), _p(request, "device"), kind,
                                                 _p(request, "member"), name, value)
    return no_content()


# -- values --------------------------------------------------------------------------------


async def push_value(request: Request) -> Response:
    backend = _api(request).backend
    try:
        value = values.sensor_value(await request.body(), request.headers.get("content-type"), backend.now_ms())
    except values.ValueError400 as exc:
        raise bad_request(str(exc)) from None
    await backend.push(await caller(request), _p(request, "device"), _p(request, "member"), value)
    return no_content()


async def push_values(request: Request) -> Response:
    backend = _api(request).backend
    who = await caller(request)
    try:
        batch = values.sensor_values(await request.body(), backend.now_ms())
    except values.ValueError400 as exc:
        raise bad_request(str(exc)) from None
    for value in batch:
        await backend.push(who, _p(request, "device"), _p(request, "member"), value)
    return no_content()


async def set_actuator(request: Request) -> Response:
    value = bodies.json_body(await request.body()) if bodies.is_json(request.headers.get("content-type")) \
        else bodies.scalar_body(await request.body(), None)
    await _api(request).backend.actuate(await caller(request), _p(request, "device"), _p(request, "member"), value)
    return no_content()


def _window(request: Request, devices: list[str], sensors: list[str] | None) -> Window:
    sort = request.query_params.get("sort", "asc")
    if sort not in ("asc", "dsc", "desc"):
        raise bad_request("sort must be asc or dsc")
    return Window(devices=devices, sensors=sensors, limit=count(request, "limit", 20) or 0,
                  offset=count(request, "offset", 0) or 0, descending=sort != "asc",
                  date_from=request.query_params.get("date_from") or None,
                  date_to=request.query_params.get("date_to") or None)


async def _datapoints(request: Request, window: Window) -> Response:
    points = await _api(request).backend.datapoints(
        await caller(request), window, calibrated=request.query_params.get("calibrated", "true").lower() != "false")
    if csv_wanted(request):
        return Response(values.datapoints_csv(points), media_type="text/csv")
    return json_response(points)


def _ids(text: str | None) -> list[str]:
    return [part for part in (text or "").split(",") if part]


async def sensor_values(request: Request) -> Response:
    return await _datapoints(request, _window(request, [_p(request, "device")], [_p(request, "member")]))


async def sensors_data(request: Request) -> Response:
    devices = _ids(request.query_params.get("device_id"))
    if not devices:
        raise bad_request("device_id is required")
    sensors = _ids(request.query_params.get("sensor_id")) or None
    return await _datapoints(request, _window(request, devices, sensors))


D = "/api/v2/devices/{device}"
ROUTES = [
    Route("/api/v2/devices", list_devices, methods=["GET"]),
    Route("/api/v2/devices", create_device, methods=["POST"]),
    Route(D, get_device, methods=["GET"]),
    Route(D, delete_device, methods=["DELETE"]),
    Route(D + "/{field}", device_field, methods=["PUT"]),
    Route("/api/v2/sensors_data", sensors_data, methods=["GET"]),
]
for members in ("sensors", "actuators"):
    M = f"{D}/{members}/{{member}}"
    ROUTES += [
        Route(f"{D}/{members}", list_members, methods=["GET"]),
        Route(f"{D}/{members}", create_member, methods=["POST"]),
        Route(M, get_member, methods=["GET"]),
        Route(M, delete_member, methods=["DELETE"]),
    ]
ROUTES += [
    Route(f"{D}/sensors/{{member}}/value", push_value, methods=["POST"]),
    Route(f"{D}/sensors/{{member}}/values", push_values, methods=["POST"]),
    Route(f"{D}/sensors/{{member}}/values", sensor_values, methods=["GET"]),
    Route(f"{D}/sensors/{{member}}/{{field}}", member_field, methods=["PUT"]),
    Route(f"{D}/actuators/{{member}}/value", set_actuator, methods=["PUT"]),
    Route(f"{D}/actuators/{{member}}/{{field}}", member_field, methods=["PUT"]),
]
