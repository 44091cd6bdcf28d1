"""LoRaWAN as the FIWARE LoRaWAN agent (Atos IoTagent-LoRaWAN) does it, per its manual
(/work/shared/reference/iot-agents/iotagent-lorawan-users-manual.md): its groups, its entity
names, its payloads, and uplinks kept apart by application, downlinks by tenant."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx

from iot_agent.codecs import cayenne
from iot_agent.south.lora import (
    device_matches,
    geo_points,
    group_serves,
    same_application,
    topic_ids,
)

from .conftest import AgentStack, MqttDevice, new_service, tenant
from .test_commands import command
from .test_lora import EUI, chirpstack_uplink, values

MANUAL_FRAME = "AHMnSwFnARYCaFADAGQEAQAFAdc"  # the manual's payload_raw, its '=' padding removed


def tts_uplink(app: str, device_id: str, frm_payload: str, dev_eui: str = "0004A30B001C0530") -> str:
    return json.dumps(
        {
            "end_device_ids": {"device_id": device_id, "application_ids": {"application_id": app}, "dev_eui": dev_eui},
            "received_at": "2024-05-01T10:00:00Z",
            "uplink_message": {"f_port": 1, "frm_payload": frm_payload},
        }
    )


def app_eui(service: str) -> str:
    """An AppEUI of the test's own: a group's (resource, apikey) is unique across tenants
    (iotagent-node-lib-api.md §Uniqueness of groups and devices), so tests cannot share one."""
    return "70B3" + service[1:13].upper()


def manual_group(app: str, app_eui: str) -> dict[str, Any]:
    """The manual's dummy-device group (§Deploy the testing IoT stack and registering a device
    group): an empty apikey, the AppEUI as ``resource`` without ``/``."""
    return {
        "entity_type": "WeatherObserved",
        "apikey": "",
        "resource": app_eui,
        "attributes": [
            {"object_id": "temperature_1", "name": "temperature", "type": "Number"},
            {"object_id": "barometric_pressure_0", "name": "pressure", "type": "Number"},
            {"object_id": "relative_humidity_2", "name": "relative_humidity", "type": "Number"},
        ],
        "internal_attributes": {
            "lorawan": {
                "application_server": {"host": "mqtt", "username": "admin", "password": "password", "provider": "TTN"},
                "app_eui": app_eui,
                "application_id": app,
                "application_key": "BE6996EEE2B2D6AFFD951383C1F3C3BD",
                "data_model": "cayennelpp",
            }
        },
    }


def test_manual_group_autoprovisions_named_as_that_agent_names(stack: AgentStack, device: MqttDevice) -> None:
    """iotagent-lorawan-users-manual.md §Configuration provisioning ("use the app_eui as the
    resource field", ``"apikey": ""``, on ``/iot/services``) and §Send a message to the MQTT
    and verify that the value is passed to orion (the device ``myDevice`` of that group becomes
    the entity ``myDevice:WeatherObserved``, from a base64 CayenneLPP payload)."""
    service = new_service()
    app = "demoTTN-" + service
    response = httpx.post(
        stack.north + "/iot/services", json={"services": [manual_group(app, app_eui(service))]}, headers=tenant(service)
    )
    assert response.status_code == 201, response.text
    listed = httpx.get(stack.north + "/iot/services", headers=tenant(service)).json()
    assert [g["resource"] for g in listed["services"]] == [app_eui(service)]
    device.publish(f"v3/{app}/devices/myDevice/up", tts_uplink(app, "myDevice", MANUAL_FRAME))
    entity = stack.wait_entity(service, "myDevice:WeatherObserved")
    assert entity["type"] == "WeatherObserved"
    got = values(entity)
    assert (got["temperature"], got["pressure"], got["relative_humidity"]) == (27.8, 1005.9, 40)
    assert stack.entity(service, "WeatherObserved:myDevice") is None


def test_manual_ttn_message_end_to_end(stack: AgentStack, device: MqttDevice) -> None:
    """iotagent-lorawan-users-manual.md §Send a message to the MQTT and verify that the value
    is passed to orion: the manual's own TTN message on ``v3/{application_id}/devices/{device_id}/up``
    for its group gives its entity ``myDevice:WeatherObserved`` with its three values."""
    service = new_service()
    app = "demoTTN-" + service
    stack.provision(service, groups=[manual_group(app, app_eui(service))])
    message = {
        "app_id": app, "dev_id": "myDevice", "hardware_serial": "0102030405060708", "port": 1, "counter": 2,
        "is_retry": False, "confirmed": False, "payload_raw": MANUAL_FRAME + "=",
    }
    device.publish(f"v3/{app}/devices/myDevice/up", json.dumps(message))
    got = values(stack.wait_entity(service, "myDevice:WeatherObserved"))
    assert (got["temperature"], got["pressure"], got["relative_humidity"]) == (27.8, 1005.9, 40)


def test_resource_without_slash_still_refused_outside_lorawan(stack: AgentStack) -> None:
    """iotagent-node-lib-api.md §Config group datamodel: ``resource`` is an HTTP path; only the
    LoRaWAN agent's groups (§Configuration provisioning of its manual) name an AppEUI there.
    Our choice: other groups keep the 400 BAD_REQUEST of a body failing validation."""
    service = new_service()
    response = httpx.post(
        stack.north + "/iot/groups",
        json={"groups": [{"apikey": "k", "resource": "iot/d", "entity_type": "Thing"}]},
        headers=tenant(service),
    )
    assert response.status_code == 400 and set(response.json()) == {"name", "message"}


def gps_station(app: str) -> dict[str, Any]:
    return {
        "device_id": "tracker1",
        "entity_type": "Tracker",
        "internal_attributes": {
            "lorawan": {"application_server": {"provider": "TTN"}, "dev_eui": EUI, "application_id": app, "data_model": "cayennelpp"}
        },
        "attributes": [
            {"object_id": "gps_1", "name": "location", "type": "geo:point"},
            {"object_id": "temperature_2", "name": "temperature", "type": "Number"},
        ],
    }


def test_cayenne_gps_into_geo_point(stack: AgentStack, device: MqttDevice) -> None:
    """orion/deprecated.md §Deprecated functionality (``geo:point``, still served): its value is
    the text ``"lat,lon"``; iotagent-lorawan-users-manual.md §Device provisioning maps the
    CayenneLPP names to attributes. A GPS reading that is no point (latitude 800) is dropped,
    not allowed to make the broker refuse the uplink's other measures."""
    service = new_service()
    app = "gps-" + service
    stack.provision(service, devices=[gps_station(app)])
    good = cayenne.encode([(1, "gps", {"latitude": 42.3519, "longitude": -87.9094, "altitude": 10}), (2, "temperature", 21.5)])
    device.publish(f"v3/{app}/devices/tracker1/up", tts_uplink(app, "tracker1", base64.b64encode(good).decode(), EUI))
    entity = stack.wait_entity(service, "Tracker:tracker1", lambda e: "location" in e)
    assert entity["location"]["type"] == "geo:point"
    assert entity["location"]["value"].replace(" ", "") == "42.3519,-87.9094"
    assert values(entity)["temperature"] == 21.5
    bad = cayenne.encode([(1, "gps", {"latitude": 800, "longitude": 1, "altitude": 0}), (2, "temperature", 22.5)])
    device.publish(f"v3/{app}/devices/tracker1/up", tts_uplink(app, "tracker1", base64.b64encode(bad).decode(), EUI))
    entity = stack.wait_entity(service, "Tracker:tracker1", lambda e: values(e).get("temperature") == 22.5)
    assert entity["location"]["value"].replace(" ", "") == "42.3519,-87.9094"


def test_tts_downlink_keeps_the_uplink_tenant(stack: AgentStack, device: MqttDevice) -> None:
    """iotagent-lorawan-users-manual.md §The Things Network (TTN), N.B.: on TTN v3 the
    application is ``{application id}@{tenant id}``; the downlink goes back on
    ``v3/{app}@{tenant}/devices/{dev}/down/push`` (iot-agents-lora-waziup.md §3.4 topics), the
    tenant the uplinks came with, though the device was provisioned with the bare id."""
    service = new_service()
    app = "ten-" + service
    doc = gps_station(app) | {"commands": [{"name": "ping", "type": "command"}]}
    stack.provision(service, devices=[doc])
    frame = base64.b64encode(cayenne.encode([(2, "temperature", 20)])).decode()
    device.publish(f"v3/{app}@acme/devices/tracker1/up", tts_uplink(app, "tracker1", frame, EUI))
    stack.wait_entity(service, "Tracker:tracker1", lambda e: values(e).get("temperature") == 20)
    device.subscribe(f"v3/{app}@acme/devices/tracker1/down/push")
    response = command(stack, service, "Tracker:tracker1", "ping", "01", "Tracker")
    assert response.status_code == 204, response.text
    down = json.loads(device.wait(f"v3/{app}@acme/devices/tracker1/down/push"))
    assert down["downlinks"][0]["frm_payload"] == "AQ=="


def chirpstack_device(app: str, name: str) -> dict[str, Any]:
    return {
        "device_id": name,
        "entity_type": "Station",
        "internal_attributes": {
            "lorawan": {"application_server": {"provider": "chirpstack"}, "dev_eui": EUI, "application_id": app, "data_model": "cayennelpp"}
        },
    }


def test_uplinks_matched_by_application_and_device(stack: AgentStack, device: MqttDevice) -> None:
    """iot-agents-lora-waziup.md §3.1 (ChirpStack: the agent subscribes to
    ``application/{applicationId}/device/{devEUI}/event/up`` per provisioned device, so the
    application is part of the match): two tenants' devices sharing a DevEUI in different
    applications each get their own uplinks, never the other's."""
    first, second = new_service(), new_service()
    app_a, app_b = "a-" + first, "b-" + second
    stack.provision(first, devices=[chirpstack_device(app_a, "s1")])
    stack.provision(second, devices=[chirpstack_device(app_b, "s2")])
    device.publish(f"application/{app_b}/device/{EUI.lower()}/event/up", chirpstack_uplink(app_b, EUI, "AmcA0g"))
    entity = stack.wait_entity(second, "Station:s2")
    assert values(entity)["temperature_2"] == 21
    device.publish(f"application/{app_a}/device/{EUI.lower()}/event/up", chirpstack_uplink(app_a, EUI, "AmcAyA"))
    stack.wait_entity(first, "Station:s1", lambda e: values(e).get("temperature_2") == 20)
    assert values(stack.wait_entity(second, "Station:s2"))["temperature_2"] == 21


def test_matching_rules() -> None:
    """The pure rules behind the tests above (manual §The Things Network (TTN) N.B. on tenants;
    §Configuration provisioning: the group's resource is the AppEUI)."""
    assert topic_ids("application/app1/device/70b3d57ed0000001/event/up") == ("app1", EUI, False)
    assert topic_ids("v3/app1@acme/devices/node-7/up") == ("app1@acme", "node-7", True)
    assert topic_ids("application/app1/device/x/event/join") is None and topic_ids("v3/a/devices/d/down/push") is None
    assert same_application("app1", "app1@acme") and same_application("app1@acme", "app1")
    assert not same_application("app1@acme", "app1@other") and not same_application("", "app1")
    group = {"resource": "70B3D57ED00006B2", "internal_attributes": {"lorawan": {"application_id": "demo"}}}
    assert group_serves(group, "demo@ttn") and group_serves(group, "70B3D57ED00006B2") and not group_serves(group, "other")
    assert not group_serves({"resource": "/demo"}, "demo")  # no lorawan settings: not a LoRaWAN group
    dev = {"device_id": "s1", "internal_attributes": {"lorawan": {"dev_eui": EUI.lower()}}}
    assert device_matches(dev, "app1", "app1", EUI, False, None)
    assert not device_matches(dev, "app2", "app1", EUI, False, None)
    assert device_matches(dev, "app1", "app1@t", "s1", True, None) and device_matches(dev, "app1", "app1", "x", True, EUI)
    assert not device_matches(dev, "app1", "app1", "x", True, "0000000000000000")


def test_geo_points_rules() -> None:
    """orion/deprecated.md (``geo:point`` is ``"lat,lon"``): GPS dicts for ``geo:point``
    attributes become that text; a reading that is no point is dropped; others stay."""
    attrs = [{"object_id": "gps_1", "name": "location", "type": "geo:point"}, {"name": "pos", "type": "geo:point"}]
    measures = {"gps_1": {"latitude": -1.5, "longitude": 2, "altitude": 3}, "pos": {"latitude": True, "longitude": 1}, "t": 1}
    assert geo_points(measures, attrs) == {"gps_1": "-1.5,2", "t": 1}
    assert geo_points({"gps_1": "1,2", "gps_2": {"latitude": 1, "longitude": 2, "altitude": 0}}, attrs) == {
        "gps_1": "1,2",
        "gps_2": {"latitude": 1, "longitude": 2, "altitude": 0},
    }
