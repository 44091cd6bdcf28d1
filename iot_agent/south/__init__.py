"""The agent's southbound side: devices in (HTTP, MQTT, LoRaWAN, the WAZIUP gateway).

``ingest`` is the one path from decoded measures to the broker (``batch`` groups its
requests); ``http``, ``mqtt`` (over ``ngsi.client.mqtt``) and ``lora`` are the transports;
``runtime`` wires them with the north app and the commands into the running agent
(``waziup iot-agent``); ``gateway`` is the WAZIUP low-cost gateway's cloud script.
"""

from __future__ import annotations
