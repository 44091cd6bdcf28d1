"""Reading one entity of a notification, in either form Orion sends.

Normalized (``{"temperature": {"type": "Number", "value": 21, "metadata": {...}}}``)
and ``keyValues`` (``{"temperature": 21}``) notifications are told apart attribute by
attribute: an object whose keys are all among the normalized ones and that has a
``value`` is normalized, anything else is a key-value (so a ``keyValues`` structured
value ``{"value": 3, "unit": "C"}`` stays a value). QuantumLeap refuses ``keyValues``;
here such attributes get the type derived from their value (``values.derive``).
"""

from __future__ import annotations

from typing import Any, Final

NORMALIZED_KEYS: Final = frozenset({"type", "value", "metadata", "observedAt", "modifiedAt", "createdAt", "unitCode"})
ENTITY_KEYS: Final = frozenset({"id", "type"})


def is_normalized(raw: Any) -> bool:
    """An attribute in the normalized form (the common shapes are decided without a set
    operation: this runs once per value ingested)."""
    if type(raw) is not dict or "value" not in raw:
        return False
    if len(raw) <= 3 and ("type" in raw or "metadata" in raw or len(raw) == 1):
        return NORMALIZED_KEYS.issuperset(raw) if len(raw) == 3 else True
    return NORMALIZED_KEYS.issuperset(raw)


def metadata_value(raw: Any) -> Any:
    """The value of a metadata item, normalized (``{"type", "value"}``) or not."""
    return raw.get("value") if isinstance(raw, dict) and "value" in raw else raw
