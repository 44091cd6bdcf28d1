"""The few byte-level things the broker needs that the shared codec does not do.

Why here and not in ``ngsi/client/mqtt/packets.py``: that codec is a client's and is
strict the way a client should be (an invalid filter in SUBSCRIBE is a malformed packet),
while a broker must answer an invalid filter with a SUBACK failure code and keep the
connection; it also has to read the declared size of a packet before the packet is
complete (to refuse an oversized one early) and to accept the MQTT 3.1 CONNECT.
"""

from __future__ import annotations

from ngsi.client.mqtt.packets import MqttProtocolError, topic_filter_problem

#: CONNACK return codes of MQTT 3.1.1.
ACCEPTED, BAD_PROTOCOL, ID_REJECTED, UNAVAILABLE, BAD_CREDENTIALS, NOT_AUTHORIZED = range(6)

SUBACK_FAILURE = 0x80


def declared_size(data: bytes | bytearray, pos: int = 0) -> int | None:
    """The total size (fixed header included) the packet at ``data[pos:]`` announces.

    None while the remaining length itself is incomplete; MqttProtocolError if it is longer
    than 4 bytes.
    """
    length, shift = 0, 0
    for i in range(1, min(len(data) - pos, 5)):
        byte = data[pos + i]
        length |= (byte & 0x7F) << shift
        if byte < 0x80:
            return i + 1 + length
        shift += 7
    if len(data) - pos >= 5:
        raise MqttProtocolError("remaining length longer than 4 bytes")
    return None


def connect_level(body: bytes) -> tuple[int, bytes | None]:
    """The protocol level a CONNECT body asks for, and the body as an MQTT 3.1.1 one.

    MQTT 3.1 (``MQIsdp``, level 3) differs from 3.1.1 in the CONNECT header only, so its
    body is rewritten to level 4 for the codec. The body is None for a level the broker
    does not speak (CONNACK 0x01); a protocol name that is not MQTT at all is a protocol
    error (the spec lets the server close without CONNACK).
    """
    if len(body) < 2:
        raise MqttProtocolError("CONNECT too short")
    size = (body[0] << 8) | body[1]
    name, rest = body[2 : 2 + size], body[2 + size :]
    if not rest or name not in (b"MQTT", b"MQIsdp"):
        raise MqttProtocolError(f"unknown protocol name {name!r}")
    level = rest[0]
    if name == b"MQIsdp" and level == 3:
        return level, b"\x00\x04MQTT\x04" + rest[1:]
    if name == b"MQTT" and level == 4:
        return level, body
    return level, None


def parse_subscribe(body: bytes) -> tuple[int, list[tuple[str, int | None]]]:
    """A SUBSCRIBE body: its packet id, and per filter the requested QoS, or None if the filter is invalid.

    An invalid filter (``a/#/b``, ``sport+``) is answered with 0x80 in SUBACK; broken
    bytes (a string past the end, bad UTF-8, reserved option bits) are a protocol error.
    """
    if len(body) < 2:
        raise MqttProtocolError("SUBSCRIBE too short")
    packet_id = (body[0] << 8) | body[1]
    if not packet_id:
        raise MqttProtocolError("packet identifier 0")
    pos, entries = 2, []
    while pos < len(body):
        topic_filter, pos = _string(body, pos)
        if pos >= len(body):
            raise MqttProtocolError("SUBSCRIBE filter without options")
        options = body[pos]
        pos += 1
        if options & 0xFC or options == 3:
            raise MqttProtocolError(f"invalid subscription options 0x{options:02X}")
        entries.append((topic_filter, None if topic_filter_problem(topic_filter) else options))
    if not entries:
        raise MqttProtocolError("SUBSCRIBE without topic filter")
    return packet_id, entries


def _string(data: bytes, pos: int) -> tuple[str, int]:
    if pos + 2 > len(data):
        raise MqttProtocolError("string length past the end of the packet")
    end = pos + 2 + ((data[pos] << 8) | data[pos + 1])
    if end > len(data):
        raise MqttProtocolError("string runs past the end of the packet")
    try:
        return data[pos + 2 : end].decode("utf-8"), end
    except UnicodeDecodeError:
        raise MqttProtocolError("string is not valid UTF-8") from None


def packet_id_bytes(packet_id: int) -> bytes:
    """A packet identifier as the two bytes that follow an acknowledgement's fixed header."""
    return bytes((packet_id >> 8, packet_id & 0xFF))
