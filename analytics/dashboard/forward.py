"""The page's calls to the platform's services, forwarded with the caller's headers.

``/api/<service>/<path>?<query>`` goes to ``<service URL>/<path>?<query>`` with the same
method and body. Only the headers that carry the caller's tenant, identity and content
go along (``Fiware-Service``, ``Fiware-ServicePath``, ``X-Auth-Token``, ``Authorization``,
``Fiware-Correlator``, ``Content-Type``, ``Accept``); the answer comes back with its
status, type and the NGSI headers a page reads (``Fiware-Total-Count``, ``Location``).
So the services decide what the caller may see, as if the page had called them itself.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ngsi.client import HTTPClient, HTTPError

SERVICES = ("broker", "history", "agent", "rules")
_REQUEST_HEADERS = ("fiware-service", "fiware-servicepath", "x-auth-token", "authorization", "fiware-correlator",
                    "content-type", "accept")
_ANSWER_HEADERS = ("fiware-total-count", "location", "content-disposition")


async def forward(request: Request, client: HTTPClient, upstreams: Mapping[str, str], timeout: float,
                  max_body: int, token: str = "") -> Response:
    """``token``: the signed-in user's, sent as ``X-Auth-Token`` when the caller sent none."""
    service, path = request.path_params["service"], request.path_params["path"]
    base = upstreams.get(service)
    if base is None:
        return JSONResponse({"error": "NotFound", "description": f"no service {service!r} on this dashboard"}, 404)
    url = f"{base}/{path}" + (f"?{request.url.query}" if request.url.query else "")
    headers = [(name, request.headers[name]) for name in _REQUEST_HEADERS if name in request.headers]
    if token:
        headers.append(("x-auth-token", token))
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_body:
            return JSONResponse({"error": "RequestEntityTooLarge", "description": f"more than {max_body} bytes"}, 413)
    try:
        answer = await client.request(request.method, url, headers, body, timeout=timeout)
    except HTTPError as exc:
        return JSONResponse({"error": "BadGateway", "description": f"the {service} service: {exc}"}, 502)
    kept = {name: value for name, value in answer.headers if name in _ANSWER_HEADERS or name == "content-type"}
    return Response(answer.body, answer.status, headers=kept)
