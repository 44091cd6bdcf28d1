"""WAZIUP notifications: the pure rules (validation, rendering, matching, firing), no I/O.

A notification is a plain dict shaped like the contract's Notif JSON (waziup-api-v2.md §4),
so that the store can keep it as it is. The server adds its counters (``times_sent``,
``last_notif``, ``last_success``, ``last_success_code``, ``last_failure``,
``last_failure_reason``) and private bookkeeping under keys starting with ``_`` (for example
``_last_value_fire``, epoch seconds of the last value-triggered firing), which :func:`render`
never shows.

Choices the contract leaves open, and why:

* ``times_sent`` is always rendered, ``0`` before the first firing. §5 has clients read it
  right after a response (rule 1, rule 2 "times_sent is 1"); a counter that is missing
  instead of 0 would make ``n.times_sent === 0`` fail, while ``|| 0`` works with both. The
  other counters are left out until set (§1: absent fields are left out, never null).
* Unknown top-level keys of a posted Notif are dropped (the reference's aeson parser ignores
  them); keys inside ``condition`` and ``action`` are kept exactly, unknown ones included,
  because those two objects must round-trip deep-equal (§4).
* ``null`` for an optional top-level field means "absent", as aeson's ``Maybe`` reads it;
  in a PATCH it means "unchanged".
* PATCH replaces each top-level field the body carries and keeps the others, as Orion's
  PATCH /v2/subscriptions did for the reference (its optional fields were simply omitted).
  ``PUT …/status`` can therefore be ``patch(stored, {"status": value})``.
* Expressions are Orion's simple query language (``q``), parsed and matched by
  :mod:`ngsi.query` on a synthetic entity whose attributes are the device's sensors, so types
  are Orion's: ``TC1>20`` is false for the string ``"26.6"`` (a text/plain push), as it was
  against Orion.
* ``${SENSOR}`` for a sensor without a value becomes ``""``: Orion, which did the
  substitution for the reference, replaces a macro naming a missing attribute with an empty
  string.
* ``condition.sensors`` must name the sensor (an empty list watches nothing), as §5 words it.
"""

from __future__ import annotations

import copy
import json
import math
import re
import secrets
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any, Final

from ngsi.dates import format_datetime, parse_datetime
from ngsi.errors import BadRequest
from ngsi.query import Query, parse_q

__all__ = [
    "NotifError", "CLIENT_FIELDS", "SERVER_FIELDS", "CHANNELS",
    "validate", "patch", "render", "watches", "holds", "expression_problem", "due", "fired",
    "substitute", "new_id", "well_formed_id", "iso", "current_values", "triggered",
    "creation_match",
]

CLIENT_FIELDS: Final = ("description", "condition", "action", "throttling", "status", "expires")
SERVER_FIELDS: Final = (
    "times_sent", "last_notif", "last_success", "last_success_code", "last_failure", "last_failure_reason",
)
CHANNELS: Final = frozenset(("twitter", "sms", "voice", "none"))
STATUSES: Final = frozenset(("active", "inactive"))
LAST_VALUE_FIRE: Final = "_last_value_fire"

_ID_RE: Final = re.compile(r"[0-9a-fA-F]{24}", re.ASCII)
_PLACEHOLDER_RE: Final = re.compile(r"\$\{([^}]*)\}")


class NotifError(ValueError):
    """A malformed Notif; the message says what is wrong and the route answers 400."""


# --------------------------------------------------------------------------- validation


def validate(body: Any) -> dict:
    """A POSTed Notif, checked, as the dict to store.

    Server fields, ``id``, ``_`` keys and unknown top-level keys are dropped, so a client can
    post back what it read. ``status`` defaults to ``"active"`` (§3).
    """
    if not isinstance(body, dict):
        raise NotifError("a notification must be a JSON object")
    for required in ("condition", "action"):
        if body.get(required) is None:
            raise NotifError(f"missing {required!r}")
    stored: dict[str, Any] = {}
    for name in CLIENT_FIELDS:
        value = body.get(name)
        if value is not None:
            _CHECKS[name](value)
            stored[name] = copy.deepcopy(value)
    stored.setdefault("status", "active")
    return stored


def patch(stored: dict, body: Any) -> dict:
    """PATCH /notifications/{id}: the fields the body carries replace the stored ones.

    Fields the body leaves out (or sets to null) are kept, and so are the server counters
    and the ``_`` bookkeeping: editing a notification does not reset its history.
    """
    if not isinstance(body, dict):
        raise NotifError("a notification must be a JSON object")
    merged = {name: stored[name] for name in CLIENT_FIELDS if name in stored}
    merged.update({name: body[name] for name in CLIENT_FIELDS if body.get(name) is not None})
    result = validate(merged)
    result.update({k: v for k, v in stored.items() if k in SERVER_FIELDS or k.startswith("_")})
    return result


