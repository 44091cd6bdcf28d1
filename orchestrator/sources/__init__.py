"""External data sources (issue 17 §3): connectors declared as documents that feed the broker.

A source is a JSON/YAML document (``schema.json``, read by ``definition.py``): where the
records come from (an HTTP JSON API, a CSV table, an MQTT topic) and how each record
becomes an entity (JMESPath, ``mapping.py``). ``runner.py`` runs each source in its own
task and writes its entities in batches; ``component.py`` serves ``/sources`` in the
orchestrator's :8080 service and ``cli.py`` is ``waziup sources``. See docs/sources.md.
"""
