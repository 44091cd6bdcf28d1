"""The WAZIUP API's refusals: a status and a free text (contract §1: "error bodies are free
text; only the status codes matter"), answered as ``text/plain``."""

from __future__ import annotations


class ApiError(Exception):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text

    def __repr__(self) -> str:
        return f"ApiError({self.status}, {self.text!r})"


def bad_request(text: str) -> ApiError:
    return ApiError(400, text)


def forbidden(text: str) -> ApiError:
    return ApiError(403, text)


def not_found(text: str) -> ApiError:
    return ApiError(404, text)
