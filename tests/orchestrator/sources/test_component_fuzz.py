"""Bad input never makes a 500: any body to POST/PUT /sources is a source (201/200), or a
JSON error naming the field (400), or 409/413."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
from pathlib import Path
from typing import Any

import httpx
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette

from orchestrator.appserver.config import Config
from orchestrator.sources.component import SourcesComponent
from tests.orchestrator.sources.servers import broker

BASE: dict[str, Any] = {"name": "f", "kind": "http-json", "url": "http://127.0.0.1:9/x", "interval": 3600,
                        "entity": {"id": "id", "type": "'T'", "attrs": {"t": {"value": "t", "type": "Number"}}}}
values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=8,
)
paths = st.lists(st.sampled_from(["name", "kind", "url", "entity", "id", "type", "attrs", "t", "value", "paging",
                                  "next", "param", "auth", "basic", "mqtt", "host", "topic", "headers", "csv",
                                  "tenant", "servicePath", "batch", "backoff", "initial"]), min_size=1, max_size=4)


def mutated(path: list[str], value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(BASE)
    target: Any = doc
    for key in path[:-1]:
        if not isinstance(target, dict):
            return doc
        target = target.setdefault(key, {})
    if isinstance(target, dict):
        target[path[-1]] = value
    return doc


def test_no_body_makes_a_500(tmp_path: Path) -> None:
    loop = asyncio.new_event_loop()
    stack = contextlib.AsyncExitStack()

    async def setup() -> httpx.AsyncClient:
        ngsi = await stack.enter_async_context(broker())
        component = SourcesComponent(Config(data_dir=str(tmp_path)), broker=ngsi)
        await component.open()
        stack.push_async_callback(component.close)
        app = Starlette(routes=component.routes())
        transport = httpx.ASGITransport(app=app)
        return await stack.enter_async_context(httpx.AsyncClient(transport=transport, base_url="http://orch"))

    client = loop.run_until_complete(setup())

    @settings(max_examples=150, deadline=None)
    @given(body=st.binary(max_size=64) | st.builds(mutated, paths, values).map(lambda d: json.dumps(d).encode())
           | st.builds(mutated, paths, values).map(lambda d: yaml.safe_dump(d).encode()),
           put=st.booleans())
    def check(body: bytes, put: bool) -> None:
        send = client.put("/sources/f", content=body) if put else client.post("/sources", content=body)
        answer = loop.run_until_complete(send)
        assert answer.status_code in (200, 201, 400, 409), answer.text
        if answer.status_code >= 400:
            shown = answer.json()
            assert set(shown) == {"error", "description"} and shown["description"]
        else:
            assert answer.json()["name"] == "f"
            assert loop.run_until_complete(client.delete("/sources/f")).status_code == 204

    try:
        check()
    finally:
        loop.run_until_complete(stack.aclose())
        loop.close()
