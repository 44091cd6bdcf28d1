"""Sensor discovery: find the platform's sensors by what they measure, typo-tolerant and
synonym-aware (WAZIUP's ontology, ``orchestrator/ontology``), with geo, freshness and tenant
filters. ``search.py`` is the pure engine; the registry that fills it from the broker, the
IoT agent and registrations, and ``GET /discovery/sensors``, build on it."""
