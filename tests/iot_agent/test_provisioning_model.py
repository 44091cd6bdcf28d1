"""Provisioning model, pure: validation accepts the agents' fields as posted, and any JSON
at all gives either a document or an agent error, never anything else."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iot_agent.errors import IoTAError, MissingHeaders, WrongSyntax
from iot_agent.provisioning import model

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
names = st.text(alphabet=st.characters(blacklist_characters="<>();'=\"", blacklist_categories=("Cs",)), min_size=1, max_size=8)
# Device ids and entity types become entity ids and types: Orion's identifier characters.
ids = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, blacklist_characters="<>\"'=;()&?/#"), min_size=1, max_size=8)
attribute = st.fixed_dictionaries({"name": names, "type": names}, optional={"object_id": names, "expression": names, "metadata": st.dictionaries(names, json_values, max_size=2)})
static = st.fixed_dictionaries({"name": names, "type": names, "value": json_values})
group_fields = st.fixed_dictionaries(
    {"resource": names.map(lambda s: "/" + s), "apikey": names},
    optional={
        "entity_type": ids,
        "cbHost": names,
        "trust": names,
        "timestamp": st.booleans(),
        "autoprovision": st.booleans(),
        "explicitAttrs": st.booleans() | names | st.lists(names, max_size=3),
        "entityNameExp": names,
        "attributes": st.lists(attribute, max_size=3),
        "lazy": st.lists(attribute, max_size=2),
        "commands": st.lists(attribute, max_size=2),
        "static_attributes": st.lists(static, max_size=2),
        "internal_attributes": st.lists(json_values, max_size=2),
        "preprocess": json_values,
    },
)
# Fields the generator may mutate into something of the wrong JSON type.
partial_bodies = st.one_of(
    json_values,
    st.fixed_dictionaries({"groups": json_values}),
    st.fixed_dictionaries({"groups": st.lists(st.dictionaries(st.sampled_from(sorted(model.GROUP_FIELDS) + ["x"]), json_values), max_size=3)}),
    st.fixed_dictionaries({"devices": st.lists(st.dictionaries(st.sampled_from(sorted(model.DEVICE_FIELDS) + ["x"]), json_values), max_size=3)}),
)


def only_agent_errors(call: Any, *args: Any) -> Any:
    try:
        return call(*args)
    except IoTAError as exc:
        assert exc.code in (400, 404, 409)
        assert set(exc.body()) == {"name", "message"}
        return None


@settings(max_examples=200, deadline=None)
@given(partial_bodies)
def test_random_json_gives_documents_or_agent_errors(body: Any) -> None:
    only_agent_errors(model.parse_groups, body, "groups", "s", "/")
    only_agent_errors(model.parse_groups, body, "services", "s", "/")
    only_agent_errors(model.parse_devices, body, "s", "/")
    only_agent_errors(model.parse_delete_devices, body)
    items = [body]
    if isinstance(body, dict):
        for key in ("groups", "devices"):
            if isinstance(body.get(key), list):
                items.extend(body[key])
    for item in items:
        only_agent_errors(model.parse_group_update, item)
        only_agent_errors(model.parse_device_update, item)


_HEADER_TEXT = st.one_of(st.text(max_size=5), st.sampled_from(["coop", "Farm_1", "/", "/a", "/a/b", "/*", "/#", "/a,/b"]))


@given(st.dictionaries(st.sampled_from(["fiware-service", "fiware-servicepath", "x"]), _HEADER_TEXT), st.booleans())
def test_headers_give_a_tenant_or_a_400(headers: dict[str, str], write: bool) -> None:
    """Missing headers, or ones the broker would refuse (its tenant and service path rules)."""
    try:
        service, subservice = model.tenant(headers, write=write)
    except MissingHeaders as exc:
        assert exc.missing and all(not headers.get(name) for name in exc.missing)
    except WrongSyntax as exc:
        assert exc.code == 400 and exc.message.startswith("Wrong syntax in request: fiware-service")
    else:
        assert service == headers["fiware-service"].lower() and subservice == headers["fiware-servicepath"]
        assert re.fullmatch(r"[a-z0-9_]{1,50}", service)
        assert subservice.startswith("/") and "#" not in subservice and "," not in subservice
        assert subservice != "/*" or not write


def test_headers_follow_the_broker_rules() -> None:
    assert model.tenant({"fiware-service": "Coop_1", "fiware-servicepath": "/a/b"}) == ("coop_1", "/a/b")
    assert model.tenant({"fiware-service": "coop", "fiware-servicepath": "/*"}) == ("coop", "/*")  # lists every path
    for service, path, write in [
        ("a;b<", "/", False), ("x" * 51, "/", False), ("coop", "a", False), ("coop", "/a,/b", False),
        ("coop", "/a/#", False), ("coop", "/a b", False), ("coop", "/*", True), ("coop", "/" + "a" * 51, False),
    ]:
        with pytest.raises(WrongSyntax):
            model.tenant({"fiware-service": service, "fiware-servicepath": path}, write=write)


@given(st.dictionaries(st.sampled_from(["limit", "offset"]), st.text(max_size=6)))
def test_paging_is_numbers_or_wrong_syntax(query: dict[str, str]) -> None:
    result = only_agent_errors(model.paging, query)
    if result is not None:
        limit, offset = result
        assert (limit is None or limit >= 0) and offset >= 0


@given(group_fields)
def test_valid_groups_read_back_as_posted(group: dict[str, Any]) -> None:
    [doc] = model.parse_groups({"groups": [group]}, "groups", "svc", "/p")
    assert model.render_group(doc) == {**group, "service": "svc", "subservice": "/p"}


@given(group_fields.map(lambda g: {k: v for k, v in g.items() if k not in ("resource", "cbHost", "trust", "autoprovision", "entityNameExp")}), ids)
def test_valid_devices_read_back_as_posted(fields: dict[str, Any], device_id: str) -> None:
    device = {**fields, "device_id": device_id}
    [doc] = model.parse_devices({"devices": [device]}, "svc", "/p")
    assert model.render_device(doc) == {**device, "service": "svc", "service_path": "/p"}


@pytest.mark.parametrize("device_id", ["a<b", "a b", "a/b", "a#b", "é", "x" * 257, "", "a\x00b"])
def test_device_ids_follow_orion_id_rules(device_id: str) -> None:
    """What the broker would refuse as (part of) an entity id is refused at provisioning."""
    with pytest.raises(IoTAError) as bad:
        model.parse_devices({"devices": [{"device_id": device_id}]}, "s", "/")
    assert bad.value.code == 400
    for field in ("entity_name", "entity_type"):
        with pytest.raises(IoTAError):
            model.parse_devices({"devices": [{"device_id": "d", field: device_id or "a?b"}]}, "s", "/")
    with pytest.raises(IoTAError):  # a derived entity name over 256 bytes
        model.complete_device({"device_id": "d" * 250}, {"entity_type": "T" * 10})


def test_agent_error_texts() -> None:
    with pytest.raises(IoTAError) as bad:
        model.parse_groups({"groups": [{"resource": "/x"}]}, "groups", "s", "/")
    assert bad.value.body() == {"name": "BAD_REQUEST", "message": "Request error connecting to the Context Broker: Errors found validating request."}
    with pytest.raises(MissingHeaders) as missing:
        model.tenant({"fiware-service": "s"})
    assert missing.value.body() == {"name": "MISSING_HEADERS", "message": 'Some headers were missing from the request: ["fiware-servicepath"]'}


def test_complete_device_and_polling() -> None:
    group = {"entity_type": "G", "defaultEntityNameConjunction": "-", "transport": "HTTP"}
    assert model.complete_device({"device_id": "d"}, group)["entity_name"] == "G-d"
    assert model.complete_device({"device_id": "d", "entity_type": "T"}, None)["entity_name"] == "T:d"
    assert "entity_name" not in model.complete_device({"device_id": "d"}, None)
    assert model.is_polling({"device_id": "d"}, group)
    assert not model.is_polling({"device_id": "d", "endpoint": "http://x"}, group)
    assert not model.is_polling({"device_id": "d", "transport": "MQTT"}, None)
    assert not model.is_polling({"device_id": "d"}, {"endpoint": "http://g"})
    assert model.is_polling({"device_id": "d", "polling": True, "transport": "MQTT"}, None)
