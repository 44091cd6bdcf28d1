"""The JSON Schemas of rule and detector documents.

The schema checks shapes only (which keys, which JSON types; that a rule has an ``action``
or a ``derive`` is checked with the rest); what needs more than a
shape (a ``q`` that parses, a service path Orion accepts, a regular expression RE2
compiles, mutually exclusive condition kinds) is checked by ``model.parse_rule``, so
that every message names the field at fault.

Field names follow Perseo where Perseo has the concept (``name``, ``action``,
``interval``, ``template``, ``parameters``, ``nosignal.reportInterval``...; see
plain_rules.md, "Actions" and "No signal conditions"); the condition is JSON, not EPL.
"""

from __future__ import annotations

from typing import Any, Final

# Perseo's rule names (plain_rules.md, "Introduction"): A-Z a-z 0-9 _ -, at most 50.
NAME_PATTERN: Final = r"^[A-Za-z0-9_-]{1,50}$"

AGGREGATES: Final = ("avg", "min", "max", "sum", "count", "rate")
DERIVED_AGGREGATES: Final = ("avg", "min", "max", "sum", "count")

_NON_EMPTY: Final = {"type": "string", "minLength": 1}
# Perseo writes intervals as numbers or numeric strings ("30e3").
_NUMERIC: Final = {"anyOf": [{"type": "number", "minimum": 0}, {"type": "string", "pattern": r"^\s*[0-9.eE+]+\s*$"}]}
_TEMPLATED_MAP: Final = {"type": "object", "additionalProperties": {"type": "string"}}


def _aggregate(kinds: tuple[str, ...]) -> dict[str, Any]:
    """``{"avg": "temperature"}``: one aggregate function applied to one attribute."""
    return {
        "type": "object",
        "minProperties": 1,
        "maxProperties": 1,
        "propertyNames": {"enum": list(kinds)},
        "additionalProperties": _NON_EMPTY,
    }


def _closed(required: list[str], properties: dict[str, Any]) -> dict[str, Any]:
    """An object with ``properties`` and no others: a misspelt key is an error, not ignored."""
    return {"type": "object", "additionalProperties": False, "required": required, "properties": properties}


_ACTION_BASE: Final = {"type": {"enum": ["update", "post", "command", "email"]}, "interval": _NUMERIC}
_TEMPLATE: Final = {"template": {"type": "string"}}


def _action(kind: str, parameters: dict[str, Any], *, template: bool = False,
            required: tuple[str, ...] = ("parameters",)) -> dict[str, Any]:
    """The branch of ``ACTION_SCHEMA`` for actions of type ``kind``: the keys every action
    has, its ``template`` if it takes one, and its own ``parameters``; nothing else."""
    properties = {**_ACTION_BASE, **(_TEMPLATE if template else {}), "parameters": parameters}
    return {
        "if": {"properties": {"type": {"const": kind}}},
        "then": {"required": list(required), "additionalProperties": False, "properties": properties},
    }


ACTION_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "required": ["type"],
    "properties": _ACTION_BASE,
    "allOf": [
        _action("update", _closed(["attributes"], {
            "id": {"type": "string"},
            "type": {"type": "string"},
            "version": {"enum": [2, "2"]},
            "actionType": {"enum": ["APPEND", "UPDATE", "DELETE", "append", "update", "delete"]},
            "filter": {
                "type": "object",
                "additionalProperties": False,
                "properties": {"type": {"type": "string"}, "id": {"type": "string"},
                               "idPattern": {"type": "string"}, "q": {"type": "string"}},
            },
            "attributes": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name"],
                    "additionalProperties": False,
                    "properties": {"name": _NON_EMPTY, "type": {"type": "string"}, "value": {}},
                },
            },
        })),
        _action("post", _closed(["url"], {
            "url": _NON_EMPTY,
            "method": {"enum": ["POST", "PUT", "PATCH", "GET", "DELETE"]},
            "headers": _TEMPLATED_MAP,
            "qs": _TEMPLATED_MAP,
            "json": {},
        }), template=True),
        _action("command", _closed(["command"], {"command": _NON_EMPTY, "value": {}, "id": {"type": "string"},
                                                 "type": {"type": "string"}})),
        # No "smtp" here, unlike Perseo: the SMTP server is the service's configuration.
        _action("email", _closed(["to"], {"to": _NON_EMPTY, "from": {"type": "string"}, "subject": {"type": "string"}}),
                template=True, required=("parameters", "template")),
    ],
}

RULE_SCHEMA: Final[dict[str, Any]] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["name"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "pattern": NAME_PATTERN},
        "description": {"type": "string"},
        "interval": _NUMERIC,
        "condition": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "type": _NON_EMPTY,
                "id": _NON_EMPTY,
                "idPattern": _NON_EMPTY,
                "servicePath": _NON_EMPTY,
                "q": {"type": "string"},
                "window": _closed(["minutes", "aggregates"], {
                    "minutes": {"type": "number", "exclusiveMinimum": 0, "maximum": 10080},
                    "aggregates": {
                        "type": "object",
                        "minProperties": 1,
                        "additionalProperties": _aggregate(AGGREGATES),
                    },
                    "q": {"type": "string"},
                }),
                "nosignal": _closed(["attribute", "reportInterval"], {
                    "attribute": _NON_EMPTY,
                    "reportInterval": _NUMERIC,
                    "reportIntervalAttr": _NON_EMPTY,
                    "checkInterval": _NUMERIC,
                    "maxTimeDetection": _NUMERIC,
                    "maxTimeDetectionAttr": _NON_EMPTY,
                }),
                "anomaly": _NON_EMPTY,
            },
        },
        "action": {"anyOf": [{"type": "object"}, {"type": "array", "minItems": 1, "items": {"type": "object"}}]},
        "derive": _closed(["id", "type", "attributes"], {
            "id": _NON_EMPTY,
            "type": _NON_EMPTY,
            "servicePath": _NON_EMPTY,
            "attributes": {
                "type": "object",
                "minProperties": 1,
                "additionalProperties": _aggregate(DERIVED_AGGREGATES),
            },
        }),
    },
}

DETECTOR_SCHEMA: Final[dict[str, Any]] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["type", "attribute"],
    "additionalProperties": False,
    "properties": {
        "type": _NON_EMPTY,
        "attribute": _NON_EMPTY,
        "method": {"enum": ["rolling", "ewma"]},
        "window": {"type": "integer", "minimum": 2, "maximum": 10000},
        "alpha": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
        "threshold": {"type": "number", "exclusiveMinimum": 0},
        "minSamples": {"type": "integer", "minimum": 2},
        "minDeviation": {"type": "number", "minimum": 0},
    },
}
