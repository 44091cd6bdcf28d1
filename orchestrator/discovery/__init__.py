"""Sensor discovery: find the platform's sensors by what they measure, typo-tolerant and
synonym-aware (WAZIUP's ontology, ``orchestrator/ontology``), with geo, freshness and tenant
filters (issue 17 §2; docs/discovery.md). ``search.py`` is the pure engine, ``harvest.py``
reads the platform's documents, ``registry.py`` fills the engine from the broker, the IoT
agent and registrations, ``component.py`` serves ``GET /discovery/sensors`` on the
orchestrator's :8080 service, ``cli.py`` is ``waziup discover``."""
