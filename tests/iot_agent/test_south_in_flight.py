"""Southbound's requests to the broker (``south.batch``): batches, order, bounds, failures.

The broker here is a real HTTP/1.1 server on loopback that records every request, answers
after a pause (so that requests overlap and readings pile up), and refuses (400, Orion's
error body) any request whose body holds a forbidden name.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import pytest

from iot_agent.config import Config
from iot_agent.errors import CBRequestError
from iot_agent.provisioning.store import MemoryProvisioningStore
from iot_agent.south.ingest import Southbound
from ngsi.client import NGSIClient

GROUP = {
    "apikey": "k", "resource": "/iot/d", "entity_type": "Thing", "service": "s", "subservice": "/",
    "attributes": [{"object_id": "t", "name": "temperature", "type": "Number"}],
}
BAD = "bad("  # an attribute name the fake broker refuses, as Orion refuses forbidden characters


def device(i: int | str) -> dict[str, Any]:
    return {"device_id": f"d{i}", "apikey": "k", "service": "s", "service_path": "/", "entity_type": "Thing"}


class Broker:
    """Records (method, target, headers, body) of each request; at most ``peak`` at once."""

    def __init__(self, delay: float = 0.01) -> None:
        self.delay = delay
        self.requests: list[tuple[str, str, dict[str, str], Any]] = []
        self.in_flight = self.peak = 0
        self.server: asyncio.AbstractServer | None = None

    async def __aenter__(self) -> Broker:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode().split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:] if line)}
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self.in_flight += 1
                self.peak = max(self.peak, self.in_flight)
                await asyncio.sleep(self.delay)
                self.in_flight -= 1
                self.requests.append((method, target, headers, orjson.loads(body)))
                if BAD.encode() in body:
                    answer = b'{"error":"BadRequest","description":"Invalid characters in attribute name"}'
                    writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(answer), answer))
                else:
                    writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    def entities(self) -> list[dict[str, Any]]:
        """Every entity received, in the order the broker would apply them."""
        out = []
        for _, target, _, body in self.requests:
            out.extend(body["entities"] if target.startswith("/v2/op/update") else [body])
        return out


def run(scenario: Callable[[Broker], Awaitable[Any]], delay: float = 0.01) -> Any:
    async def main() -> Any:
        async with Broker(delay) as broker:
            return await scenario(broker)

    return asyncio.run(main())


def south_for(broker: Broker, **options: Any) -> Southbound:
    return Southbound(MemoryProvisioningStore(), NGSIClient(broker.url), Config(), **options)


def test_readings_of_many_devices_share_a_request() -> None:
    async def scenario(broker: Broker) -> None:
        south = south_for(broker, max_in_flight=8)
        sent = await asyncio.gather(*(south.send(device(i), GROUP, [{"t": i}]) for i in range(50)))
        await south.aclose()
        assert [len(s) for s in sent] == [1] * 50
        # the first reading of each lane goes alone, the rest pile up behind it
        assert len(broker.requests) < 10
        batches = [r for r in broker.requests if r[1] == "/v2/op/update"]
        assert batches and all(body["actionType"] == "append" for _, _, _, body in batches)
        assert all(headers["fiware-service"] == "s" and headers["fiware-servicepath"] == "/" for _, _, headers, _ in broker.requests)
        got = {e["id"]: e["temperature"]["value"] for e in broker.entities()}
        assert got == {f"Thing:d{i}": i for i in range(50)}

    run(scenario)


def test_a_lone_reading_is_an_upsert() -> None:
    async def scenario(broker: Broker) -> None:
        south = south_for(broker)
        await south.send(device(1), GROUP, [{"t": 5}])
        await south.send(device(1), GROUP, [{"t": 6}, {"t": 7}])  # UL "t|6#t|7": one append of two
        await south.aclose()
        assert [(m, t) for m, t, _, _ in broker.requests] == [("POST", "/v2/entities?options=upsert"), ("POST", "/v2/op/update")]
        assert broker.requests[0][3] == {"id": "Thing:d1", "type": "Thing", "temperature": {"type": "Number", "value": 5}}
        assert [e["temperature"]["value"] for e in broker.requests[1][3]["entities"]] == [6, 7]

    run(scenario)


def test_requests_in_flight_are_bounded() -> None:
    async def scenario(broker: Broker) -> None:
        south = south_for(broker, max_in_flight=3, lanes=16)
        sent = await asyncio.gather(*(south.send(device(i), GROUP, [{"t": i}]) for i in range(40)))
        await south.aclose()
        assert sum(len(s) for s in sent) == 40
        assert broker.peak == 3
        assert len(broker.entities()) == 40

    run(scenario, delay=0.02)


def test_a_device_keeps_its_order() -> None:
    async def scenario(broker: Broker) -> None:
        south = south_for(broker, max_in_flight=8, lanes=4)
        for i in range(200):
            for d in range(5):
                south.submit(device(d), GROUP, [{"t": i}], wait=False)
            if i % 7 == 0:
                await asyncio.sleep(0.003)  # readings arrive while requests are out
        await south.batcher.idle()
        await south.aclose()
        for d in range(5):
            seen = [e["temperature"]["value"] for e in broker.entities() if e["id"] == f"Thing:d{d}"]
            assert seen == list(range(200))
        assert len(broker.requests) < 200

    run(scenario, delay=0.005)


def test_a_refused_reading_does_not_lose_the_others() -> None:
    async def scenario(broker: Broker) -> None:
        south = south_for(broker, max_in_flight=1, lanes=1)
        first = asyncio.ensure_future(south.send(device("first"), GROUP, [{"t": 0}]))
        await asyncio.sleep(0.002)  # out alone; the next ones pile up into one batch behind it
        results = await asyncio.gather(
            *(south.send(device(i), GROUP, [{BAD if i == 3 else "t": i}]) for i in range(6)), return_exceptions=True
        )
        await first
        await south.aclose()
        assert [type(r) for r in results] == [list, list, list, CBRequestError, list, list]
        error = results[3]
        assert isinstance(error, CBRequestError)
        assert error.message == "Request error connecting to the Context Broker: 400 BadRequest: Invalid characters in attribute name"
        assert any(t == "/v2/op/update" and len(b["entities"]) == 6 for _, t, _, b in broker.requests)  # the batch...
        accepted = {e["id"] for _, t, _, b in broker.requests if BAD.encode() not in orjson.dumps(b) for e in ([b] if t.startswith("/v2/entities") else b["entities"])}
        assert accepted == {"Thing:dfirst"} | {f"Thing:d{i}" for i in range(6) if i != 3}  # ...then one by one

    run(scenario)


def test_no_broker_fails_every_reading() -> None:
    async def scenario(broker: Broker) -> None:
        assert broker.server is not None
        url = broker.url
        broker.server.close()
        await broker.server.wait_closed()
        south = Southbound(MemoryProvisioningStore(), NGSIClient(url), Config(), max_in_flight=1, lanes=1)
        results = await asyncio.gather(*(south.send(device(i), GROUP, [{"t": i}]) for i in range(4)), return_exceptions=True)
        await south.aclose()
        assert all(isinstance(r, CBRequestError) and "ConnectionError" in r.message for r in results)

    run(scenario)


@pytest.mark.parametrize("flow", [False, True])
def test_flow_control_and_tenants_are_kept_apart(flow: bool) -> None:
    async def scenario(broker: Broker) -> None:
        south = south_for(broker)
        other = {**device("o"), "service": "other", "useCBflowControl": flow}
        await asyncio.gather(*(south.send(device(i), GROUP, [{"t": i}]) for i in range(4)), south.send(other, GROUP, [{"t": 9}]))
        await south.aclose()
        (request,) = [r for r in broker.requests if r[2]["fiware-service"] == "other"]
        assert request[1] == ("/v2/entities?options=upsert,flowControl" if flow else "/v2/entities?options=upsert")
        assert request[3]["id"] == "Thing:do"

    run(scenario)
