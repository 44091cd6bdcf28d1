"""Device payload codecs: pure functions from bytes/text to measures and back.

A *measure* is a ``dict[str, Any]`` of name -> JSON value as the device sent it
(``object_id``s, not yet mapped).  A leading timestamp becomes ``"TimeInstant"``.
Every parser raises only ``iot_agent.errors.ParseError`` on bad input, so a
transport can answer 400 (or drop an MQTT message) with one ``except``.

* ``ul``: Ultralight 2.0 measures, commands, command results, configuration.
* ``jsonmeasure``: IoT Agent JSON payloads (object or array), single values.
* ``cayenne``: CayenneLPP frames (decode and encode).
* ``waziup_gw``: the WAZIUP low-cost LoRa gateway text format.
* ``lorawan``: ChirpStack v4 (and v3) / The Things Stack v3 uplinks, downlinks.
"""

from __future__ import annotations

from iot_agent.errors import ParseError

__all__ = ["ParseError", "payload_text"]


def payload_text(data: str | bytes) -> str:
    """A text payload as ``str``: bytes decoded as UTF-8. The one check every text codec
    (UL, JSON, the WAZIUP gateway's) makes first, with the same ``ParseError`` texts."""
    if isinstance(data, (bytes, bytearray)):
        try:
            return bytes(data).decode("utf-8")
        except UnicodeDecodeError:
            raise ParseError("payload is not UTF-8") from None
    if not isinstance(data, str):
        raise ParseError("payload is not text")
    return data
