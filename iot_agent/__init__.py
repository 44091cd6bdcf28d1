"""The WAZIUP IoT agent: devices in, NGSI-v2 entities out, as the FIWARE IoT agents do.

Pure parts (no I/O, usable from tests and from the gateway alike):

* ``iot_agent.errors``: the agents' error classes (``{"name", "message"}`` + HTTP code).
* ``iot_agent.codecs``: device payload formats (Ultralight 2.0, JSON, CayenneLPP,
  the WAZIUP low-cost gateway format, ChirpStack v4 / The Things Stack v3 uplinks).
  Every parser raises only ``errors.ParseError`` on bad input.
* ``iot_agent.preprocess``: our per device/group clean-up pipeline (range, type,
  outliers, units, windows, extrapolation) run on measures before mapping.
* ``iot_agent.mapping``: measures + device + group -> NGSI-v2 entities, as
  iotagent-node-lib builds them (mapping, JEXL expressions, statics,
  ``explicitAttrs``, ``TimeInstant``).
* ``iot_agent.device``: what a provisioned device (with its group) says about itself:
  entity, apikey, tenant, payload format, transport, commands, LoRaWAN settings.

With I/O:

* ``iot_agent.provisioning``: the north API and the registry of groups and devices.
* ``iot_agent.south``: devices in (HTTP, MQTT, LoRaWAN) and measures out to the broker.
* ``iot_agent.commands``: commands and lazy attributes, from the broker to the devices.
"""

from __future__ import annotations
