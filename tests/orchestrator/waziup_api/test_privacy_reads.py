"""Privacy policies on the WAZIUP API's reads (issue 18, docs/privacy.md, docs/waziup-api.md
"Privacy"): the API answers its users itself, so it applies each caller's release to the
devices, sensors, values and datapoints it reads with its own account.

A broker, a history service and the WAZIUP API on loopback ports (uvicorn, in threads);
the accounts and the identity manager's privacy export are stand-ins: tokens name the user
(``Bearer carol``), and the feed holds a given snapshot."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette

from analytics.history.app import create_app as history_app
from analytics.history.config import Config as HistoryConfig
from broker.app import create_app as broker_app
from broker.config import Config as BrokerConfig
from ngsi.release import Block
from orchestrator.waziup_api.app import create_app as api_app
from orchestrator.waziup_api.caller import GUEST, Caller
from orchestrator.waziup_api.config import Config
from orchestrator.waziup_api.errors import ApiError
from orchestrator.waziup_api.privacy import ApiPrivacy
from security.privacy.feed import PrivacyFeed
from security.privacy.keys import KeyRing
from security.privacy.policy import parse_policies
from security.privacy.release import Snapshot
from security.privacy.transforms import generalize_geohash
from tests.conftest import free_port

LAT, LON = 14.69370, -17.44406  # Dakar
POLICIES = [
    {"id": "carol-coarse", "consumer": {"kind": "user", "id": "id-carol"}, "tenant": "waziup",
     "entityType": "Device",
     "attributes": {"TC2": [{"transform": "drop"}],
                    "location": [{"transform": "generalize", "geohash": 5}],
                    "TC1": [{"transform": "generalize", "bucket": 10}],
                    "TimeInstant": [{"transform": "generalize", "period": "PT1H"}],
                    "*": []}},
    {"id": "dave-aggregates", "consumer": {"kind": "user", "id": "id-dave"}, "tenant": "waziup",
     "attributes": {"*": []}, "aggregation": {"methods": ["avg"], "period": "hour"}},
]
USERS = {name: Caller(name, user_id=f"id-{name}") for name in ("alice", "bob", "carol", "dave")}
USERS["admin"] = Caller("admin", admin=True, user_id="id-admin")


class FixedFeed(PrivacyFeed):
    """The identity manager's export, as a given snapshot (None: it cannot be read)."""

    def __init__(self, snapshot: Snapshot | None) -> None:
        super().__init__(None, 1.0)  # type: ignore[arg-type]  # never polls
        self.set(snapshot)

    def set(self, snapshot: Snapshot | None) -> None:
        self.snapshot = snapshot
        self._first = asyncio.Event()
        if snapshot is not None:
            self._first.set()

    def start(self) -> None:
        pass


class TokenAccounts:
    """Accounts whose bearer token is the username."""

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def caller(self, authorization: str | None) -> Caller:
        name = (authorization or "").removeprefix("Bearer ")
        return USERS.get(name, GUEST)

    async def user_by_username(self, username: str) -> dict[str, Any] | None:
        return None


class Served:
    def __init__(self, app: Starlette, what: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.what = what
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Served:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), f"{self.what} did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


class World:
    def __init__(self, api: str, feed: FixedFeed, spent: list[tuple[str, str, float]]) -> None:
        self.http = httpx.Client(base_url=api + "/api/v2", timeout=15)
        self.feed = feed
        self.spent = spent

    def get(self, path: str, who: str | None = None, **params: Any) -> httpx.Response:
        return self.http.get(path, params=params, headers={"Authorization": f"Bearer {who}"} if who else {})


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    data = tmp_path_factory.mktemp("privacy-reads")
    feed = FixedFeed(Snapshot(1, parse_policies(POLICIES), KeyRing.generate()))
    spent: list[tuple[str, str, float]] = []

    async def spend(consumer: str, policy_id: str, epsilon: float) -> bool:
        spent.append((consumer, policy_id, epsilon))
        return True

    broker = Served(broker_app(BrokerConfig(db_uri="memory://", multiservice=True, data_dir=str(data))), "the broker")
    history = Served(history_app(HistoryConfig(port=0, data_dir=str(data))), "the history")
    with broker, history:
        config = Config(port=0, host="127.0.0.1", data_dir=str(data), broker_url=broker.url, history_url=history.url,
                        mqtt_port=0)
        privacy = ApiPrivacy(feed, tenant=config.service, spend=spend, wait=0.2)
        with Served(api_app(config, accounts=TokenAccounts(), privacy=privacy), "the WAZIUP API") as api:  # type: ignore[arg-type]
            running = World(api.url, feed, spent)
            _populate(running)
            try:
                yield running
            finally:
                running.http.close()


