"""CayenneLPP frames (myDevices CayenneLPP README; extended types as in XLPP /
ElectronicCats tables).

A frame is ``[channel:1][type:1][data:N]`` repeated, big-endian.  Decoded
names are ``<type name>_<channel>`` as the FIWARE LoRaWAN agent names them
(``temperature_1``, ``barometric_pressure_0``, ``digital_in_3``), so
provisioned ``object_id``s match.  Accelerometer and gyrometer decode to
``{"x","y","z"}``, GPS to ``{"latitude","longitude","altitude"}``, colour to
``{"r","g","b"}``.  Illuminance is unsigned (the Atos agent reads it signed).
Scaled values are divided, not multiplied, so 272 -> 27.2 exactly.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from iot_agent.errors import ParseError

__all__ = ["b64decode", "decode", "decode_base64", "encode", "LPP_TYPES", "LppType"]


@dataclass(frozen=True)
class LppType:
    code: int
    name: str
    size: int
    divisor: int = 1  # value = raw / divisor
    signed: bool = False
    axes: tuple[str, ...] = ()  # multi-value types: one field of size/len(axes) each


_TYPES = [
    LppType(0, "digital_in", 1),
    LppType(1, "digital_out", 1),
    LppType(2, "analog_in", 2, 100, True),
    LppType(3, "analog_out", 2, 100, True),
    LppType(100, "generic_sensor", 4),
    LppType(101, "luminosity", 2),
    LppType(102, "presence", 1),
    LppType(103, "temperature", 2, 10, True),
    LppType(104, "relative_humidity", 1, 2),
    LppType(113, "accelerometer", 6, 1000, True, ("x", "y", "z")),
    LppType(115, "barometric_pressure", 2, 10),
    LppType(116, "voltage", 2, 100),
    LppType(117, "current", 2, 1000),
    LppType(118, "frequency", 4),
    LppType(120, "percentage", 1),
    LppType(121, "altitude", 2, 1, True),
    LppType(125, "concentration", 2),
    LppType(128, "power", 2),
    LppType(130, "distance", 4, 1000),
    LppType(131, "energy", 4, 1000),
    LppType(132, "direction", 2),
    LppType(133, "unixtime", 4),
    LppType(134, "gyrometer", 6, 100, True, ("x", "y", "z")),
    LppType(135, "colour", 3, 1, False, ("r", "g", "b")),
    LppType(136, "gps", 9),  # special: lat/lon 1e-4 deg, alt 1e-2 m, 3 signed bytes each
    LppType(142, "switch", 1),
]
LPP_TYPES: dict[int, LppType] = {t.code: t for t in _TYPES}
_BY_NAME: dict[str, LppType] = {t.name: t for t in _TYPES}


def _num(raw: int, divisor: int) -> int | float:
    """Exact values stay ints (JSON ``40``, not ``40.0``, as JavaScript prints them)."""
    if raw % divisor == 0:
        return raw // divisor
    return raw / divisor


def _read(data: bytes, signed: bool) -> int:
    return int.from_bytes(data, "big", signed=signed)


def decode(data: bytes) -> dict[str, Any]:
    """``{"<type>_<channel>": value}``; ``ParseError`` on unknown types or truncation."""
    if not isinstance(data, (bytes, bytearray)):
        raise ParseError("CayenneLPP payload must be bytes")
    data = bytes(data)
    out: dict[str, Any] = {}
    i = 0
    while i < len(data):
        if i + 2 > len(data):
            raise ParseError(f"CayenneLPP frame truncated at byte {i}")
        channel, code = data[i], data[i + 1]
        t = LPP_TYPES.get(code)
        if t is None:
            raise ParseError(f"unknown CayenneLPP type {code} on channel {channel}")
        body = data[i + 2 : i + 2 + t.size]
        if len(body) < t.size:
            raise ParseError(f"CayenneLPP {t.name} on channel {channel} is truncated")
        out[f"{t.name}_{channel}"] = _value(t, body)
        i += 2 + t.size
    return out


def _value(t: LppType, body: bytes) -> Any:
    if t.code == 136:
        return {
            "latitude": _num(_read(body[0:3], True), 10000),
            "longitude": _num(_read(body[3:6], True), 10000),
            "altitude": _num(_read(body[6:9], True), 100),
        }
    if t.axes:
        step = t.size // len(t.axes)
        return {
            axis: _num(_read(body[k * step : (k + 1) * step], t.signed), t.divisor) for k, axis in enumerate(t.axes)
        }
    return _num(_read(body, t.signed), t.divisor)


def b64decode(text: str | bytes) -> bytes:
    """Strict base64 (``binascii.Error``/``ValueError`` on other characters) that accepts a
    missing padding: simulators and some network servers strip the ``=``, and the FIWARE
    LoRaWAN agent reads such payloads (Node's ``Buffer.from(s, "base64")``)."""
    if isinstance(text, str):
        text = text.encode("ascii")  # UnicodeEncodeError is a ValueError
    if not isinstance(text, (bytes, bytearray)):
        raise TypeError("base64 must be text")
    text = bytes(text).rstrip(b"=")
    return base64.b64decode(text + b"=" * (-len(text) % 4), validate=True)


def decode_base64(text: str | bytes) -> dict[str, Any]:
    """``decode`` of a base64 payload (LoRaWAN network servers send base64; the padding
    may be missing, as Node's ``Buffer.from(s, "base64")`` reads it in the FIWARE agent)."""
    try:
        raw = b64decode(text)
    except (binascii.Error, ValueError, TypeError):
        raise ParseError("payload is not valid base64") from None
    return decode(raw)


def _write(value: float, size: int, divisor: int, signed: bool) -> bytes:
    raw = round(value * divisor)
    try:
        return raw.to_bytes(size, "big", signed=signed)
    except OverflowError:
        raise ValueError(f"value {value} out of range for {size} bytes") from None


def encode(items: Iterable[tuple[int, str, Any]]) -> bytes:
    """A frame from ``(channel, type name, value)`` items (tests, downlinks, simulators).

    ``ValueError`` on unknown types, channels outside 0-255, or values that
    do not fit.
    """
    out = bytearray()
    for channel, name, value in items:
        t = _BY_NAME.get(name)
        if t is None:
            raise ValueError(f"unknown CayenneLPP type {name!r}")
        if not 0 <= channel <= 255:
            raise ValueError("channel must be 0-255")
        out += bytes((channel, t.code))
        if t.code == 136:
            out += _write(value["latitude"], 3, 10000, True)
            out += _write(value["longitude"], 3, 10000, True)
            out += _write(value["altitude"], 3, 100, True)
        elif t.axes:
            step = t.size // len(t.axes)
            for axis in t.axes:
                out += _write(value[axis], step, t.divisor, t.signed)
        else:
            out += _write(value, t.size, t.divisor, t.signed)
    return bytes(out)
