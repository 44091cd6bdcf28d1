"""Where records come from: one module per kind of source.

``http_json`` and ``csv_source`` are polled: ``pages(definition, context)`` yields the
records of each page fetched. ``mqtt_source`` is subscribed: ``MqttFeed`` gathers the
messages of a topic until the runner takes them. Every destination goes through the
platform's destination policy (``Context.gate``) before anything is sent, and the HTTP
client checks the resolved addresses again when it connects (``fetch.py``).
"""

from __future__ import annotations

from .base import Context, SourceError

__all__ = ["Context", "SourceError"]