def _populate(world: World) -> None:
    alice = {"Authorization": "Bearer alice"}
    device = {"id": "D1", "name": "weather", "location": {"latitude": LAT, "longitude": LON},
              "sensors": [{"id": "TC1", "name": "temperature", "unit": "DegreeCelsius"}, {"id": "TC2", "name": "rain"}],
              "actuators": [{"id": "A1", "value": 3}]}
    assert world.http.post("/devices", json=device, headers=alice).status_code == 204
    for sensor, value, stamp in (("TC1", 21.5, "2024-05-01T10:17:00Z"), ("TC2", 3, "2024-05-01T10:18:00Z"),
                                 ("TC1", 37.25, "2024-05-01T10:19:00Z")):
        answer = world.http.post(f"/devices/D1/sensors/{sensor}/value", json={"value": value, "timestamp": stamp},
                                 headers=alice)
        assert answer.status_code == 204, answer.text


def _sensor_ids(device: dict[str, Any]) -> list[str]:
    return [s["id"] for s in device["sensors"]]


RAW_LOCATION = {"latitude": LAT, "longitude": LON}


def _coarse_location() -> dict[str, float]:
    lon, lat = generalize_geohash({"type": "Point", "coordinates": [LON, LAT]}, 5)["coordinates"]
    return {"latitude": lat, "longitude": lon}


def test_a_consumer_with_a_policy_sees_the_device_transformed(world: World) -> None:
    device = world.get("/devices/D1", "carol").json()
    assert _sensor_ids(device) == ["TC1"]  # TC2 dropped
    assert device["location"] == _coarse_location() != RAW_LOCATION
    assert device["sensors"][0]["value"]["value"] == 30  # the bucket of 37.25
    assert device["sensors"][0]["name"] == "temperature" and device["actuators"][0]["id"] == "A1"
    listed = [d for d in world.get("/devices", "carol").json() if d["id"] == "D1"]
    assert listed == [device]


def test_a_consumer_with_a_policy_sees_sensors_and_values_transformed(world: World) -> None:
    assert [s["id"] for s in world.get("/devices/D1/sensors", "carol").json()] == ["TC1"]
    assert world.get("/devices/D1/sensors/TC2", "carol").status_code == 404
    assert world.get("/devices/D1/sensors/TC1", "carol").json()["value"]["value"] == 30
    points = world.get("/devices/D1/sensors/TC1/values", "carol").json()
    assert [p["value"] for p in points] == [20, 30]
    assert {p["date_received"][13:] for p in points} == {":00:00.000Z"}  # the index, to the hour
    assert world.get("/devices/D1/sensors/TC2/values", "carol").json() == []
    everything = world.get("/sensors_data", "carol", device_id="D1").json()
    assert [(p["sensor_id"], p["value"]) for p in everything] == [("TC1", 20), ("TC1", 30)]


@pytest.mark.parametrize("who", ["bob", "alice", "admin", None])
def test_others_the_owner_and_the_admin_see_raw_data(world: World, who: str | None) -> None:
    device = world.get("/devices/D1", who).json()
    assert _sensor_ids(device) == ["TC1", "TC2"]
    assert device["location"] == RAW_LOCATION
    assert device["sensors"][0]["value"]["value"] == 37.25
    points = world.get("/sensors_data", who, device_id="D1").json()
    assert [(p["sensor_id"], p["value"]) for p in points] == [("TC1", 21.5), ("TC2", 3), ("TC1", 37.25)]
    assert points[0]["timestamp"] == "2024-05-01T10:17:00Z"
    assert not points[0]["date_received"].endswith(":00:00.000Z")


