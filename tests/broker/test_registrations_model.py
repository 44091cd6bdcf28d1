"""Registration payloads: Orion's defaults, checks and GET form; never anything but NGSIError."""

from __future__ import annotations

from typing import Any

import hypothesis.strategies as st
import pytest
from hypothesis import given, settings

from broker.registrations.model import parse_registration, render_registration, valid_reg_id
from broker.registrations.registry import new_id
from ngsi.errors import BadRequest, NGSIError


def _payload(**overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "dataProvided": {"entities": [{"id": "E1", "type": "T1"}], "attrs": ["A1"]},
        "provider": {"http": {"url": "http://localhost:1234/v2"}},
    }
    payload.update(overrides)
    return payload


def test_defaults_and_rendering() -> None:
    reg = parse_registration(_payload(description="located in CP1"), "/a1/e1")
    reg["id"] = "0123456789abcdef01234567"
    assert reg["_servicePath"] == "/a1/e1"
    assert render_registration(reg) == {
        "id": "0123456789abcdef01234567",
        "description": "located in CP1",
        "dataProvided": {"entities": [{"id": "E1", "type": "T1"}], "attrs": ["A1"]},
        "provider": {
            "http": {"url": "http://localhost:1234/v2"},
            "supportedForwardingMode": "all",
            "legacyForwarding": False,
        },
        "status": "active",
    }


def test_legacy_forwarding_and_modes_kept() -> None:
    provider = {"http": {"url": "http://cp"}, "legacyForwarding": True, "supportedForwardingMode": "query"}
    reg = parse_registration(_payload(provider=provider))
    assert reg["provider"]["legacyForwarding"] is True
    assert reg["provider"]["supportedForwardingMode"] == "query"


def test_expires_rendered_as_iso() -> None:
    reg = parse_registration(_payload(expires="2040-01-01T00:00:00Z"))
    reg["id"] = new_id()
    assert render_registration(reg)["expires"] == "2040-01-01T00:00:00.000Z"


@pytest.mark.parametrize(
    ("data_provided", "text"),
    [
        ({"entities": [{"id": "E1", "type": "T1"}], "attrs": ["brandName ", "speed"]},
         "forbidden characters in attribute name"),
        ({"entities": [{"id": "E1 ", "type": "T1"}], "attrs": ["A"]},
         "forbidden characters in /entities/ vector item /id/"),
        ({"entities": [{"id": "E1", "type": "T1 "}], "attrs": ["A"]},
         "forbidden characters in /entities/ vector item /type/"),
    ],
)
def test_forbidden_characters(data_provided: dict[str, Any], text: str) -> None:
    """3468_v2_registrations_attribute_name_with_forbidden_character."""
    with pytest.raises(BadRequest) as info:
        parse_registration(_payload(dataProvided=data_provided))
    assert info.value.description == text


@pytest.mark.parametrize(
    "payload",
    [
        [], {}, {"dataProvided": {}}, _payload(status="sleeping"), _payload(expires="tomorrow"),
        _payload(provider={"http": {"url": "ftp://x"}}), _payload(provider={"http": {}}),
        _payload(provider={"http": {"url": "http://x"}, "supportedForwardingMode": "most"}),
        _payload(dataProvided={"entities": []}), _payload(dataProvided={"entities": [{"type": "T"}]}),
    ],
)
def test_bad_payloads(payload: Any) -> None:
    with pytest.raises(BadRequest):
        parse_registration(payload)


def test_ids() -> None:
    assert valid_reg_id(new_id())
    assert not valid_reg_id("r1")
    assert not valid_reg_id("0123456789ABCDEF01234567")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
# Shaped like registrations, so that random data reaches the deeper checks.
entity_like = st.dictionaries(st.sampled_from(["id", "idPattern", "type", "typePattern"]), json_values | st.text(max_size=8))
reg_like = st.fixed_dictionaries(
    {},
    optional={
        "description": json_values,
        "dataProvided": st.fixed_dictionaries(
            {}, optional={"entities": st.lists(entity_like, max_size=3) | json_values, "attrs": json_values}
        ) | json_values,
        "provider": st.fixed_dictionaries(
            {},
            optional={
                "http": st.fixed_dictionaries({}, optional={"url": st.text(max_size=20) | json_values}) | json_values,
                "supportedForwardingMode": st.sampled_from(["all", "none", "query", "update", "x"]) | json_values,
                "legacyForwarding": json_values,
            },
        ) | json_values,
        "expires": st.text(max_size=25) | json_values,
        "status": st.sampled_from(["active", "inactive", "x"]) | json_values,
    },
)


