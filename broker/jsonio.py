"""JSON in and out of the broker, Orion's way (see ngsi.jsonout)."""

from __future__ import annotations

from typing import Any

import orjson

from ngsi.errors import BadRequest

try:
    from ngsi.jsonout import dumps as dumps
    from ngsi.jsonout import loads as loads
except ImportError:  # pragma: no cover - bootstrap until ngsi.jsonout lands

    def dumps(value: Any) -> bytes:
        return orjson.dumps(value)

    def loads(data: bytes) -> Any:
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            raise BadRequest("Errors found in incoming JSON buffer", error="ParseError") from None
