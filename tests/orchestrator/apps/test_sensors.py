"""``needs.sensors``: the discovery part (``orchestrator/discovery``, real, reading a real
broker) answers each query, and the hits reach the app as ``WAZIUP_SENSORS``."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from orchestrator.appserver.config import Config
from orchestrator.apps.local import LocalBackend
from orchestrator.discovery.component import DiscoveryComponent
from orchestrator.waziup_api.store import open_store
from tests.conftest import BrokerProcess

MANIFEST = """name: sensing
runtime: shell
entry: printf '%s' "$WAZIUP_SENSORS" > sensors.json; exec sleep 60
needs:
  sensors: [{name: temps, query: temperature}, {name: wind, query: "wind speed"}]
"""


def test_sensor_hits_reach_the_app(tmp_path: Path, broker_process: Callable[[list[str]], BrokerProcess]) -> None:
    broker = broker_process(["-dbURI", "memory://"]).url
    httpx.post(broker + "/v2/entities", json={"id": "room1", "type": "Room",
                                              "temperature": {"type": "Number", "value": 21}}).raise_for_status()
    app = tmp_path / "sensing"
    app.mkdir()
    (app / "waziup-app.yaml").write_text(MANIFEST)
    config = Config(data_dir=str(tmp_path / "data"), broker_url=broker)

    async def work() -> None:
        store = open_store(config.store_url)
        await store.open()
        discovery = DiscoveryComponent(config)
        await discovery.open()
        backend = LocalBackend(config, store, discovery=discovery)
        try:
            progress: list[str] = []
            await backend.deploy(str(app), progress.append)
            assert "sensors 'temps': 1 found" in progress
            written = tmp_path / "data" / "apps" / "sensing" / "src" / "sensors.json"
            deadline = time.monotonic() + 5
            while not written.exists() or not written.read_text():
                assert time.monotonic() < deadline
                await asyncio.sleep(0.1)
            sensors = json.loads(written.read_text())
            assert [hit["entity_id"] for hit in sensors["temps"]] == ["room1"]
            assert sensors["temps"][0]["attr"] == "temperature" and sensors["wind"] == []
            await backend.undeploy("sensing")
        finally:
            await backend.close()
            await discovery.close()
            await store.close()

    asyncio.run(asyncio.wait_for(work(), 40))
