"""The one response type of the outbound HTTP stack: what every transport returns and what
``NGSIClient.request`` / ``NGSIClient.send`` hand back.

It keeps ``http11``'s lean shape (``status``, ``headers`` as ``(lowercase name, value)``
pairs, ``body``, ``header(name)``) and adds the names httpx callers use
(``status_code``, ``content``, ``text``, ``json()``, ``reason_phrase``,
``headers.get(name)`` case-insensitive), so a response is built once per request with
no conversion between layers.
"""

from __future__ import annotations

from http import HTTPStatus
from collections.abc import Iterable
from typing import Any, overload

import orjson

__all__ = ["Headers", "Response", "reason_phrase"]

_PHRASES = {status.value: status.phrase for status in HTTPStatus}


def reason_phrase(status: int) -> str:
    return _PHRASES.get(status, "")


class Headers(list[tuple[str, str]]):
    """Response headers: a list of ``(lowercase name, value)`` pairs, in order, with
    case-insensitive lookups by name (``get``, ``[name]``, ``in``, ``get_list``).

    Integer indexing and iteration are the list's (pairs). Transports append lowercase
    names; lookups lowercase the name asked for.
    """

    __slots__ = ()

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        """The first value of header ``name`` (any case), else ``default``."""
        key = name.lower()
        for k, v in self:
            if k == key:
                return v
        return default

    def get_list(self, name: str) -> list[str]:
        key = name.lower()
        return [v for k, v in self if k == key]

    def keys(self) -> list[str]:
        return [k for k, _ in self]

    def items(self) -> list[tuple[str, str]]:
        return list(self)

    @overload  # type: ignore[override]
    def __getitem__(self, key: str) -> str: ...

    @overload
    def __getitem__(self, key: int) -> tuple[str, str]: ...

    @overload
    def __getitem__(self, key: slice) -> list[tuple[str, str]]: ...

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            value = self.get(key)
            if value is None:
                raise KeyError(key)
            return value
        return list.__getitem__(self, key)

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            return self.get(key) is not None
        return list.__contains__(self, key)


class Response:
    """One HTTP answer: ``status``/``status_code``, ``headers``, ``body``/``content``."""

    __slots__ = ("status", "headers", "body")

    def __init__(self, status: int, headers: Iterable[tuple[str, str]], body: bytes) -> None:
        self.status = status
        self.headers: Headers = headers if type(headers) is Headers else Headers((k.lower(), v) for k, v in headers)
        self.body = body

    # http11's names
    def header(self, name: str) -> str | None:
        """The first value of a header (``name`` lowercase)."""
        for key, value in self.headers:
            if key == name:
                return value
        return None

    # httpx's names
    @property
    def status_code(self) -> int:
        return self.status

    @property
    def content(self) -> bytes:
        return self.body

    @property
    def reason_phrase(self) -> str:
        return _PHRASES.get(self.status, "")

    @property
    def is_success(self) -> bool:
        return 200 <= self.status < 300

    @property
    def charset(self) -> str:
        content_type = self.header("content-type")
        if content_type:
            for param in content_type.split(";")[1:]:
                name, _, value = param.partition("=")
                if name.strip().lower() == "charset" and value.strip():
                    return value.strip().strip('"')
        return "utf-8"

    @property
    def text(self) -> str:
        if not self.body:
            return ""
        try:
            return self.body.decode(self.charset, errors="replace")
        except LookupError:  # an unknown charset
            return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body as JSON; ``ValueError`` (``orjson.JSONDecodeError``) when it is not."""
        return orjson.loads(self.body)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Response):
            return NotImplemented
        return (self.status, list(self.headers), self.body) == (other.status, list(other.headers), other.body)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<Response [{self.status} {self.reason_phrase}] {len(self.body)} bytes>"
