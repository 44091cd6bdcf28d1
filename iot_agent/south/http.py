"""The HTTP binding (south port 7896), as iotagent-ul and iotagent-json serve it.

* ``GET /iot/d?i=<dev>&k=<apikey>&d=<UL>[&t=<time>]``: one UL group; ``POST /iot/d?i&k[&t]``
  with a ``text/plain`` UL body (``#`` for several); a body in result form
  (``dev@cmd|result``) is the answer to a polled command.
* ``POST /iot/json?i&k[&t]``: a JSON object, or an array (multimeasure);
  ``POST /iot/json/attrs/<attr>``: one value (JSON, text, or octet-stream as hex);
  ``POST /iot/json/commands``: command results ``{"cmd": result}``.
* ``getCmd=1`` on ``/iot/d`` or ``/iot/json`` (GET or POST) returns the commands waiting for
  the device (UL ``dev@cmd|value#...``, JSON ``{"cmd": value}``) and marks them DELIVERED.
* ``POST /iot/waziup?k=<apikey>``: the WAZIUP low-cost LoRa gateway's five post-processing
  fields (``ldata``, ``pdata``, ``rdata``, ``tdata``, ``gwid``), see ``south.gateway``.

Every answer carries ``X-Processing-Time`` (ms); errors are the agents'
``{"name", "message"}`` with their code, never a traceback.
"""

from __future__ import annotations

import datetime as _dt
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ngsi.server.guards import Guard

from ..codecs import jsonmeasure, ul, waziup_gw
from ..commands import Commands
from ..device import JSON, RESOURCE_OF, UL
from ..errors import IoTAError, ParseError
from ..http_errors import LastResort, error_response
from ..seam import guard_layer
from .ingest import Southbound

log = logging.getLogger("waziup.iot_agent.http")

Doc = dict[str, Any]
PROTOCOL = {UL: "IoTA-UL", JSON: "IoTA-JSON"}


class MandatoryParamsNotFound(IoTAError):
    """``i`` or ``k`` missing from a southbound request (iotagent-ul/json)."""

    name = "MANDATORY_PARAMS_NOT_FOUND"
    code = 400

    def __init__(self, params: list[str]) -> None:
        super().__init__("Some of the mandatory params weren't found in the request: " + orjson.dumps(params).decode())


class UnsupportedType(IoTAError):
    name = "UNSUPPORTED_CONTENT_TYPE"
    code = 400

    def __init__(self, content_type: str) -> None:
        super().__init__(f"Unsupported content type in the context request: {content_type}")


def _ids(request: Request) -> tuple[str, str]:
    device_id = request.query_params.get("i")
    apikey = request.query_params.get("k")
    missing = [name for name, value in (("i", device_id), ("k", apikey)) if not value]
    if missing:
        raise MandatoryParamsNotFound(missing)
    assert device_id is not None and apikey is not None
    return apikey, device_id


def _with_time(measures: list[Doc], request: Request) -> list[Doc]:
    """``?t=`` is the measures' timestamp (``TimeInstant``) unless they carry one."""
    stamp = request.query_params.get("t")
    if stamp:
        return [m if ul.TIMESTAMP in m else {ul.TIMESTAMP: stamp, **m} for m in measures]
    return measures


