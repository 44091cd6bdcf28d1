"""MQTT 3.1.1 / 5 packets without I/O: known encodings, round-trips, and decoding of arbitrary bytes.

The property strategies below name, per packet type, the MQTT 5 properties the spec
(table 2-4) allows there: a second source of truth for ``packets``' own table.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ngsi.client.mqtt import packets as P

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ROUND = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# -- strategies ------------------------------------------------------------------------------

text = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=12)
level = st.text(st.characters(codec="utf-8", exclude_characters="\x00/+#"), max_size=6)
topic_names = st.lists(level, min_size=1, max_size=4).map("/".join).filter(bool)
topic_filters = st.builds(
    lambda levels, tail: "/".join([*levels, *tail]) or "#",
    st.lists(st.one_of(st.just("+"), level), min_size=0, max_size=4),
    st.sampled_from([[], ["#"]]),
)
packet_ids = st.integers(1, 65535)
reason_codes = st.integers(0, 255)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFF_FFFF)
flag = st.integers(0, 1)

PROPERTY_VALUES: dict[str, Any] = {
    "payload_format_indicator": flag,
    "message_expiry_interval": u32,
    "content_type": text,
    "response_topic": topic_names,
    "correlation_data": st.binary(max_size=16),
    "subscription_identifier": st.lists(st.integers(1, P.MAX_REMAINING_LENGTH), min_size=1, max_size=3),
    "session_expiry_interval": u32,
    "assigned_client_identifier": text,
    "server_keep_alive": u16,
    "authentication_method": text,
    "authentication_data": st.binary(max_size=16),
    "request_problem_information": flag,
    "will_delay_interval": u32,
    "request_response_information": flag,
    "response_information": text,
    "server_reference": text,
    "reason_string": text,
    "receive_maximum": st.integers(1, 0xFFFF),
    "topic_alias_maximum": u16,
    "topic_alias": st.integers(1, 0xFFFF),
    "maximum_qos": flag,
    "retain_available": flag,
    "user_property": st.lists(st.tuples(text, text), min_size=1, max_size=3),
    "maximum_packet_size": st.integers(1, 0xFFFF_FFFF),
    "wildcard_subscription_available": flag,
    "subscription_identifier_available": flag,
    "shared_subscription_available": flag,
}
MESSAGE = {"payload_format_indicator", "message_expiry_interval", "content_type", "response_topic",
           "correlation_data", "user_property"}
ACK = {"reason_string", "user_property"}
ALLOWED: dict[int, set[str]] = {
    P.CONNECT: {"session_expiry_interval", "authentication_method", "authentication_data",
                "request_problem_information", "request_response_information", "receive_maximum",
                "topic_alias_maximum", "user_property", "maximum_packet_size"},
    P.CONNACK: {"session_expiry_interval", "assigned_client_identifier", "server_keep_alive",
                "authentication_method", "authentication_data", "response_information", "server_reference",
                "reason_string", "receive_maximum", "topic_alias_maximum", "maximum_qos", "retain_available",
                "user_property", "maximum_packet_size", "wildcard_subscription_available",
                "subscription_identifier_available", "shared_subscription_available"},
    P.PUBLISH: MESSAGE | {"subscription_identifier", "topic_alias"},
    P.WILL: MESSAGE | {"will_delay_interval"},
    P.PUBACK: ACK, P.PUBREC: ACK, P.PUBREL: ACK, P.PUBCOMP: ACK,
    P.SUBSCRIBE: {"subscription_identifier", "user_property"},
    P.SUBACK: ACK, P.UNSUBSCRIBE: {"user_property"}, P.UNSUBACK: ACK,
    P.DISCONNECT: {"session_expiry_interval", "server_reference", "reason_string", "user_property"},
    P.AUTH: {"authentication_method", "authentication_data", "reason_string", "user_property"},
}


def properties(packet_type: int, protocol: int) -> st.SearchStrategy[dict[str, Any]]:
    if protocol == P.MQTT_3_1_1:
        return st.just({})
    optional = {name: PROPERTY_VALUES[name] for name in sorted(ALLOWED[packet_type])}
    if packet_type == P.SUBSCRIBE:
        optional["subscription_identifier"] = st.lists(st.integers(1, P.MAX_REMAINING_LENGTH), min_size=1, max_size=1)
    return st.fixed_dictionaries({}, optional=optional)


def wills(protocol: int) -> st.SearchStrategy[P.Will]:
    return st.builds(P.Will, topic_names, st.binary(max_size=32), st.integers(0, 2), st.booleans(),
                     properties(P.WILL, protocol))


@st.composite
def connects(draw: st.DrawFn, protocol: int) -> P.Connect:
    username = draw(st.none() | text)
    password = draw(st.none() | st.binary(max_size=16))
    if protocol == P.MQTT_3_1_1 and username is None:
        password = None
    return P.Connect(draw(text), draw(st.booleans()), draw(u16), username, password,
                   draw(st.none() | wills(protocol)), draw(properties(P.CONNECT, protocol)))


@st.composite
def publishes(draw: st.DrawFn, protocol: int) -> P.Publish:
    qos = draw(st.integers(0, 2))
    props = draw(properties(P.PUBLISH, protocol))
    topic = draw(topic_names | st.just("")) if "topic_alias" in props else draw(topic_names)
    return P.Publish(topic, draw(st.binary(max_size=64)), qos, draw(st.booleans()),
                   draw(st.booleans()) if qos else False, draw(packet_ids) if qos else 0, props)


@st.composite
def subscriptions(draw: st.DrawFn, protocol: int) -> P.Subscription:
    if protocol == P.MQTT_3_1_1:
        return P.Subscription(draw(topic_filters), draw(st.integers(0, 2)))
    return P.Subscription(draw(topic_filters), draw(st.integers(0, 2)), draw(st.booleans()), draw(st.booleans()),
                        draw(st.integers(0, 2)))


def acks(cls: type[Any], protocol: int) -> st.SearchStrategy[Any]:
    if protocol == P.MQTT_3_1_1:
        return st.builds(cls, packet_ids)
    return st.builds(cls, packet_ids, reason_codes, properties(cls.TYPE, protocol))


def packets_of(protocol: int) -> st.SearchStrategy[Any]:
    v5 = protocol == P.MQTT_5
    choices = [
        connects(protocol),
        st.builds(P.Connack, st.booleans(), reason_codes, properties(P.CONNACK, protocol)),
        publishes(protocol),
        acks(P.Puback, protocol), acks(P.Pubrec, protocol), acks(P.Pubrel, protocol), acks(P.Pubcomp, protocol),
        st.builds(P.Subscribe, packet_ids, st.lists(subscriptions(protocol), min_size=1, max_size=4),
                  properties(P.SUBSCRIBE, protocol)),
        st.builds(P.Suback, packet_ids, st.lists(reason_codes, min_size=1, max_size=4), properties(P.SUBACK, protocol)),
        st.builds(P.Unsubscribe, packet_ids, st.lists(topic_filters, min_size=1, max_size=4),
                  properties(P.UNSUBSCRIBE, protocol)),
        st.builds(P.Unsuback, packet_ids, st.lists(reason_codes, min_size=1, max_size=4),
                  properties(P.UNSUBACK, protocol)) if v5 else st.builds(P.Unsuback, packet_ids),
        st.just(P.Pingreq()),
        st.just(P.Pingresp()),
        st.builds(P.Disconnect, reason_codes, properties(P.DISCONNECT, protocol)) if v5 else st.just(P.Disconnect()),
    ]
    if v5:
        choices.append(st.builds(P.Auth, reason_codes, properties(P.AUTH, protocol)))
    return st.one_of(choices)


versions = st.sampled_from([P.MQTT_3_1_1, P.MQTT_5])
# Built once per version: strategies made inside flatmap would be rebuilt for every example.
PACKETS = {v: packets_of(v) for v in (P.MQTT_3_1_1, P.MQTT_5)}
PUBLISHES = {v: publishes(v) for v in (P.MQTT_3_1_1, P.MQTT_5)}
any_packet = st.one_of([st.tuples(st.just(v), PACKETS[v]) for v in PACKETS])
packet_lists = st.one_of([st.tuples(st.just(v), st.lists(PACKETS[v], min_size=1, max_size=6)) for v in PACKETS])
any_publish = st.one_of([st.tuples(st.just(v), PUBLISHES[v]) for v in PUBLISHES])


# -- round trips -----------------------------------------------------------------------------


def test_properties_table_matches_the_spec() -> None:
    for packet_type, names in ALLOWED.items():
        assert P.allowed_properties(packet_type) == names, P.PACKET_NAMES.get(packet_type, "will")
    assert P.PROPERTY_NAMES == set(PROPERTY_VALUES)


@ROUND
@given(any_packet, st.binary(max_size=8))
def test_every_packet_round_trips(case: tuple[int, Any], tail: bytes) -> None:
    protocol, packet = case
    data = packet.encode(protocol)
    assert P.decode(data, protocol) == (packet, len(data))
    assert P.decode(data + tail, protocol) == (packet, len(data))  # the next packet's bytes are left alone
    assert P.decode(data[:-1], protocol) is None  # incomplete: wait for more


@ROUND
@given(packet_lists)
def test_a_stream_of_packets_splits_back(case: tuple[int, list[Any]]) -> None:
    protocol, packets = case
    stream = b"".join(p.encode(protocol) for p in packets)
    pos, got = 0, []
    while (where := P.split_packet(stream, pos)) is not None:
        first, start, end = where
        got.append(P.decode_packet(first, stream[start:end], protocol))
        pos = end
    assert pos == len(stream) and got == packets


@ROUND
@given(any_publish, st.binary(max_size=5), st.binary(max_size=5))
def test_parse_publish_reads_in_place(case: tuple[int, P.Publish], before: bytes, after: bytes) -> None:
    """The session's fast path reads a PUBLISH where it lies in a larger bytearray buffer."""
    protocol, packet = case
    data = packet.encode(protocol)
    first, start, end = P.split_packet(data)  # type: ignore[misc]
    buffer = bytearray(before + data + after)
    offset = len(before)
    topic, payload, qos, retain, dup, packet_id, props = P.parse_publish(
        buffer, first, start + offset, end + offset, protocol)
    assert P.Publish(topic, payload, qos, retain, dup, packet_id, dict(props)) == packet
    assert type(payload) is bytes


