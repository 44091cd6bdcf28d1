"""Where the token is: Wilma's order (Bearer, X-Auth-Token, another scheme's base64 word) and
what is refused before anyone is asked (reference security-history-orchestration.md §2)."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from security.pep.tokens import MAX_TOKEN, Malformed, looks_like_jwt, token_of

TOKEN = "Abc-123_xyz.~+/="


def test_bearer_first_then_x_auth_token() -> None:
    assert token_of({"authorization": "Bearer abc", "x-auth-token": "def"}) == "abc"
    assert token_of({"authorization": "bearer abc"}) == "abc"
    assert token_of({"x-auth-token": "def"}) == "def"
    assert token_of({}) is None


def test_another_scheme_gives_way_to_x_auth_token_else_its_base64_word() -> None:
    encoded = base64.b64encode(b"opaque-token").decode()
    assert token_of({"authorization": f"Basic {encoded}", "x-auth-token": "def"}) == "def"
    assert token_of({"authorization": f"Basic {encoded}"}) == "opaque-token"  # Wilma's quirk


@pytest.mark.parametrize("headers", [
    {"authorization": "Bearer"},
    {"authorization": "Bearer "},
    {"authorization": "Bearer a b"},
    {"authorization": "Bearer a\"b"},
    {"authorization": "Basic !!!"},
    {"authorization": "Basic " + base64.b64encode(b"has space").decode()},
    {"authorization": "Basic " + base64.b64encode(b"\xff\xfe").decode()},
    {"authorization": "justoneword"},
    {"x-auth-token": ""},
    {"x-auth-token": "a b"},
    {"x-auth-token": "x" * (MAX_TOKEN + 1)},
])
def test_what_cannot_be_a_token_is_malformed(headers: dict[str, str]) -> None:
    with pytest.raises(Malformed) as caught:
        token_of(headers)
    assert "a b" not in str(caught.value) and '"' not in str(caught.value)  # never the value itself


def test_jwt_shape() -> None:
    assert looks_like_jwt("eyJhbGciOi.eyJzdWIiOi.c2ln")
    assert not looks_like_jwt("eyJhbGciOi.eyJzdWIiOi")
    assert not looks_like_jwt("abc.def.ghi")


@given(st.dictionaries(st.sampled_from(["authorization", "x-auth-token", "other"]), st.text(max_size=200)))
def test_any_headers_give_a_token_none_or_malformed(headers: dict[str, str]) -> None:
    try:
        token = token_of(headers)
    except Malformed:
        return
    assert token is None or (0 < len(token) <= MAX_TOKEN and token.isascii() and " " not in token)


@given(st.from_regex(r"[A-Za-z0-9\-._~+/]{1,100}=*", fullmatch=True))
def test_every_b64token_comes_back_from_each_place(token: str) -> None:
    assert token_of({"authorization": f"Bearer {token}"}) == token
    assert token_of({"x-auth-token": token}) == token
    assert token_of({"authorization": "Token " + base64.b64encode(token.encode()).decode()}) == token
