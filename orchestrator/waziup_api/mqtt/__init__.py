"""The WAZIUP API's embedded MQTT 3.1.1 broker (contract §6), with permission hooks.

``MqttBroker(hooks, host=, port=, ssl_context=, max_packet=)``: ``start()``, ``stop()``,
``publish(topic, payload, qos=, retain=)``; ``Hooks`` is what the API implements.
"""

from orchestrator.waziup_api.mqtt.broker import Hooks, MqttBroker
from orchestrator.waziup_api.mqtt.topics import SubscriptionIndex

__all__ = ["Hooks", "MqttBroker", "SubscriptionIndex"]