@given(st.integers(0, P.MAX_REMAINING_LENGTH))
def test_varint_round_trips(value: int) -> None:
    encoded = P.encode_varint(value)
    assert len(encoded) == 1 + (value >= 128) + (value >= 16384) + (value >= 2097152)
    reader = P._Reader(encoded)
    assert reader.varint() == value and reader.left() == 0


# -- arbitrary bytes -------------------------------------------------------------------------


def decodes_or_refuses(first: int, body: bytes, protocol: int) -> None:
    try:
        P.decode_packet(first, body, protocol)
    except P.MqttProtocolError:
        pass


@FUZZ
@given(st.binary(max_size=64), versions)
def test_arbitrary_bytes_raise_only_protocol_errors(data: bytes, protocol: int) -> None:
    try:
        P.decode(data, protocol)
    except P.MqttProtocolError:
        pass


@FUZZ
@given(st.integers(0, 255), st.binary(max_size=48), versions)
def test_arbitrary_bodies_of_every_type_raise_only_protocol_errors(first: int, body: bytes, protocol: int) -> None:
    decodes_or_refuses(first, body, protocol)


@FUZZ
@given(any_packet, st.data())
def test_damaged_packets_raise_only_protocol_errors(case: tuple[int, Any], data: st.DataObject) -> None:
    """Valid packets with a byte changed, bytes cut or inserted: deep paths of every decoder."""
    protocol, packet = case
    encoded = packet.encode(protocol)
    first, start, end = P.split_packet(encoded)  # type: ignore[misc]
    body = bytearray(encoded[start:end])
    action = data.draw(st.sampled_from(["flip", "cut", "insert"]))
    if action == "flip":
        assume(body)
        i = data.draw(st.integers(0, len(body) - 1))
        body[i] = data.draw(st.integers(0, 255))
    elif action == "cut":
        assume(body)
        i = data.draw(st.integers(0, len(body) - 1))
        del body[i : i + data.draw(st.integers(1, 4))]
    else:
        i = data.draw(st.integers(0, len(body)))
        body[i:i] = data.draw(st.binary(min_size=1, max_size=4))
    decodes_or_refuses(first, bytes(body), protocol)
    decodes_or_refuses(first ^ data.draw(st.integers(0, 15)), bytes(body), protocol)  # and with other flags


