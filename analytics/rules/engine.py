"""The rules engine: rules and their state in, firings out. No I/O.

The service around it (``analytics/rules/service``) feeds broker notifications to ``on_change``, calls
``tick`` on a timer for no-signal rules, executes the actions of each ``Firing`` and
persists ``state()``. Everything here is deterministic given the ``now`` it is passed.

    engine = Engine()
    engine.put_rule("openiot", parse_rule(doc))
    for firing in engine.on_change("openiot", "/farm1/north", entity, now=time.time()):
        for index, action in enumerate(firing.actions):
            ...  # execute; on failure: engine.action_failed(firing, index)

Rules belong to a tenant (Fiware-Service), as Perseo's rules belong to a service.
One change is matched against every rule of its tenant; window, no-signal, anomaly and
derived state is kept per rule and entity (or per type, attribute and entity for the
anomaly detectors, shared by the rules that use them).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from .actions import render_action
from .anomaly import DetectorState, Flag
from .anomaly import observe as observe_anomaly
from .conditions import internal, matches_query, selects
from .derived import DerivedState, derived_attributes
from .model import Detector, Rule, parse_detector, parse_rule
from .nosignal import EntityKey, NoSignalState, nosignal_vars
from .templates import event_vars, json_safe
from .throttle import Key, Throttle
from .windows import WindowState, numeric, observe
from .windows import attributes as window_attributes
from .windows import compute as window_compute

__all__ = ["Engine", "Firing"]

STATE_VERSION: Final = 1


@dataclass(frozen=True)
class Firing:
    """A rule fired for an entity: the actions to execute, rendered.

    ``reason`` is the rule's kind (``match``, ``window``, ``anomaly``, ``nosignal``,
    ``derive``); ``values`` the virtual variables of the firing (aggregates, anomaly
    score, no-signal times); ``indexes`` the position of each action in the rule, since
    throttled ones are left out.
    """

    rule: str
    tenant: str
    service_path: str
    entity: dict[str, Any]
    reason: str
    actions: tuple[dict[str, Any], ...]
    indexes: tuple[int, ...] = ()
    values: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "tenant": self.tenant, "servicePath": self.service_path, "entity": self.entity,
                "reason": self.reason, "actions": list(self.actions), "indexes": list(self.indexes),
                "values": json_safe(self.values)}


def _entity_key(service_path: str, entity: Mapping[str, Any]) -> EntityKey:
    return (service_path, str(entity.get("type", "")), str(entity.get("id", "")))


def _value(entity: Mapping[str, Any], name: str) -> Any:
    body = entity.get(name)
    return body.get("value") if isinstance(body, Mapping) else body


class Engine:
    """Rules and detectors per tenant, with the state their conditions need."""

    def __init__(self) -> None:
        self._rules: dict[str, dict[str, Rule]] = {}
        self._detectors: dict[tuple[str, str, str], Detector] = {}  # (tenant, type, attribute)
        self._windows: dict[tuple[str, str, EntityKey], WindowState] = {}  # (tenant, rule, entity)
        self._nosignal: dict[tuple[str, str], NoSignalState] = {}  # (tenant, rule)
        self._derived: dict[tuple[str, str], DerivedState] = {}  # (tenant, rule)
        self._anomaly: dict[tuple[str, EntityKey, str], DetectorState] = {}  # (tenant, entity, attribute)
        self._throttle = Throttle()

    # ------------------------------------------------------------------ rules and detectors

    def put_rule(self, tenant: str, rule: Rule) -> None:
        """Add or replace a rule; a replaced rule starts from empty state."""
        self._drop_rule_state(tenant, rule.name)
        self._rules.setdefault(tenant, {})[rule.name] = rule

    def delete_rule(self, tenant: str, name: str) -> bool:
        rules = self._rules.get(tenant, {})
        if name not in rules:
            return False
        del rules[name]
        self._drop_rule_state(tenant, name)
        return True

    def get_rule(self, tenant: str, name: str) -> Rule | None:
        return self._rules.get(tenant, {}).get(name)

    def rules(self, tenant: str) -> list[Rule]:
        return list(self._rules.get(tenant, {}).values())

    def put_detector(self, tenant: str, detector: Detector) -> None:
        """Set the anomaly detector of a type's attribute; its entities start new baselines."""
        self._detectors[(tenant, detector.type, detector.attribute)] = detector
        for key in [k for k in self._anomaly if k[0] == tenant and k[1][1] == detector.type and k[2] == detector.attribute]:
            del self._anomaly[key]

    def delete_detector(self, tenant: str, entity_type: str, attribute: str) -> bool:
        return self._detectors.pop((tenant, entity_type, attribute), None) is not None

    def detectors(self, tenant: str) -> list[Detector]:
        return [d for (t, _, _), d in self._detectors.items() if t == tenant]

    def _drop_rule_state(self, tenant: str, name: str) -> None:
        for wkey in [k for k in self._windows if k[0] == tenant and k[1] == name]:
            del self._windows[wkey]
        self._nosignal.pop((tenant, name), None)
        self._derived.pop((tenant, name), None)
        for tkey in [k for k in self._throttle.last if k[:2] == (tenant, name)]:
            self._throttle.release(tkey)

    # ------------------------------------------------------------------ events

    def on_change(self, tenant: str, service_path: str, entity: Mapping[str, Any], now: float,
                  only: Collection[str] | None = None) -> list[Firing]:
        """An entity was created or updated (an NGSI-v2 normalized notification): the
        firings it causes, in rule order.

        ``only`` names the rules the change is for (the service passes the rule whose
        broker subscription notified it, so that a change notified by several rules'
        subscriptions is seen once by each rule); ``None``: every rule of the tenant."""
        rules = self._selected(tenant, only)
        if not rules:
            return []
        target = internal(entity, service_path)
        key = _entity_key(service_path, entity)
        flags = self._flags(tenant, key, entity, rules.values(), only is None)
        firings: list[Firing] = []
        for rule in list(rules.values()):
            selected = selects(rule.subject, service_path, target)
            if rule.derive is not None:
                firings.extend(self._derive(tenant, rule, key, entity if selected else None, now))
            elif rule.nosignal is not None:
                state = self._nosignal.setdefault((tenant, rule.name), NoSignalState())
                if selected:
                    state.seen(key, entity, rule.nosignal.attribute, now)
                else:
                    state.forget(key)
            elif not selected:
                continue
            elif rule.window is not None:
                values = self._window(tenant, rule, key, entity, target, now)
                if values is not None:
                    firings.extend(self._fire(tenant, rule, service_path, entity, "window", values, now))
            elif rule.anomaly is not None:
                flag = flags.get(rule.anomaly)
                if flag is not None and flag.outlier:
                    firings.extend(self._fire(tenant, rule, service_path, entity, "anomaly", flag.vars(), now))
            else:
                firings.extend(self._fire(tenant, rule, service_path, entity, "match", {}, now))
        return firings

    def on_delete(self, tenant: str, service_path: str, entity_type: str, entity_id: str, now: float,
                  only: Collection[str] | None = None) -> list[Firing]:
        """An entity was deleted: forget its state; derived entities it was part of change
        (those of the rules ``only`` names, when given, as in ``on_change``)."""
        key = (service_path, entity_type, entity_id)
        for wkey in [k for k in self._windows if k[0] == tenant and k[2] == key]:
            del self._windows[wkey]
        for akey in [k for k in self._anomaly if k[0] == tenant and k[1] == key]:
            del self._anomaly[akey]
        firings: list[Firing] = []
        for rule in self._selected(tenant, only).values():
            if rule.nosignal is not None and (tenant, rule.name) in self._nosignal:
                self._nosignal[(tenant, rule.name)].forget(key)
            if rule.derive is not None:
                firings.extend(self._derive(tenant, rule, key, None, now))
        return firings

    def tick(self, now: float) -> list[Firing]:
        """Periodic work: no-signal checks that are due, and forgetting expired state."""
        firings: list[Firing] = []
        for tenant, rules in self._rules.items():
            for rule in list(rules.values()):
                if rule.nosignal is None:
                    continue
                state = self._nosignal.setdefault((tenant, rule.name), NoSignalState())
                for key, watch in state.check(rule.nosignal, now):
                    extra = nosignal_vars(rule.nosignal, watch, now)
                    firings.extend(self._fire(tenant, rule, key[0], watch.entity, "nosignal", extra, now))
        for wkey, wstate in list(self._windows.items()):
            owner = self.get_rule(wkey[0], wkey[1])
            if owner is None or owner.window is None:
                del self._windows[wkey]
                continue
            wstate.evict(now - owner.window.minutes * 60.0)
            if wstate.empty():
                del self._windows[wkey]
        self._throttle.prune(now)
        return firings

    def action_failed(self, firing: Firing, index: int) -> None:
        """The service could not execute ``firing.actions[index]``: as in Perseo, only
        successful executions hold the next ones back."""
        rule_index = firing.indexes[index] if index < len(firing.indexes) else index
        self._throttle.release(self._action_key(firing.tenant, firing.rule, firing.service_path,
                                                firing.entity, rule_index))

    # ------------------------------------------------------------------ internals

    def _selected(self, tenant: str, only: Collection[str] | None) -> dict[str, Rule]:
        rules = self._rules.get(tenant, {})
        if only is None:
            return rules
        if len(only) == 1:  # a notice feeds the one rule owning its subscription: no scan of every rule
            (name,) = only
            return {name: rules[name]} if name in rules else {}
        return {name: rule for name, rule in rules.items() if name in only}

    def _flags(self, tenant: str, key: EntityKey, entity: Mapping[str, Any], rules: Iterable[Rule],
               detectors: bool = True) -> dict[str, Flag]:
        """Score the entity's readings once per change, for the type's detectors (unless
        ``detectors`` is off: a change meant for some rules only) and for the attributes
        anomaly rules watch (with a default detector where none is set)."""
        entity_type = key[1]
        wanted = {a for (t, ty, a) in self._detectors if t == tenant and ty == entity_type} if detectors else set()
        wanted |= {r.anomaly for r in rules if r.anomaly is not None and r.subject.type in (None, entity_type)}
        flags: dict[str, Flag] = {}
        for attribute in sorted(wanted):
            value = numeric(_value(entity, attribute))
            if value is None:
                continue
            detector = self._detectors.get((tenant, entity_type, attribute)) or Detector(entity_type, attribute)
            state = self._anomaly.setdefault((tenant, key, attribute), DetectorState())
            flags[attribute] = observe_anomaly(detector, state, value)
        return flags

    def _window(self, tenant: str, rule: Rule, key: EntityKey, entity: Mapping[str, Any], target: dict[str, Any],
                now: float) -> dict[str, float | int] | None:
        """Add the change to the rule's window; the aggregates if the window ``q`` holds.

        The window ``q`` sees the entity's attributes with the aggregates laid over them.
        """
        window = rule.window
        assert window is not None
        state = self._windows.setdefault((tenant, rule.name, key), WindowState())
        wanted = window_attributes(window.aggregates)
        observe(state, ((a, _value(entity, a)) for a in wanted if a in entity), now, window.minutes)
        values = window_compute(window.aggregates, state)
        aggregates: dict[str, Any] = {n: {"type": "Number", "value": v, "md": {}} for n, v in values.items()}
        overlay = dict(target, attrs={**target["attrs"], **aggregates})
        return values if matches_query(window.q, overlay) else None

    @staticmethod
    def _action_key(tenant: str, rule: str, service_path: str, entity: Mapping[str, Any], index: int) -> Key:
        return (tenant, rule, service_path, str(entity.get("type", "")), str(entity.get("id", "")), str(index))

    def _fire(self, tenant: str, rule: Rule, service_path: str, entity: Mapping[str, Any], reason: str,
              extra: Mapping[str, Any], now: float) -> list[Firing]:
        """Render the actions that their throttles allow; none, no firing."""
        rule_key: Key = (tenant, rule.name)
        if rule.interval and self._throttle.blocked(rule_key, now):
            return []
        variables = event_vars(entity, {"service": tenant, "subservice": service_path, "servicePath": service_path,
                                        "ruleName": rule.name, **extra})
        actions: list[dict[str, Any]] = []
        indexes: list[int] = []
        for index, action in enumerate(rule.actions):
            if not self._throttle.allow(self._action_key(tenant, rule.name, service_path, entity, index), now,
                                        action.interval):
                continue
            actions.append(render_action(action, variables, tenant, service_path))
            indexes.append(index)
        if not actions:
            return []
        self._throttle.record(rule_key, now, rule.interval)
        ident = {"id": entity.get("id"), "type": entity.get("type")}
        return [Firing(rule.name, tenant, service_path, ident, reason, tuple(actions), tuple(indexes), dict(extra))]

    def _derive(self, tenant: str, rule: Rule, key: EntityKey, entity: Mapping[str, Any] | None,
                now: float) -> list[Firing]:
        """Update the members of a derived entity; an update when its attributes change."""
        derive = rule.derive
        assert derive is not None
        if key == (derive.service_path, derive.type, derive.id):
            return []  # the derived entity is never its own member
        state = self._derived.setdefault((tenant, rule.name), DerivedState())
        if entity is None:
            if not state.remove(key):
                return []
        else:
            state.update(key, {a: _value(entity, a) for _, a in derive.attributes.values() if a in entity})
        attrs = derived_attributes(derive, state)
        if attrs == state.last:
            return []
        rule_key: Key = (tenant, rule.name)
        if rule.interval and self._throttle.blocked(rule_key, now):
            return []
        self._throttle.record(rule_key, now, rule.interval)
        state.last = attrs
        action = {"type": "update", "actionType": "append", "entity": {"id": derive.id, "type": derive.type},
                  "attributes": attrs, "service": tenant, "servicePath": derive.service_path}
        values = {name: body["value"] for name, body in attrs.items()}
        return [Firing(rule.name, tenant, derive.service_path, {"id": derive.id, "type": derive.type}, "derive",
                       (action,), (0,), values)]

    # ------------------------------------------------------------------ persistence

    def state(self) -> dict[str, Any]:
        """Everything the engine holds, as plain JSON-ready values: rules, detectors and state."""
        return {
            "version": STATE_VERSION,
            "rules": [{"tenant": t, "rule": r.to_dict()} for t, rules in self._rules.items() for r in rules.values()],
            "detectors": [{"tenant": t, "detector": d.to_dict()} for (t, _, _), d in self._detectors.items()],
            "windows": [{"tenant": t, "rule": r, "key": list(k), "state": s.to_dict()}
                        for (t, r, k), s in self._windows.items()],
            "nosignal": [{"tenant": t, "rule": r, "state": s.to_dict()} for (t, r), s in self._nosignal.items()],
            "derived": [{"tenant": t, "rule": r, "state": s.to_dict()} for (t, r), s in self._derived.items()],
            "anomaly": [{"tenant": t, "key": list(k), "attribute": a, "state": s.to_dict()}
                        for (t, k, a), s in self._anomaly.items()],
            "throttle": self._throttle.to_dict(),
        }

    def load_state(self, doc: Mapping[str, Any]) -> None:
        """Replace everything with a ``state()`` snapshot; raises ``RuleError`` on a bad rule."""
        if doc.get("version") != STATE_VERSION:
            raise ValueError(f"unknown rules engine state version: {doc.get('version')!r}")
        fresh = Engine()
        for item in doc.get("rules", []):
            fresh._rules.setdefault(item["tenant"], {})[item["rule"]["name"]] = parse_rule(item["rule"])
        for item in doc.get("detectors", []):
            d = parse_detector(item["detector"])
            fresh._detectors[(item["tenant"], d.type, d.attribute)] = d
        for item in doc.get("windows", []):
            fresh._windows[(item["tenant"], item["rule"], _key(item["key"]))] = WindowState.from_dict(item["state"])
        for item in doc.get("nosignal", []):
            fresh._nosignal[(item["tenant"], item["rule"])] = NoSignalState.from_dict(item["state"])
        for item in doc.get("derived", []):
            fresh._derived[(item["tenant"], item["rule"])] = DerivedState.from_dict(item["state"])
        for item in doc.get("anomaly", []):
            fresh._anomaly[(item["tenant"], _key(item["key"]), item["attribute"])] = DetectorState.from_dict(item["state"])
        fresh._throttle = Throttle.from_dict(doc.get("throttle", {}))
        self.__dict__.update(fresh.__dict__)


def _key(parts: list[Any]) -> EntityKey:
    return (str(parts[0]), str(parts[1]), str(parts[2]))
