"""LoRaWAN: ChirpStack v4 and The Things Stack v3 uplinks over MQTT, downlinks as commands."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import httpx

from iot_agent.south.lora import downlink_bytes, lorawan_config

from .conftest import AgentStack, MqttDevice, new_service, tenant
from .test_commands import command

EUI = "70B3D57ED0000001"


def values(entity: dict[str, object]) -> dict[str, object]:
    return {k: v["value"] for k, v in entity.items() if isinstance(v, dict)}  # type: ignore[index]


def chirpstack_uplink(app: str, eui: str, data: str) -> str:
    return json.dumps(
        {
            "deduplicationId": "3ac7e3c4-4401-4b8d-9386-a5c902f9202d",
            "time": "2024-05-01T10:00:00Z",
            "deviceInfo": {"tenantId": "t", "applicationId": app, "deviceName": "weather", "devEui": eui.lower(), "tags": {}},
            "devAddr": "00189440",
            "fCnt": 10,
            "fPort": 1,
            "data": data,
            "rxInfo": [{"gatewayId": "0016c001f153a14c", "rssi": -57, "snr": 10}],
            "txInfo": {"frequency": 868100000, "modulation": {"lora": {"bandwidth": 125000, "spreadingFactor": 7}}},
        }
    )


def provision_lorawan(stack: AgentStack, app_prefix: str, **documents: Callable[[str], dict[str, Any]]) -> tuple[str, str]:
    """A new service, provisioned with one document of each kind (``devices=``, ``groups=``)
    built for the network server's application of that service (its id names the service,
    so that tests sharing the MQTT broker do not hear each other). Returns (service, app id)."""
    service = new_service()
    app = f"{app_prefix}-{service}"
    stack.provision(service, **{kind: [document(app)] for kind, document in documents.items()})
    return service, app


def weather_station(app: str) -> dict[str, Any]:
    """A CayenneLPP weather station of the ChirpStack application ``app``, taking a command."""
    return {
        "device_id": "weather1",
        "entity_type": "WeatherObserved",
        "entity_name": "urn:WeatherObserved:1",
        "transport": "MQTT",
        "internal_attributes": {
            "lorawan": {
                "application_server": {"provider": "chirpstack"},
                "dev_eui": EUI,
                "application_id": app,
                "data_model": "cayennelpp",
            }
        },
        "attributes": [
            {"object_id": "temperature_1", "name": "temperature", "type": "Number"},
            {"object_id": "barometric_pressure_0", "name": "pressure", "type": "Number"},
        ],
        "commands": [{"name": "setInterval", "type": "command"}],
    }


def tts_sensors(app: str) -> dict[str, Any]:
    """A group autoprovisioning the devices of The Things Stack application ``app`` as
    ``Sensor`` entities, their measures decoded by the network server."""
    return {
        "apikey": "",
        "resource": "/" + app,
        "entity_type": "Sensor",
        "internal_attributes": {
            "lorawan": {"application_server": {"provider": "TTN"}, "application_id": app, "data_model": "application_server"}
        },
    }


def test_pure_helpers() -> None:
    assert lorawan_config({"internal_attributes": {"lorawan": {"dev_eui": "x"}}}) == {"dev_eui": "x"}
    assert lorawan_config({"internal_attributes": [{"a": 1}, {"lorawan": {"dev_eui": "y"}}]}) == {"dev_eui": "y"}
    assert lorawan_config({"internal_attributes": [{"a": 1}]}) is None
    assert downlink_bytes("01ff") == (b"\x01\xff", None)
    assert downlink_bytes("on") == (b"on", None)
    assert downlink_bytes({"fport": 5, "payload": "0a"}) == (b"\n", 5)


def test_chirpstack_v4_uplink_and_downlink(stack: AgentStack, device: MqttDevice) -> None:
    service, app = provision_lorawan(stack, "app", devices=weather_station)
    device.publish(f"application/{app}/device/{EUI.lower()}/event/up", chirpstack_uplink(app, EUI, "AHMnSwFnARYCaFADAGQEAQAFAdc="))
    entity = stack.wait_entity(service, "urn:WeatherObserved:1")
    got = values(entity)
    assert got["temperature"] == 27.8 and got["pressure"] == 1005.9 and got["relative_humidity_2"] == 40

    device.subscribe(f"application/{app}/device/{EUI.lower()}/command/down")
    response = command(stack, service, "urn:WeatherObserved:1", "setInterval", "003c", "WeatherObserved")
    assert response.status_code == 204, response.text
    down = json.loads(device.wait(f"application/{app}/device/{EUI.lower()}/command/down"))
    assert down == {"devEui": EUI.lower(), "confirmed": False, "fPort": 1, "data": base64.b64encode(b"\x00\x3c").decode()}
    stack.wait_entity(service, "urn:WeatherObserved:1", lambda e: values(e).get("setInterval_status") == "OK")


def test_tts_v3_group_autoprovision(stack: AgentStack, device: MqttDevice) -> None:
    service, app = provision_lorawan(stack, "tts", groups=tts_sensors)
    uplink = {
        "end_device_ids": {"device_id": "node-7", "application_ids": {"application_id": app}, "dev_eui": "0004A30B001C0530"},
        "received_at": "2024-05-01T10:00:00Z",
        "uplink_message": {
            "f_port": 2,
            "frm_payload": "AQI=",
            "decoded_payload": {"temperature": 19.5, "door": "open"},
            "rx_metadata": [{"gateway_ids": {"gateway_id": "gw1"}, "rssi": -80, "snr": 7.5}],
        },
    }
    device.publish(f"v3/{app}@ttn/devices/node-7/up", json.dumps(uplink))
    entity = stack.wait_entity(service, "node-7:Sensor")
    assert values(entity) == {"temperature": 19.5, "door": "open"}
    provisioned = httpx.get(stack.north + "/iot/devices/node-7", headers=tenant(service)).json()
    assert provisioned["internal_attributes"]["lorawan"]["dev_eui"] == "0004A30B001C0530"
