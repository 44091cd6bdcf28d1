"""Ultralight 2.0 (iotagent-ul ``lib/ulParser.js``, ``docs/usermanual.md``).

Measures: ``k|v|k|v`` groups joined by ``#``; a group with an odd number of
fields starts with a timestamp (``2016-06-13T00:35:30Z|t|25``) that becomes the
``TimeInstant`` measure.  A leading ``|`` is tolerated.  Each value is read like
JavaScript's ``JSON.parse`` when that succeeds (``10`` -> 10, ``true`` -> True,
``[1,2]`` -> list) and kept as text otherwise; non-finite numbers (``1e400``,
``NaN``) stay text because JSON cannot carry them.

Commands: ``dev@cmd|value`` or ``dev@cmd|p1=v1|p2=v2`` towards the device; the
device answers ``dev@cmd|result``.  Configuration: the device asks
``configuration|a|b`` (or ``subscription|...``), the agent replies
``dev@configuration|a=1|b=2|dt=20190626T154200Z``.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from typing import Any

from iot_agent.codecs import payload_text
from iot_agent.errors import ParseError

__all__ = [
    "parse_measures",
    "format_measures",
    "parse_value",
    "format_value",
    "parse_command",
    "format_command",
    "format_commands",
    "parse_command_result",
    "format_command_result",
    "parse_configuration",
    "format_configuration",
    "TIMESTAMP",
]

TIMESTAMP = "TimeInstant"


def _reject_constant(name: str) -> Any:
    raise ValueError(name)


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)  # json.loads(text, parse_constant=...) builds one per call


def parse_value(text: str) -> Any:
    """A UL value: the ``JSON.parse`` result when the text is JSON, else the text."""
    try:
        v = _DECODER.decode(text)
    except (ValueError, RecursionError):
        return text
    if _has_non_finite(v):
        return text
    return v


def _has_non_finite(v: Any) -> bool:
    if isinstance(v, float):
        return not math.isfinite(v)
    if isinstance(v, list):
        return any(_has_non_finite(x) for x in v)
    if isinstance(v, dict):
        return any(_has_non_finite(x) for x in v.values())
    return False


def js_string(v: Any) -> str:
    """``String(v)`` as JavaScript writes it (command values, parameters)."""
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if v.is_integer() and abs(v) < 1e21:
            return str(int(v))
        r = repr(v)
        if "e" in r:
            mant, exp = r.split("e")
            return f"{mant}e{'+' if not exp.startswith('-') else '-'}{exp.lstrip('+-').lstrip('0') or '0'}"
        return r
    if isinstance(v, list):
        return ",".join("" if x is None else js_string(x) for x in v)
    if isinstance(v, dict):
        return "[object Object]"
    return str(v)


def format_value(v: Any) -> str:
    """The UL text of a measure value; ``parse_value(format_value(v)) == v`` for JSON values."""
    if isinstance(v, str):
        return v
    if isinstance(v, float) and not math.isfinite(v):
        raise ParseError("non-finite number")
    return json.dumps(v, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _parse_group(group: str) -> dict[str, Any]:
    fields = group.split("|")
    if fields and fields[0] == "" and len(fields) > 1:
        fields = fields[1:]  # a leading '|' is tolerated
    out: dict[str, Any] = {}
    if len(fields) % 2 == 1:
        ts = fields.pop(0)
        if ts == "":
            raise ParseError(f"empty field in measure group '{group}'")
        out[TIMESTAMP] = ts
    if not fields and not out:
        raise ParseError("empty measure group")
    for i in range(0, len(fields), 2):
        key, raw = fields[i], fields[i + 1]
        if key == "" or raw == "":
            raise ParseError(f"empty field in measure group '{group}'")
        out[key] = parse_value(raw)
    return out


def parse_measures(text: str | bytes) -> list[dict[str, Any]]:
    """One dict per ``#`` group; ``ParseError`` on empty fields or an empty payload."""
    text = payload_text(text)
    if text.strip() == "":
        raise ParseError("empty payload")
    return [_parse_group(g) for g in text.split("#")]