def _check_description(value: Any) -> None:
    _require(isinstance(value, str), "'description' must be a string")


def _check_condition(value: Any) -> None:
    _require(isinstance(value, dict), "'condition' must be an object")
    for key in ("devices", "sensors"):
        _require(key in value, f"'condition.{key}' is missing")
        _require(_string_list(value[key]), f"'condition.{key}' must be a list of strings")
    expression = value.get("expression", "")
    _require(isinstance(expression, str), "'condition.expression' must be a string")
    problem = expression_problem(expression)
    _require(problem is None, f"'condition.expression' is invalid: {problem}")


def _check_action(value: Any) -> None:
    _require(isinstance(value, dict), "'action' must be an object")
    kind, inner = value.get("type"), value.get("value")
    _require(isinstance(inner, dict), "'action.value' must be an object")
    if kind == "SocialAction":
        _check_social(inner)
    elif kind == "ActuationAction":
        _check_actuation(inner)
    else:
        raise NotifError("'action.type' must be 'SocialAction' or 'ActuationAction'")


def _check_social(value: dict) -> None:
    for key in ("usernames", "channels"):
        _require(_string_list(value.get(key)), f"'action.value.{key}' must be a list of strings")
    unknown = sorted(set(value["channels"]) - CHANNELS)
    _require(not unknown, f"unknown channel(s) {unknown}; use twitter, sms, voice or none")
    _require(isinstance(value.get("message"), str), "'action.value.message' must be a string")


def _check_actuation(value: dict) -> None:
    for key in ("device_id", "actuator_id"):
        _require(isinstance(value.get(key), str), f"'action.value.{key}' must be a string")
    _require("actuator_value" in value, "'action.value.actuator_value' is missing")


def _check_throttling(value: Any) -> None:
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    _require(number and math.isfinite(value) and value >= 0, "'throttling' must be a number >= 0 (seconds)")


def _check_status(value: Any) -> None:
    _require(value in STATUSES if isinstance(value, str) else False, "'status' must be 'active' or 'inactive'")


def _check_expires(value: Any) -> None:
    _require(isinstance(value, str) and parse_datetime(value) is not None, "'expires' must be an ISO-8601 date")


_CHECKS: Final = {
    "description": _check_description,
    "condition": _check_condition,
    "action": _check_action,
    "throttling": _check_throttling,
    "status": _check_status,
    "expires": _check_expires,
}


def _require(ok: bool, reason: str) -> None:
    if not ok:
        raise NotifError(reason)


def _string_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(x, str) for x in value)


# --------------------------------------------------------------------------- rendering


def render(stored: dict, notif_id: str) -> dict:
    """The public Notif JSON: ``id`` first, client fields as posted, then the counters.

    No ``_`` keys and no nulls (§1); ``times_sent`` always (0 before any firing, see the
    module docstring), the other counters only once set.
    """
    out: dict[str, Any] = {"id": notif_id}
    out.update({k: stored[k] for k in CLIENT_FIELDS if stored.get(k) is not None})
    out["times_sent"] = stored.get("times_sent", 0)
    out.update({k: stored[k] for k in SERVER_FIELDS[1:] if stored.get(k) is not None})
    return out


# --------------------------------------------------------------------------- matching


def watches(notif: dict, device_id: str, sensor_id: str) -> bool:
    """True if a value stored for this device's sensor concerns the notification (§5)."""
    condition = notif.get("condition") or {}
    return device_id in condition.get("devices", ()) and sensor_id in condition.get("sensors", ())


def holds(expression: str, values: Mapping[str, Any]) -> bool:
    """Whether the expression holds on the device's current sensor values (§5).

    ``values`` maps sensor id to current value; a sensor without a value is simply not in
    it, so a comparison on it is false (Orion needs the attribute to exist). ``""`` is true.
    """
    if expression == "":
        return True
    return _query(expression).matches(_entity(values))


def expression_problem(expression: str) -> str | None:
    """Why the expression cannot be evaluated, or None when it is fine (``""`` included)."""
    if expression == "":
        return None
    try:
        _query(expression)
    except (BadRequest, ValueError) as exc:
        return str(getattr(exc, "description", "") or exc) or "invalid expression"
    return None


