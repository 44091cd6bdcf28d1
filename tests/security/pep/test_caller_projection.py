"""Keyrock's user object as the request context's identity and Wilma's upstream headers; a
projection applied to NGSI answers (what the proxy does for a service behind it)."""

from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from security.pep.caller import BadUserInfo, caller_from_user
from security.pep.projection import Unprojectable, project

USER = {
    "organizations": [{"id": "o1", "name": "coop-org", "description": "d", "website": None,
                       "roles": [{"id": "r2", "name": "farmer"}]}],
    "displayName": "Alice A.", "roles": [{"id": "r1", "name": "viewer"}], "app_id": "app1", "trusted_apps": [],
    "isGravatarEnabled": False, "email": "alice@test.com", "id": "u1", "authorization_decision": "",
    "app_azf_domain": "dom1", "username": "alice",
}


def test_identity_has_ids_and_names_of_own_and_organization_roles() -> None:
    caller = caller_from_user(USER)
    identity = caller.identity
    assert (identity.user_id, identity.username, identity.email, identity.display_name, identity.app_id) == (
        "u1", "alice", "alice@test.com", "Alice A.", "app1")
    assert set(identity.roles) == {"r1", "viewer", "r2", "farmer"}
    assert set(identity.organizations) == {"o1", "coop-org"}
    assert caller.role_ids == ("r1", "r2") and caller.organization_ids == ("o1",) and caller.azf_domain == "dom1"


def test_wilmas_upstream_headers() -> None:
    headers = dict(caller_from_user(USER).headers)
    assert headers["X-Nick-Name"] == "u1" and headers["X-Display-Name"] == "Alice A." and headers["X-App-Id"] == "app1"
    assert json.loads(headers["X-Roles"]) == USER["roles"]
    assert json.loads(headers["X-Organizations"]) == USER["organizations"]
    evil = caller_from_user({**USER, "displayName": "a\r\nX-Evil: 1", "roles": [{"id": "r", "name": "é\n"}]})
    for _, value in evil.headers:
        assert "\r" not in value and "\n" not in value and value.isascii()


def test_a_client_token_is_an_application() -> None:
    caller = caller_from_user({"app_id": "app1", "type": "app", "sub": "app1"})
    assert caller.identity.user_id == "" and caller.identity.app_id == "app1"
    assert dict(caller.headers) == {"X-App-Id": "app1"}
    assert caller_from_user({}).identity.anonymous


@pytest.mark.parametrize("info", [[], "x", {"roles": "farmer"}, {"roles": [1]}, {"id": 5},
                                  {"organizations": [{"roles": {}}]}])
def test_a_user_object_not_in_keyrocks_shape_is_refused(info: object) -> None:
    with pytest.raises(BadUserInfo):
        caller_from_user(info)


HIDDEN = frozenset({"owner"})
ENTITY = {"id": "F1", "type": "Field", "crop": {"value": "wheat"}, "owner": {"value": "alice"}}


def projected(method: str, path: str, doc: object, visible: frozenset[str] | None = None,
              hidden: frozenset[str] = HIDDEN, status: int = 200) -> object:
    return orjson.loads(project(method, path, status, orjson.dumps(doc), visible, hidden))


def test_entities_lose_hidden_attributes_on_every_read_route() -> None:
    kept = {"id": "F1", "type": "Field", "crop": {"value": "wheat"}}
    assert projected("GET", "/v2/entities", [ENTITY]) == [kept]
    assert projected("GET", "/v2/entities/", [ENTITY]) == [kept]
    assert projected("POST", "/v2/op/query", [ENTITY]) == [kept]
    assert projected("GET", "/v2/entities/F1", ENTITY) == kept
    assert projected("GET", "/v2/entities/F1", {"id": "F1", "type": "Field", "crop": "wheat", "owner": "a"}) == {
        "id": "F1", "type": "Field", "crop": "wheat"}  # keyValues
    assert projected("GET", "/v2/entities/F1/attrs", {"crop": 1, "owner": 2}) == {"crop": 1}
    assert projected("GET", "/v2/types", [{"type": "Field", "attrs": {"crop": {}, "owner": {}}, "count": 1}]) == [
        {"type": "Field", "attrs": {"crop": {}}, "count": 1}]
    assert projected("GET", "/v2/types/Field", {"attrs": {"crop": {}, "owner": {}}, "count": 1}) == {
        "attrs": {"crop": {}}, "count": 1}
    assert projected("GET", "/v2/entities", [ENTITY], visible=frozenset({"crop"}), hidden=frozenset()) == [kept]


def test_what_is_not_a_projected_read_comes_back_as_it_is() -> None:
    body = orjson.dumps([ENTITY])
    assert project("GET", "/v2/subscriptions", 200, body, None, HIDDEN) == body
    assert project("GET", "/v2/entities", 400, body, None, HIDDEN) == body
    with pytest.raises(Unprojectable):  # never passed on unfiltered
        project("GET", "/v2/entities", 200, b"[1.5e400]", None, HIDDEN)
    assert project("GET", "/v2/entities", 200, body, None, frozenset()) == body


JSON = st.recursive(
    st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1), st.text(max_size=5)),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
)


@given(JSON,
       st.sampled_from(["/v2/entities", "/v2/entities/x", "/v2/entities/x/attrs", "/v2/types", "/v2/types/T"]))
def test_any_json_answer_is_projected_without_error(doc: object, path: str) -> None:
    out = orjson.loads(project("GET", path, 200, orjson.dumps(doc), None, HIDDEN))
    assert "owner" not in json.dumps(out) or "owner" in json.dumps(doc)
