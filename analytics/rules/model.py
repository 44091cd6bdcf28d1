"""Rule documents to frozen dataclasses: ``parse_rule(doc) -> Rule``, or ``RuleError``.

A rule is a JSON document (the shape is ``schema.RULE_SCHEMA``; docs/rules.md has
examples). Parsing does everything that can fail once, when the rule is stored: the
schema, the ``q`` filters (with the broker's own parser, ``ngsi.query``), service paths
(``ngsi.servicepath``), id patterns (RE2, ``ngsi.regex``), numbers written as strings,
and the checks that need several fields at once. The engine then only runs rules that
are known to be good. ``Rule.to_dict()`` gives the document back for persistence.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Final

import jsonschema  # type: ignore[import-untyped]

from ngsi.errors import NGSIError
from ngsi.query import Query, parse_q
from ngsi.regex import valid as valid_regex
from ngsi.servicepath import Scope, parse_scopes, parse_write_path

from .schema import ACTION_SCHEMA, DETECTOR_SCHEMA, RULE_SCHEMA

__all__ = [
    "Action",
    "Derive",
    "Detector",
    "NoSignal",
    "Rule",
    "RuleError",
    "Subject",
    "Window",
    "parse_detector",
    "parse_rule",
]

# Perseo's no-signal bounds and default (plain_rules.md, "No signal conditions").
MIN_CHECK_MINUTES: Final = 0.5
MAX_CHECK_MINUTES: Final = 35791.0
DEFAULT_CHECK_MINUTES: Final = 1.0
DEFAULT_MAX_TIME_DETECTION: Final = 30 * 86400.0

_RULE_VALIDATOR: Final = jsonschema.Draft202012Validator(RULE_SCHEMA)
_DETECTOR_VALIDATOR: Final = jsonschema.Draft202012Validator(DETECTOR_SCHEMA)
# Actions are checked one by one, so that an error names the action at fault.
_ACTION_VALIDATOR: Final = jsonschema.Draft202012Validator(ACTION_SCHEMA)


class RuleError(ValueError):
    """A rule or detector document that cannot be used; the message names the field."""


Aggregate = tuple[str, str]  # (function, attribute), e.g. ("avg", "temperature")


@dataclass(frozen=True)
class Subject:
    """Which entities a rule looks at: type, id or id pattern, service paths, q."""

    type: str | None = None
    id: str | None = None
    id_pattern: str | None = None
    scopes: tuple[Scope, ...] = (("/", True),)
    q: Query | None = None


@dataclass(frozen=True)
class Window:
    """Aggregates of the entity's updates over the last ``minutes``, tested by ``q``."""

    minutes: float
    aggregates: dict[str, Aggregate]
    q: Query | None = None


@dataclass(frozen=True)
class NoSignal:
    """Perseo's ``nosignal``: ``attribute`` not updated for ``report_interval`` seconds."""

    attribute: str
    report_interval: float
    check_interval: float = DEFAULT_CHECK_MINUTES  # minutes
    max_time_detection: float = DEFAULT_MAX_TIME_DETECTION
    report_interval_attr: str | None = None
    max_time_detection_attr: str | None = None


@dataclass(frozen=True)
class Action:
    """One action as written; ``templates`` and ``actions.render_action`` fill it per firing."""

    type: str
    parameters: dict[str, Any]
    template: str | None = None
    interval: float | None = None  # milliseconds, per rule and entity (Perseo's ``interval``)


@dataclass(frozen=True)
class Derive:
    """An aggregate entity kept over the latest values of every matching entity."""

    id: str
    type: str
    service_path: str
    attributes: dict[str, Aggregate]


