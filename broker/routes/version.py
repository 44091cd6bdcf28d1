"""GET /version (Orion's shape) and GET /v2 (the entry points)."""

from __future__ import annotations

import functools
import platform
from pathlib import Path
import time

from starlette.responses import Response

from ..http import Call, Reply, Resource, json_response

ORION_VERSION = "4.1.0"  # the Orion release whose behaviour we follow; clients check it
STARTED = time.time()


def _uptime() -> str:
    seconds = int(time.time() - STARTED)
    days, seconds = divmod(seconds, 86400)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    return f"{days} d, {hours} h, {minutes} m, {seconds} s"


async def version(call: Call) -> Response:
    from importlib.metadata import version as package_version

    return json_response(
        {
            "orion": {
                "version": ORION_VERSION,
                "uptime": _uptime(),
                "git_hash": "nogitversion",
                "compile_time": "nodate",
                "compiled_by": "waziup",
                "compiled_in": "waziup",
                "release_date": "nodate",
                "machine": platform.machine(),
                "doc": "https://fiware-orion.rtfd.io/",
                "libversions": {"waziup": package_version("waziup"), "python": platform.python_version()},
            }
        }
    )


async def entry_points(call: Call) -> Response:
    return json_response(
        {
            "entities_url": "/v2/entities",
            "types_url": "/v2/types",
            "subscriptions_url": "/v2/subscriptions",
            "registrations_url": "/v2/registrations",
        }
    )


VERSION = Resource("GET", GET=version)
ENTRY_POINTS = Resource("GET", GET=entry_points)


_OPENAPI = Path(__file__).resolve().parents[1] / "openapi.json"


@functools.lru_cache(maxsize=1)
def _openapi_body() -> bytes:
    return _OPENAPI.read_bytes()


async def openapi(call: Call) -> Reply:
    """GET /openapi.json: the document of this API (broker/openapi.json), read once."""
    body = _openapi_body()
    return Reply(200, [(b"content-length", str(len(body)).encode()), (b"content-type", b"application/json")], body)


OPENAPI = Resource("GET", GET=openapi)
