"""HTTP south (7896): UL and JSON measures, errors, the WAZIUP gateway endpoint and script."""

from __future__ import annotations

import httpx
import pytest

from iot_agent.south import gateway

from .conftest import AgentStack, new_service

GROUP = {
    "resource": "/iot/d",
    "entity_type": "Thing",
    "attributes": [{"object_id": "t", "name": "temperature", "type": "Number"}],
}


def values(entity: dict[str, object]) -> dict[str, object]:
    return {k: v["value"] for k, v in entity.items() if isinstance(v, dict)}  # type: ignore[index]


def test_ul_get_and_post(stack: AgentStack) -> None:
    service = new_service()
    key = "k" + service
    stack.provision(service, groups=[{**GROUP, "apikey": key}])
    got = httpx.get(stack.south + "/iot/d", params={"i": "h1", "k": key, "d": "t|20|s|on"})
    assert got.status_code == 200 and got.text == ""
    assert got.headers["x-processing-time"].isdigit()
    assert values(stack.wait_entity(service, "Thing:h1")) == {"temperature": 20, "s": "on"}
    posted = httpx.post(stack.south + "/iot/d", params={"i": "h1", "k": key}, content="t|21#t|22", headers={"content-type": "text/plain"})
    assert posted.status_code == 200
    stack.wait_entity(service, "Thing:h1", lambda e: values(e)["temperature"] == 22)
    timed = httpx.get(stack.south + "/iot/d", params={"i": "h1", "k": key, "d": "t|23", "t": "2024-05-01T10:00:00Z"})
    assert timed.status_code == 200
    entity = stack.wait_entity(service, "Thing:h1", lambda e: values(e)["temperature"] == 23)
    assert entity["TimeInstant"]["value"].startswith("2024-05-01T10:00:00")


def test_json_endpoints(stack: AgentStack) -> None:
    service = new_service()
    key = "k" + service
    stack.provision(service, groups=[{**GROUP, "resource": "/iot/json", "apikey": key}])
    assert httpx.post(stack.south + "/iot/json", params={"i": "j1", "k": key}, json={"t": 5, "on": True}).status_code == 200
    assert values(stack.wait_entity(service, "Thing:j1")) == {"temperature": 5, "on": True}
    assert httpx.post(stack.south + "/iot/json", params={"i": "j1", "k": key}, json=[{"t": 6}, {"t": 7}]).status_code == 200
    stack.wait_entity(service, "Thing:j1", lambda e: values(e)["temperature"] == 7)
    single = httpx.post(stack.south + "/iot/json/attrs/t", params={"i": "j1", "k": key}, content=b"8", headers={"content-type": "application/json"})
    assert single.status_code == 200
    stack.wait_entity(service, "Thing:j1", lambda e: values(e)["temperature"] == 8)
    raw = httpx.post(stack.south + "/iot/json/attrs/blob", params={"i": "j1", "k": key}, content=b"\x01\xff", headers={"content-type": "application/octet-stream"})
    assert raw.status_code == 200
    stack.wait_entity(service, "Thing:j1", lambda e: values(e).get("blob") == "01ff")


def test_errors(stack: AgentStack) -> None:
    service = new_service()
    key = "k" + service
    stack.provision(service, groups=[{**GROUP, "apikey": key, "autoprovision": False}])

    def error(response: httpx.Response) -> tuple[int, str]:
        assert "x-processing-time" in response.headers
        return response.status_code, response.json()["name"]

    assert error(httpx.get(stack.south + "/iot/d", params={"i": "x"})) == (400, "MANDATORY_PARAMS_NOT_FOUND")
    assert httpx.get(stack.south + "/iot/d").json()["message"] == (
        "Some of the mandatory params weren't found in the request: [\"i\",\"k\"]"
    )
    assert error(httpx.get(stack.south + "/iot/d", params={"i": "x", "k": "nokey" + service, "d": "t|1"})) == (404, "DEVICE_GROUP_NOT_FOUND")
    assert error(httpx.get(stack.south + "/iot/d", params={"i": "x", "k": key, "d": "t|1"})) == (404, "DEVICE_NOT_FOUND")
    stack.provision(service, devices=[{"device_id": "x", "apikey": key}])
    assert error(httpx.post(stack.south + "/iot/d", params={"i": "x", "k": key}, content="t||")) == (400, "PARSE_ERROR")
    assert error(httpx.post(stack.south + "/iot/json", params={"i": "x", "k": key}, content="{bad")) == (400, "PARSE_ERROR")
    assert error(httpx.post(stack.south + "/iot/json", params={"i": "x", "k": key}, content="42")) == (400, "PARSE_ERROR")


def test_waziup_gateway(stack: AgentStack, monkeypatch: pytest.MonkeyPatch) -> None:
    service = new_service()
    key = "k" + service
    stack.provision(service, groups=[{"resource": "/iot/waziup", "apikey": key, "entity_type": "SensingDevice"}])
    env = {"WAZIUP_IOTA_URL": stack.south, "WAZIUP_GW_APIKEY": key, "WAZIUP_GW_ORG": "UPPA"}
    status, _ = gateway.post("\\!TC/21.5/HU/60", "1,16,3,0,10,8,-45", "500,5,12", "2016-10-04T02:03:28.783385", "00000027EBBEDA21", environ=env)
    assert status == 200
    entity = stack.wait_entity(service, "SensingDevice:UPPA_Sensor3")
    assert values(entity) == {"TC": 21.5, "HU": 60, "TimeInstant": "2016-10-04T02:03:28.783Z"}
    # a LoRaWAN node the gateway relays (dst 256): named by its DevAddr in hex, as the cloud script does
    status, _ = gateway.post("TC/19", "256,64,637607352,0,23,8,-45", "500,5,12", "", "gw", environ=env)
    assert status == 200
    assert values(stack.wait_entity(service, "SensingDevice:UPPA_Sensor0x26011DB8")) == {"TC": 19}
    # the command-line entry point, with a service tree in the payload
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert gateway.main(["\\!-TESTS#TC/22", "1,16,2,0,10,8,-45", "500,5,12", "", "gw"]) == 0
    assert values(stack.wait_entity(service, "SensingDevice:UPPA-TESTS_Sensor2")) == {"TC": 22}
    assert gateway.main(["too", "few"]) == 2
    monkeypatch.setenv("WAZIUP_GW_APIKEY", "unknown" + service)
    assert gateway.main(["TC/1", "1,16,2,0,10,8,-45", "", "", "gw"]) == 1


def test_concurrent_readings_and_one_refused(stack: AgentStack) -> None:
    """Readings of many devices at once (they share batches): each answer says what the broker did
    with that reading, and a reading the broker refuses does not take the others down with it."""
    import asyncio

    service = new_service()
    key = "k" + service
    stack.provision(service, groups=[{**GROUP, "apikey": key}])

    async def send_all() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=30) as client:
            return await asyncio.gather(*(
                client.get(stack.south + "/iot/d", params={"i": f"c{i}", "k": key, "d": "bad(name|1" if i == 7 else f"t|{i}"})
                for i in range(30)
            ))

    first = httpx.get(stack.south + "/iot/d", params={"i": "c0", "k": key, "d": "t|0"})  # autoprovision the group's path
    assert first.status_code == 200
    responses = asyncio.run(send_all())
    assert [r.status_code for r in responses] == [400 if i == 7 else 200 for i in range(30)]
    assert responses[7].json()["name"] == "BAD_REQUEST"
    for i in (0, 6, 8, 29):
        assert values(stack.wait_entity(service, f"Thing:c{i}"))["temperature"] == i
    assert stack.entity(service, "Thing:c7") is None
