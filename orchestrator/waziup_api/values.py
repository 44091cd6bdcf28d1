"""Sensor values of the WAZIUP API: parsing what clients post, and rendering what they read.

Pure functions, no storage and no I/O, so that the HTTP routes and the MQTT bridge store and
render a value the same way (contract §3 and §6: "storing a value, whether it comes from HTTP
or MQTT, happens in one step").

Shapes:
- a stored value is ``{"value": any, "timestamp"?: str, "date_received": epoch ms}``; the
  timestamp is kept as posted, and rendered on read by :func:`current_timestamp` (the sensor's
  current value, whole seconds) or :func:`history_timestamp` (datapoints, milliseconds);
- a Datapoint is ``{"device_id", "sensor_id", "value", "timestamp"?, "date_received"}`` with
  both times as strings (§4).
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import re
from collections.abc import Iterable
from typing import Any

from . import strictjson

__all__ = [
    "CSV_HEADER",
    "ValueError400",
    "calib_problem",
    "calibrate",
    "current_timestamp",
    "datapoints_csv",
    "history_timestamp",
    "iso_ms",
    "sensor_value",
    "sensor_values",
]

CSV_HEADER = "device_id,sensor_id,value,timestamp,date_received"

_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)

# An ISO-8601 date and time, extended format: what aeson's UTCTime accepted in the reference,
# and what gateways send (LowCostLoRaGw posts "2016-10-04T02:03:28.783385", without a zone).
# A missing zone means UTC. Range checks (month 13, hour 25) are left to datetime.
_ISO = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(?::\d{2}(?P<fraction>[.,]\d+)?)?"
    r"(?P<zone>[Zz]|[+-]\d{2}(?::?\d{2})?)?",
    re.ASCII,  # \d must not take other scripts' digits
)


class ValueError400(ValueError):
    """A posted value or calibration the API refuses; the route answers 400 with the message."""


# --- parsing what clients post ---------------------------------------------------------------


def sensor_value(body: bytes, content_type: str | None, received_ms: int) -> dict[str, Any]:
    """The value to store for ``POST …/sensors/{s}/value`` (§3).

    ``text/plain`` bodies are stored as a string, as the reference does (``26.6`` becomes
    ``"26.6"``); clients rely on the type they sent, so no number is guessed. Any other or
    missing content type is read as JSON, since gateways and curl often send none or a wrong
    one.
    """
    if _media_type(content_type) == "text/plain":
        return {"value": _text(body, content_type), "date_received": received_ms}
    return _one_value(_json(body), received_ms, "the body")


def sensor_values(body: bytes, received_ms: int) -> list[dict[str, Any]]:
    """The values to store for ``POST …/sensors/{s}/values``: a JSON array of SensorValue.

    The whole batch is checked before anything is stored, so a bad element refuses all of it.
    """
    parsed = _json(body)
    if not isinstance(parsed, list):
        raise ValueError400("the body must be a JSON array of {\"value\", \"timestamp\"?} objects")
    return [_one_value(item, received_ms, f"element {i}") for i, item in enumerate(parsed)]


def _one_value(parsed: Any, received_ms: int, where: str) -> dict[str, Any]:
    """A SensorValue object -> the stored value; extra keys are ignored, like the reference."""
    if not isinstance(parsed, dict) or "value" not in parsed:
        raise ValueError400(f"{where} must be a JSON object with a \"value\"")
    stored: dict[str, Any] = {"value": parsed["value"]}
    timestamp = parsed.get("timestamp")
    if timestamp is not None:  # null is "no timestamp", as aeson reads a Maybe field
        stored["timestamp"] = _checked_timestamp(timestamp, where)
    stored["date_received"] = received_ms
    return stored


def _checked_timestamp(timestamp: Any, where: str) -> str:
    if not isinstance(timestamp, str):
        raise ValueError400(f"{where}: \"timestamp\" must be an ISO-8601 string")
    _parse(timestamp)
    return timestamp


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _text(body: bytes, content_type: str | None) -> str:
    """The raw text, exactly: no stripping, since the reference stores the body as it came."""
    charset = "utf-8"
    for param in (content_type or "").split(";")[1:]:
        key, _, val = param.partition("=")
        if key.strip().lower() == "charset" and val.strip():
            charset = val.strip().strip('"')
    try:
        return body.decode(charset)
    except (LookupError, UnicodeDecodeError) as e:
        raise ValueError400(f"the text body is not valid {charset}") from e


def _json(body: bytes) -> Any:
    """Strict JSON (``strictjson``): what the broker and the history can give back as JSON."""
    try:
        return strictjson.loads(body)
    except ValueError as e:  # JSONDecodeError and UnicodeDecodeError among them
        raise ValueError400(f"the body is not valid JSON: {e}") from e


# --- timestamps ------------------------------------------------------------------------------


def current_timestamp(text: str) -> str:
    """A sensor's current ``value.timestamp``, in whole seconds (§3).

    The reference read current values back from Orion, which kept whole seconds, so
    ``2016-06-08T18:20:27.873Z`` reads back as ``2016-06-08T18:20:27Z``. The fraction is cut,
    not rounded, as Orion did. Offsets become UTC ``Z``; a timestamp posted in that form with no
    fraction comes back unchanged.
    """
    when, _ = _parse(text)
    return _whole_seconds(when)


def history_timestamp(text: str) -> str:
    """A datapoint's ``timestamp`` (§3): milliseconds kept, UTC ``Z``.

    A timestamp posted without a fraction comes back without one, identical (§3, §6: "…27Z
    stays …27Z"); one with a fraction gets exactly three digits, as Mongo kept milliseconds.
    """
    when, has_fraction = _parse(text)
    return _with_ms(when) if has_fraction else _whole_seconds(when)


def iso_ms(ms: int) -> str:
    """Epoch milliseconds -> ``YYYY-MM-DDTHH:MM:SS.mmmZ``, the form of ``date_received``."""
    return _with_ms(_EPOCH + _dt.timedelta(milliseconds=ms))


def _parse(text: str) -> tuple[_dt.datetime, bool]:
    """An ISO-8601 date-time -> (aware UTC datetime, whether it had a fraction of a second)."""
    match = _ISO.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError400(f"not an ISO-8601 date and time: {str(text)[:60]!r}")
    try:
        when = _dt.datetime.fromisoformat(_pythonic(text))
    except ValueError as e:
        raise ValueError400(f"not a valid date and time: {text[:60]!r}") from e
    if when.tzinfo is None:
        when = when.replace(tzinfo=_dt.UTC)
    try:
        return when.astimezone(_dt.UTC), match["fraction"] is not None
    except OverflowError as e:  # year 1 or 9999 pushed across the edge by the offset
        raise ValueError400(f"date and time out of range: {text[:60]!r}") from e


def _pythonic(text: str) -> str:
    """What datetime.fromisoformat takes: an upper-case ``T`` and ``Z``, a ``.`` fraction."""
    return text[:10] + "T" + text[11:].upper().replace(",", ".")


def _whole_seconds(when: _dt.datetime) -> str:
    # Not strftime: its %Y does not pad years before 1000 on every platform.
    return (
        f"{when.year:04d}-{when.month:02d}-{when.day:02d}"
        f"T{when.hour:02d}:{when.minute:02d}:{when.second:02d}Z"
    )


def _with_ms(when: _dt.datetime) -> str:
    return f"{_whole_seconds(when)[:-1]}.{when.microsecond // 1000:03d}Z"


# --- calibration -----------------------------------------------------------------------------


def calibrate(value: Any, calib: dict[str, Any] | None) -> Any:
    """The value as read with ``calibrated`` (the default): the sensor's linear calibration.

    ``real_min + (v - sensor_min) * (real_max - real_min) / (sensor_max - sensor_min)``.
    Anything the formula cannot apply to (calibration missing, disabled or malformed, a
    non-numeric value, a zero-width sensor range) leaves the value as stored, because a read
    must never fail over a calibration.
    """
    bounds = _linear_bounds(calib)
    if bounds is None or not _is_number(value):
        return value
    s_min, r_min, s_max, r_max = bounds
    if s_max == s_min:
        return value
    try:
        real = r_min + (value - s_min) * ((r_max - r_min) / (s_max - s_min))  # the slope first: exact for 1
    except OverflowError:  # an int beyond float range
        return value
    return _tidy(real) if math.isfinite(real) else value


def _linear_bounds(calib: Any) -> tuple[float, float, float, float] | None:
    """``(sensor_min, real_min, sensor_max, real_max)`` of an enabled linear calibration."""
    if calib_problem(calib) is not None:
        return None
    linear = calib.get("linear")
    if linear is None or linear["enabled"] is not True:
        return None
    low, high = linear["value_min"], linear["value_max"]
    return low["sensor_value"], low["real_value"], high["sensor_value"], high["real_value"]


def _tidy(number: float) -> int | float:
    """Integral results as ints, as the reference's aeson rendered them (``30`` not ``30.0``)."""
    if number.is_integer() and abs(number) < 2**53:
        return int(number)
    return number


def _is_number(value: Any) -> bool:
    """A JSON number: not a bool (a Python int), and not NaN or an infinity."""
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, int) and not isinstance(value, bool)


