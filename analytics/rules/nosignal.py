"""Perseo's no-signal rules (plain_rules.md, "No signal conditions", "Non signal actions").

An entity is silent for a rule when its watched attribute has not been updated for more
than ``reportInterval`` seconds, and not for more than ``maxTimeDetection`` (a longer
silence means a dead entity, which is forgotten). Both can be read from the entity
itself (``reportIntervalAttr``, ``maxTimeDetectionAttr``). Checks run every
``checkInterval`` minutes; a silent entity fires at every check until it speaks again,
as in Perseo, so an action ``interval`` is what spaces the reminders.

Unlike Perseo, which asks the broker, the state is what the engine was notified of: an
entity is watched from its first notification carrying the attribute, and the last
notified attributes are kept for the templates. ``NoSignalState`` is that memory for
one rule, serialisable with ``to_dict``/``from_dict``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ngsi.dates import format_datetime

from .model import NoSignal
from .windows import numeric

EntityKey = tuple[str, str, str]  # (service path, type, id)


@dataclass
class Watch:
    """The last time an entity's attribute was seen, and the entity as last notified."""

    last: float
    entity: dict[str, Any]


def _from_entity(entity: Mapping[str, Any], attr: str | None, default: float) -> float:
    if attr is None:
        return default
    body = entity.get(attr)
    value = numeric(body.get("value") if isinstance(body, Mapping) else body)
    return default if value is None or value < 0 else value


def report_interval(rule: NoSignal, entity: Mapping[str, Any]) -> float:
    return _from_entity(entity, rule.report_interval_attr, rule.report_interval)


def max_time_detection(rule: NoSignal, entity: Mapping[str, Any]) -> float:
    return _from_entity(entity, rule.max_time_detection_attr, rule.max_time_detection)


@dataclass
class NoSignalState:
    """What one no-signal rule knows: the entities it watches and its next check."""

    watches: dict[EntityKey, Watch] = field(default_factory=dict)
    next_check: float | None = None

    def seen(self, key: EntityKey, entity: Mapping[str, Any], attribute: str, now: float) -> None:
        """Record a notification; only one carrying ``attribute`` resets the silence."""
        watch = self.watches.get(key)
        if watch is None:
            if attribute not in entity:
                return
            self.watches[key] = Watch(now, dict(entity))
            return
        watch.entity.update(entity)  # notifications may carry only the changed attributes
        if attribute in entity:
            watch.last = max(watch.last, now)

    def forget(self, key: EntityKey) -> None:
        self.watches.pop(key, None)

    def check(self, rule: NoSignal, now: float) -> list[tuple[EntityKey, Watch]]:
        """The silent entities if a check is due at ``now`` (else none), forgetting dead ones."""
        if self.next_check is not None and now < self.next_check:
            return []
        self.next_check = now + rule.check_interval * 60.0
        silent: list[tuple[EntityKey, Watch]] = []
        for key, watch in list(self.watches.items()):
            elapsed = now - watch.last
            if elapsed > max_time_detection(rule, watch.entity):
                del self.watches[key]
            elif elapsed > report_interval(rule, watch.entity):
                silent.append((key, watch))
        return silent

    def to_dict(self) -> dict[str, Any]:
        return {
            "nextCheck": self.next_check,
            "watches": [{"key": list(k), "last": w.last, "entity": w.entity} for k, w in self.watches.items()],
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> NoSignalState:
        watches = {(str(w["key"][0]), str(w["key"][1]), str(w["key"][2])): Watch(float(w["last"]), dict(w["entity"]))
                   for w in doc.get("watches", [])}
        next_check = doc.get("nextCheck")
        return cls(watches, None if next_check is None else float(next_check))


def nosignal_vars(rule: NoSignal, watch: Watch, now: float) -> dict[str, Any]:
    """The virtual attributes of a no-signal firing ("Non signal actions"); the engine adds
    ``service``, ``subservice`` and ``ruleName``. ``lastTime`` is the last time the
    attribute was notified (Perseo's text is ambiguous here)."""
    out: dict[str, Any] = {
        "reportInterval": report_interval(rule, watch.entity),
        "internalCurrentTime": format_datetime(now),
        "lastTime": format_datetime(watch.last),
        "maxTimeDetection": max_time_detection(rule, watch.entity),
    }
    if rule.report_interval_attr is not None:
        out["reportIntervalAttr"] = rule.report_interval_attr
    if rule.max_time_detection_attr is not None:
        out["maxTimeDetectionAttr"] = rule.max_time_detection_attr
    return out
