"""The WAZIUP IoT agent: devices in, NGSI-v2 entities out, as the FIWARE IoT agents do.

Pure parts (no I/O, usable from tests and from the gateway alike):

* ``iot_agent.errors``: the agents' error classes (``{"name", "message"}`` + HTTP code).
* ``iot_agent.codecs``: device payload formats (Ultralight 2.0, JSON, CayenneLPP,
  the WAZIUP low-cost gateway format, ChirpStack v4 / The Things Stack v3 uplinks).
  Every parser raises only ``errors.ParseError`` on bad input.
* ``iot_agent.preprocess``: our per device/group clean-up pipeline (range, type,
  outliers, units, windows, extrapolation) run on measures before mapping.
* ``iot_agent.measures``: measures + device + group -> NGSI-v2 entities, as
  iotagent-node-lib builds them (mapping, JEXL expressions, statics,
  ``explicitAttrs``, ``TimeInstant``).
"""

from __future__ import annotations