def calib_problem(calib: Any) -> str | None:
    """Why a ``PUT …/sensors/{s}/calib`` body is refused, or None when it is fine.

    Accepted: ``{"linear": {"enabled": bool, "value_min": {"sensor_value": n, "real_value": n},
    "value_max": {…}}}`` (§3), and the reference's other form ``{"function": {"enabled": bool,
    "func": str}}``, which is stored but not applied. Other keys are ignored, as aeson did.
    """
    if not isinstance(calib, dict):
        return "calib must be a JSON object"
    if "linear" not in calib and "function" not in calib:
        return 'calib must have "linear" (or "function")'
    if "linear" in calib:
        problem = _linear_problem(calib["linear"])
        if problem:
            return problem
    if "function" in calib:
        return _function_problem(calib["function"])
    return None


def _linear_problem(linear: Any) -> str | None:
    if not isinstance(linear, dict):
        return "calib.linear must be an object"
    if not isinstance(linear.get("enabled"), bool):
        return "calib.linear.enabled must be true or false"
    for bound in ("value_min", "value_max"):
        point = linear.get(bound)
        if not isinstance(point, dict):
            return f"calib.linear.{bound} must be an object"
        for key in ("sensor_value", "real_value"):
            if not _is_number(point.get(key)):
                return f"calib.linear.{bound}.{key} must be a number"
    return None