def test_a_remaining_length_over_four_bytes_is_malformed() -> None:
    with pytest.raises(P.MqttProtocolError):
        P.split_packet(b"\x30\xff\xff\xff\xff\x01")
    assert P.split_packet(b"\x30\xff\xff") is None  # incomplete, not wrong


# -- known encodings -------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "encoded"), [
    (0, "00"), (127, "7f"), (128, "8001"), (16383, "ff7f"), (16384, "808001"),
    (2097151, "ffff7f"), (2097152, "80808001"), (268435455, "ffffff7f"),
])
def test_varint_encodings_of_the_spec(value: int, encoded: str) -> None:
    assert P.encode_varint(value).hex() == encoded


def test_known_encodings() -> None:
    assert P.Connect("abc", clean=True, keepalive=60).encode(4) == (
        bytes.fromhex("100f00044d5154540402003c0003") + b"abc")
    # MQTT 5: the same with an empty property length after the keepalive.
    assert P.Connect("abc").encode(5) == bytes.fromhex("101000044d5154540502003c000003") + b"abc"
    assert P.Connect("c", username="u", password=b"p", will=P.Will("w", b"x", 1, True)).encode(4) == (
        bytes.fromhex("101900044d51545404ee003c0001") + b"c" + b"\x00\x01w\x00\x01x" + b"\x00\x01u\x00\x01p")
    assert P.Publish("a/b", b"hi", qos=1, packet_id=10).encode(4) == bytes.fromhex("3209000361") + b"/b\x00\x0ahi"
    assert P.Publish("a", b"", qos=0, retain=True).encode(5) == bytes.fromhex("3104000161") + b"\x00"
    assert P.Publish("a", qos=2, dup=True, packet_id=1).encode(4) == bytes.fromhex("3c050001610001")
    assert P.Puback(7).encode(5) == bytes.fromhex("40020007")  # reason 0, no properties: the short form
    assert P.Puback(7, 0x10).encode(5) == bytes.fromhex("4003000710")
    assert P.Pubrel(7).encode(4) == bytes.fromhex("62020007")
    assert P.Subscribe(1, [P.Subscription("a/+", 1)]).encode(4) == bytes.fromhex("82080001000361") + b"/+\x01"
    assert P.Subscribe(1, [P.Subscription("#", 2, no_local=True, retain_handling=1)]).encode(5) == (
        bytes.fromhex("82070001000001") + b"#" + bytes((0x16,)))
    assert P.Unsuback(3).encode(4) == bytes.fromhex("b0020003")
    assert P.Pingreq().encode(4) == b"\xc0\x00" and P.Pingresp().encode(5) == b"\xd0\x00"
    assert P.Disconnect().encode(4) == b"\xe0\x00" and P.Disconnect(0x04).encode(5) == b"\xe0\x01\x04"
    assert P.Connack(True, 0, {"receive_maximum": 20}).encode(5) == bytes.fromhex("20060100032100") + b"\x14"


