"""Orion's syntax rules for identifiers, names, types and text values.

Orion refuses a fixed set of characters in names and values because they were once
dangerous in its URLs and in the HTML some clients built from them; existing clients
rely on the exact refusals, so the sets here are Orion's, not a cleaner design.
"""

from __future__ import annotations

import re

from .errors import BadRequest
from .regex import valid

MAX_NAME_LENGTH = 256

# Forbidden in every identifier and in text values (Orion's forbiddenChars).
_VALUE_FORBIDDEN = re.compile(r"""[<>"'=;()]""")
# Identifiers (id, type, attribute and metadata names and types) must also be printable
# ASCII and may not contain the URL delimiters (Orion's forbiddenIdCharsV2).
_ID_FORBIDDEN = re.compile(r"""[^\x21-\x7e]|[<>"'=;()&?/#]""")
# Characters that may never appear in a URI path segment or parameter.
_URI_FORBIDDEN = re.compile(r"""[<>"'=;()]""")


def forbidden_id_chars(text: str) -> bool:
    return _ID_FORBIDDEN.search(text) is not None


def forbidden_value_chars(text: str) -> bool:
    return _VALUE_FORBIDDEN.search(text) is not None


def forbidden_uri_chars(text: str) -> bool:
    return _URI_FORBIDDEN.search(text) is not None


def check_identifier(kind: str, text: str, *, allow_empty: bool = False) -> None:
    """Length and characters of an entity id/type, attribute or metadata name/type.

    ``kind`` is Orion's word for it in the messages: "entity id", "entity type",
    "attribute name", "attribute type", "metadata name", "metadata type".
    """
    length = len(text.encode())
    if length == 0:
        if allow_empty:
            return
        raise BadRequest(f"{kind} length: 0, min length supported: 1")
    if length > MAX_NAME_LENGTH:
        raise BadRequest(f"{kind} length: {length}, max length supported: {MAX_NAME_LENGTH}")
    if forbidden_id_chars(text):
        raise BadRequest(f"Invalid characters in {kind}")


def check_text_value(value: object, where: str = "attribute value") -> None:
    """Refuse Orion's forbidden characters in strings, at any depth of a compound value."""
    if isinstance(value, str):
        if _VALUE_FORBIDDEN.search(value) is not None:
            raise BadRequest(f"Invalid characters in {where}")
    elif isinstance(value, list):
        for item in value:
            check_text_value(item, where)
    elif isinstance(value, dict):
        for key, item in value.items():
            check_text_value(item, where)


def check_pattern(pattern: str | None, kind: str = "entity idPattern") -> str | None:
    """A regular expression from a request, refused with a 400 when it does not compile."""
    if pattern is not None and not valid(pattern):
        raise BadRequest(f"Invalid regex for {kind}")
    return pattern