@dataclass(frozen=True)
class Rule:
    name: str
    subject: Subject
    actions: tuple[Action, ...] = ()
    window: Window | None = None
    nosignal: NoSignal | None = None
    anomaly: str | None = None
    derive: Derive | None = None
    interval: float | None = None  # milliseconds, per rule whatever the entity (ours)
    doc: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def kind(self) -> str:
        """``match``, ``window``, ``nosignal``, ``anomaly`` or ``derive``."""
        for kind in ("window", "nosignal", "anomaly", "derive"):
            if getattr(self, kind) is not None:
                return kind
        return "match"

    def to_dict(self) -> dict[str, Any]:
        """The document the rule was parsed from (a copy): what to persist."""
        return copy.deepcopy(self.doc)


@dataclass(frozen=True)
class Detector:
    """An anomaly detector for one attribute of one entity type (see ``anomaly.py``)."""

    type: str
    attribute: str
    method: str = "rolling"
    window: int = 30
    alpha: float = 0.1
    threshold: float = 3.0
    min_samples: int = 10
    min_deviation: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "attribute": self.attribute, "method": self.method, "window": self.window,
                "alpha": self.alpha, "threshold": self.threshold, "minSamples": self.min_samples,
                "minDeviation": self.min_deviation}


def _check_schema(validator: jsonschema.Draft202012Validator, doc: Any, prefix: str = "") -> None:
    errors = list(validator.iter_errors(doc))
    if errors:
        error = jsonschema.exceptions.best_match(errors)
        where = "/".join([prefix] * bool(prefix) + [str(p) for p in error.absolute_path]) or "(document)"
        raise RuleError(f"{where}: {error.message}")


