"""The NGSI client against the real broker: in-process (ASGI transport, no socket) and once
over the network (a broker process, the default http11 transport).

More in test_client_transports.py (both transports side by side, send, redirects,
timeouts) and test_client_asgi.py (the ASGI transport itself)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from broker.app import create_app
from broker.config import Config
from ngsi.client import ASGITransport, NGSIClient, NGSIClientError, NGSIConnectionError
from ngsi.client.http11 import ConnectError, HTTPClient

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@contextlib.asynccontextmanager
async def in_process_client(**options: Any) -> AsyncIterator[NGSIClient]:
    """A broker app with its lifespan running (run by the transport), and a client speaking
    to it through ASGI."""
    app = create_app(Config(db_uri="memory://", multiservice=True, notif_allowed_hosts=("127.0.0.1",)))
    async with NGSIClient("http://broker", transport=ASGITransport(app, lifespan=True), **options) as client:
        yield client


@pytest.fixture
async def ngsi(anyio_backend: str) -> AsyncIterator[NGSIClient]:
    async with in_process_client() as client:
        yield client


def room(n: int, temperature: float = 20.0) -> dict[str, Any]:
    return {"id": f"Room{n}", "type": "Room", "temperature": {"type": "Number", "value": temperature}}


async def test_create_get_and_location(ngsi: NGSIClient) -> None:
    location = await ngsi.create_entity(room(1))
    assert location == "/v2/entities/Room1?type=Room"
    entity = await ngsi.get_entity("Room1")
    assert entity == {"id": "Room1", "type": "Room", "temperature": {"type": "Number", "value": 20.0, "metadata": {}}}
    assert await ngsi.get_entity("Room1", "Room", key_values=True) == {"id": "Room1", "type": "Room", "temperature": 20.0}
    assert await ngsi.get_entity("Room1", attrs=["nothing"]) == {"id": "Room1", "type": "Room"}


async def test_errors_carry_orion_error_and_description(ngsi: NGSIClient) -> None:
    with pytest.raises(NGSIClientError) as missing:
        await ngsi.get_entity("nope")
    assert (missing.value.status, missing.value.error) == (404, "NotFound")
    assert missing.value.description == "The requested entity has not been found. Check type and id"
    await ngsi.create_entity(room(1))
    with pytest.raises(NGSIClientError) as dup:
        await ngsi.create_entity(room(1))
    assert (dup.value.status, dup.value.error, dup.value.description) == (422, "Unprocessable", "Already Exists")
    with pytest.raises(NGSIClientError) as bad:
        await ngsi.create_entity({"id": "bad id", "type": "T"})
    assert (bad.value.status, bad.value.error) == (400, "BadRequest")


async def test_upsert_and_key_values_create(ngsi: NGSIClient) -> None:
    await ngsi.create_entity({"id": "S1", "type": "Sensor", "t": 1}, key_values=True)
    await ngsi.create_entity({"id": "S1", "type": "Sensor", "h": {"type": "Number", "value": 5}}, upsert=True)
    assert await ngsi.get_entity("S1", key_values=True) == {"id": "S1", "type": "Sensor", "t": 1, "h": 5}


async def test_update_replace_and_delete(ngsi: NGSIClient) -> None:
    await ngsi.create_entity(room(1))
    await ngsi.update_attrs("Room1", {"pressure": {"type": "Number", "value": 720}}, "Room")
    await ngsi.update_attrs("Room1", {"temperature": 25}, key_values=True, existing_only=True)
    assert await ngsi.get_entity("Room1", key_values=True) == {"id": "Room1", "type": "Room", "temperature": 25, "pressure": 720}
    with pytest.raises(NGSIClientError) as strict:
        await ngsi.update_attrs("Room1", {"missing": {"value": 1}}, existing_only=True)
    assert strict.value.status == 422
    with pytest.raises(NGSIClientError) as appended:
        await ngsi.update_attrs("Room1", {"pressure": {"value": 1}}, append_only=True)
    assert appended.value.status == 422
    await ngsi.replace_attrs("Room1", {"humidity": {"type": "Number", "value": 40}})
    assert await ngsi.get_entity("Room1", key_values=True) == {"id": "Room1", "type": "Room", "humidity": 40}
    await ngsi.update_attr("Room1", "humidity", {"type": "Number", "value": 41}, "Room")
    assert (await ngsi.get_entity("Room1", key_values=True))["humidity"] == 41
    await ngsi.delete_entity("Room1", "Room")
    with pytest.raises(NGSIClientError):
        await ngsi.delete_entity("Room1")


async def test_query_pages_through_everything(ngsi: NGSIClient) -> None:
    await ngsi.op_update("append", [room(n, float(n)) for n in range(25)])
    everything = await ngsi.query(type="Room", page_size=7)
    assert [e["id"] for e in everything] == [f"Room{n}" for n in range(25)]
    assert len(await ngsi.query(type="Room", limit=10, page_size=3)) == 10
    assert [e["id"] for e in await ngsi.query(type="Room", offset=20, page_size=2)] == [f"Room{n}" for n in range(20, 25)]
    warm = await ngsi.query(type="Room", q="temperature>20", key_values=True, attrs=["temperature"], order_by="!temperature")
    assert warm[0] == {"id": "Room24", "type": "Room", "temperature": 24.0}
    assert len(warm) == 4
    assert await ngsi.count(id_pattern="^Room1") == 11
    assert await ngsi.query(type="Nothing") == []


async def test_op_update_and_op_query(ngsi: NGSIClient) -> None:
    await ngsi.op_update("append", [room(1), room(2)])
    await ngsi.op_update("update", [{"id": "Room1", "type": "Room", "temperature": 30}], key_values=True)
    found = await ngsi.op_query({"entities": [{"idPattern": ".*", "type": "Room"}], "attrs": ["temperature"]}, key_values=True, page_size=1)
    assert found == [{"id": "Room1", "type": "Room", "temperature": 30}, {"id": "Room2", "type": "Room", "temperature": 20.0}]
    await ngsi.op_update("delete", [{"id": "Room1", "type": "Room"}])
    assert await ngsi.count(type="Room") == 1
    with pytest.raises(NGSIClientError) as bad:
        await ngsi.op_update("nonsense", [room(1)])
    assert bad.value.status == 400


async def test_tenants_per_client_and_per_call(anyio_backend: str) -> None:
    async with in_process_client(service="smart", service_path="/city") as ngsi:
        await ngsi.create_entity(room(1))
        await ngsi.create_entity(room(2), service_path="/farm")
        await ngsi.create_entity(room(3), service="other", service_path=None)
        assert [e["id"] for e in await ngsi.query()] == ["Room1"]
        assert [e["id"] for e in await ngsi.query(service_path="/#")] == ["Room1", "Room2"]
        assert [e["id"] for e in await ngsi.query(service="other", service_path=None)] == ["Room3"]
        assert await ngsi.query(service=None, service_path=None) == []


async def test_correlator_is_passed_through(anyio_backend: str) -> None:
    seen: list[str | None] = []
    answered: list[str | None] = []
    app = create_app(Config(db_uri="memory://"))

    async def spy(scope: dict[str, Any], receive: Any, send: Any) -> None:
        """The broker app, seeing what reaches it and what it answers."""
        if scope["type"] == "http":
            seen.append(dict(scope["headers"]).get(b"fiware-correlator", b"").decode() or None)

            async def send_spied(message: Any) -> None:
                if message["type"] == "http.response.start":
                    answered.append(dict(message["headers"]).get(b"fiware-correlator", b"").decode())
                await send(message)

            await app(scope, receive, send_spied)
        else:
            await app(scope, receive, send)

    async with NGSIClient("http://broker", transport=ASGITransport(spy, lifespan=True), correlator="abc") as ngsi:
        await ngsi.create_entity(room(1))
        await ngsi.get_entity("Room1", correlator="call-1")
        await ngsi.get_entity("Room1", correlator=None)
    assert seen == ["abc", "call-1", None]
    assert answered[:2] == ["abc", "call-1"] and answered[2]  # the broker makes one up when none is sent


async def test_lifespan_run_by_the_caller(anyio_backend: str) -> None:
    """Without lifespan=True the transport leaves the lifespan to whoever owns the app."""
    app = create_app(Config(db_uri="memory://"))
    async with app.router.lifespan_context(app):
        async with NGSIClient("http://broker", transport=ASGITransport(app)) as ngsi:
            await ngsi.create_entity(room(1))
            assert (await ngsi.get_entity("Room1", key_values=True))["temperature"] == 20.0
        assert app.state.store is not None  # closing the client did not stop the app


async def test_subscriptions_and_registrations(ngsi: NGSIClient) -> None:
    sub_id = await ngsi.create_subscription(
        {"subject": {"entities": [{"idPattern": ".*"}]}, "notification": {"http": {"url": "http://127.0.0.1:1/notify"}}}
    )
    assert len(sub_id) == 24
    assert (await ngsi.get_subscription(sub_id))["id"] == sub_id
    await ngsi.update_subscription(sub_id, {"description": "d"})
    assert [s["description"] for s in await ngsi.list_subscriptions()] == ["d"]
    await ngsi.delete_subscription(sub_id)
    assert await ngsi.list_subscriptions() == []
    reg_id = await ngsi.create_registration(
        {
            "dataProvided": {"entities": [{"id": "Lamp1", "type": "Lamp"}], "attrs": ["on"]},
            "provider": {"http": {"url": "http://127.0.0.1:1/v2"}},
        }
    )
    assert (await ngsi.get_registration(reg_id))["id"] == reg_id
    assert [r["id"] for r in await ngsi.list_registrations()] == [reg_id]
    await ngsi.delete_registration(reg_id)
    with pytest.raises(NGSIClientError) as gone:
        await ngsi.delete_registration(reg_id)
    assert gone.value.status == 404


async def test_version(ngsi: NGSIClient) -> None:
    assert "orion" in await ngsi.version()


async def test_unreachable_broker_is_a_client_error(anyio_backend: str) -> None:
    from tests.conftest import free_port

    async with NGSIClient(f"http://127.0.0.1:{free_port()}", timeout=2) as ngsi:
        with pytest.raises(NGSIConnectionError) as down:
            await ngsi.get_entity("x")
    assert down.value.status == 0 and isinstance(down.value, NGSIClientError)
    assert down.value.error == "ConnectionError" and down.value.reason == "Could not connect to server"
    assert isinstance(down.value.__cause__, ConnectError)
    assert "GET http://127.0.0.1:" in down.value.description


def test_httpx_transports_are_refused() -> None:
    import httpx

    with pytest.raises(TypeError, match="HTTPClient"):
        NGSIClient("http://broker", transport=httpx.AsyncHTTPTransport())  # type: ignore[arg-type]


async def test_over_the_network(broker_process: Callable[[list[str]], Any], tmp_path: Any, anyio_backend: str) -> None:
    broker = broker_process(["-multiservice", "-data", str(tmp_path)])
    async with NGSIClient(broker.url, service="net", service_path="/a", max_per_host=2) as ngsi:
        assert isinstance(ngsi.transport, HTTPClient) and ngsi.transport.max_per_host == 2
        await ngsi.op_update("append", [room(n) for n in range(3)])
        await ngsi.update_attrs("Room0", {"temperature": 1}, key_values=True)
        assert [e["temperature"] for e in await ngsi.query(type="Room", key_values=True, page_size=2)] == [1, 20.0, 20.0]
        with pytest.raises(NGSIClientError) as missing:
            await ngsi.get_entity("Room9")
        assert missing.value.error == "NotFound"
        assert ngsi.transport.connections("http", "127.0.0.1", broker.port)[0] == 1  # one keep-alive connection
