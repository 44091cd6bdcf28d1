"""A read's projection applied to an NGSI-v2 answer (pure): what the proxy does for a service
that does not apply ``RequestContext.attrs_visible`` / ``attrs_hidden`` itself (Orion, or
any server behind ``waziup pep``; our broker applies them in-process, docs/authorization.md
"Projections").

Per route (one trailing slash ignored, as the broker does), on a 2xx JSON answer:

* ``GET /v2/entities``, ``POST /v2/op/query``: every entity of the list;
* ``GET /v2/entities/{id}``: the entity;
* ``GET /v2/entities/{id}/attrs``: the attributes object;
* ``GET /v2/types``: the ``attrs`` of every type; ``GET /v2/types/{type}``: its ``attrs``.

An entity keeps ``id`` and ``type`` and the attributes the projection shows, in any
rendering that names attributes (normalized, keyValues). ``GET .../attrs/{name}[/value]`` is
not touched: the decision denies a read of a hidden attribute outright, as it does
``options=values`` and ``unique`` with a projection (their answers carry no names).
Anything else comes back as it is; a projected read whose answer cannot be read as JSON
raises :class:`Unprojectable` (the proxy answers 500): passing it on would show what the
projection hides.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

_KEEP = frozenset({"id", "type"})

Visible = Callable[[str], bool]


class Unprojectable(ValueError):
    """A projected read's answer that cannot be filtered."""


def visibility(visible: frozenset[str] | None, hidden: frozenset[str]) -> Visible:
    def shown(name: str) -> bool:
        return (visible is None or name in visible) and name not in hidden

    return shown


def _entity(doc: Any, shown: Visible) -> Any:
    if not isinstance(doc, dict):
        return doc
    return {k: v for k, v in doc.items() if k in _KEEP or shown(k)}


def _attrs(doc: Any, shown: Visible) -> Any:
    if not isinstance(doc, dict):
        return doc
    return {k: v for k, v in doc.items() if shown(k)}


def _type(doc: Any, shown: Visible) -> Any:
    if isinstance(doc, dict) and isinstance(doc.get("attrs"), dict):
        return {**doc, "attrs": _attrs(doc["attrs"], shown)}
    return doc


def _entities(doc: Any, shown: Visible) -> Any:
    return [_entity(e, shown) for e in doc] if isinstance(doc, list) else doc


def _types(doc: Any, shown: Visible) -> Any:
    return [_type(t, shown) for t in doc] if isinstance(doc, list) else doc


Rule = Callable[[Any, Visible], Any]

# the projected GET routes, by their segments after /v2/ ("*": the entity id or type name)
_GET_RULES: dict[tuple[str, ...], Rule] = {
    ("entities",): _entities,
    ("entities", "*"): _entity,
    ("entities", "*", "attrs"): _attrs,
    ("types",): _types,
    ("types", "*"): _type,
}


def _rule(method: str, path: str) -> Rule | None:
    if len(path) > 1 and path.endswith("/"):
        path = path[:-1]
    if method == "POST":
        return _entities if path == "/v2/op/query" else None
    parts = path.split("/")
    if method != "GET" or len(parts) < 3 or parts[1] != "v2":
        return None
    segments = tuple("*" if i == 1 else part for i, part in enumerate(parts[2:]))
    return _GET_RULES.get(segments)


def project(
    method: str, path: str, status: int, body: bytes, visible: frozenset[str] | None, hidden: frozenset[str]
) -> bytes:
    """``body`` with what the projection hides taken out (see the module docstring)."""
    if not 200 <= status < 300 or not body or (visible is None and not hidden):
        return body
    rule = _rule(method.upper(), path)
    if rule is None:
        return body
    try:
        doc = orjson.loads(body)
        return orjson.dumps(rule(doc, visibility(visible, hidden)))
    except (orjson.JSONDecodeError, TypeError) as exc:
        raise Unprojectable(f"the answer of {method} {path} cannot be filtered: {exc}") from None
