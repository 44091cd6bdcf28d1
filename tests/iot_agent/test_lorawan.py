"""LoRaWAN uplinks (ChirpStack v4/v3, The Things Stack v3), downlinks, JSON measures."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from iot_agent.codecs import jsonmeasure, lorawan
from iot_agent.errors import ParseError

LPP = "AHMnSwFnARYCaFADAGQEAQAFAdc="

CHIRPSTACK_V4 = {
    "deduplicationId": "3ac7e3c4-4401-4b8d-9386-a5c902f9202d",
    "time": "2022-07-18T09:34:15.775023242+00:00",
    "deviceInfo": {
        "tenantId": "52f14cd4-c6f1-4fbd-8f87-4025e1d49242",
        "tenantName": "ChirpStack",
        "applicationId": "17c82e96-be03-4f38-aef3-f83d48582d97",
        "applicationName": "Test application",
        "deviceProfileId": "14855bf7-d10d-4aee-b618-ebfcb64dc7ad",
        "deviceProfileName": "Test device-profile",
        "deviceName": "Test device",
        "devEui": "0101010101010101",
        "tags": {"key": "value"},
    },
    "devAddr": "00189440",
    "dr": 1,
    "fPort": 2,
    "fCnt": 10,
    "data": LPP,
    "object": {"temperature": 27.8},
    "rxInfo": [
        {"gatewayId": "0016c001f153a14c", "uplinkId": 4217106255, "rssi": -36, "snr": 10.5, "context": "E3OWOQ=="},
        {"gatewayId": "aaaaaaaaaaaaaaaa", "uplinkId": 1, "rssi": -90, "snr": -2},
    ],
    "txInfo": {"frequency": 867100000, "modulation": {"lora": {"bandwidth": 125000, "spreadingFactor": 11, "codeRate": "CR_4_5"}}},
}

TTS_V3 = {
    "end_device_ids": {
        "device_id": "eui-70b3d57ed005a1b2",
        "application_ids": {"application_id": "my-app"},
        "dev_eui": "70B3D57ED005A1B2",
        "join_eui": "0000000000000000",
        "dev_addr": "260B1234",
    },
    "correlation_ids": ["as:up:01..."],
    "received_at": "2024-01-01T10:00:00.123456789Z",
    "uplink_message": {
        "session_key_id": "AXA...",
        "f_port": 15,
        "f_cnt": 7,
        "frm_payload": "vu8=",
        "decoded_payload": {"bytes": [190, 239]},
        "rx_metadata": [
            {"gateway_ids": {"gateway_id": "gw-1", "eui": "B827EBFFFE000001"}, "rssi": -42, "channel_rssi": -42, "snr": 9.25}
        ],
        "settings": {"data_rate": {"lora": {"bandwidth": 125000, "spreading_factor": 7}}, "frequency": "868100000"},
        "received_at": "2024-01-01T10:00:00.100Z",
    },
}

CHIRPSTACK_V3 = {
    "applicationID": "1",
    "applicationName": "app",
    "deviceName": "dev1",
    "devEUI": "3339343771356214",
    "rxInfo": [{"mac": "b827ebfffe7ed5b5", "rssi": -57, "loRaSNR": 9.2}],
    "txInfo": {"frequency": 868100000, "dataRate": {"modulation": "LORA", "bandwidth": 125, "spreadFactor": 7}},
    "fCnt": 0,
    "fPort": 2,
    "data": "AHMAAAFnARACaAADAGQEAQA=",
    "objectJSON": "{\"temperatureSensor\":{\"1\":27.2}}",
}


def test_chirpstack_v4() -> None:
    up = lorawan.parse_uplink(json.dumps(CHIRPSTACK_V4))
    assert up.network_server == "chirpstack_v4"
    assert up.dev_eui == "0101010101010101"
    assert up.device_id == "Test device"
    assert up.application_id == "17c82e96-be03-4f38-aef3-f83d48582d97"
    assert up.fport == 2
    assert up.payload == base64.b64decode(LPP)
    assert up.decoded == {"temperature": 27.8}
    assert up.metadata["rssi"] == -36 and up.metadata["snr"] == 10.5 and up.metadata["gateways"] == 2
    assert up.metadata["gateway_id"] == "0016c001f153a14c"
    assert up.metadata["f_cnt"] == 10 and up.metadata["spreading_factor"] == 11 and up.metadata["frequency"] == 867100000
    assert lorawan.measures_from_uplink(up, "cayennelpp")["temperature_1"] == 27.8
    assert lorawan.measures_from_uplink(up, "application_server") == {"temperature": 27.8}


def test_tts_v3() -> None:
    up = lorawan.parse_uplink(TTS_V3)
    assert (up.network_server, up.dev_eui, up.device_id, up.application_id, up.fport) == (
        "tts_v3",
        "70B3D57ED005A1B2",
        "eui-70b3d57ed005a1b2",
        "my-app",
        15,
    )
    assert up.payload == b"\xbe\xef"
    assert up.decoded == {"bytes": [190, 239]}
    assert up.metadata == {
        "time": "2024-01-01T10:00:00.123456789Z",
        "dev_addr": "260B1234",
        "f_cnt": 7,
        "rssi": -42,
        "snr": 9.25,
        "gateway_id": "gw-1",
        "gateways": 1,
        "frequency": 868100000,
        "spreading_factor": 7,
    }
    assert lorawan.measures_from_uplink(up, "raw") == {"payload": "beef", "fport": 15}


def test_chirpstack_v3_string_object_json() -> None:
    up = lorawan.parse_uplink(CHIRPSTACK_V3)
    assert up.network_server == "chirpstack_v3" and up.dev_eui == "3339343771356214"
    assert up.decoded == {"temperatureSensor": {"1": 27.2}}
    assert up.metadata["rssi"] == -57 and up.metadata["snr"] == 9.2
    assert lorawan.measures_from_uplink(up, "cayennelpp")["temperature_1"] == 27.2


def test_errors() -> None:
    for bad in ({}, [], "nope", {"deviceInfo": 1}, {"deviceInfo": {"devEui": "zz"}}, {"end_device_ids": {}, "uplink_message": {"f_port": "1"}}):
        with pytest.raises(ParseError):
            lorawan.parse_uplink(bad)
    up = lorawan.parse_uplink({"deviceInfo": {"devEui": "01"}})
    with pytest.raises(ParseError):
        lorawan.measures_from_uplink(up, "application_server")
    with pytest.raises(ParseError):
        lorawan.measures_from_uplink(up, "cbor")


def test_downlinks_and_topics() -> None:
    assert lorawan.chirpstack_downlink("0101010101010101", 10, b"\x01\x02", confirmed=True) == {
        "devEui": "0101010101010101",
        "confirmed": True,
        "fPort": 10,
        "data": "AQI=",
    }
    assert lorawan.tts_downlink(15, b"\xbe\xef") == {"downlinks": [{"f_port": 15, "frm_payload": "vu8=", "priority": "NORMAL"}]}
    assert lorawan.chirpstack_uplink_topic("app", "ABCD") == "application/app/device/abcd/event/up"
    assert lorawan.chirpstack_downlink_topic("app", "ABCD") == "application/app/device/abcd/command/down"
    assert lorawan.tts_uplink_topic("app", tenant="ttn") == "v3/app@ttn/devices/+/up"
    assert lorawan.tts_downlink_topic("app", "dev", replace=True) == "v3/app/devices/dev/down/replace"


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
_keys = st.sampled_from(["deviceInfo", "end_device_ids", "uplink_message", "devEUI", "data", "object", "objectJSON", "fPort", "rxInfo", "txInfo", "devEui", "payload_raw", "dev_id", "metadata", "port"])


@given(st.dictionaries(_keys, _json, max_size=6) | _json)
def test_uplink_parsers_raise_only_parse_error(doc: object) -> None:
    for fn in (lorawan.parse_uplink, lorawan.parse_chirpstack_v4, lorawan.parse_tts_v3, lorawan.parse_chirpstack_v3, lorawan.parse_ttn_v2):
        try:
            up = fn(doc)
        except ParseError:
            continue
        try:
            lorawan.measures_from_uplink(up, None)
        except ParseError:
            pass


# ---------------------------------------------------------------- IoT Agent JSON payloads


def test_json_measures() -> None:
    assert jsonmeasure.parse_measures(b'{"t":1}') == [{"t": 1}]
    assert jsonmeasure.parse_measures('[{"t":1},{"t":2}]') == [{"t": 1}, {"t": 2}]
    for bad in (b"[]", b"1", b'[{"t":1},2]', b"{", b"NaN", b'{"a": NaN}', b"\xff"):
        with pytest.raises(ParseError):
            jsonmeasure.parse_measures(bad)
    assert jsonmeasure.parse_attribute_value(b"21.5", "text/plain") == 21.5
    assert jsonmeasure.parse_attribute_value(b"hello", "text/plain") == "hello"
    assert jsonmeasure.parse_attribute_value(b"\x01\xff", "application/octet-stream") == "01ff"
    assert jsonmeasure.parse_attribute_value(b"hello", None) == "68656c6c6f"  # MQTT: non-JSON -> hex
    assert jsonmeasure.parse_command_results('{"ping":"pong"}') == [("ping", "pong")]
    assert jsonmeasure.parse_configuration('{"type":"configuration","fields":["a"]}') == ("configuration", ["a"])


@given(st.binary(max_size=40) | st.text(max_size=40).map(str.encode))
def test_json_parsers_raise_only_parse_error(data: bytes) -> None:
    for fn in (jsonmeasure.parse_measures, jsonmeasure.parse_command_results, jsonmeasure.parse_configuration):
        try:
            fn(data)
        except ParseError:
            pass
    jsonmeasure.parse_attribute_value(data, "text/plain")


def test_base64_without_padding() -> None:
    """iotagent-lorawan-users-manual.md §Send a message to the MQTT and verify that the value
    is passed to orion: the uplink's payload is base64; an unpadded one (``AQI`` for 01 02)
    is accepted as the FIWARE agent's Node decoder accepts it; a bad character is a ParseError."""
    up = lorawan.parse_uplink({"deviceInfo": {"devEui": "01"}, "fPort": 1, "data": "AQI"})
    assert up.payload == b"\x01\x02"
    tts = lorawan.parse_uplink({"end_device_ids": {"device_id": "d"}, "uplink_message": {"frm_payload": "AWcBEA"}})
    assert lorawan.measures_from_uplink(tts, "cayennelpp") == {"temperature_1": 27.2}
    with pytest.raises(ParseError):
        lorawan.parse_uplink({"deviceInfo": {"devEui": "01"}, "data": "A$I"})