def _function_problem(function: Any) -> str | None:
    if not isinstance(function, dict):
        return "calib.function must be an object"
    if not isinstance(function.get("enabled"), bool):
        return "calib.function.enabled must be true or false"
    if not isinstance(function.get("func"), str):
        return "calib.function.func must be a string"
    return None


# --- CSV -------------------------------------------------------------------------------------


def datapoints_csv(points: Iterable[dict[str, Any]]) -> str:
    """Datapoints as the reference's CSV (§7), for ``Accept: text/csv``.

    Header ``device_id,sensor_id,value,timestamp,date_received``, one ``\\n``-ended line per
    point, absent fields empty. Nothing is quoted and the value is JSON-encoded (a string keeps
    its JSON quotes): the reference did so, and its users parse that, so a value holding a
    comma (an array or object) spans several columns there too.
    """
    lines = [CSV_HEADER]
    lines.extend(_csv_line(point) for point in points)
    return "\n".join(lines) + "\n"


def _csv_line(point: dict[str, Any]) -> str:
    value = _json_text(point["value"]) if "value" in point else ""
    cells = [
        str(point.get("device_id", "")),
        str(point.get("sensor_id", "")),
        value,
        str(point.get("timestamp", "")),
        str(point.get("date_received", "")),
    ]
    return ",".join(cells)


def _json_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
