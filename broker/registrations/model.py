"""Registrations as Orion 4.x reads and shows them: payload checks, defaults, rendering.

Pure code. ``parse_registration`` turns a POST /v2/registrations payload into the
canonical registration dict; ``render_registration`` gives Orion's GET form.

Canonical dict (the stored form; dates are epoch seconds, ``_``-keys are never shown)::

    {"id", "description"?, "dataProvided": {"entities": [{id | idPattern, type? | typePattern?}],
       "attrs": [...]},
     "provider": {"http": {"url"}, "supportedForwardingMode": "all" | "none" | "query" | "update",
       "legacyForwarding": bool},
     "expires"?: float, "status": "active" | "inactive", "_servicePath": str,
     "_forwarding"?: {"timesSent", "lastForwarding", "lastSuccess"?, "lastFailure"?}}

Orion has no PATCH for registrations (405, Allow "GET, DELETE"; orion-api.md,
"Registration implementation differences"), so a registration never changes after
creation but for its forwarding counters (``registry.py``). Texts the functional tests
show are exact (3468); the others, marked "(guess)", appear in no case and are Orion-like
wording.
"""

from __future__ import annotations

import re
from typing import Any

from ngsi.dates import format_datetime, parse_datetime
from ngsi.errors import BadRequest
from ngsi.names import forbidden_id_chars
from ngsi.selectors import Texts, parse_selector

from ..jsonio import member, required

Reg = dict[str, Any]

FORWARDING_MODES = ("all", "none", "query", "update")
STATUSES = ("active", "inactive")
MAX_DESCRIPTION_LENGTH = 1024
REGISTRATION_NOT_FOUND = "The requested registration has not been found. Check id"
FORWARDING_INFO = "_forwarding"  # the stored counters' key: never read from a payload
_FIELDS = ("id", "description", "dataProvided", "provider", "expires", "status", "forwardingInformation")

# Orion's forbiddenIdChars (v2): printable ASCII only, no URL delimiters.
_FORBIDDEN = re.compile(r"""[<>"'=;()]""")
_ID_RE = re.compile(r"[0-9a-f]{24}\Z")
_URL_RE = re.compile(r"https?://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(:\d{1,5})?(/.*)?\Z", re.ASCII | re.DOTALL)


def valid_reg_id(reg_id: str) -> bool:
    """Orion's registration ids are MongoDB ObjectIds: 24 lowercase hex digits."""
    return _ID_RE.match(reg_id) is not None


def _string(obj: dict[str, Any], key: str, label: str) -> str | None:
    return member(obj, key, str, f"{label} must be a string")  # (guess)


_SELECTOR_TEXTS = Texts(
    not_object="/entities/ vector item is not an object",  # (guess)
    not_string="/entities/ vector item /{field}/ must be a string",  # (guess)
    empty="/entities/ vector item /{field}/ is empty",  # (guess)
)


def _parse_entity(item: Any) -> dict[str, str]:
    return parse_selector(item, _SELECTOR_TEXTS)


def _parse_attrs(value: Any) -> list[str]:
    if not isinstance(value, list):
        raise BadRequest("the field /attrs/ must be a JSON array")  # (guess)
    attrs: list[str] = []
    for item in value:
        if not isinstance(item, str):
            raise BadRequest("only JSON Strings allowed in attribute list")  # (guess)
        if item == "" or forbidden_id_chars(item):
            raise BadRequest("forbidden characters in attribute name")
        if item not in attrs:
            attrs.append(item)
    return attrs