def test_decoding_known_broker_packets() -> None:
    assert P.decode(bytes.fromhex("20020005"), 4) == (P.Connack(False, 5), 4)
    connack = P.decode(bytes.fromhex("2009000006" "22000a" "210014"), 5)
    assert connack == (P.Connack(False, 0, {"topic_alias_maximum": 10, "receive_maximum": 20}), 11)
    suback = P.decode(bytes.fromhex("9005000a000180"), 5)
    assert suback == (P.Suback(10, [1, 0x80]), 7)


def test_properties_encode_user_properties_from_a_dict_and_one_subscription_id() -> None:
    data = P.Publish("t", b"", properties={"user_property": {"a": "1"}, "subscription_identifier": 5}).encode(5)
    assert P.decode(data, 5) == (P.Publish("t", properties={"user_property": [("a", "1")],
                                                        "subscription_identifier": [5]}), len(data))


@pytest.mark.parametrize(("make", "words"), [
    (lambda: P.Publish("a/+", b"").encode(4), "wildcard"),
    (lambda: P.Publish("", b"").encode(4), "empty topic"),
    (lambda: P.Publish("a", b"", qos=3, packet_id=1).encode(4), "QoS"),
    (lambda: P.Publish("a", b"", qos=1).encode(4), "packet identifier"),
    (lambda: P.Publish("a", b"", dup=True).encode(4), "DUP"),
    (lambda: P.Publish("a", b"", properties={"content_type": "x"}).encode(4), "need MQTT 5"),
    (lambda: P.Publish("a", b"", properties={"colour": "x"}).encode(5), "unknown MQTT 5 property"),
    (lambda: P.Publish("a", b"", properties={"session_expiry_interval": 1}).encode(5), "not allowed in PUBLISH"),
    (lambda: P.Publish("a", b"", properties={"payload_format_indicator": 2}).encode(5), "0 or 1"),
    (lambda: P.Publish("a", b"", properties={"message_expiry_interval": -1}).encode(5), "out of range"),
    (lambda: P.Publish("a\x00", b"").encode(4), "U+0000"),
    (lambda: P.Publish("x" * 70000, b"").encode(4), "65,535"),
    (lambda: P.Subscribe(1, [P.Subscription("a/#/b")]).encode(4), "'#'"),
    (lambda: P.Subscribe(1, [P.Subscription("a", no_local=True)]).encode(4), "need MQTT 5"),
    (lambda: P.Subscribe(1, []).encode(4), "at least one"),
    (lambda: P.Connect("c", password=b"p").encode(4), "without a user name"),
    (lambda: P.Connect("c", will=P.Will("a/#")).encode(4), "wildcard"),
    (lambda: P.Auth().encode(4), "MQTT 5"),
    (lambda: P.Disconnect(0x80).encode(4), "need MQTT 5"),
    (lambda: P.Puback(0).encode(4), "packet identifier"),
    (lambda: P.Pingreq().encode(4) and P.Connack().encode(3), "protocol level"),
])
def test_encoders_refuse_what_the_protocol_cannot_carry(make: Any, words: str) -> None:
    with pytest.raises(P.MqttError) as error:
        make()
    assert not isinstance(error.value, P.MqttProtocolError)
    assert words in str(error.value)


