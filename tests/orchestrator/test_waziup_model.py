"""The WAZIUP API's pure parts: devices as entities and back (``devices.py``) and the
permission table (``permissions.py``), against the contract (§2, §4)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.waziup_api import devices as model
from orchestrator.waziup_api.caller import GUEST, Caller
from orchestrator.waziup_api.errors import ApiError
from orchestrator.waziup_api.permissions import DEVICE_SCOPES, may, permissions, scopes

ids = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="<>\"'=;()?/#&"),
              min_size=1, max_size=20)
member_ids = ids.filter(lambda i: i not in model.DEVICE_FIELDS and "," not in i)  # commas: refused, see devices.py
texts = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E, exclude_characters="<>\"'=;()"), max_size=20)
json_values = st.recursive(st.none() | st.booleans() | st.integers(-10**6, 10**6) | texts,
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
                           max_leaves=8)


@st.composite
def devices(draw: st.DrawFn) -> dict[str, Any]:
    doc: dict[str, Any] = {"id": draw(ids)}
    for name in ("name", "gateway_id", "domain"):
        if draw(st.booleans()):
            doc[name] = draw(texts)
    if draw(st.booleans()):
        doc["visibility"] = draw(st.sampled_from(["public", "private"]))
    if draw(st.booleans()):
        doc["deployed"] = draw(st.booleans())
    if draw(st.booleans()):
        doc["meta"] = draw(json_values)
    if draw(st.booleans()):
        doc["location"] = {"latitude": draw(st.floats(-90, 90)), "longitude": draw(st.floats(-180, 180))}
    taken: set[str] = set()
    doc["sensors"] = []
    for sid in draw(st.lists(member_ids, max_size=3, unique=True)):
        taken.add(sid)
        sensor = {"id": sid, **{k: draw(texts) for k in draw(st.sets(st.sampled_from(model.SENSOR_FIELDS)))}}
        doc["sensors"].append(sensor)
    doc["actuators"] = []
    for aid in draw(st.lists(member_ids.filter(lambda a: a not in taken), max_size=2, unique=True)):
        actuator: dict[str, Any] = {"id": aid}
        if draw(st.booleans()):
            actuator["actuator_value_type"] = draw(st.sampled_from(model.VALUE_TYPES))
        if draw(st.booleans()):
            actuator["value"] = draw(json_values)
        doc["actuators"].append(actuator)
    return doc


def _has_null(value: Any) -> bool:
    """A null anywhere in ``value`` (not the text "null", which a name or a domain may be)."""
    if isinstance(value, dict):
        return any(_has_null(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_null(v) for v in value)
    return value is None


@settings(max_examples=200, deadline=None)
@given(devices(), texts.filter(bool))
def test_a_posted_device_reads_back_deep_equal(doc: dict[str, Any], owner: str) -> None:
    """§1: what a client posted comes back deep-equal; §2: the owner is the caller's."""
    entity = model.device_entity({**doc, "owner": "someone-else"}, owner)
    shown = model.device_json(json.loads(json.dumps(entity)))  # as the broker keeps it
    assert shown.pop("owner") == owner
    assert shown == doc
    assert not _has_null({k: v for k, v in shown.items() if k not in ("meta", "actuators")})


@pytest.mark.parametrize("bad", ["", "=", "a b", "a/b", "x" * 257, 7, None, "é"])
def test_ids_follow_orions_rules(bad: Any) -> None:
    """§3: 1-256 printable characters, no whitespace, none of <>"'=;()?/#&."""
    with pytest.raises(ApiError) as refused:
        model.device_entity({"id": bad}, "alice")
    assert refused.value.status == 400


def test_members_may_not_take_device_field_names_or_each_others() -> None:
    for doc in ({"id": "d", "sensors": [{"id": "owner"}]},
                {"id": "d", "sensors": [{"id": "x"}], "actuators": [{"id": "x"}]},
                {"id": "d", "sensors": [{"name": "no id"}]},
                {"id": "d", "actuators": [{"id": "a", "actuator_value_type": "float"}]},
                {"id": "d", "location": {"latitude": 91, "longitude": 0}},
                {"id": "d", "visibility": "friends"}):
        with pytest.raises(ApiError):
            model.device_entity(doc, "alice")


alice, bob, admin = Caller("alice", user_id="1"), Caller("bob", user_id="2"), Caller("admin", admin=True, user_id="0")


@given(st.sampled_from([alice, bob, admin, GUEST]), st.sampled_from([None, "public", "private"]),
       st.sampled_from(["alice", "bob", "guest"]))
def test_scopes_follow_the_table(caller: Caller, visibility: str | None, owner: str) -> None:
    """§2's table: admin and owner hold every scope; others the public scopes of a public device."""
    device = {"id": "d", "owner": owner, **({"visibility": visibility} if visibility else {})}
    held = set(scopes(caller, "devices", device))
    if caller.admin or caller.username == owner:
        assert held == set(DEVICE_SCOPES)
    elif visibility == "private":
        assert held == set()
    else:
        assert held == {"devices:view", "devices-data:view", "devices-data:create"}
    assert may(caller, "devices-data:create", device) == ("devices-data:create" in held)
    assert not scopes(caller, "projects", {"id": "p", "owner": owner}) or caller.admin or caller.username == owner


def test_permissions_lists_only_resources_with_a_scope() -> None:
    mine = {"id": "a", "owner": "alice", "visibility": "private"}
    theirs_private = {"id": "b", "owner": "bob", "visibility": "private"}
    theirs_public = {"id": "c", "owner": "bob"}
    listed = permissions(alice, "devices", [mine, theirs_private, theirs_public])
    assert [p["resource"] for p in listed] == ["a", "c"]
    assert set(listed[1]["scopes"]) == {"devices:view", "devices-data:view", "devices-data:create"}
    assert permissions(GUEST, "gateways", [theirs_public]) == [{"resource": "c", "scopes": ["gateways:view"]}]