class HttpSouth:
    def __init__(self, south: Southbound, commands: Commands) -> None:
        self.south = south
        self.commands = commands

    async def _resolve(self, request: Request, fmt: str) -> tuple[Doc, Doc | None]:
        apikey, device_id = _ids(request)
        return await self.south.resolve(
            apikey, device_id, resource=RESOURCE_OF[fmt], protocol=PROTOCOL[fmt], transport="HTTP"
        )

    async def _poll(self, device: Doc, group: Doc | None, fmt: str) -> Response:
        pending = self.commands.poll(device)
        await self.commands.delivered(device, group, pending)
        if fmt == JSON:
            return Response(orjson.dumps({c.name: c.value for c in pending}), media_type="application/json")
        body = ul.format_commands([ul.format_command(str(device["device_id"]), c.name, c.value) for c in pending])
        return Response(body, media_type="text/plain")

    async def _answer(self, request: Request, device: Doc, group: Doc | None, fmt: str) -> Response:
        """Empty, or the device's waiting commands when it asks for them (``getCmd``)."""
        if request.query_params.get("getCmd") in ("1", "true"):
            return await self._poll(device, group, fmt)
        return Response(b"", media_type="text/plain")

    async def ul(self, request: Request) -> Response:
        device, group = await self._resolve(request, UL)
        if request.method == "GET":
            data = request.query_params.get("d")
            if data:
                # GET carries one group only: a '#' is part of the values
                await self.south.send(device, group, _with_time([_ul_group(data)], request))
        else:
            body = (await request.body()).decode("utf-8", "replace").strip()
            if body:
                if _is_result(body):
                    for part in body.split("#"):
                        _, name, result = ul.parse_command_result(part)
                        await self.commands.result(device, group, name, result)
                else:
                    await self.south.send(device, group, _with_time(ul.parse_measures(body), request))
        return await self._answer(request, device, group, UL)

    async def json(self, request: Request) -> Response:
        device, group = await self._resolve(request, JSON)
        body = await request.body()
        if request.method == "POST" and body.strip():
            await self.south.send(device, group, _with_time(jsonmeasure.parse_measures(body), request))
        return await self._answer(request, device, group, JSON)

    async def json_attr(self, request: Request) -> Response:
        device, group = await self._resolve(request, JSON)
        value = jsonmeasure.parse_attribute_value(await request.body(), request.headers.get("content-type"))
        await self.south.send(device, group, _with_time([{request.path_params["attr"]: value}], request))
        return Response(b"", media_type="text/plain")

    async def json_commands(self, request: Request) -> Response:
        device, group = await self._resolve(request, JSON)
        for name, result in jsonmeasure.parse_command_results(await request.body()):
            await self.commands.result(device, group, name, result)
        return Response(b"", media_type="text/plain")

    async def waziup(self, request: Request) -> Response:
        """The low-cost gateway's upload: JSON ``{ldata, pdata, rdata, tdata, gwid}``."""
        body = await request.body()
        doc = jsonmeasure.load_json(body) if body.strip() else {}
        if not isinstance(doc, dict) or not isinstance(doc.get("ldata"), str):
            raise ParseError("expected {\"ldata\", \"pdata\", \"rdata\", \"tdata\", \"gwid\"}")
        apikey = request.query_params.get("k") or ""
        prefix, values = waziup_gw.parse_payload(doc["ldata"])
        apikey = apikey or prefix.project or ""
        if not apikey:
            raise MandatoryParamsNotFound(["k"])
        src = waziup_gw.packet_source(doc.get("pdata"))  # a relayed LoRaWAN node in hex, as the cloud script
        device_id = request.query_params.get("i") or waziup_gw.device_id(
            request.query_params.get("org", ""), prefix.service_tree, request.query_params.get("sensor", "Sensor"), src
        ).lstrip("_")
        measures: Doc = dict(values)
        stamp = _gateway_time(doc.get("tdata"))
        if stamp is not None:
            measures = {ul.TIMESTAMP: stamp, **measures}
        device, group = await self.south.resolve(apikey, device_id, resource="/iot/waziup", protocol="WAZIUP-GW", transport="HTTP")
        await self.south.send(device, group, [measures])
        return Response(b"", media_type="text/plain")


def _ul_group(data: str) -> Doc:
    measures = ul.parse_measures(data)
    merged: Doc = {}
    for measure in measures:
        merged.update(measure)
    return merged


def _is_result(body: str) -> bool:
    head = body.split("|", 1)[0]
    return "@" in head and "|" in body


def _gateway_time(tdata: Any) -> str | None:
    """The gateway's reception time as ISO 8601 UTC (it writes it without a zone)."""
    if not isinstance(tdata, str) or not tdata:
        return None
    try:
        when = _dt.datetime.fromisoformat(tdata.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=_dt.timezone.utc)
    return when.astimezone(_dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def create_app(south: Southbound, commands: Commands, guards: Sequence[Guard] | None = None) -> Starlette:
    """The south HTTP app (7896); ``guards``: the request seam's list (default: those the
    agent's config names)."""
    handlers = HttpSouth(south, commands)

    def guarded(endpoint: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            try:
                return await endpoint(request)
            except IoTAError as exc:
                return error_response(exc)

        return run

    routes = [
        Route("/iot/d", guarded(handlers.ul), methods=["GET", "POST"]),
        Route("/iot/json", guarded(handlers.json), methods=["GET", "POST"]),
        Route("/iot/json/attrs/{attr}", guarded(handlers.json_attr), methods=["POST"]),
        Route("/iot/json/commands", guarded(handlers.json_commands), methods=["POST"]),
        Route("/iot/waziup", guarded(handlers.waziup), methods=["POST"]),
    ]
    app = Starlette(
        routes=routes, middleware=[Middleware(LastResort, log=log, processing_time=True), guard_layer(south.config, guards)]
    )
    return app
