"""Southbound bounds its requests to the broker in flight (runtime.BROKER_CONNECTIONS)."""

from __future__ import annotations

import asyncio

import httpx

from iot_agent.config import Config
from iot_agent.provisioning.store import MemoryProvisioningStore
from iot_agent.south.measures import Southbound
from ngsi.client import NGSIClient

GROUP = {"apikey": "k", "resource": "/iot/d", "entity_type": "Thing", "service": "s", "subservice": "/"}


def test_requests_in_flight_are_bounded() -> None:
    async def scenario() -> tuple[int, int]:
        in_flight = peak = 0

        async def handler(request: httpx.Request) -> httpx.Response:
            nonlocal in_flight, peak
            in_flight += 1
            peak = max(peak, in_flight)
            await asyncio.sleep(0.01)
            in_flight -= 1
            return httpx.Response(204)

        ngsi = NGSIClient("http://broker", transport=httpx.MockTransport(handler))
        south = Southbound(MemoryProvisioningStore(), ngsi, Config(), max_in_flight=3)
        devices = [{"device_id": f"d{i}", "apikey": "k", "service": "s", "service_path": "/", "entity_type": "Thing"} for i in range(20)]
        sent = await asyncio.gather(*(south.send(d, GROUP, [{"t": i}]) for i, d in enumerate(devices)))
        await ngsi.aclose()
        return peak, sum(len(s) for s in sent)

    peak, sent = asyncio.run(scenario())
    assert sent == 20
    assert peak == 3