def _number(value: Any, where: str) -> float:
    """Perseo accepts numbers written as strings (``"30e3"``)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise RuleError(f"{where}: not a number: {value!r}") from None
    if not number >= 0 or number == float("inf"):
        raise RuleError(f"{where}: must be a finite number >= 0, not {value!r}")
    return number


def _q(text: str | None, where: str) -> Query | None:
    if text is None:
        return None
    try:
        return parse_q(text)
    except NGSIError as exc:
        raise RuleError(f"{where}: {exc.description}") from None


def _subject(cond: dict[str, Any]) -> Subject:
    if "id" in cond and "idPattern" in cond:
        raise RuleError("condition: give id or idPattern, not both")
    if "idPattern" in cond and not valid_regex(cond["idPattern"]):
        raise RuleError(f"condition/idPattern: invalid regular expression: {cond['idPattern']}")
    scopes: tuple[Scope, ...] = (("/", True),)
    if "servicePath" in cond:
        try:
            scopes = parse_scopes(cond["servicePath"])
        except NGSIError as exc:
            raise RuleError(f"condition/servicePath: {exc.description}") from None
    return Subject(cond.get("type"), cond.get("id"), cond.get("idPattern"), scopes, _q(cond.get("q"), "condition/q"))


def _aggregates(doc: dict[str, dict[str, str]], where: str) -> dict[str, Aggregate]:
    out: dict[str, Aggregate] = {}
    for name, spec in doc.items():
        if name in ("id", "type"):
            raise RuleError(f"{where}/{name}: id and type cannot be aggregate names")
        ((function, attribute),) = spec.items()
        out[name] = (function, attribute)
    return out


def _window(doc: dict[str, Any]) -> Window:
    return Window(float(doc["minutes"]), _aggregates(doc["aggregates"], "condition/window/aggregates"),
                  _q(doc.get("q"), "condition/window/q"))


def _nosignal(doc: dict[str, Any]) -> NoSignal:
    where = "condition/nosignal"
    check = _number(doc.get("checkInterval", DEFAULT_CHECK_MINUTES), f"{where}/checkInterval")
    max_time = _number(doc.get("maxTimeDetection", DEFAULT_MAX_TIME_DETECTION), f"{where}/maxTimeDetection")
    return NoSignal(
        attribute=doc["attribute"],
        report_interval=_number(doc["reportInterval"], f"{where}/reportInterval"),
        # Perseo truncates out-of-range check intervals instead of refusing them.
        check_interval=min(max(check, MIN_CHECK_MINUTES), MAX_CHECK_MINUTES),
        max_time_detection=max_time,
        report_interval_attr=doc.get("reportIntervalAttr"),
        max_time_detection_attr=doc.get("maxTimeDetectionAttr"),
    )


def _action(doc: Any, where: str) -> Action:
    _check_schema(_ACTION_VALIDATOR, doc, where)
    interval = _number(doc["interval"], f"{where}/interval") if "interval" in doc else None
    params = copy.deepcopy(doc.get("parameters", {}))
    if doc["type"] == "update":
        for i, attr in enumerate(params["attributes"]):
            if attr["name"] in ("id", "type"):
                raise RuleError(f"{where}/parameters/attributes/{i}/name: id and type cannot be updated")
            if attr.get("type") != "None" and "value" not in attr and params.get("actionType", "").upper() != "DELETE":
                raise RuleError(f"{where}/parameters/attributes/{i}: 'value' is a required property")
        if "filter" in params and "q" in params["filter"] and "${" not in params["filter"]["q"]:
            _q(params["filter"]["q"], f"{where}/parameters/filter/q")
    return Action(doc["type"], params, doc.get("template"), interval)


def _derive(doc: dict[str, Any], subject: Subject) -> Derive:
    if "servicePath" in doc:
        try:
            path = parse_write_path(doc["servicePath"])
        except NGSIError as exc:
            raise RuleError(f"derive/servicePath: {exc.description}") from None
    else:
        # The base of the one scope watched ("/farm1/#" writes to "/farm1"), else the root.
        path = subject.scopes[0][0] if len(subject.scopes) == 1 else "/"
    return Derive(doc["id"], doc["type"], path, _aggregates(doc["attributes"], "derive/attributes"))


def parse_rule(doc: Any) -> Rule:
    """Validate a rule document and build its ``Rule``; raises ``RuleError``.

    >>> parse_rule({"name": "hot", "condition": {"type": "Room", "q": "temperature>30"},
    ...             "action": {"type": "post", "parameters": {"url": "http://h/${id}"}}}).kind
    'match'
    """
    _check_schema(_RULE_VALIDATOR, doc)
    if "action" not in doc and "derive" not in doc:
        raise RuleError("(document): a rule needs an action or a derive")
    cond = doc.get("condition", {})
    kinds = [k for k in ("window", "nosignal", "anomaly") if k in cond]
    if len(kinds) > 1:
        raise RuleError(f"condition: {' and '.join(kinds)} cannot be combined")
    if "derive" in doc and "action" in doc:
        raise RuleError("derive: a derived entity rule has no action (act on the derived entity with another rule)")
    if "derive" in doc and kinds:
        raise RuleError(f"derive: a derived entity rule cannot have a {kinds[0]} condition")
    subject = _subject(cond)
    raw_actions = doc.get("action", [])
    raw_actions = raw_actions if isinstance(raw_actions, list) else [raw_actions]
    actions = tuple(_action(a, "action" if isinstance(doc["action"], dict) else f"action/{i}")
                    for i, a in enumerate(raw_actions))
    return Rule(
        name=doc["name"],
        subject=subject,
        actions=actions,
        window=_window(cond["window"]) if "window" in cond else None,
        nosignal=_nosignal(cond["nosignal"]) if "nosignal" in cond else None,
        anomaly=cond.get("anomaly"),
        derive=_derive(doc["derive"], subject) if "derive" in doc else None,
        interval=_number(doc["interval"], "interval") if "interval" in doc else None,
        doc=copy.deepcopy(doc),
    )


def parse_detector(doc: Any) -> Detector:
    """Validate a detector document (``schema.DETECTOR_SCHEMA``); raises ``RuleError``."""
    _check_schema(_DETECTOR_VALIDATOR, doc)
    return Detector(
        type=doc["type"],
        attribute=doc["attribute"],
        method=doc.get("method", "rolling"),
        window=doc.get("window", 30),
        alpha=float(doc.get("alpha", 0.1)),
        threshold=float(doc.get("threshold", 3.0)),
        min_samples=doc.get("minSamples", 10),
        min_deviation=float(doc.get("minDeviation", 0.0)),
    )

