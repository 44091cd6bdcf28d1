"""The time index of a notified entity: QuantumLeap's policy (using.md, "Time Index").

The first present *and valid* instant of this list wins; "metadata" candidates take the
most recent valid value found in any attribute's metadata:

 1. the attribute named by the ``Fiware-TimeIndex-Attribute`` header;
 2. that name as metadata;
 3. the ``TimeInstant`` attribute;  4. ``TimeInstant`` metadata;
 5. the ``timestamp`` attribute;    6. ``timestamp`` metadata;
 7. ``observedAt`` metadata;        8. ``modifiedAt`` metadata (NGSI-LD; also as keys of
    the attribute itself, where NGSI-LD puts them);
 9. the ``observedAt`` attribute;  10. the ``modifiedAt`` attribute;
11. the ``dateModified`` attribute; 12. ``dateModified`` metadata;
13. the arrival time.

Pure: the arrival time is an argument. Instants are texts in ISO 8601 (``instants.py``);
anything else (a number, an object, a bad date) is not valid and the next candidate is
tried, so a notification never fails for its dates.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .entity import ENTITY_KEYS, is_normalized, metadata_value
from .instants import parse_instant

TIME_INSTANT, TIMESTAMP, OBSERVED_AT, MODIFIED_AT, DATE_MODIFIED = (
    "TimeInstant", "timestamp", "observedAt", "modifiedAt", "dateModified",
)
_ON_ATTRIBUTE = (OBSERVED_AT, MODIFIED_AT)  # NGSI-LD keeps these on the attribute itself


def _instant(value: Any) -> int | None:
    return parse_instant(value) if isinstance(value, str) else None


def _attribute(entity: Mapping[str, Any], name: str | None) -> int | None:
    if not name or name in ENTITY_KEYS or name not in entity:
        return None
    raw = entity[name]
    return _instant(raw["value"] if is_normalized(raw) else raw)


def _newest_metadata(entity: Mapping[str, Any], names: set[str]) -> dict[str, int]:
    """Per name, the most recent valid instant in any attribute's metadata (one pass)."""
    found: dict[str, int] = {}
    for key, raw in entity.items():
        if key in ENTITY_KEYS or not is_normalized(raw):
            continue
        metadata = raw.get("metadata")
        candidates = [(n, metadata_value(v)) for n, v in metadata.items() if n in names] \
            if isinstance(metadata, dict) else []
        candidates += [(n, raw[n]) for n in _ON_ATTRIBUTE if n in raw]
        for name, value in candidates:
            instant = _instant(value)
            if instant is not None and instant > found.get(name, instant - 1):
                found[name] = instant
    return found


def time_index(entity: Mapping[str, Any], custom: str | None, now: int) -> int:
    """Milliseconds of the entity's time index (``custom``: the header's attribute name)."""
    metadata: dict[str, int] | None = None

    def newest(name: str | None) -> int | None:
        nonlocal metadata
        if not name:
            return None
        if metadata is None:  # read once, when the first metadata candidate is reached
            names = {TIME_INSTANT, TIMESTAMP, OBSERVED_AT, MODIFIED_AT, DATE_MODIFIED}
            metadata = _newest_metadata(entity, names | {custom} if custom else names)
        return metadata.get(name)

    steps: tuple[Callable[[], int | None], ...] = (
        lambda: _attribute(entity, custom), lambda: newest(custom),
        lambda: _attribute(entity, TIME_INSTANT), lambda: newest(TIME_INSTANT),
        lambda: _attribute(entity, TIMESTAMP), lambda: newest(TIMESTAMP),
        lambda: newest(OBSERVED_AT), lambda: newest(MODIFIED_AT),
        lambda: _attribute(entity, OBSERVED_AT), lambda: _attribute(entity, MODIFIED_AT),
        lambda: _attribute(entity, DATE_MODIFIED), lambda: newest(DATE_MODIFIED),
    )
    for step in steps:
        found = step()
        if found is not None:
            return found
    return now
