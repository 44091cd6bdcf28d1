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


_ACTION_BASE: Final = {"type": {"enum": ["update", "post", "command", "email"]}, "interval": _NUMERIC}

ACTION_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "required": ["type"],
    "properties": _ACTION_BASE,
    "allOf": [
        {
            "if": {"properties": {"type": {"const": "update"}}},
            "then": {
                "required": ["parameters"],
                "additionalProperties": False,
                "properties": {
                    **_ACTION_BASE,
                    "parameters": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["attributes"],
                        "properties": {
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
                        },
                    },
                },
            },
        },
        {
            "if": {"properties": {"type": {"const": "post"}}},
            "then": {
                "required": ["parameters"],
                "additionalProperties": False,
                "properties": {
                    **_ACTION_BASE,
                    "template": {"type": "string"},
                    "parameters": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["url"],
                        "properties": {
                            "url": _NON_EMPTY,
                            "method": {"enum": ["POST", "PUT", "PATCH", "GET", "DELETE"]},
                            "headers": _TEMPLATED_MAP,
                            "qs": _TEMPLATED_MAP,
                            "json": {},
                        },
                    },
                },
            },
        },
        {
            "if": {"properties": {"type": {"const": "command"}}},
            "then": {
                "required": ["parameters"],
                "additionalProperties": False,
                "properties": {
                    **_ACTION_BASE,
                    "parameters": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["command"],
                        "properties": {"command": _NON_EMPTY, "value": {}, "id": {"type": "string"},
                                       "type": {"type": "string"}},
                    },
                },
            },
        },
        {
            "if": {"properties": {"type": {"const": "email"}}},
            "then": {
                "required": ["parameters", "template"],
                "additionalProperties": False,
                "properties": {
                    **_ACTION_BASE,
                    "template": {"type": "string"},
                    "parameters": {
                        # No "smtp" here, unlike Perseo: the SMTP server is the service's configuration.
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["to"],
                        "properties": {"to": _NON_EMPTY, "from": {"type": "string"}, "subject": {"type": "string"}},
                    },
                },
            },
        },
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
                "window": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["minutes", "aggregates"],
                    "properties": {
                        "minutes": {"type": "number", "exclusiveMinimum": 0, "maximum": 10080},
                        "aggregates": {
                            "type": "object",
                            "minProperties": 1,
                            "additionalProperties": _aggregate(AGGREGATES),
                        },
                        "q": {"type": "string"},
                    },
                },
                "nosignal": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["attribute", "reportInterval"],
                    "properties": {
                        "attribute": _NON_EMPTY,
                        "reportInterval": _NUMERIC,
                        "reportIntervalAttr": _NON_EMPTY,
                        "checkInterval": _NUMERIC,
                        "maxTimeDetection": _NUMERIC,
                        "maxTimeDetectionAttr": _NON_EMPTY,
                    },
                },
                "anomaly": _NON_EMPTY,
            },
        },
        "action": {"anyOf": [{"type": "object"}, {"type": "array", "minItems": 1, "items": {"type": "object"}}]},
        "derive": {
            "type": "object",
            "additionalProperties": False,
            "required": ["id", "type", "attributes"],
            "properties": {
                "id": _NON_EMPTY,
                "type": _NON_EMPTY,
                "servicePath": _NON_EMPTY,
                "attributes": {
                    "type": "object",
                    "minProperties": 1,
                    "additionalProperties": _aggregate(DERIVED_AGGREGATES),
                },
            },
        },
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
