"""Runtime node-red on the local back end: a flow (``http in`` on /health and /notify) is
deployed, started by the ``node-red`` program, and receives the notifications of the
subscription its manifest asked for (the broker records each delivery's success).
Skipped where Node-RED is not installed (``scripts/install-node-red.sh``)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from orchestrator.appserver.config import Config
from orchestrator.apps.local import LocalBackend
from orchestrator.apps.runtimes import find_node_red
from orchestrator.waziup_api.store import open_store
from tests.conftest import BrokerProcess

FLOWS = [
    {"id": "t1", "type": "tab", "label": "app"},
    {"id": "h1", "type": "http in", "z": "t1", "url": "/health", "method": "get", "wires": [["r1"]]},
    {"id": "n1", "type": "http in", "z": "t1", "url": "/notify", "method": "post", "wires": [["r2"]]},
    {"id": "r1", "type": "http response", "z": "t1", "statusCode": "200", "wires": []},
    {"id": "r2", "type": "http response", "z": "t1", "statusCode": "204", "wires": []},
]
MANIFEST = """name: flow-app
runtime: node-red
entry: flows.json
ports: [{name: http, port: 1880}]
health: {path: /health, interval: 1, grace: 40}
needs:
  subscriptions: [{entities: [{idPattern: ".*", type: Room}], attrs: [temperature], endpoint: /notify}]
"""


def test_node_red_flow_receives_its_subscription(tmp_path: Path,
                                                 broker_process: Callable[[list[str]], BrokerProcess]) -> None:
    import os

    if find_node_red(tmp_path, os.environ) is None:
        pytest.skip("Node-RED is not installed (scripts/install-node-red.sh)")
    app = tmp_path / "flow-app"
    app.mkdir()
    (app / "waziup-app.yaml").write_text(MANIFEST)
    (app / "flows.json").write_text(json.dumps(FLOWS))
    broker = broker_process(["-dbURI", "memory://"]).url
    config = Config(data_dir=str(tmp_path / "data"), broker_url=broker)

    async def work() -> None:
        store = open_store(config.store_url)
        await store.open()
        backend = LocalBackend(config, store, ingress=False)
        await backend.open()
        try:
            status = await backend.deploy(str(app))
            assert status["healthy"] and len(status["subscriptions"]) == 1
            async with httpx.AsyncClient() as client:
                await client.post(broker + "/v2/entities", json={"id": "r1", "type": "Room",
                                                                  "temperature": {"type": "Number", "value": 3}})
                deadline = time.monotonic() + 15
                while True:
                    sub = (await client.get(broker + f"/v2/subscriptions/{status['subscriptions'][0]}")).json()
                    http = sub["notification"]
                    if http.get("lastSuccess") and http.get("lastSuccessCode") == 204:
                        break
                    assert time.monotonic() < deadline, sub
                    await asyncio.sleep(0.2)
            await backend.undeploy("flow-app")
        finally:
            await backend.close()
            await store.close()

    asyncio.run(asyncio.wait_for(work(), 50))