def format_measures(measures: list[dict[str, Any]]) -> str:
    """The UL text of measures (``TimeInstant`` first, as the leading field).

    ``ParseError`` when a name or value cannot be written in UL (empty, or
    containing ``|`` or ``#``).
    """
    groups = []
    for m in measures:
        fields: list[str] = []
        if TIMESTAMP in m:
            fields.append(_check(str(m[TIMESTAMP])))
        for k, v in m.items():
            if k == TIMESTAMP:
                continue
            fields.append(_check(k))
            fields.append(_check(format_value(v)))
        if not fields:
            raise ParseError("empty measure group")
        groups.append("|".join(fields))
    return "#".join(groups)


def _check(field: str) -> str:
    if field == "" or "|" in field or "#" in field:
        raise ParseError(f"field cannot be written in UL: {field!r}")
    return field


def _split_target(head: str) -> tuple[str, str]:
    dev, sep, cmd = head.partition("@")
    if not sep or dev == "" or cmd == "" or "@" in cmd:
        raise ParseError(f"expected '<device>@<command>' in '{head}'")
    return dev, cmd


# ---------------------------------------------------------------- commands


def format_command(device_id: str, command: str, value: Any) -> str:
    """``dev@cmd|value``; a dict gives parameters ``dev@cmd|k1=v1|k2=v2``.

    An empty dict gives ``dev@cmd``; values are written as JavaScript's
    ``String()`` does, as the agent concatenates them.
    """
    head = f"{device_id}@{command}"
    if isinstance(value, dict):
        if not value:
            return head
        return head + "|" + "|".join(f"{k}={js_string(v)}" for k, v in value.items())
    return f"{head}|{js_string(value)}"


def format_commands(commands: list[str]) -> str:
    """Several pending commands in one poll answer, joined by ``#``."""
    return "#".join(commands)


def parse_command(text: str | bytes) -> tuple[str, str, Any]:
    """The device side of ``format_command``: (device, command, value or params dict).

    Fields that are all ``k=v`` read as parameters (values stay text); anything
    else is the raw value text.
    """
    text = payload_text(text)
    head, sep, rest = text.partition("|")
    dev, cmd = _split_target(head)
    if not sep:
        return dev, cmd, {}
    fields = rest.split("|")
    if all(f.partition("=")[0] != "" and "=" in f for f in fields):
        return dev, cmd, {k: v for k, _, v in (f.partition("=") for f in fields)}
    return dev, cmd, rest


def parse_command_result(text: str | bytes) -> tuple[str, str, Any]:
    """``dev@cmd|result`` -> (device_id, command, result read like ``JSON.parse``).

    Everything after the first ``|`` is the result (a result may contain ``|``).
    """
    text = payload_text(text)
    head, sep, rest = text.partition("|")
    dev, cmd = _split_target(head)
    if not sep:
        raise ParseError(f"command result without '|<result>': '{text}'")
    return dev, cmd, parse_value(rest)


def format_command_result(device_id: str, command: str, result: Any) -> str:
    return f"{device_id}@{command}|{format_value(result)}"


# ---------------------------------------------------------------- configuration


def parse_configuration(text: str | bytes) -> tuple[str, list[str]]:
    """``configuration|a|b`` or ``subscription|a|b`` -> (kind, attribute names)."""
    fields = payload_text(text).strip("\r\n").split("|")
    kind = fields[0]
    if kind not in ("configuration", "subscription"):
        raise ParseError(f"expected 'configuration' or 'subscription', got '{kind}'")
    names = fields[1:]
    if not names or any(n == "" for n in names):
        raise ParseError("configuration request without attribute names")
    return kind, names


def format_configuration(device_id: str, values: dict[str, Any], now: float | None = None) -> str:
    """``dev@configuration|a=1|b=2|dt=20190626T154200Z`` (``dt`` when ``now`` is given)."""
    parts = [f"{device_id}@configuration"]
    parts += [f"{k}={js_string(v)}" for k, v in values.items()]
    if now is not None:
        stamp = _dt.datetime.fromtimestamp(now, tz=_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        parts.append(f"dt={stamp}")
    return "|".join(parts)