def test_ttn_v2_manual_message() -> None:
    """iotagent-lorawan-users-manual.md §Send a message to the MQTT and verify that the value is
    passed to orion: the manual's TTN message (``app_id``, ``dev_id``, ``hardware_serial``,
    ``port``, ``payload_raw``) decodes to the values of the entity it shows."""
    message = {
        "app_id": "demoTTN", "dev_id": "myDevice", "hardware_serial": "0102030405060708", "port": 1, "counter": 2,
        "is_retry": False, "confirmed": False, "payload_raw": "AHMnSwFnARYCaFADAGQEAQAFAdc=",
        "metadata": {"gateways": [{"gtw_id": "g1", "rssi": -60, "snr": 8}, {"gtw_id": "g2", "rssi": -90}]},
    }
    up = lorawan.parse_uplink(message)
    assert (up.network_server, up.device_id, up.dev_eui, up.application_id, up.fport) == (
        "ttn_v2", "myDevice", "0102030405060708", "demoTTN", 1
    )
    assert up.metadata["rssi"] == -60 and up.metadata["gateways"] == 2
    got = lorawan.measures_from_uplink(up, "cayennelpp")
    assert (got["temperature_1"], got["barometric_pressure_0"], got["relative_humidity_2"]) == (27.8, 1005.9, 40)
    fields = lorawan.parse_uplink({"dev_id": "d", "payload_fields": {"t": 1}})
    assert lorawan.measures_from_uplink(fields, "application_server") == {"t": 1}
    with pytest.raises(ParseError):
        lorawan.parse_uplink({"dev_id": "d", "port": "1"})
