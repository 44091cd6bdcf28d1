"""CayenneLPP: the reference vectors (Atos IoTagent-LoRaWAN docs/tests) and properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from iot_agent.codecs import cayenne
from iot_agent.errors import ParseError


@pytest.mark.parametrize(("frame", "expected"), [
    pytest.param("AHMAAAFnARACaAADAGQEAQA=", {
        "barometric_pressure_0": 0, "temperature_1": 27.2, "relative_humidity_2": 0, "digital_in_3": 100,
        "digital_out_4": 0,
    }, id="atos-test-suite"),
    pytest.param("AHMnSwFnARYCaFADAGQEAQAFAdc=", {
        "barometric_pressure_0": 1005.9, "temperature_1": 27.8, "relative_humidity_2": 40, "digital_in_3": 100,
        "digital_out_4": 0, "digital_out_5": 215,
    }, id="atos-users-manual"),
])
def test_reference_vectors(frame: str, expected: dict[str, object]) -> None:
    assert cayenne.decode_base64(frame) == expected


def test_myDevices_readme_examples() -> None:
    # README: two temperature sensors; accelerometer; GPS
    assert cayenne.decode(bytes.fromhex("03670110056700FF")) == {"temperature_3": 27.2, "temperature_5": 25.5}
    assert cayenne.decode(bytes.fromhex("067104D2FB2E0000")) == {"accelerometer_6": {"x": 1.234, "y": -1.234, "z": 0}}
    assert cayenne.decode(bytes.fromhex("018806765ff2960a0003e8")) == {
        "gps_1": {"latitude": 42.3519, "longitude": -87.9094, "altitude": 10}
    }


def test_signed_and_unsigned() -> None:
    assert cayenne.decode(bytes.fromhex("0167FF38")) == {"temperature_1": -20}
    assert cayenne.decode(bytes.fromhex("0265FFFF")) == {"luminosity_2": 65535}  # unsigned (Atos reads it signed)
    assert cayenne.decode(bytes.fromhex("020200FA")) == {"analog_in_2": 2.5}


@pytest.mark.parametrize("hexdata", ["01", "0167", "016701", "01FF00", "0188000000"])
def test_bad_frames(hexdata: str) -> None:
    with pytest.raises(ParseError):
        cayenne.decode(bytes.fromhex(hexdata))


def test_bad_base64() -> None:
    with pytest.raises(ParseError):
        cayenne.decode_base64("not base64!")


@given(st.binary(max_size=64))
def test_decode_raises_only_parse_error(data: bytes) -> None:
    try:
        out = cayenne.decode(data)
    except ParseError:
        return
    assert all("_" in k for k in out)


_items = st.one_of(
    st.tuples(st.integers(0, 255), st.just("temperature"), st.integers(-32768, 32767).map(lambda r: r / 10)),
    st.tuples(st.integers(0, 255), st.just("relative_humidity"), st.integers(0, 255).map(lambda r: r / 2)),
    st.tuples(st.integers(0, 255), st.just("digital_in"), st.integers(0, 255)),
    st.tuples(st.integers(0, 255), st.just("luminosity"), st.integers(0, 65535)),
    st.tuples(st.integers(0, 255), st.just("barometric_pressure"), st.integers(0, 65535).map(lambda r: r / 10)),
    st.tuples(
        st.integers(0, 255),
        st.just("gps"),
        st.fixed_dictionaries(
            {
                "latitude": st.integers(-900000, 900000).map(lambda r: r / 10000),
                "longitude": st.integers(-1800000, 1800000).map(lambda r: r / 10000),
                "altitude": st.integers(-(2**23), 2**23 - 1).map(lambda r: r / 100),
            }
        ),
    ),
)


@given(st.lists(_items, max_size=6, unique_by=lambda t: (t[0], t[1])))
def test_encode_decode_round_trip(items: list[tuple[int, str, object]]) -> None:
    assert cayenne.decode(cayenne.encode(items)) == {f"{name}_{ch}": value for ch, name, value in items}


def test_base64_without_padding() -> None:
    """iotagent-lorawan-users-manual.md §Send a message to the MQTT and verify that the value
    is passed to orion: ``payload_raw`` is "a base64 encoded version" of the CayenneLPP frame;
    the manual's ``AHMnSwFnARYCaFADAGQEAQAFAdc=`` decodes the same without its ``=``, as the
    FIWARE agent's Node ``Buffer.from(s, "base64")`` reads it. Other characters still fail."""
    padded = cayenne.decode_base64("AHMnSwFnARYCaFADAGQEAQAFAdc=")
    assert cayenne.decode_base64("AHMnSwFnARYCaFADAGQEAQAFAdc") == padded
    assert padded["temperature_1"] == 27.8 and padded["barometric_pressure_0"] == 1005.9
    assert cayenne.b64decode("AQI") == b"\x01\x02"
    for bad in ("A", "AQ=I", "AQ I", "é"):
        with pytest.raises(ParseError):
            cayenne.decode_base64(bad)
