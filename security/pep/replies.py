"""The PEP's refusals, in Wilma's shape (pure).

Wilma answers every failure with its ``error_template`` (a Handlebars template; the default
``{"type": "{{type}}", "title": "{{title}}", "detail": "{{message}}"}``), with a ``type``
from ``urn:dx:as:`` (reference ``security-history-orchestration.md`` §2, "Errors" and
"Token extraction"): ``MissingAuthenticationToken`` (with ``WWW-Authenticate``),
``InvalidAuthenticationToken``, ``ExpiredAuthenticationToken``, ``InvalidRole`` (a token
of another application, or a request its roles do not allow), ``UnauthorizedEndpoint``
and ``InternalServerError`` (the identity manager, a PDP or the service behind could not
be reached). What differs, on purpose:

* a valid token that is denied gets **403** (``deny_status``; 401 gives Wilma's answer),
  with the decision's reason in ``detail``;
* every 401 carries ``WWW-Authenticate: Bearer realm="<identity manager>"`` (RFC 6750),
  with ``error="invalid_token"`` when a token was given, so that OAuth clients know to
  get a new one;
* placeholders are escaped for the content type: inside a JSON template as JSON string
  contents (a detail with a quote or a backslash leaves the body valid JSON), otherwise
  HTML-escaped as Handlebars does; ``{{{name}}}`` inserts as is.

The texts of ``detail`` name what is wrong with the token or the request; they never
repeat the token, a secret, or anything of the identity manager's answer but a decision's
reason (already written for users: docs/authorization.md "Explanations").
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import Final

import orjson

from ngsi.server.reply import Reply

DEFAULT_TEMPLATE: Final = '{"type": "{{type}}", "title": "{{title}}", "detail": "{{message}}"}'

_NAMESPACE: Final = "urn:dx:as:"  # of every refusal's type, as Wilma names them
MISSING: Final = _NAMESPACE + "MissingAuthenticationToken"
INVALID: Final = _NAMESPACE + "InvalidAuthenticationToken"
EXPIRED: Final = _NAMESPACE + "ExpiredAuthenticationToken"
INVALID_ROLE: Final = _NAMESPACE + "InvalidRole"
UNAUTHORIZED_ENDPOINT: Final = _NAMESPACE + "UnauthorizedEndpoint"
INTERNAL: Final = _NAMESPACE + "InternalServerError"

TITLES: Final = {401: "Unauthorized", 403: "Forbidden", 500: "Internal Server Error"}
MAX_DETAIL: Final = 1000  # characters of a reason shown (the rest is in the log)

_PLACEHOLDER = re.compile(r"\{\{\{\s*(\w+)\s*\}\}\}|\{\{\s*(\w+)\s*\}\}")


class Refusal(Exception):
    """Why the PEP does not let a request through: raised anywhere below the guard, turned
    into the reply at the top. ``challenge``: the 401's ``error`` for WWW-Authenticate."""

    def __init__(
        self, status: int, kind: str, detail: str, *, challenge: str | None = None, lasting: bool = True
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.kind = kind
        self.detail = detail
        self.challenge = challenge
        self.lasting = lasting  # the same token will be refused again (may be remembered)


def missing() -> Refusal:
    return Refusal(401, MISSING, "Auth-token not found in request header")


def invalid(detail: str = "Invalid Auth-token", *, lasting: bool = True) -> Refusal:
    return Refusal(401, INVALID, detail, challenge="invalid_token", lasting=lasting)


def expired() -> Refusal:
    return Refusal(401, EXPIRED, "Auth-token has expired", challenge="invalid_token")


def other_application() -> Refusal:
    return Refusal(401, INVALID_ROLE, "Auth-token was issued to another application", challenge="invalid_token")


def unavailable(what: str) -> Refusal:
    return Refusal(500, INTERNAL, f"{what} could not be reached or gave no usable answer")


@dataclass(frozen=True, slots=True)
class Replies:
    """Refusals as replies, with the configured template and the identity manager's URL."""

    realm: str
    template: str = DEFAULT_TEMPLATE
    content_type: str = "application/json"

    def render(self, kind: str, title: str, message: str) -> bytes:
        shown = message[:MAX_DETAIL].encode("utf-8", "replace").decode("utf-8")  # no lone surrogate gets through
        values = {"type": kind, "title": title, "message": shown, "detail": shown}
        as_json = "json" in self.content_type.lower()

        def fill(match: re.Match[str]) -> str:
            raw, escaped = match.group(1), match.group(2)
            value = values.get(raw or escaped, "")
            if raw:
                return value
            return orjson.dumps(value).decode()[1:-1] if as_json else html.escape(value)

        return _PLACEHOLDER.sub(fill, self.template).encode("utf-8")

    def reply(self, refusal: Refusal) -> Reply:
        title = TITLES.get(refusal.status, "Error")
        body = self.render(refusal.kind, title, refusal.detail)
        headers = [
            (b"content-type", self.content_type.encode("latin-1", "replace")),
            (b"content-length", str(len(body)).encode()),
            (b"cache-control", b"no-store"),
        ]
        if refusal.status == 401:
            challenge = f'Bearer realm="{_quoted(self.realm)}"'
            if refusal.challenge:
                challenge += f', error="{refusal.challenge}"'
            headers.append((b"www-authenticate", challenge.encode("latin-1", "replace")))
        return Reply(refusal.status, headers, body)


def _quoted(text: str) -> str:
    """``text`` fit for a quoted-string: printable ASCII without quote or backslash."""
    return "".join(c for c in text if " " <= c <= "~" and c not in '"\\')
