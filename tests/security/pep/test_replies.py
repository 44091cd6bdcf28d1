"""Refusals in Wilma's error shape: its template and types, 401 with WWW-Authenticate, 403
for a denial, bodies that stay valid JSON whatever the detail."""

from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from security.pep.replies import (
    DEFAULT_TEMPLATE,
    EXPIRED,
    INVALID,
    INVALID_ROLE,
    MISSING,
    Refusal,
    Replies,
    expired,
    invalid,
    missing,
)

REPLIES = Replies("http://idm:3005")


def headers(refusal: Refusal, replies: Replies = REPLIES) -> dict[bytes, bytes]:
    return dict(replies.reply(refusal).raw_headers)


def test_missing_token_is_wilmas_401() -> None:
    reply = REPLIES.reply(missing())
    assert reply.status_code == 401
    assert orjson.loads(reply.body) == {
        "type": MISSING, "title": "Unauthorized", "detail": "Auth-token not found in request header",
    }
    assert headers(missing())[b"www-authenticate"] == b'Bearer realm="http://idm:3005"'
    assert headers(missing())[b"content-type"] == b"application/json"


def test_invalid_and_expired_tokens_say_so_in_the_challenge() -> None:
    assert orjson.loads(REPLIES.reply(invalid()).body)["type"] == INVALID
    assert orjson.loads(REPLIES.reply(expired()).body)["type"] == EXPIRED
    assert headers(expired())[b"www-authenticate"] == b'Bearer realm="http://idm:3005", error="invalid_token"'


def test_a_denial_is_403_without_challenge() -> None:
    reply = REPLIES.reply(Refusal(403, INVALID_ROLE, "policy p: tenant coop is bound"))
    assert reply.status_code == 403 and b"www-authenticate" not in dict(reply.raw_headers)
    body = {"type": INVALID_ROLE, "title": "Forbidden", "detail": "policy p: tenant coop is bound"}
    assert orjson.loads(reply.body) == body


def test_own_template_and_content_type() -> None:
    replies = Replies("r", "<error type='{{type}}'>{{message}}</error>", "application/xml")
    body = replies.reply(Refusal(403, INVALID_ROLE, "a < b & \"c\"")).body
    assert body == b"<error type='urn:dx:as:InvalidRole'>a &lt; b &amp; &quot;c&quot;</error>"
    raw = Replies("r", '{"t": "{{{type}}}"}').reply(missing()).body
    assert orjson.loads(raw) == {"t": MISSING}


@given(st.text(max_size=300))
def test_the_default_template_stays_json_whatever_the_detail(detail: str) -> None:
    body = orjson.loads(REPLIES.reply(Refusal(403, INVALID_ROLE, detail)).body)
    assert body["detail"] == detail[:1000]
    assert DEFAULT_TEMPLATE.count("{{") == 3
