"""The entity selectors of subscriptions and registrations: ``{"id"|"idPattern", "type"|"typePattern"}``.

Both documents list entities the same way and Orion checks them with the same rules;
only some error texts differ (each names its own document), so the texts come in as a
:class:`Texts` value and the rules live here once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import BadRequest
from .names import forbidden_id_chars
from .regex import search, valid


@dataclass(frozen=True)
class Texts:
    """The messages that name the document. ``{field}`` is id, idPattern, type or typePattern."""

    not_object: str
    not_string: str
    empty: str
    empty_pattern: str | None = None  # None: an empty pattern is an invalid regex


def parse_selector(item: Any, texts: Texts) -> dict[str, str]:
    """One item of an ``entities`` list, checked; the canonical dict."""
    if not isinstance(item, dict):
        raise BadRequest(texts.not_object)
    if "id" not in item and "idPattern" not in item:
        raise BadRequest("/entities/ vector item does not have /id/ nor /idPattern/")
    if "id" in item and "idPattern" in item:
        raise BadRequest("/entities/ vector item has both /id/ and /idPattern/")  # (guess)
    if "type" in item and "typePattern" in item:
        raise BadRequest("/entities/ vector item has both /type/ and /typePattern/")  # (guess)
    selector: dict[str, str] = {}
    for field in ("id", "idPattern", "type", "typePattern"):
        if field not in item:
            continue
        value = item[field]
        if not isinstance(value, str):
            raise BadRequest(texts.not_string.format(field=field))
        if field in ("idPattern", "typePattern"):
            if value == "" and texts.empty_pattern is not None:
                raise BadRequest(texts.empty_pattern.format(field=field))
            if value == "" or not valid(value):
                raise BadRequest(f"Invalid regex for entity {field}")
        elif value == "":
            if field == "type":
                raise BadRequest("entity type length: 0, min length supported: 1")
            raise BadRequest(texts.empty.format(field=field))
        elif forbidden_id_chars(value):
            raise BadRequest(f"forbidden characters in /entities/ vector item /{field}/")
        selector[field] = value
    return selector


def selector_covers(selector: dict[str, str], entity_id: str, entity_type: str | None) -> bool:
    """Does a selector cover the entity (``entity_type`` None: any type)? Patterns are
    unanchored searches, as Orion's."""
    if "id" in selector and selector["id"] != entity_id:
        return False
    if "idPattern" in selector and not search(selector["idPattern"], entity_id):
        return False
    if entity_type is not None:
        if "type" in selector and selector["type"] != entity_type:
            return False
        if "typePattern" in selector and not search(selector["typePattern"], entity_type):
            return False
    return True