def refusal(first: int, body: bytes, protocol: int) -> str:
    """Why decoding refuses a packet: the text of the MqttProtocolError it must raise."""
    with pytest.raises(P.MqttProtocolError) as error:
        P.decode_packet(first, body, protocol)
    return str(error.value)


@pytest.mark.parametrize(("first", "body", "words"), [
    (0x00, b"", "invalid packet type"),
    (0xF0, b"", "invalid packet type"),  # AUTH in 3.1.1
    (0x62 & 0xF0, b"\x00\x01", "invalid flags"),  # PUBREL must have flags 0010
    (0x36, b"\x00\x01a\x00\x01", "QoS 3"),
    (0x38, b"\x00\x01a", "DUP"),
    (0x32, b"\x00\x01a\x00\x00", "identifier 0"),
    (0x30, b"\x00\x03a/+", "invalid topic name"),
    (0x30, b"\x00\x02\xc3\x28", "UTF-8"),
    (0x30, b"\x00\x00", "empty topic"),
    (0x20, b"\x00\x00\x00", "unexpected bytes"),
    (0x20, b"\x02\x00", "reserved CONNACK flags"),
    (0x90, b"\x00\x01", "without reason code"),
    (0xD0, b"\x00", "unexpected bytes"),
    (0x10, b"\x00\x04MQTT\x05\x02\x00\x3c\x00\x00\x00", "protocol level 5"),
])
def test_decoding_refuses_broken_packets_with_a_reason(first: int, body: bytes, words: str) -> None:
    assert words in refusal(first, body, P.MQTT_3_1_1)


@pytest.mark.parametrize(("properties", "words"), [
    (b"\x03\x23\x00\x00", "must not be 0"),  # topic alias 0
    (b"\x03\x02\x00\x00\x00\x01", "packet too short"),  # property runs past its length
    (b"\x05\x11\x00\x00\x00\x01", "not allowed in PUBLISH"),
    (b"\x04\x23\x00\x01\x23", "packet too short"),
    (b"\x06\x23\x00\x01\x23\x00\x02", "more than once"),
])
def test_broken_mqtt5_publish_properties_are_refused_with_a_reason(properties: bytes, words: str) -> None:
    """A QoS 0 PUBLISH to "a" whose property length and properties are wrong."""
    assert words in refusal(0x30, b"\x00\x01a" + properties, P.MQTT_5)


def test_reason_texts() -> None:
    assert P.reason_text(0x86) == "Bad User Name or Password (0x86)"
    assert P.reason_text(0x87, 5) == "Not authorized (0x87)"
    assert P.reason_text(5, 4) == "not authorized (5)"
    assert P.reason_text(4, 4) == "bad user name or password (4)"
    assert P.reason_text(0x80, 4, P.SUBACK) == "Failure (128)"
    assert P.reason_text(0, 5, P.DISCONNECT) == "Normal disconnection (0x00)"
    assert P.reason_text(0x7F) == "Unknown reason code (0x7F)"


@pytest.mark.parametrize(("topic_filter", "topic", "matches"), [
    ("a/b", "a/b", True), ("a/+", "a/b", True), ("a/+", "a/b/c", False), ("a/#", "a", True),
    ("a/#", "a/b/c", True), ("#", "$SYS/x", False), ("+/x", "$SYS/x", False), ("$SYS/#", "$SYS/x", True),
    ("+/+", "/x", True), ("a/b", "a/c", False),
])
def test_topic_matches(topic_filter: str, topic: str, matches: bool) -> None:
    assert P.topic_filter_problem(topic_filter) is None
    assert P.topic_matches(topic_filter, topic) is matches


@pytest.mark.parametrize("bad", ["", "a/#/b", "a#", "a/b+", "+a", "a\x00"])
def test_invalid_topic_filters(bad: str) -> None:
    assert P.topic_filter_problem(bad)
