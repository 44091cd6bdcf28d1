"""What a command looks like on the wire to the device, and what its answer looks like.

Pure: the device's payload format (``device.payload_format``) picks Ultralight or JSON.
MQTT, HTTP push and the HTTP poll answer all send ``command_payload``; MQTT ``cmdexe``
and HTTP push answers are read with ``parse_results``.
"""

from __future__ import annotations

from typing import Any

import orjson

from ..codecs import jsonmeasure, ul
from ..device import JSON, UL, payload_format

Doc = dict[str, Any]


def command_payload(device: Doc, group: Doc | None, name: str, value: Any) -> bytes:
    """What the device receives: ``dev@cmd|value`` (UL) or ``{"cmd": value}`` (JSON)."""
    if payload_format(device, group) == JSON:
        return orjson.dumps(jsonmeasure.format_command(name, value))
    return ul.format_command(str(device["device_id"]), name, value).encode()


def parse_results(device: Doc, group: Doc | None, payload: bytes | str) -> list[tuple[str, Any]]:
    """(command, result) pairs of a device's answer, UL or JSON (sniffed when unknown)."""
    text = payload.decode("utf-8", "replace") if isinstance(payload, (bytes, bytearray)) else payload
    fmt = payload_format(device, group)
    if fmt is None:
        fmt = JSON if text.lstrip().startswith("{") else UL
    if fmt == JSON:
        return jsonmeasure.parse_command_results(text)
    results = []
    for part in text.split("#"):
        _, name, result = ul.parse_command_result(part)
        results.append((name, result))
    return results
