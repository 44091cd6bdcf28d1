"""WAZIUP low-cost LoRa gateway format (LowCostLoRaGw post_processing_gw.py / CloudWAZIUP.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from iot_agent.codecs.waziup_gw import (
    GatewayPrefix,
    device_id,
    format_payload,
    packet_source,
    parse_control_line,
    parse_payload,
    source_address,
)
from iot_agent.errors import ParseError


def test_plain_pairs_with_upload_prefix() -> None:
    assert parse_payload("\\!TC/22.5/HU/85/LU/78") == (GatewayPrefix("upload"), {"TC": 22.5, "HU": 85, "LU": 78})


def test_project_and_service_tree() -> None:
    assert parse_payload("\\!waziup#-UPPA-TESTS#TC/22.4/HU/85") == (
        GatewayPrefix("upload", "waziup", "-UPPA-TESTS"),
        {"TC": 22.4, "HU": 85},
    )
    assert parse_payload("-TESTS#TC/21") == (GatewayPrefix(None, None, "-TESTS"), {"TC": 21})
    assert parse_payload("##TC/21") == (GatewayPrefix(), {"TC": 21})


def test_single_value_gets_def_and_text_values_stay_text() -> None:
    assert parse_payload("22.4\n") == (GatewayPrefix(), {"DEF": 22.4})
    assert parse_payload("\\$ST/on") == (GatewayPrefix("log"), {"ST": "on"})


@pytest.mark.parametrize("bad", ["", "TC/", "TC/1/HU", "a#b#c#TC/1", "/1", b"\xff"])
def test_bad_payloads(bad: str | bytes) -> None:
    with pytest.raises(ParseError):
        parse_payload(bad)


def test_control_lines() -> None:
    assert parse_control_line("^p1,16,3,0,10,8,-45") == (
        "packet",
        {"dst": 1, "ptype": 16, "src": 3, "seq": 0, "len": 10, "snr": 8, "rssi": -45},
    )
    assert parse_control_line("^r500,5,12") == ("radio", {"bw": 500, "cr": 5, "sf": 12})
    assert parse_control_line("^t2016-10-04T02:03:28.783385") == ("time", {"time": "2016-10-04T02:03:28.783385"})
    for bad in ("p1,2", "^p1,2", "^x", "^rA,B,C"):
        with pytest.raises(ParseError):
            parse_control_line(bad)


def test_device_id() -> None:
    assert device_id("UPPA", "-TESTS", "Sensor", 2) == "UPPA-TESTS_Sensor2"


def test_prefixes_shorter_than_three_characters_are_ignored() -> None:
    """iot-agents-lora-waziup.md, "4.2 Low-cost LoRa gateway" (payload syntax,
    ``project#-servicetree#``), as ``CloudWAZIUP.py`` reads it: a project or service
    tree under 3 characters is not taken, the gateway's default stands."""
    assert parse_payload("\\!a#TC/21") == (GatewayPrefix("upload"), {"TC": 21})
    assert parse_payload("-T#TC/21") == (GatewayPrefix(), {"TC": 21})
    assert parse_payload("wp#-T#TC/21") == (GatewayPrefix(), {"TC": 21})
    assert parse_payload("wp#-TESTS#TC/21") == (GatewayPrefix(None, None, "-TESTS"), {"TC": 21})
    assert parse_payload("waziup#-T#TC/21") == (GatewayPrefix(None, "waziup", None), {"TC": 21})
    assert parse_payload("-TE#TC/21") == (GatewayPrefix(None, None, "-TE"), {"TC": 21})
    with pytest.raises(ValueError):
        format_payload({"TC": 21}, GatewayPrefix("upload", None, "-t"))


def test_a_relayed_lorawan_node_is_named_with_its_address_in_hex() -> None:
    """iot-agents-lora-waziup.md, "4.2 Low-cost LoRa gateway": cloud dispatch passes
    ``pdata`` = ``dst,ptype,src,...``, and ``source_list`` gives LoRaWAN devAddr as
    4-byte hex; ``CloudWAZIUP.py`` names a LoRaWAN sender (dst 256) ``0x%08X``, a
    native LoRa one in decimal, then device id = org + tree + "_" + sensor + src."""
    assert source_address(256, 0x26011DB8) == "0x26011DB8"
    assert source_address(256, 0x1F) == "0x0000001F"
    assert source_address(1, 3) == "3"
    assert packet_source("256,64,637607352,0,23,8,-45") == "0x26011DB8"  # 637607352 == 0x26011DB8
    assert packet_source("1,16,3,0,10,8,-45") == "3"
    assert device_id("", None, "Sensor", packet_source("256,64,637607352,0,23,8,-45")) == "_Sensor0x26011DB8"
    for unreadable in (None, "", "1,16", "1,16,x,0", "1,16,99999999999,0", 3):
        assert packet_source(unreadable) == "0"


@given(st.text(max_size=50))
def test_parse_raises_only_parse_error(text: str) -> None:
    try:
        parse_payload(text)
    except ParseError:
        pass


_name = st.from_regex(r"[A-Z][A-Z0-9]{0,3}", fullmatch=True).filter(lambda s: s != "DEF")
_val = st.one_of(
    st.integers(-(10**6), 10**6),
    st.floats(-1e6, 1e6, allow_nan=False).map(lambda f: round(f, 3)).filter(lambda f: not f.is_integer()),
    st.from_regex(r"[a-z][a-z_]{0,5}", fullmatch=True),
)


@given(
    st.dictionaries(_name, _val, min_size=2, max_size=5),
    st.sampled_from([None, GatewayPrefix("upload"), GatewayPrefix("upload", "proj", "-tree"), GatewayPrefix("log", None, "-tr")]),
)
def test_format_parse_round_trip(measures: dict[str, object], prefix: GatewayPrefix | None) -> None:
    got_prefix, got = parse_payload(format_payload(measures, prefix))
    assert got == measures
    assert got_prefix == (prefix or GatewayPrefix())
