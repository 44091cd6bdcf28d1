"""MQTT 3.1.1 (protocol level 4) and MQTT 5 (level 5) control packets, without I/O.

Why a module of its own: the session (``client.py``) is about sockets, timers and
retries; everything about bytes is here, pure functions and plain dataclasses that the
tests can round-trip with hypothesis and feed arbitrary bytes. Decoding only ever raises
:class:`MqttProtocolError` (a malformed packet, or one that breaks the protocol): the
connection it came on cannot go on, and the session drops it.

Each packet is a dataclass with ``encode(protocol) -> bytes``; :func:`decode_packet`
turns a fixed-header first byte and a body back into one, :func:`split_packet` finds
packet boundaries in a stream and :func:`decode` does both. The version matters for
every packet but CONNECT (which names its own level), so it is always passed.

MQTT 5 properties are plain dicts keyed by the snake_case name of the property
(``"message_expiry_interval"``, ``"user_property"``...). Two properties may appear more
than once and are always lists: ``user_property`` (a list of ``(name, value)`` pairs)
and ``subscription_identifier`` (a list of ints; exactly one in SUBSCRIBE). Which
property a packet may carry is checked both ways.

Encoders raise :class:`MqttError` for values the protocol cannot carry (a wildcard in
a topic name, a string over 65,535 bytes, an MQTT 5 field in a 3.1.1 packet...), so
a caller never puts bytes on the wire that the other side would reject as malformed.

The hot path of a subscriber, PUBLISH, has :func:`parse_publish`: it reads straight
from the receive buffer between two offsets (no copy of the body, one of the payload)
and returns a tuple, not a dataclass.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar, Union

MQTT_3_1_1 = 4
MQTT_5 = 5
PROTOCOLS = (MQTT_3_1_1, MQTT_5)

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT, AUTH = 8, 9, 10, 11, 12, 13, 14, 15
WILL = 0  # not a packet type: the will properties of CONNECT, checked like a packet's

PACKET_NAMES = {
    CONNECT: "CONNECT", CONNACK: "CONNACK", PUBLISH: "PUBLISH", PUBACK: "PUBACK", PUBREC: "PUBREC",
    PUBREL: "PUBREL", PUBCOMP: "PUBCOMP", SUBSCRIBE: "SUBSCRIBE", SUBACK: "SUBACK",
    UNSUBSCRIBE: "UNSUBSCRIBE", UNSUBACK: "UNSUBACK", PINGREQ: "PINGREQ", PINGRESP: "PINGRESP",
    DISCONNECT: "DISCONNECT", AUTH: "AUTH",
}

MAX_REMAINING_LENGTH = 268_435_455
MAX_PACKET_ID = 65_535

_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")

#: The properties of an MQTT 3.1.1 packet, and of an MQTT 5 one that has none: read-only, shared.
NO_PROPERTIES: Mapping[str, Any] = MappingProxyType({})

Properties = dict[str, Any]


class MqttError(Exception):
    """Anything MQTT that failed: not connected, refused by the broker, a broken packet.

    ``reason_code`` is the broker's reason code (MQTT 5) or CONNACK return code (3.1.1)
    when the failure is the broker's answer, else None.
    """

    def __init__(self, message: str, reason_code: int | None = None) -> None:
        super().__init__(message)
        self.reason_code = reason_code


class MqttProtocolError(MqttError):
    """Bytes that are not a valid packet (or break the protocol): the connection cannot go on.

    ``reason_code`` is what an MQTT 5 DISCONNECT should say: 0x81 malformed packet, or
    0x82 protocol error.
    """

    def __init__(self, message: str, reason_code: int = 0x81) -> None:
        super().__init__(message, reason_code)


# -- reason codes ----------------------------------------------------------------------------

REASONS_5: dict[int, str] = {
    0x00: "Success",
    0x01: "Granted QoS 1",
    0x02: "Granted QoS 2",
    0x04: "Disconnect with Will Message",
    0x10: "No matching subscribers",
    0x11: "No subscription existed",
    0x18: "Continue authentication",
    0x19: "Re-authenticate",
    0x80: "Unspecified error",
    0x81: "Malformed Packet",
    0x82: "Protocol Error",
    0x83: "Implementation specific error",
    0x84: "Unsupported Protocol Version",
    0x85: "Client Identifier not valid",
    0x86: "Bad User Name or Password",
    0x87: "Not authorized",
    0x88: "Server unavailable",
    0x89: "Server busy",
    0x8A: "Banned",
    0x8B: "Server shutting down",
    0x8C: "Bad authentication method",
    0x8D: "Keep Alive timeout",
    0x8E: "Session taken over",
    0x8F: "Topic Filter invalid",
    0x90: "Topic Name invalid",
    0x91: "Packet Identifier in use",
    0x92: "Packet Identifier not found",
    0x93: "Receive Maximum exceeded",
    0x94: "Topic Alias invalid",
    0x95: "Packet too large",
    0x96: "Message rate too high",
    0x97: "Quota exceeded",
    0x98: "Administrative action",
    0x99: "Payload format invalid",
    0x9A: "Retain not supported",
    0x9B: "QoS not supported",
    0x9C: "Use another server",
    0x9D: "Server moved",
    0x9E: "Shared Subscriptions not supported",
    0x9F: "Connection rate exceeded",
    0xA0: "Maximum connect time",
    0xA1: "Subscription Identifiers not supported",
    0xA2: "Wildcard Subscriptions not supported",
}
CONNACK_RETURN_CODES_4: dict[int, str] = {
    0: "Connection accepted",
    1: "unacceptable protocol version",
    2: "identifier rejected",
    3: "server unavailable",
    4: "bad user name or password",
    5: "not authorized",
}


def reason_text(code: int, protocol: int = MQTT_5, packet_type: int | None = None) -> str:
    """A reason code as words, e.g. ``"Bad User Name or Password (0x86)"``.

    MQTT 3.1.1 has codes only in CONNACK (0-5) and SUBACK (0x80 failure); 0x00 means
    "Normal disconnection" in an MQTT 5 DISCONNECT and "Granted QoS 0" in a SUBACK.
    """
    if protocol == MQTT_3_1_1:
        text: str | None
        if packet_type == SUBACK:
            text = {0: "Granted QoS 0", 1: "Granted QoS 1", 2: "Granted QoS 2", 0x80: "Failure"}.get(code)
        else:
            text = CONNACK_RETURN_CODES_4.get(code)
        return f"{text or 'unknown return code'} ({code})"
    if code == 0 and packet_type == DISCONNECT:
        text = "Normal disconnection"
    elif code == 0 and packet_type == SUBACK:
        text = "Granted QoS 0"
    else:
        text = REASONS_5.get(code)
    return f"{text or 'Unknown reason code'} (0x{code:02X})"


# -- properties ------------------------------------------------------------------------------

_BYTE, _TWO, _FOUR, _VARINT, _STRING, _BINARY, _PAIR = range(7)
_ALL_ACKS = frozenset({PUBACK, PUBREC, PUBREL, PUBCOMP})
_MESSAGE = frozenset({PUBLISH, WILL})

# id: (name, type, packets it may appear in)
_PROPERTY_TABLE: dict[int, tuple[str, int, frozenset[int]]] = {
    0x01: ("payload_format_indicator", _BYTE, _MESSAGE),
    0x02: ("message_expiry_interval", _FOUR, _MESSAGE),
    0x03: ("content_type", _STRING, _MESSAGE),
    0x08: ("response_topic", _STRING, _MESSAGE),
    0x09: ("correlation_data", _BINARY, _MESSAGE),
    0x0B: ("subscription_identifier", _VARINT, frozenset({PUBLISH, SUBSCRIBE})),
    0x11: ("session_expiry_interval", _FOUR, frozenset({CONNECT, CONNACK, DISCONNECT})),
    0x12: ("assigned_client_identifier", _STRING, frozenset({CONNACK})),
    0x13: ("server_keep_alive", _TWO, frozenset({CONNACK})),
    0x15: ("authentication_method", _STRING, frozenset({CONNECT, CONNACK, AUTH})),
    0x16: ("authentication_data", _BINARY, frozenset({CONNECT, CONNACK, AUTH})),
    0x17: ("request_problem_information", _BYTE, frozenset({CONNECT})),
    0x18: ("will_delay_interval", _FOUR, frozenset({WILL})),
    0x19: ("request_response_information", _BYTE, frozenset({CONNECT})),
    0x1A: ("response_information", _STRING, frozenset({CONNACK})),
    0x1C: ("server_reference", _STRING, frozenset({CONNACK, DISCONNECT})),
    0x1F: ("reason_string", _STRING, _ALL_ACKS | {CONNACK, SUBACK, UNSUBACK, DISCONNECT, AUTH}),
    0x21: ("receive_maximum", _TWO, frozenset({CONNECT, CONNACK})),
    0x22: ("topic_alias_maximum", _TWO, frozenset({CONNECT, CONNACK})),
    0x23: ("topic_alias", _TWO, frozenset({PUBLISH})),
    0x24: ("maximum_qos", _BYTE, frozenset({CONNACK})),
    0x25: ("retain_available", _BYTE, frozenset({CONNACK})),
    0x26: ("user_property", _PAIR, _ALL_ACKS | _MESSAGE | {
        CONNECT, CONNACK, SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, DISCONNECT, AUTH}),
    0x27: ("maximum_packet_size", _FOUR, frozenset({CONNECT, CONNACK})),
    0x28: ("wildcard_subscription_available", _BYTE, frozenset({CONNACK})),
    0x29: ("subscription_identifier_available", _BYTE, frozenset({CONNACK})),
    0x2A: ("shared_subscription_available", _BYTE, frozenset({CONNACK})),
}
_PROPERTY_IDS: dict[str, tuple[int, int, frozenset[int]]] = {
    name: (pid, kind, where) for pid, (name, kind, where) in _PROPERTY_TABLE.items()
}
PROPERTY_NAMES = frozenset(_PROPERTY_IDS)
_LISTS = frozenset({"user_property", "subscription_identifier"})
_BOOLEAN_BYTES = frozenset({
    "payload_format_indicator", "request_problem_information", "request_response_information",
    "maximum_qos", "retain_available", "wildcard_subscription_available",
    "subscription_identifier_available", "shared_subscription_available",
})
_NOT_ZERO = frozenset({"receive_maximum", "maximum_packet_size", "topic_alias", "subscription_identifier"})
_LIMITS = {_BYTE: 0xFF, _TWO: 0xFFFF, _FOUR: 0xFFFF_FFFF, _VARINT: MAX_REMAINING_LENGTH}


def allowed_properties(packet_type: int) -> frozenset[str]:
    """The property names a packet type (or ``WILL``) may carry in MQTT 5."""
    return frozenset(name for name, (_, _, where) in _PROPERTY_IDS.items() if packet_type in where)


def _value_problem(name: str, value: Any) -> str | None:
    """Why an integer property value is out of the range the spec allows, or None."""
    if name in _BOOLEAN_BYTES and value not in (0, 1):
        return f"{name} must be 0 or 1"
    if name in _NOT_ZERO and value == 0:
        return f"{name} must not be 0"
    return None


# -- primitive encoders ----------------------------------------------------------------------


def encode_varint(value: int) -> bytes:
    """A variable byte integer (1 to 4 bytes, 7 bits each, least significant first)."""
    if 0 <= value < 0x80:
        return bytes((value,))
    if not 0 <= value <= MAX_REMAINING_LENGTH:
        raise MqttError(f"{value} does not fit a variable byte integer")
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | 0x80 if value else byte)
        if not value:
            return bytes(out)


def _utf8(value: str, what: str) -> bytes:
    if not isinstance(value, str):
        raise MqttError(f"{what} must be a str, not {type(value).__name__}")
    try:
        raw = value.encode("utf-8")
    except UnicodeEncodeError:
        raise MqttError(f"{what} is not encodable as UTF-8 (lone surrogate)") from None
    if len(raw) > 0xFFFF:
        raise MqttError(f"{what} is {len(raw)} bytes long, over the 65,535 of an MQTT string")
    if b"\x00" in raw:
        raise MqttError(f"{what} contains U+0000, which MQTT forbids")
    return _U16.pack(len(raw)) + raw


def _binary(value: bytes, what: str) -> bytes:
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise MqttError(f"{what} must be bytes, not {type(value).__name__}")
    if len(value) > 0xFFFF:
        raise MqttError(f"{what} is {len(value)} bytes long, over the 65,535 MQTT allows")
    return _U16.pack(len(value)) + bytes(value)


def _fixed(first: int, body: bytes) -> bytes:
    if len(body) > MAX_REMAINING_LENGTH:
        raise MqttError(f"packet of {len(body)} bytes is over MQTT's maximum of {MAX_REMAINING_LENGTH}")
    return bytes((first,)) + encode_varint(len(body)) + body


def _check_packet_id(packet_id: int) -> None:
    if not isinstance(packet_id, int) or not 1 <= packet_id <= MAX_PACKET_ID:
        raise MqttError(f"packet identifier {packet_id!r} is not in 1..65535")


def _check_protocol(protocol: int) -> None:
    if protocol not in PROTOCOLS:
        raise MqttError(f"protocol level {protocol!r} is neither 4 (MQTT 3.1.1) nor 5 (MQTT 5)")


def encode_properties(properties: Mapping[str, Any] | None, packet_type: int) -> bytes:
    """The property length and properties of an MQTT 5 packet (``b"\\x00"`` when none)."""
    if not properties:
        return b"\x00"
    out = bytearray()
    where = PACKET_NAMES.get(packet_type, "will")
    for name, value in properties.items():
        spec = _PROPERTY_IDS.get(name)
        if spec is None:
            raise MqttError(f"unknown MQTT 5 property {name!r}")
        pid, kind, allowed = spec
        if packet_type not in allowed:
            raise MqttError(f"property {name!r} is not allowed in {where}")
        if name in _LISTS:
            if name == "user_property" and isinstance(value, Mapping):
                values: list[Any] = list(value.items())
            elif name == "subscription_identifier" and isinstance(value, int):
                values = [value]
            else:
                values = list(value)
            if name == "subscription_identifier" and packet_type == SUBSCRIBE and len(values) != 1:
                raise MqttError("SUBSCRIBE carries exactly one subscription_identifier")
        else:
            values = [value]
        for item in values:
            out.append(pid)
            if kind == _STRING:
                out += _utf8(item, name)
            elif kind == _BINARY:
                out += _binary(item, name)
            elif kind == _PAIR:
                if not isinstance(item, (tuple, list)) or len(item) != 2:
                    raise MqttError("user_property items are (name, value) pairs of str")
                out += _utf8(item[0], "user property name") + _utf8(item[1], "user property value")
            else:
                if not isinstance(item, int) or not 0 <= item <= _LIMITS[kind]:
                    raise MqttError(f"property {name!r} value {item!r} is out of range")
                problem = _value_problem(name, item)
                if problem:
                    raise MqttError(problem)
                item = int(item)
                if kind == _BYTE:
                    out.append(item)
                elif kind == _TWO:
                    out += _U16.pack(item)
                elif kind == _FOUR:
                    out += _U32.pack(item)
                else:
                    out += encode_varint(item)
    return encode_varint(len(out)) + bytes(out)


def _properties_field(properties: Mapping[str, Any] | None, packet_type: int, protocol: int) -> bytes:
    """A packet's properties field: MQTT 5 has one, 3.1.1 none, so properties there are an
    error rather than something silently dropped."""
    if protocol == MQTT_5:
        return encode_properties(properties, packet_type)
    if properties:
        raise MqttError(f"{PACKET_NAMES.get(packet_type, 'will')} properties need MQTT 5")
    return b""


# -- topic names and filters -----------------------------------------------------------------


def topic_name_problem(topic: str, *, alias: bool = False) -> str | None:
    """Why ``topic`` cannot be published to, or None. An empty name is fine with a topic alias (MQTT 5)."""
    if not isinstance(topic, str):
        return f"topic must be a str, not {type(topic).__name__}"
    if not topic and not alias:
        return "empty topic name"
    if "+" in topic or "#" in topic:
        return f"wildcard in topic name {topic!r}"
    if "\x00" in topic:
        return "U+0000 in topic name"
    return None


def topic_filter_problem(topic_filter: str) -> str | None:
    """Why ``topic_filter`` is not a valid subscription filter, or None."""
    if not isinstance(topic_filter, str):
        return f"topic filter must be a str, not {type(topic_filter).__name__}"
    if not topic_filter:
        return "empty topic filter"
    if "\x00" in topic_filter:
        return "U+0000 in topic filter"
    if "+" in topic_filter or "#" in topic_filter:
        levels = topic_filter.split("/")
        for i, level in enumerate(levels):
            if "#" in level and (level != "#" or i != len(levels) - 1):
                return f"'#' must be a whole last level in {topic_filter!r}"
            if "+" in level and level != "+":
                return f"'+' must be a whole level in {topic_filter!r}"
    return None


def _topic_filter(topic_filter: str) -> bytes:
    """A SUBSCRIBE's or UNSUBSCRIBE's topic filter as sent; MqttError for an invalid one."""
    problem = topic_filter_problem(topic_filter)
    if problem:
        raise MqttError(problem)
    return _utf8(topic_filter, "topic filter")


def topic_matches(topic_filter: str, topic: str) -> bool:
    """Whether ``topic`` matches a filter (``+`` one level, ``#`` the rest).

    Topics starting with ``$`` match no filter starting with a wildcard, as brokers do.
    """
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    parts, levels = topic_filter.split("/"), topic.split("/")
    for i, part in enumerate(parts):
        if part == "#":
            return True
        if i >= len(levels) or (part != "+" and part != levels[i]):
            return False
    return len(parts) == len(levels)


# -- decoding helpers -----------------------------------------------------------------------


class _Reader:
    """Reads MQTT fields from ``data[pos:end]``; running out of bytes is a malformed packet."""

    __slots__ = ("data", "end", "pos")

    def __init__(self, data: bytes | bytearray, pos: int = 0, end: int | None = None) -> None:
        self.data = data
        self.pos = pos
        self.end = len(data) if end is None else end

    def left(self) -> int:
        return self.end - self.pos

    def byte(self) -> int:
        if self.pos >= self.end:
            raise MqttProtocolError("packet too short")
        value = self.data[self.pos]
        self.pos += 1
        return value

    def u16(self) -> int:
        pos = self.pos
        if pos + 2 > self.end:
            raise MqttProtocolError("packet too short")
        self.pos = pos + 2
        return (self.data[pos] << 8) | self.data[pos + 1]

    def u32(self) -> int:
        pos = self.pos
        if pos + 4 > self.end:
            raise MqttProtocolError("packet too short")
        self.pos = pos + 4
        value: int = _U32.unpack_from(self.data, pos)[0]
        return value

    def varint(self) -> int:
        value = 0
        for shift in (0, 7, 14, 21):
            byte = self.byte()
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                return value
        raise MqttProtocolError("variable byte integer longer than 4 bytes")

    def binary(self) -> bytes:
        size = self.u16()
        pos = self.pos
        if pos + size > self.end:
            raise MqttProtocolError("string or binary field runs past the end of the packet")
        self.pos = pos + size
        return bytes(self.data[pos : pos + size])

    def string(self) -> str:
        raw = self.binary()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise MqttProtocolError("string is not valid UTF-8") from None
        if "\x00" in text:
            raise MqttProtocolError("string contains U+0000")
        return text

    def packet_id(self) -> int:
        packet_id = self.u16()
        if not packet_id:
            raise MqttProtocolError("packet identifier 0", 0x82)
        return packet_id

    def topic_filter(self) -> str:
        """A SUBSCRIBE's or UNSUBSCRIBE's topic filter; an invalid one is 0x8F."""
        topic_filter = self.string()
        problem = topic_filter_problem(topic_filter)
        if problem:
            raise MqttProtocolError(problem, 0x8F)
        return topic_filter

    def pair(self) -> tuple[str, str]:
        """A user property: two strings, its name and its value."""
        return self.string(), self.string()

    def rest(self) -> bytes:
        data = bytes(self.data[self.pos : self.end])
        self.pos = self.end
        return data

    def done(self) -> None:
        if self.pos != self.end:
            raise MqttProtocolError(f"{self.end - self.pos} unexpected bytes at the end of the packet")

    def properties(self, packet_type: int) -> Properties:
        length = self.varint()
        end = self.pos + length
        if end > self.end:
            raise MqttProtocolError("properties run past the end of the packet")
        props: Properties = {}
        outer_end, self.end = self.end, end
        try:
            while self.pos < end:
                pid = self.varint()
                spec = _PROPERTY_TABLE.get(pid)
                if spec is None:
                    raise MqttProtocolError(f"unknown property identifier 0x{pid:02X}")
                name, kind, allowed = spec
                if packet_type not in allowed:
                    raise MqttProtocolError(
                        f"property {name} not allowed in {PACKET_NAMES.get(packet_type, 'will')}", 0x82)
                value: Any = _READ_PROPERTY[kind](self)
                if kind <= _VARINT:
                    problem = _value_problem(name, value)
                    if problem:
                        raise MqttProtocolError(problem, 0x82)
                if name in _LISTS:
                    values = props.setdefault(name, [])
                    if name == "subscription_identifier" and packet_type != PUBLISH and values:
                        raise MqttProtocolError("subscription_identifier more than once", 0x82)
                    values.append(value)
                elif name in props:
                    raise MqttProtocolError(f"property {name} more than once", 0x82)
                else:
                    props[name] = value
        finally:
            self.end = outer_end
        return props


# property type -> how its value is read
_READ_PROPERTY: dict[int, Callable[[_Reader], Any]] = {
    _BYTE: _Reader.byte, _TWO: _Reader.u16, _FOUR: _Reader.u32, _VARINT: _Reader.varint,
    _STRING: _Reader.string, _BINARY: _Reader.binary, _PAIR: _Reader.pair,
}


# -- packets ---------------------------------------------------------------------------------


class _Typed:
    """The base of a family of packets that differ only in their type (the four publish
    acknowledgements, the two pings, DISCONNECT and AUTH): each member names its packet
    type as a class keyword, ``class Puback(_PublishAck, packet_type=PUBACK)``."""

    TYPE: ClassVar[int] = 0
    __slots__ = ()

    def __init_subclass__(cls, *, packet_type: int = 0, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if packet_type:
            cls.TYPE = packet_type


@dataclass(slots=True)
class Will:
    """The message the broker publishes for a client whose connection ends without DISCONNECT."""

    topic: str
    payload: bytes = b""
    qos: int = 0
    retain: bool = False
    properties: Properties = field(default_factory=dict)  # MQTT 5 only (will_delay_interval, ...)


@dataclass(slots=True)
class Subscription:
    """One topic filter of a SUBSCRIBE, with its options (all but ``qos`` are MQTT 5 only)."""

    topic_filter: str
    qos: int = 0
    no_local: bool = False
    retain_as_published: bool = False
    retain_handling: int = 0  # 0 send retained, 1 only for a new subscription, 2 never

    def options(self, protocol: int) -> int:
        if self.qos not in (0, 1, 2):
            raise MqttError(f"subscription QoS {self.qos!r} is not 0, 1 or 2")
        if self.retain_handling not in (0, 1, 2):
            raise MqttError(f"retain_handling {self.retain_handling!r} is not 0, 1 or 2")
        if protocol == MQTT_3_1_1:
            if self.no_local or self.retain_as_published or self.retain_handling:
                raise MqttError("no_local, retain_as_published and retain_handling need MQTT 5")
            return self.qos
        return self.qos | self.no_local << 2 | self.retain_as_published << 3 | self.retain_handling << 4


@dataclass(slots=True)
class Connect:
    """CONNECT: the first packet of a connection. The protocol level is ``encode``'s argument."""

    TYPE: ClassVar[int] = CONNECT
    client_id: str = ""
    clean: bool = True  # 3.1.1 clean session, MQTT 5 clean start
    keepalive: int = 60
    username: str | None = None
    password: bytes | None = None
    will: Will | None = None
    properties: Properties = field(default_factory=dict)

    def encode(self, protocol: int) -> bytes:
        _check_protocol(protocol)
        if not 0 <= self.keepalive <= 0xFFFF:
            raise MqttError(f"keepalive {self.keepalive!r} is not in 0..65535")
        flags = 0x02 if self.clean else 0
        will = self.will
        if will is not None:
            if will.qos not in (0, 1, 2):
                raise MqttError(f"will QoS {will.qos!r} is not 0, 1 or 2")
            problem = topic_name_problem(will.topic)
            if problem:
                raise MqttError(f"will: {problem}")
            flags |= 0x04 | will.qos << 3 | (0x20 if will.retain else 0)
        if self.username is not None:
            flags |= 0x80
        if self.password is not None:
            if protocol == MQTT_3_1_1 and self.username is None:
                raise MqttError("MQTT 3.1.1 has no password without a user name")
            flags |= 0x40
        body = _utf8("MQTT", "protocol name") + bytes((protocol, flags)) + _U16.pack(self.keepalive)
        body += _properties_field(self.properties, CONNECT, protocol)
        body += _utf8(self.client_id, "client identifier")
        if will is not None:
            body += _properties_field(will.properties, WILL, protocol)
            body += _utf8(will.topic, "will topic") + _binary(will.payload, "will payload")
        if self.username is not None:
            body += _utf8(self.username, "user name")
        if self.password is not None:
            body += _binary(self.password, "password")
        return _fixed(CONNECT << 4, body)


@dataclass(slots=True)
class Connack:
    """CONNACK: the broker's answer to CONNECT; ``reason_code`` 0 is success."""

    TYPE: ClassVar[int] = CONNACK
    session_present: bool = False
    reason_code: int = 0
    properties: Properties = field(default_factory=dict)

    def encode(self, protocol: int) -> bytes:
        _check_protocol(protocol)
        if not 0 <= self.reason_code <= 0xFF:
            raise MqttError(f"reason code {self.reason_code!r} is not a byte")
        body = bytes((1 if self.session_present else 0, self.reason_code))
        body += _properties_field(self.properties, CONNACK, protocol)
        return _fixed(CONNACK << 4, body)


def encode_publish(
    topic: str,
    payload: bytes,
    qos: int,
    retain: bool,
    dup: bool,
    packet_id: int,
    properties: Mapping[str, Any] | None,
    protocol: int,
) -> bytes:
    """A PUBLISH packet (the session's fast way, without a :class:`Publish` object)."""
    if qos not in (0, 1, 2):
        raise MqttError(f"QoS {qos!r} is not 0, 1 or 2")
    if qos:
        _check_packet_id(packet_id)
    elif packet_id or dup:
        raise MqttError("a QoS 0 PUBLISH has neither packet identifier nor DUP flag")
    alias = protocol == MQTT_5 and properties is not None and "topic_alias" in properties
    problem = topic_name_problem(topic, alias=alias)
    if problem:
        raise MqttError(problem)
    head = _utf8(topic, "topic")
    if qos:
        head += _U16.pack(packet_id)
    if protocol == MQTT_5:
        head += encode_properties(properties, PUBLISH) if properties else b"\x00"
    elif properties:
        raise MqttError("message properties need MQTT 5")
    elif protocol != MQTT_3_1_1:
        _check_protocol(protocol)
    size = len(head) + len(payload)
    if size > MAX_REMAINING_LENGTH:
        raise MqttError(f"message of {size} bytes is over MQTT's maximum packet size")
    first = 0x30 | (0x08 if dup else 0) | qos << 1 | (1 if retain else 0)
    return bytes((first,)) + encode_varint(size) + head + payload


PublishTuple = tuple[str, bytes, int, bool, bool, int, Mapping[str, Any]]


def parse_publish(data: bytes | bytearray, first: int, start: int, end: int, protocol: int) -> PublishTuple:
    """The PUBLISH whose body is ``data[start:end]``, as a tuple in :class:`Publish`'s field order.

    ``(topic, payload, qos, retain, dup, packet_id, properties)``: ``packet_id`` is 0 at
    QoS 0, ``properties`` is :data:`NO_PROPERTIES` when there are none. The topic is
    returned as sent: an MQTT 5 topic alias is resolved by the session, which knows them.
    """
    qos = (first >> 1) & 3
    if qos == 3:
        raise MqttProtocolError("PUBLISH with QoS 3")
    dup = bool(first & 0x08)
    if dup and not qos:
        raise MqttProtocolError("QoS 0 PUBLISH with the DUP flag")
    pos = start + 2
    if pos > end:
        raise MqttProtocolError("PUBLISH too short")
    stop = pos + ((data[start] << 8) | data[start + 1])
    if stop > end:
        raise MqttProtocolError("PUBLISH topic runs past the end of the packet")
    try:
        topic = str(data[pos:stop], "utf-8")
    except UnicodeDecodeError:
        raise MqttProtocolError("PUBLISH topic is not valid UTF-8") from None
    packet_id = 0
    if qos:
        if stop + 2 > end:
            raise MqttProtocolError("PUBLISH without packet identifier")
        packet_id = (data[stop] << 8) | data[stop + 1]
        if not packet_id:
            raise MqttProtocolError("PUBLISH with packet identifier 0", 0x82)
        stop += 2
    props: Mapping[str, Any] = NO_PROPERTIES
    if protocol == MQTT_5:
        if stop >= end:
            raise MqttProtocolError("PUBLISH without property length")
        if data[stop]:
            reader = _Reader(data, stop, end)
            props = reader.properties(PUBLISH)
            stop = reader.pos
        else:
            stop += 1
    if "+" in topic or "#" in topic or "\x00" in topic:
        raise MqttProtocolError(f"invalid topic name {topic!r} in PUBLISH", 0x90)
    if not topic and "topic_alias" not in props:
        raise MqttProtocolError("PUBLISH with an empty topic name", 0x82)
    payload = data[stop:end] if type(data) is bytes else bytes(memoryview(data)[stop:end])
    return topic, payload, qos, bool(first & 1), dup, packet_id, props


@dataclass(slots=True)
class Publish:
    """PUBLISH: one application message."""

    TYPE: ClassVar[int] = PUBLISH
    topic: str
    payload: bytes = b""
    qos: int = 0
    retain: bool = False
    dup: bool = False
    packet_id: int = 0  # 1..65535 at QoS 1 and 2, 0 at QoS 0
    properties: Properties = field(default_factory=dict)

    def encode(self, protocol: int) -> bytes:
        return encode_publish(
            self.topic, self.payload, self.qos, self.retain, self.dup, self.packet_id, self.properties, protocol
        )


@dataclass(slots=True)
class _PublishAck(_Typed):
    """PUBACK, PUBREC, PUBREL, PUBCOMP: a packet identifier, and in MQTT 5 a reason code and properties."""

    packet_id: int
    reason_code: int = 0
    properties: Properties = field(default_factory=dict)

    def encode(self, protocol: int) -> bytes:
        _check_protocol(protocol)
        _check_packet_id(self.packet_id)
        first = self.TYPE << 4 | (0x02 if self.TYPE == PUBREL else 0)
        body = _U16.pack(self.packet_id)
        if not isinstance(self.reason_code, int) or not 0 <= self.reason_code <= 0xFF:
            raise MqttError(f"reason code {self.reason_code!r} is not a byte")
        if protocol == MQTT_3_1_1:
            if self.reason_code or self.properties:
                raise MqttError(f"{PACKET_NAMES[self.TYPE]} reason codes and properties need MQTT 5")
        elif self.properties:
            body += bytes((self.reason_code,)) + encode_properties(self.properties, self.TYPE)
        elif self.reason_code:
            body += bytes((self.reason_code,))
        return _fixed(first, body)


class Puback(_PublishAck, packet_type=PUBACK):
    """PUBACK: the receiver has a QoS 1 message."""

    __slots__ = ()


class Pubrec(_PublishAck, packet_type=PUBREC):
    """PUBREC: the receiver has a QoS 2 message (step 1 of 3)."""

    __slots__ = ()


class Pubrel(_PublishAck, packet_type=PUBREL):
    """PUBREL: the sender releases a QoS 2 message (step 2 of 3)."""

    __slots__ = ()


class Pubcomp(_PublishAck, packet_type=PUBCOMP):
    """PUBCOMP: the QoS 2 exchange is complete (step 3 of 3)."""

    __slots__ = ()


@dataclass(slots=True)
class Subscribe:
    """SUBSCRIBE: one or more topic filters."""

    TYPE: ClassVar[int] = SUBSCRIBE
    packet_id: int
    subscriptions: list[Subscription]
    properties: Properties = field(default_factory=dict)

    def encode(self, protocol: int) -> bytes:
        return _encode_filters(
            SUBSCRIBE, self.packet_id, self.properties, protocol, self.subscriptions,
            lambda sub: _topic_filter(sub.topic_filter) + bytes((sub.options(protocol),)),
        )


@dataclass(slots=True)
class Suback:
    """SUBACK: per filter, the granted QoS (0-2) or a refusal (0x80 and up)."""

    TYPE: ClassVar[int] = SUBACK
    packet_id: int
    reason_codes: list[int]
    properties: Properties = field(default_factory=dict)

    def encode(self, protocol: int) -> bytes:
        return _encode_ack_list(self.TYPE, self.packet_id, self.reason_codes, self.properties, protocol)


@dataclass(slots=True)
class Unsubscribe:
    """UNSUBSCRIBE: one or more topic filters."""

    TYPE: ClassVar[int] = UNSUBSCRIBE
    packet_id: int
    topic_filters: list[str]
    properties: Properties = field(default_factory=dict)

    def encode(self, protocol: int) -> bytes:
        return _encode_filters(UNSUBSCRIBE, self.packet_id, self.properties, protocol, self.topic_filters, _topic_filter)


def _encode_filters(
    kind: int, packet_id: int, properties: Properties, protocol: int, entries: list[Any], encode: Callable[[Any], bytes]
) -> bytes:
    """SUBSCRIBE and UNSUBSCRIBE: packet identifier, properties, then each entry (a topic
    filter, with its options in a SUBSCRIBE), checked in that order."""
    _check_protocol(protocol)
    _check_packet_id(packet_id)
    if not entries:
        raise MqttError(f"{PACKET_NAMES[kind]} needs at least one topic filter")
    body = _U16.pack(packet_id) + _properties_field(properties, kind, protocol)
    for entry in entries:
        body += encode(entry)
    return _fixed(kind << 4 | 0x02, body)


@dataclass(slots=True)
class Unsuback:
    """UNSUBACK: in MQTT 5 a reason code per filter; in 3.1.1 only the packet identifier."""

    TYPE: ClassVar[int] = UNSUBACK
    packet_id: int
    reason_codes: list[int] = field(default_factory=list)
    properties: Properties = field(default_factory=dict)

    def encode(self, protocol: int) -> bytes:
        if protocol == MQTT_3_1_1:
            _check_packet_id(self.packet_id)
            if self.reason_codes or self.properties:
                raise MqttError("UNSUBACK reason codes and properties need MQTT 5")
            return _fixed(UNSUBACK << 4, _U16.pack(self.packet_id))
        return _encode_ack_list(self.TYPE, self.packet_id, self.reason_codes, self.properties, protocol)


def _encode_ack_list(kind: int, packet_id: int, codes: list[int], properties: Properties, protocol: int) -> bytes:
    _check_protocol(protocol)
    _check_packet_id(packet_id)
    if not codes:
        raise MqttError(f"{PACKET_NAMES[kind]} needs at least one reason code")
    if any(not isinstance(code, int) or not 0 <= code <= 0xFF for code in codes):
        raise MqttError(f"{PACKET_NAMES[kind]} reason codes must be bytes")
    body = _U16.pack(packet_id) + _properties_field(properties, kind, protocol)
    return _fixed(kind << 4, body + bytes(codes))


@dataclass(slots=True)
class _Bodiless(_Typed):
    """PINGREQ, PINGRESP: the packet type and a remaining length of 0, in either protocol."""

    def encode(self, protocol: int) -> bytes:
        return bytes((self.TYPE << 4, 0))


class Pingreq(_Bodiless, packet_type=PINGREQ):
    """PINGREQ: the client is alive (and wants proof the broker is)."""

    __slots__ = ()


class Pingresp(_Bodiless, packet_type=PINGRESP):
    """PINGRESP: the broker's answer to PINGREQ."""

    __slots__ = ()


@dataclass(slots=True)
class _ReasonOnly(_Typed):
    """DISCONNECT, AUTH: in MQTT 5 a reason code and properties, both left out when 0 and
    empty; in MQTT 3.1.1 nothing."""

    reason_code: int = 0
    properties: Properties = field(default_factory=dict)

    def encode(self, protocol: int) -> bytes:
        kind = self.TYPE
        _check_protocol(protocol)
        if protocol == MQTT_3_1_1:
            if self.reason_code or self.properties:
                raise MqttError(f"{PACKET_NAMES[kind]} reason codes and properties need MQTT 5")
            return bytes((kind << 4, 0))
        if not 0 <= self.reason_code <= 0xFF:
            raise MqttError(f"reason code {self.reason_code!r} is not a byte")
        if self.properties:
            return _fixed(kind << 4, bytes((self.reason_code,)) + encode_properties(self.properties, kind))
        if self.reason_code:
            return bytes((kind << 4, 1, self.reason_code))
        return bytes((kind << 4, 0))


class Disconnect(_ReasonOnly, packet_type=DISCONNECT):
    """DISCONNECT: the end of a connection (from the server too, in MQTT 5)."""

    __slots__ = ()


class Auth(_ReasonOnly, packet_type=AUTH):
    """AUTH (MQTT 5 only): enhanced authentication exchange."""

    __slots__ = ()

    def encode(self, protocol: int) -> bytes:
        if protocol != MQTT_5:
            raise MqttError("AUTH needs MQTT 5")
        return super().encode(protocol)


Packet = Union[  # noqa: UP007 - a runtime alias: ``X | Y`` of classes needs 3.10+ anyway, but reads worse here
    Connect, Connack, Publish, Puback, Pubrec, Pubrel, Pubcomp, Subscribe, Suback,
    Unsubscribe, Unsuback, Pingreq, Pingresp, Disconnect, Auth,
]

# Ready-made packets of the session's hot path.
PINGREQ_PACKET = b"\xc0\x00"
DISCONNECT_PACKET = b"\xe0\x00"
PUBACK_HEAD = b"\x40\x02"
PUBREC_HEAD = b"\x50\x02"
PUBREL_HEAD = b"\x62\x02"
PUBCOMP_HEAD = b"\x70\x02"


# -- decoding --------------------------------------------------------------------------------


def split_packet(data: bytes | bytearray, pos: int = 0) -> tuple[int, int, int] | None:
    """Where the packet at ``data[pos:]`` is: ``(first byte, body start, body end)``; None if incomplete."""
    size = len(data)
    if size - pos < 2:
        return None
    length, shift, i = 0, 0, pos + 1
    while True:
        if i >= size:
            return None
        byte = data[i]
        i += 1
        length |= (byte & 0x7F) << shift
        if byte < 0x80:
            break
        shift += 7
        if shift > 21:
            raise MqttProtocolError("remaining length longer than 4 bytes")
    end = i + length
    if end > size:
        return None
    return data[pos], i, end


def decode(data: bytes | bytearray, protocol: int) -> tuple[Packet, int] | None:
    """The first packet of ``data`` and the number of bytes it took, or None if it is incomplete."""
    where = split_packet(data)
    if where is None:
        return None
    first, start, end = where
    return decode_packet(first, bytes(data[start:end]), protocol), end


def decode_packet(first: int, body: bytes, protocol: int) -> Packet:
    """One packet from its first byte (type and flags) and its body (after the remaining length).

    ``protocol`` is the connection's level (4 or 5); a CONNECT must name the same one.
    """
    if protocol not in PROTOCOLS:
        raise MqttProtocolError(f"protocol level {protocol!r} is neither 4 nor 5", 0x84)
    kind = first >> 4
    if kind == PUBLISH:
        topic, payload, qos, retain, dup, packet_id, props = parse_publish(body, first, 0, len(body), protocol)
        return Publish(topic, payload, qos, retain, dup, packet_id, dict(props))
    decoder = _DECODERS.get(kind)
    if decoder is None or (kind == AUTH and protocol != MQTT_5):
        raise MqttProtocolError(f"invalid packet type {kind}")
    expected = 0x02 if kind in (PUBREL, SUBSCRIBE, UNSUBSCRIBE) else 0
    if first & 0x0F != expected:
        raise MqttProtocolError(f"invalid flags 0x{first & 0x0F:X} in {PACKET_NAMES[kind]}")
    reader = _Reader(body)
    packet = decoder(reader, protocol)
    reader.done()
    return packet


def _decode_connect(r: _Reader, protocol: int) -> Connect:
    if r.string() != "MQTT":
        raise MqttProtocolError("protocol name is not MQTT", 0x84)
    level = r.byte()
    if level != protocol:
        raise MqttProtocolError(f"CONNECT for protocol level {level}, expected {protocol}", 0x84)
    flags = r.byte()
    if flags & 0x01:
        raise MqttProtocolError("reserved CONNECT flag set")
    will_flag, will_qos, will_retain = flags & 0x04, (flags >> 3) & 3, bool(flags & 0x20)
    if will_qos == 3 or (not will_flag and (will_qos or will_retain)):
        raise MqttProtocolError("invalid will flags")
    if protocol == MQTT_3_1_1 and flags & 0x40 and not flags & 0x80:
        raise MqttProtocolError("password without user name")
    keepalive = r.u16()
    props = r.properties(CONNECT) if protocol == MQTT_5 else {}
    client_id = r.string()
    will = None
    if will_flag:
        will_props = r.properties(WILL) if protocol == MQTT_5 else {}
        topic = r.string()
        problem = topic_name_problem(topic)
        if problem:
            raise MqttProtocolError(f"will: {problem}", 0x90)
        will = Will(topic, r.binary(), will_qos, will_retain, will_props)
    username = r.string() if flags & 0x80 else None
    password = r.binary() if flags & 0x40 else None
    return Connect(client_id, bool(flags & 0x02), keepalive, username, password, will, props)


def _decode_connack(r: _Reader, protocol: int) -> Connack:
    flags = r.byte()
    if flags & 0xFE:
        raise MqttProtocolError("reserved CONNACK flags set")
    code = r.byte()
    props = r.properties(CONNACK) if protocol == MQTT_5 else {}
    return Connack(bool(flags), code, props)


def _ack_decoder(cls: type[Puback | Pubrec | Pubrel | Pubcomp]) -> Callable[[_Reader, int], Packet]:
    def decode_ack(r: _Reader, protocol: int) -> Packet:
        packet_id = r.packet_id()
        if protocol == MQTT_3_1_1 or not r.left():
            return cls(packet_id)
        code = r.byte()
        props = r.properties(cls.TYPE) if r.left() else {}
        return cls(packet_id, code, props)

    return decode_ack


def _decode_subscribe(r: _Reader, protocol: int) -> Subscribe:
    packet_id = r.packet_id()
    props = r.properties(SUBSCRIBE) if protocol == MQTT_5 else {}
    subs: list[Subscription] = []
    while r.left():
        topic_filter = r.topic_filter()
        options = r.byte()
        qos, handling = options & 3, (options >> 4) & 3
        if qos == 3 or handling == 3 or options & 0xC0 or (protocol == MQTT_3_1_1 and options & 0xFC):
            raise MqttProtocolError(f"invalid subscription options 0x{options:02X}")
        subs.append(Subscription(topic_filter, qos, bool(options & 4), bool(options & 8), handling))
    if not subs:
        raise MqttProtocolError("SUBSCRIBE without topic filter", 0x82)
    return Subscribe(packet_id, subs, props)


def _read_ack_list(r: _Reader, protocol: int, kind: int) -> tuple[int, list[int], Properties]:
    """SUBACK's and MQTT 5 UNSUBACK's body: packet identifier, properties, at least one reason code."""
    packet_id = r.packet_id()
    props = r.properties(kind) if protocol == MQTT_5 else {}
    codes = list(r.rest())
    if not codes:
        raise MqttProtocolError(f"{PACKET_NAMES[kind]} without reason code", 0x82)
    return packet_id, codes, props


def _decode_suback(r: _Reader, protocol: int) -> Suback:
    return Suback(*_read_ack_list(r, protocol, SUBACK))


def _decode_unsubscribe(r: _Reader, protocol: int) -> Unsubscribe:
    packet_id = r.packet_id()
    props = r.properties(UNSUBSCRIBE) if protocol == MQTT_5 else {}
    filters: list[str] = []
    while r.left():
        filters.append(r.topic_filter())
    if not filters:
        raise MqttProtocolError("UNSUBSCRIBE without topic filter", 0x82)
    return Unsubscribe(packet_id, filters, props)


def _decode_unsuback(r: _Reader, protocol: int) -> Unsuback:
    if protocol == MQTT_3_1_1:
        return Unsuback(r.packet_id())
    return Unsuback(*_read_ack_list(r, protocol, UNSUBACK))


def _decode_empty(cls: type[Pingreq | Pingresp]) -> Callable[[_Reader, int], Packet]:
    def decode_empty(r: _Reader, protocol: int) -> Packet:
        return cls()

    return decode_empty


def _reason_decoder(cls: type[Disconnect | Auth]) -> Callable[[_Reader, int], Packet]:
    def decode_reason(r: _Reader, protocol: int) -> Packet:
        if protocol == MQTT_3_1_1 or not r.left():
            return cls()
        code = r.byte()
        props = r.properties(cls.TYPE) if r.left() else {}
        return cls(code, props)

    return decode_reason


_DECODERS: dict[int, Callable[[_Reader, int], Packet]] = {
    CONNECT: _decode_connect,
    CONNACK: _decode_connack,
    PUBACK: _ack_decoder(Puback),
    PUBREC: _ack_decoder(Pubrec),
    PUBREL: _ack_decoder(Pubrel),
    PUBCOMP: _ack_decoder(Pubcomp),
    SUBSCRIBE: _decode_subscribe,
    SUBACK: _decode_suback,
    UNSUBSCRIBE: _decode_unsubscribe,
    UNSUBACK: _decode_unsuback,
    PINGREQ: _decode_empty(Pingreq),
    PINGRESP: _decode_empty(Pingresp),
    DISCONNECT: _reason_decoder(Disconnect),
    AUTH: _reason_decoder(Auth),
}


def user_properties(properties: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The user properties of a packet or message (an empty list when none)."""
    pairs: Iterable[tuple[str, str]] = properties.get("user_property", ())
    return list(pairs)
