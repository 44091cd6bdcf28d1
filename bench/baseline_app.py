"""The yardstick: a bare Starlette handler on the broker's server stack (uvicorn + httptools + uvloop).

``python bench/baseline_app.py PORT``. Every broker figure is also printed as a ratio to this
app's, which shows how much of the cost is the broker's own and how much the stack's.
"""

from __future__ import annotations

import sys

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def entity(request: Request) -> JSONResponse:
    return JSONResponse({"id": "Room1", "type": "Room", "temperature": {"type": "Number", "value": 23.5, "metadata": {}}})


app = Starlette(routes=[Route("/", entity)])

if __name__ == "__main__":
    uvicorn.run(
        app, host="127.0.0.1", port=int(sys.argv[1]), http="httptools", loop="uvloop",
        log_level="warning", access_log=False, server_header=False, lifespan="off",
    )
