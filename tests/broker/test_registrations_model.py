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