@lru_cache(maxsize=1024)
def _query(expression: str) -> Query:
    """Parsed once: every stored value re-evaluates the same few expressions."""
    return parse_q(expression)


def _entity(values: Mapping[str, Any]) -> dict:
    """The NGSI entity Orion held for the device, reduced to what q looks at: the sensors."""
    attrs = {sensor: {"type": "Sensor", "value": value, "md": {}} for sensor, value in values.items()}
    return {"id": "device", "type": "Device", "servicePath": "/", "attrs": attrs}


def current_values(sensors: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Sensor JSON objects (§4) to the ``values`` mapping: only sensors that have a value."""
    return {s["id"]: s["value"].get("value") for s in sensors if isinstance(s.get("value"), Mapping)}


# --------------------------------------------------------------------------- firing


def due(notif: dict, now: float, *, on_value: bool) -> bool:
    """Active, not expired and, for a value-triggered firing, out of the throttling window.

    The creation-time firing (``on_value=False``) ignores throttling and, through
    :func:`fired`, leaves no trace that would delay the first value firing (§5 rule 3).
    """
    if notif.get("status", "active") != "active" or _expired(notif, now):
        return False
    return not on_value or _throttle_open(notif, now)


def _expired(notif: dict, now: float) -> bool:
    expires = notif.get("expires")
    if expires is None:
        return False
    limit = parse_datetime(expires)
    return limit is None or now > limit


def _throttle_open(notif: dict, now: float) -> bool:
    throttling = notif.get("throttling") or 0
    last = notif.get(LAST_VALUE_FIRE)
    return throttling <= 0 or last is None or now - last >= throttling


def fired(notif: dict, now: float, *, on_value: bool, ok: bool, code: int = 204, reason: str = "") -> dict:
    """The notification after one firing (§5 rule 4); the argument is not modified."""
    stamp = iso(now)
    out = dict(notif, times_sent=notif.get("times_sent", 0) + 1, last_notif=stamp)
    if ok:
        out.update(last_success=stamp, last_success_code=code)
    else:
        out.update(last_failure=stamp, last_failure_reason=reason)
    if on_value:
        out[LAST_VALUE_FIRE] = now
    return out


def triggered(notif: dict, device_id: str, sensor_id: str, values: Mapping[str, Any], now: float) -> bool:
    """All of §5's conditions for a value just stored for ``device_id``/``sensor_id``."""
    return (
        watches(notif, device_id, sensor_id)
        and due(notif, now, on_value=True)
        and holds(notif["condition"].get("expression", ""), values)
    )


def creation_match(notif: dict, values_by_device: Mapping[str, Mapping[str, Any]], now: float) -> str | None:
    """The device on whose values a new notification fires at once (§5 rule 2), or None.

    It fires once at most, like Orion's single initial notification; the first watched
    device that has a watched sensor with a value and satisfies the expression is the one
    whose values an ActuationAction substitutes.
    """
    if not due(notif, now, on_value=False):
        return None
    condition = notif["condition"]
    for device in condition["devices"]:
        values = values_by_device.get(device) or {}
        watched = any(s in values for s in condition["sensors"])
        if watched and holds(condition.get("expression", ""), values):
            return device
    return None


def substitute(value: Any, values: Mapping[str, Any]) -> Any:
    """An ActuationAction's ``actuator_value`` with ``${SENSOR}`` replaced (§5 rule 6).

    Only strings are touched and the result stays a string; other values are constants.
    A sensor without a value gives ``""``, as Orion's macro substitution did.
    """
    if not isinstance(value, str):
        return value
    return _PLACEHOLDER_RE.sub(lambda m: _as_text(values[m[1]]) if m[1] in values else "", value)


def _as_text(value: Any) -> str:
    """A sensor value as text: strings as they are, numbers as JSON writes them, else JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return str(int(value))  # Orion holds numbers as doubles and writes 100.0 as 100
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


# --------------------------------------------------------------------------- ids and times


def new_id() -> str:
    """A fresh 24-hex id, Mongo style, so that "malformed" has a meaning (§3)."""
    return secrets.token_hex(12)


def well_formed_id(text: str) -> bool:
    """Exactly 24 hex digits: ``GET /notifications/123`` is then a 400, not a 404."""
    return isinstance(text, str) and _ID_RE.fullmatch(text) is not None


def iso(epoch: float) -> str:
    """ISO-8601 UTC with milliseconds and ``Z`` (§1), as the rest of the broker writes times."""
    return format_datetime(epoch)