@settings(max_examples=200, deadline=None)
@given(st.one_of(json_values, reg_like))
def test_random_payloads_fail_only_as_ngsi_errors(payload: Any) -> None:
    try:
        reg = parse_registration(payload)
    except NGSIError:
        return
    reg["id"] = new_id()
    rendered = render_registration(reg)
    assert rendered["provider"]["supportedForwardingMode"] in ("all", "none", "query", "update")
    assert all(not key.startswith("_") for key in rendered)


def test_registry_writes_through_and_reloads() -> None:
    import asyncio

    from broker.registrations.registry import RegistrationRegistry
    from broker.store.memory import MemoryStore

    async def scenario() -> None:
        store = MemoryStore()
        registry = RegistrationRegistry(store)
        reg = await registry.add("t1", parse_registration(_payload(), "/foo"))
        again = RegistrationRegistry(store)
        await again.load()
        assert again.get("t1", (("/foo", False),), reg["id"]) == reg
        with pytest.raises(NGSIError):
            again.get("t1", (("/bar", False),), reg["id"])
        with pytest.raises(NGSIError):
            again.get("t2", (("/", True),), reg["id"])
        await again.delete("t1", (("/", True),), reg["id"])
        assert await store.load_docs("registration") == []
        assert not again.has_any("t1")

    asyncio.run(scenario())


def test_forwarding_information_rendered_once_forwarded() -> None:
    """orion-api.md, 'registration.forwardingInformation': timesSent and ISO dates, the
    lastSuccess/lastFailure ones only once such a forwarding happened; nothing before any."""
    reg = parse_registration(_payload())
    reg["id"] = new_id()
    assert "forwardingInformation" not in render_registration(reg, None)
    assert "forwardingInformation" not in render_registration(reg, {"timesSent": 0})
    info = {"timesSent": 2, "lastForwarding": 2e9, "lastSuccess": 2e9}
    assert render_registration(reg, info)["forwardingInformation"] == {
        "timesSent": 2, "lastForwarding": "2033-05-18T03:33:20.000Z", "lastSuccess": "2033-05-18T03:33:20.000Z",
    }


def test_registry_counts_forwardings_and_persists_them() -> None:
    import asyncio

    from broker.registrations.registry import RegistrationRegistry
    from broker.store.memory import MemoryStore

    async def scenario() -> None:
        store = MemoryStore()
        registry = RegistrationRegistry(store)
        reg = await registry.add("t1", parse_registration(_payload()))
        registry.record("t1", reg["id"], 100.7, True, 101.2)
        registry.record("t1", reg["id"], 102.0, False)
        assert registry.forwarding("t1", reg["id"]) == {
            "timesSent": 2, "lastForwarding": 102.0, "lastSuccess": 101.0, "lastFailure": 102.0,
        }
        await registry.flush()
        again = RegistrationRegistry(store)
        await again.load()
        assert again.forwarding("t1", reg["id"]) == registry.forwarding("t1", reg["id"])
        assert "_forwarding" not in render_registration(again.get("t1", (("/", True),), reg["id"]))
        # a flush after a delete does not bring the registration back
        registry.record("t1", reg["id"], 103.0, True)
        await registry.delete("t1", (("/", True),), reg["id"])
        registry.record("t1", reg["id"], 104.0, True)
        await registry.close()
        assert await store.load_docs("registration") == []
        assert registry.forwarding("t1", reg["id"]) is None

    asyncio.run(scenario())


def test_type_rule_of_forwarding() -> None:
    """context_providers.md: any type matches a registration without type; a registration
    with a type needs that type."""
    from broker.registrations.plan import spec_covers

    assert spec_covers({"id": "E"}, "E", "Car") and spec_covers({"id": "E"}, "E", None)
    assert spec_covers({"id": "E", "type": "T"}, "E", "T")
    assert not spec_covers({"id": "E", "type": "T"}, "E", None)
    assert not spec_covers({"id": "E", "type": "T"}, "E", "U")
    assert spec_covers({"idPattern": ".*", "type": "T"}, "X", "T")
    assert not spec_covers({"idPattern": "^A", "type": "T"}, "X", "T")


