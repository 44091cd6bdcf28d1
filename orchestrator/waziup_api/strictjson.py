"""JSON as the API accepts it, for bodies and MQTT payloads alike: what the broker, the
history and the store can hold and give back as JSON.

Refused (``ValueError`` with the reason): NaN and the infinities (Python's parser takes
them; kept, they would be written back as invalid JSON), numbers beyond a double (``1e999``),
escapes spelling a lone surrogate (``"\\ud800"``, which no UTF-8 text holds: sending it on
would fail with a UnicodeEncodeError, a 500), nesting deeper than the parser goes.
"""

from __future__ import annotations

import json
import math
from typing import Any


def loads(raw: bytes | str) -> Any:
    try:
        value = json.loads(raw, parse_constant=_not_json, parse_float=_finite)
    except RecursionError:  # "[[[[…"
        raise ValueError("nested too deeply") from None
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("it holds a lone surrogate (\\ud800-\\udfff), which is not text") from None
    return value


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"the number {text[:40]} is out of range")
    return number