def _parse_data_provided(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadRequest("/dataProvided/ must be a JSON object")  # (guess)
    if "entities" not in value:
        raise BadRequest("/dataProvided/ must have an /entities/ field")  # (guess)
    entities = value["entities"]
    if not isinstance(entities, list):
        raise BadRequest("the field /entities/ must be a JSON array")  # (guess)
    if not entities:
        raise BadRequest("/entities/ vector is empty")  # (guess)
    parsed = [_parse_entity(item) for item in entities]
    attrs = _parse_attrs(value["attrs"]) if "attrs" in value else []
    # "expression" is accepted and ignored, as Orion does.
    return {"entities": parsed, "attrs": attrs}


def _parse_provider(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadRequest("/provider/ must be a JSON object")  # (guess)
    # (guess) both texts
    http = required(value, "http", dict, "/provider/ must have an /http/ field", "/http/ must be a JSON object")
    url = _string(http, "url", "/url/")
    if url is None:
        raise BadRequest("/http/ must have an /url/ field")  # (guess)
    if _FORBIDDEN.search(url) or not _URL_RE.match(url):
        raise BadRequest("Invalid URL")  # (guess)
    mode = _string(value, "supportedForwardingMode", "/supportedForwardingMode/")
    if mode is None:
        mode = "all"
    elif mode not in FORWARDING_MODES:
        raise BadRequest("Invalid supportedForwardingMode")  # (guess)
    legacy = value.get("legacyForwarding", False)
    if not isinstance(legacy, bool):
        raise BadRequest("/legacyForwarding/ must be a boolean")  # (guess)
    return {"http": {"url": url}, "supportedForwardingMode": mode, "legacyForwarding": legacy}


def parse_registration(payload: Any, service_path: str = "/") -> Reg:
    """A POST /v2/registrations payload as the canonical dict, without its id."""
    if not isinstance(payload, dict):
        raise BadRequest("not a JSON object")
    if not payload:
        raise BadRequest("empty payload")
    for key in payload:
        if key not in _FIELDS:
            raise BadRequest(f"Invalid field for registration: /{key}/")  # (guess)
    reg: Reg = {}
    description = _string(payload, "description", "/description/")
    if description is not None:
        if len(description) > MAX_DESCRIPTION_LENGTH:
            raise BadRequest(f"max description length is {MAX_DESCRIPTION_LENGTH}")  # (guess)
        if _FORBIDDEN.search(description):
            raise BadRequest("forbidden characters in /description/")  # (guess)
        reg["description"] = description
    if "dataProvided" not in payload:
        raise BadRequest("/dataProvided/ field missing in payload")  # (guess)
    reg["dataProvided"] = _parse_data_provided(payload["dataProvided"])
    if "provider" not in payload:
        raise BadRequest("/provider/ field missing in payload")  # (guess)
    reg["provider"] = _parse_provider(payload["provider"])
    expires = _string(payload, "expires", "/expires/")
    if expires is not None:
        seconds = parse_datetime(expires)
        if seconds is None:
            raise BadRequest("expires has an invalid format")
        reg["expires"] = seconds
    status = _string(payload, "status", "/status/")
    if status is None:
        status = "active"
    elif status not in STATUSES:
        raise BadRequest("status is not valid: it has to be either active or inactive")  # (guess)
    reg["status"] = status
    reg["_servicePath"] = service_path
    return reg


def render_forwarding(info: dict[str, Any]) -> dict[str, Any]:
    """``forwardingInformation``: the counter, then the dates that happened (orion-api.md,
    "registration.forwardingInformation": lastFailure/lastSuccess absent until one happened)."""
    out: dict[str, Any] = {"timesSent": int(info.get("timesSent", 0))}
    for key in ("lastForwarding", "lastSuccess", "lastFailure"):
        if info.get(key) is not None:
            out[key] = format_datetime(info[key])
    return out


def render_registration(reg: Reg, forwarding: dict[str, Any] | None = None) -> dict[str, Any]:
    """Orion's GET form, keys in Orion's order; ``_``-keys stay inside.

    ``forwarding`` (the registry's live counters) is shown as ``forwardingInformation``
    once the registration was forwarded to; before that Orion shows nothing (3944).
    """
    out: dict[str, Any] = {"id": reg["id"]}
    if "description" in reg:
        out["description"] = reg["description"]
    out["dataProvided"] = {
        "entities": [dict(e) for e in reg["dataProvided"]["entities"]],
        "attrs": list(reg["dataProvided"]["attrs"]),
    }
    provider = reg["provider"]
    out["provider"] = {
        "http": {"url": provider["http"]["url"]},
        "supportedForwardingMode": provider["supportedForwardingMode"],
        "legacyForwarding": provider["legacyForwarding"],
    }
    if "expires" in reg:
        out["expires"] = format_datetime(reg["expires"])
    out["status"] = reg["status"]
    if forwarding and forwarding.get("timesSent"):
        out["forwardingInformation"] = render_forwarding(forwarding)
    return out


__all__ = [
    "FORWARDING_INFO",
    "FORWARDING_MODES",
    "REGISTRATION_NOT_FOUND",
    "Reg",
    "parse_registration",
    "render_forwarding",
    "render_registration",
    "valid_reg_id",
]
