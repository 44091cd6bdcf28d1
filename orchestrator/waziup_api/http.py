"""What every route of the API does alike: who is calling, the body, paging parameters,
and the answers (JSON; bare text for tokens and new ids, contract §1)."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from .caller import Caller
from .errors import bad_request


def json_response(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode(), status,
                    media_type="application/json")


def text_response(text: str, status: int = 200) -> Response:
    """A token or a new id: the bare string as ``text/plain`` (contract §1)."""
    return Response(text, status, media_type="text/plain")


def no_content() -> Response:
    return Response(status_code=204)


def state(request: Request) -> Any:
    return request.app.state


async def caller(request: Request) -> Caller:
    """The caller: the token's user, or the guest (never a 401, contract §2)."""
    return await state(request).api.accounts_caller(request.headers.get("authorization"))


def count(request: Request, name: str, default: int | None) -> int | None:
    """A non-negative integer query parameter (``limit``, ``offset``), or a 400."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise bad_request(f"{name} must be a non-negative integer") from None
    if value < 0:
        raise bad_request(f"{name} must be a non-negative integer")
    return value


def flag(request: Request, name: str) -> bool:
    return request.query_params.get(name, "").lower() in ("true", "1", "yes")


def csv_wanted(request: Request) -> bool:
    return "text/csv" in request.headers.get("accept", "").lower()