def test_history_is_refused_to_a_consumer_of_aggregates_only(world: World) -> None:
    answer = world.get("/devices/D1/sensors/TC1/values", "dave")
    assert answer.status_code == 403
    assert "aggregates only" in answer.text and answer.headers["content-type"].startswith("text/plain")
    assert world.get("/sensors_data", "dave", device_id="D1").status_code == 403
    assert _sensor_ids(world.get("/devices/D1", "dave").json()) == ["TC1", "TC2"]  # "*": [] as is


def test_without_the_policies_device_reads_are_503_except_for_the_owner(world: World) -> None:
    snapshot = world.feed.snapshot
    world.feed.set(None)
    try:
        for who in ("carol", "bob", None):
            answer = world.get("/devices/D1", who)
            assert answer.status_code == 503 and answer.headers["content-type"].startswith("text/plain"), who
            assert world.get("/devices/D1/sensors/TC1/values", who).status_code == 503
        assert world.get("/devices/D1", "alice").json()["location"] == RAW_LOCATION
        assert world.get("/devices/D1/sensors/TC1/values", "alice").status_code == 200
        assert world.get("/devices/D1", "admin").status_code == 200
    finally:
        world.feed.set(snapshot)
    assert world.get("/devices/D1", "carol").status_code == 200


def test_no_identity_manager_no_privacy() -> None:
    assert ApiPrivacy.from_config(Config()) is None
    assert ApiPrivacy.from_config(Config(idm_url="http://idm.test", client_id="c", client_secret="s")) is None
    with_admin = ApiPrivacy.from_config(Config(idm_url="http://idm.test", client_id="c", client_secret="s",
                                                admin_user="admin", admin_password="pw"))
    assert with_admin is not None and with_admin.app_id == "c" and with_admin.tenant == "waziup"


def test_no_budget_is_spent_without_noise(world: World) -> None:
    world.get("/devices/D1/sensors/TC1/values", "carol")
    assert world.spent == []


# -- the identity manager's export and budget, as the API follows them ------------------------------

NOISY = {"id": "erin-noised", "consumer": {"kind": "user", "id": "id-erin"}, "tenant": "waziup",
         "attributes": {"TC1": [{"transform": "noise", "epsilon": 0.5, "sensitivity": 1}], "*": []},
         "budget": {"epsilon": 1.0, "period": "P1D"}}


def test_the_identity_managers_export_and_budget(tmp_path: Path) -> None:
    """The feed reads ``/v1/privacy/export`` with the API's admin account and the budget is
    spent at the identity manager: two noised answers fit an allowance of 1.0, a third is a 403."""
    from ngsi.client import ASGITransport
    from security.pep.idm import IdMClient
    from security.privacy.guard import idm_spend
    from tests.security.idm.conftest import ADMIN_PASSWORD, Clock, make_config, running

    async def run() -> None:
        async with running(make_config(tmp_path), Clock()) as idm:
            made = await idm.http.post("/v1/privacy/policies", headers=idm.admin(), json=NOISY)
            assert made.status_code == 201, made.text
            client = IdMClient("http://idm.test", transport=ASGITransport(idm.app), username="admin@test.com",
                               password=ADMIN_PASSWORD)
            privacy = ApiPrivacy(PrivacyFeed(client, 0.05), tenant="waziup", spend=idm_spend(client))
            privacy.start()
            try:
                erin = Caller("erin", user_id="id-erin")
                release = await privacy.release(erin)
                assert release is not None and [p.id for p in release.snapshot.policies] == ["erin-noised"]
                assert await privacy.release(USERS["bob"]) is None  # no policy concerns bob
                block = Block("D1", "Device", "/", ["2024-05-01T10:17:00.000Z"], {"TC1": [21.5], "TC2": [3]})
                for _ in range(2):
                    out = (await privacy.history(erin, [block], owned=()))[0]
                    assert out.values["TC2"] == [3] and out.values["TC1"] != [21.5]
                with pytest.raises(ApiError) as refused:
                    await privacy.history(erin, [block], owned=())
                assert refused.value.status == 403 and "budget" in refused.value.text
                assert (await privacy.history(erin, [block], owned=["D1"]))[0] is block  # erin's own device
            finally:
                await privacy.close()

    asyncio.run(run())
