"""The request seam on the IoT agent: ``--guard module:factory`` puts a guard before routing
on both its ports (north :4041 and south :7896), as the orchestrator composes them.

The agent runs as users run it (``waziup iot-agent``); the guard below rejects requests
without ``X-Key`` in the agents' error shape and stamps every answer it lets through.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from iot_agent.config import Config
from ngsi.server.guards import Incoming, Verdict, admit, reject
from ngsi.server.reply import json_reply

from .conftest import AgentStack, new_service, running, tenant

KEY = {"x-key": "open-sesame"}


async def needs_key(request: Incoming) -> Verdict | None:
    if request.path == "/iot/about":  # what the test harness polls to see the agent up
        return None
    if request.headers.get("x-key") != "open-sesame":
        return reject(json_reply({"name": "UNAUTHORIZED", "message": "no key"}, 401))
    return admit(headers=[(b"x-guarded", request.ctx.tenant.encode() or b"-")])


def factory(config: Config) -> Any:
    assert isinstance(config, Config)  # the agent's own configuration reaches the factory
    return needs_key


@pytest.fixture(scope="module")
def guarded(mosquitto: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentStack]:
    guard = ["--guard", "tests.iot_agent.test_guards:factory"]
    with running(lambda broker: AgentStack(broker, mosquitto.host, mosquitto.port, guard),
                 tmp_path_factory.mktemp("broker")) as agent:
        yield agent


GROUP = {"resource": "/iot/d", "entity_type": "Thing", "attributes": [{"object_id": "t", "name": "temperature", "type": "Number"}]}


def test_north_port_rejects_and_stamps(guarded: AgentStack) -> None:
    service = new_service()
    refused = httpx.get(guarded.north + "/iot/groups", headers=tenant(service))
    assert refused.status_code == 401
    assert refused.json() == {"name": "UNAUTHORIZED", "message": "no key"}
    allowed = httpx.get(guarded.north + "/iot/groups", headers={**tenant(service), **KEY})
    assert allowed.status_code == 200 and allowed.json() == {"count": 0, "groups": []}
    assert allowed.headers["x-guarded"] == service  # the guard saw the request's tenant


def test_south_port_rejects_and_stamps(guarded: AgentStack) -> None:
    service = new_service()
    key = "k" + service
    created = httpx.post(
        guarded.north + "/iot/groups", json={"groups": [{**GROUP, "apikey": key}]}, headers={**tenant(service), **KEY}
    )
    assert created.status_code == 201
    measure = {"i": "g1", "k": key, "d": "t|20"}
    refused = httpx.get(guarded.south + "/iot/d", params=measure)
    assert refused.status_code == 401 and refused.json()["name"] == "UNAUTHORIZED"
    assert guarded.entity(service, "Thing:g1") is None  # nothing got through
    allowed = httpx.get(guarded.south + "/iot/d", params=measure, headers=KEY)
    assert allowed.status_code == 200 and allowed.headers["x-guarded"] == "-"
    assert guarded.wait_entity(service, "Thing:g1")["temperature"]["value"] == 20
