"""The project's one MQTT client: asyncio, MQTT 3.1.1 and 5, QoS 0/1/2, TLS, reconnects.

``packets`` encodes and decodes control packets without I/O; ``client`` is the session
(:class:`MqttClient`). No third-party MQTT library is used here: the IoT agent receives
thousands of messages a second, and a network thread of its own (paho) costs a GIL
hand-over per packet. See ``client``'s docstring for what survives a reconnect.

    async with MqttClient("127.0.0.1", 1883, client_id="me", protocol=5,
                          on_message=lambda topic, payload, props: ...) as mqtt:
        await mqtt.subscribe("sensors/#", qos=1)
        await mqtt.publish("sensors/t1", b"21.5", qos=1)
"""

from __future__ import annotations

from .client import MessageHandler, MqttClient
from .packets import (
    MQTT_3_1_1,
    MQTT_5,
    MqttError,
    MqttProtocolError,
    Subscription,
    Will,
    reason_text,
    topic_filter_problem,
    topic_matches,
    topic_name_problem,
)

__all__ = [
    "MQTT_3_1_1",
    "MQTT_5",
    "MessageHandler",
    "MqttClient",
    "MqttError",
    "MqttProtocolError",
    "Subscription",
    "Will",
    "reason_text",
    "topic_filter_problem",
    "topic_matches",
    "topic_name_problem",
]
