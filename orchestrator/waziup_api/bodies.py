"""Request bodies as the reference's clients send them (contract §1).

Scalar ``PUT`` bodies come either as ``text/plain`` with the raw text or as JSON (a JSON
string, number or boolean); both are accepted on every scalar field. JSON bodies that do
not parse are a 400 with the reason.
"""

from __future__ import annotations

from typing import Any

from . import strictjson
from .errors import bad_request


def is_json(content_type: str | None) -> bool:
    kind = (content_type or "").split(";")[0].strip().lower()
    return kind == "application/json" or kind.endswith("+json")


def json_body(raw: bytes) -> Any:
    """A JSON body, or a 400 naming what is wrong with it."""
    if not raw.strip():
        raise bad_request("a JSON body is required")
    try:
        return strictjson.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_request(f"the body is not JSON the API accepts: {exc}") from None


def scalar_body(raw: bytes, content_type: str | None) -> Any:
    """A scalar field's new value: JSON when the client says so (``"MyGateway2"``), else the
    raw text (``SEN1``); a text body that happens to be a JSON string is unquoted too,
    since superagent sends ``text/plain`` for strings it was given as JSON."""
    if is_json(content_type):
        return json_body(raw)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise bad_request("the body is not UTF-8 text") from None
    stripped = text.strip()
    if len(stripped) >= 2 and stripped[0] == stripped[-1] == '"':
        try:
            return strictjson.loads(stripped)
        except ValueError:
            pass
    return text


def text_field(raw: bytes, content_type: str | None, what: str) -> str:
    """A scalar that must be a non-empty string (names, ids, kinds, units)."""
    value = scalar_body(raw, content_type)
    if not isinstance(value, str) or not value:
        raise bad_request(f"{what} must be a non-empty string")
    return value


def bool_field(raw: bytes, content_type: str | None, what: str) -> bool:
    value = scalar_body(raw, content_type)
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    if not isinstance(value, bool):
        raise bad_request(f"{what} must be true or false")
    return value
