"""URI parameter and path checks every route shares, and the render options they imply.

Orion applies the same rules to every resource's URI parameters (empty values, forbidden
characters) and path segments (entity ids, attribute names); each route calls these
before its own work so that errors come in Orion's order.
"""

from __future__ import annotations

import re

from ngsi.errors import BadRequest
from ngsi.names import forbidden_uri_chars
from ngsi.render import KEY_VALUES, NORMALIZED, UNIQUE, VALUES, Projection, ALL

from ..http import Call

# URI parameters whose values may hold characters forbidden elsewhere (expressions, regexes).
_FREE_PARAMS = {"q", "mq", "idPattern", "typePattern", "georel", "geometry", "coords", "expression"}


# Entity ids and attribute names in a URL path: Orion's forbiddenIdChars (also the URL delimiters).
_FORBIDDEN_IN_PATH_ID = re.compile(r"""[<>"'=;()&?/# ]""")


_HTML_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}


def _html_escape(text: str) -> str:
    return "".join(_HTML_ESCAPES.get(char, char) for char in text)


def check_params(call: Call) -> None:
    if not call.scope.get("query_string"):
        return
    for key, value in call.query.multi_items():
        if value == "":
            # Orion HTML-escapes the parameter name it echoes.
            raise BadRequest(f"Empty right-hand-side for URI param /{_html_escape(key)}/")
        if key not in _FREE_PARAMS and forbidden_uri_chars(value):
            raise BadRequest("invalid character in URI parameter")


_PATH_KINDS = {"id": "entity id", "name": "attribute name"}


def check_path(call: Call, *names: str) -> None:
    for name in names:
        if call.path_params[name] == "":
            raise BadRequest(f"{_PATH_KINDS[name]} length: 0, min length supported: 1")
        if _FORBIDDEN_IN_PATH_ID.search(call.path_params[name]):
            raise BadRequest("invalid character in URI")


def render_mode(options: frozenset[str]) -> str:
    if "keyValues" in options:
        return KEY_VALUES
    if "values" in options:
        return VALUES
    if "unique" in options:
        return UNIQUE
    return NORMALIZED


def split(raw: str | None) -> tuple[str, ...] | None:
    if raw is None:
        return None
    return tuple(part for part in raw.split(","))


def projection(call: Call) -> Projection:
    if not call.scope.get("query_string"):
        return ALL
    attrs = split(call.query.get("attrs"))
    # Deprecated options=dateCreated,dateModified: the same as adding them to attrs.
    legacy = tuple(name for name in ("dateCreated", "dateModified") if name in call.options)
    if legacy:
        attrs = (attrs or ("*",)) + tuple(name for name in legacy if name not in (attrs or ()))
    return Projection(attrs=attrs, metadata=split(call.query.get("metadata")))


def type_param(call: Call) -> str | None:
    entity_type = call.param("type")
    return entity_type if entity_type else None