def test_plan_completes_local_entities_and_discovers_the_others() -> None:
    from broker.registrations.plan import plan_query
    from broker.store import Selector

    reg = {"id": "r1", "dataProvided": {"entities": [{"id": "E1", "type": "T"}, {"id": "E2", "type": "T"}],
                                        "attrs": ["a", "b"]}}
    local = {"id": "E1", "type": "T", "attrs": {"a": {}}, "servicePath": "/"}
    asks = plan_query([reg], [Selector(ids=("E1", "E2"), types=("T",))], [local], set(), None)
    assert [(a.paged, a.attrs, a.entities) for a in asks] == [
        (False, ["b"], [{"id": "E1", "type": "T"}]),
        (True, ["a", "b"], [{"id": "E2", "type": "T"}]),
    ]
    # E2 held here too (off the page): nobody discovers it
    asks = plan_query([reg], [Selector(ids=("E2",), types=("T",))], [], {("E2", "T")}, None)
    assert asks == []
    # a listing without type does not reach a registration with types
    assert plan_query([reg], [Selector()], [], set(), None) == []
    assert [a.entities for a in plan_query([reg], [Selector(types=("T",))], [], set(), None)] == [
        [{"id": "E1", "type": "T"}, {"id": "E2", "type": "T"}]
    ]


def test_legacy_bodies_and_answers() -> None:
    """orion-api.md, 'registration.provider' ``legacyForwarding``: NGSIv1 queryContext and
    updateContext."""
    from broker.registrations import legacy

    assert legacy.query_body([{"id": "E", "type": "T"}, {"idPattern": ".*"}], ["a"]) == {
        "entities": [{"type": "T", "isPattern": "false", "id": "E"}, {"isPattern": "true", "id": ".*"}],
        "attributes": ["a"],
    }
    attr = {"type": "Number", "value": 1, "md": {"unit": {"type": "Text", "value": "C"}}}
    assert legacy.update_body("E", "T", {"a": attr}, "replace") == {
        "contextElements": [{"id": "E", "isPattern": "false", "type": "T", "attributes": [
            {"name": "a", "type": "Number", "value": 1, "metadatas": [{"name": "unit", "type": "Text", "value": "C"}]}
        ]}],
        "updateAction": "REPLACE",
    }
    answer = {"contextResponses": [
        {"contextElement": {"id": "E", "type": "T", "isPattern": "false", "attributes": [
            {"name": "a", "type": "Number", "value": 1, "metadatas": [{"name": "unit", "type": "Text", "value": "C"}]}]},
         "statusCode": {"code": "200", "reasonPhrase": "OK"}},
        {"contextElement": {"id": "F", "type": "T", "attributes": []}, "statusCode": {"code": "404"}},
    ]}
    assert legacy.query_entities(answer) == [
        {"id": "E", "type": "T", "a": {"value": 1, "type": "Number", "metadata": {"unit": {"type": "Text", "value": "C"}}}}
    ]
    assert legacy.query_entities({"errorCode": {"code": "404", "reasonPhrase": "No context element found"}}) == []
    assert legacy.query_entities([1, 2]) == []
    assert legacy.update_succeeded(answer)
    assert not legacy.update_succeeded({"errorCode": {"code": "404"}})
    assert not legacy.update_succeeded({"contextResponses": [{"statusCode": {"code": "472"}}]})
    assert legacy.update_succeeded(None)


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_legacy_answers_of_any_shape_never_raise(answer: Any) -> None:
    from broker.registrations import legacy

    assert isinstance(legacy.query_entities(answer), list)
    assert isinstance(legacy.update_succeeded(answer), bool)


ngsiv1_like = st.fixed_dictionaries({}, optional={
    "contextResponses": st.lists(st.fixed_dictionaries({}, optional={
        "contextElement": st.fixed_dictionaries({}, optional={
            "id": st.text(max_size=3) | json_values, "type": json_values,
            "attributes": st.lists(st.fixed_dictionaries({}, optional={
                "name": st.text(max_size=3) | json_values, "type": json_values, "value": json_values,
                "metadatas": st.lists(st.dictionaries(st.sampled_from(["name", "type", "value"]), json_values)) | json_values,
            }) | json_values, max_size=3) | json_values,
        }) | json_values,
        "statusCode": st.fixed_dictionaries({}, optional={"code": st.sampled_from(["200", 200, "404"]) | json_values}),
    }), max_size=3) | json_values,
    "errorCode": json_values,
})


@settings(max_examples=300, deadline=None)
@given(ngsiv1_like)
def test_legacy_shaped_answers_never_raise(answer: Any) -> None:
    from broker.registrations import legacy

    for entity in legacy.query_entities(answer):
        assert isinstance(entity["id"], str)
    assert isinstance(legacy.update_succeeded(answer), bool)
