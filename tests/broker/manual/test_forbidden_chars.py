"""Forbidden characters and identifier syntax, as Orion's manual states them.

Written from orion-api.md: "General syntax restrictions" (``< > " ' = ; ( )`` forbidden in
any request, with the exceptions the section lists), "Identifiers syntax restrictions" (ids,
types, attribute and metadata names and types), "Special Attribute Types" and "Special
Metadata Types" (``TextUnrestricted``). Each test's docstring cites its section; where the
manual says only "a 400 Bad Request response like this" the text is the one Orion's
functional tests show ("Invalid characters in <field>", "invalid character in URI...").

Where the manual is silent, Orion's behaviour is followed: a structured attribute value is
checked to its leaves (functional test 1905), a structured metadata value is not (Orion's
metadata check looks at string values only).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.broker.api_client import ApiClient, broker_client, create, error_of, new_id

FORBIDDEN = ["<", ">", '"', "'", "=", ";", "(", ")"]
# Identifiers: also control characters, whitespace, &, ?, / and #, and anything not plain ASCII.
ID_ONLY_FORBIDDEN = [" ", "\t", "\x01", "&", "?", "/", "#", "é", "\x7f"]


@pytest.fixture(scope="module")
def client() -> Iterator[ApiClient]:
    with broker_client() as c:
        yield c


def _kv(client: ApiClient, entity_id: str) -> Any:
    response = client.get(f"/v2/entities/{entity_id}", params={"options": "keyValues"})
    assert response.status_code == 200, response.text
    return response.json()


def _entity(client: ApiClient, entity_id: str) -> Any:
    response = client.get(f"/v2/entities/{entity_id}")
    assert response.status_code == 200, response.text
    return response.json()


# --- General syntax restrictions: attribute values -------------------------------------------


@pytest.mark.parametrize("char", FORBIDDEN)
def test_forbidden_character_in_a_text_value_on_every_write(client: ApiClient, char: str) -> None:
    """orion-api.md, "General syntax restrictions": the characters are "forbidden in any
    request": a string attribute value holding one is a 400 on each way of writing it, and
    nothing is written."""
    eid = new_id()
    bad = {"A": {"value": f"x{char}y"}}
    text = "Invalid characters in attribute value"
    error_of(client.post("/v2/entities", json={"id": eid, **bad}), 400, "BadRequest", text)
    create(client, {"id": eid, "A": {"value": "ok"}})
    error_of(client.post(f"/v2/entities/{eid}/attrs", json=bad), 400, "BadRequest", text)
    error_of(client.patch(f"/v2/entities/{eid}/attrs", json=bad), 400, "BadRequest", text)
    error_of(client.put(f"/v2/entities/{eid}/attrs", json=bad), 400, "BadRequest", text)
    error_of(client.put(f"/v2/entities/{eid}/attrs/A", json=bad["A"]), 400, "BadRequest", text)
    batch = {"actionType": "append", "entities": [{"id": eid, "type": "Thing", **bad}]}
    error_of(client.post("/v2/op/update", json=batch), 400, "BadRequest", text)
    plain = {"Content-Type": "text/plain"}
    error_of(client.put(f"/v2/entities/{eid}/attrs/A/value", content=f'"x{char}y"', headers=plain), 400,
             "BadRequest", text)
    error_of(client.put(f"/v2/entities/{eid}/attrs/A/value", json={"k": f"x{char}y"}), 400, "BadRequest", text)
    assert _kv(client, eid)["A"] == "ok"


@pytest.mark.parametrize("value", [{"a": {"b": "a(7)"}}, ["ok", ["x=1"]], {"list": [{"q": "'"}]}])
def test_a_structured_attribute_value_is_checked_to_its_leaves(client: ApiClient, value: Any) -> None:
    """orion-api.md, "General syntax restrictions" ("any request"); Orion checks every string
    inside a structured attribute value (its functional test 1905)."""
    error_of(client.post("/v2/entities", json={"id": new_id(), "A": {"value": value}}), 400, "BadRequest",
             "Invalid characters in attribute value")


def test_allowed_punctuation_in_values(client: ApiClient) -> None:
    """orion-api.md, "General syntax restrictions": only the eight characters are forbidden;
    the rest of the printable set (and beyond ASCII) is fine in values."""
    eid = new_id()
    text = "a&b?c/d#e%f:g-h!i*j+k,l.m@n[o]p{q}r|s~t`u^v$w\\x é ü 中"
    create(client, {"id": eid, "A": {"value": text}, "B": {"value": {"k": [text]}}})
    assert _kv(client, eid)["A"] == text
    assert _kv(client, eid)["B"] == {"k": [text]}


# --- General syntax restrictions: metadata values ---------------------------------------------


@pytest.mark.parametrize("char", FORBIDDEN)
def test_forbidden_character_in_a_text_metadata_value(client: ApiClient, char: str) -> None:
    """orion-api.md, "General syntax restrictions": a string metadata value is checked too."""
    entity = {"id": new_id(), "A": {"value": 1, "metadata": {"m": {"value": f"20.0{char}"}}}}
    error_of(client.post("/v2/entities", json=entity), 400, "BadRequest", "Invalid characters in metadata value")


@pytest.mark.parametrize("value", [{"field_value": "20.0'"}, ["<b>", {"x": "a=(1);"}]])
def test_a_structured_metadata_value_is_accepted_as_orion_does(client: ApiClient, value: Any) -> None:
    """orion-api.md, "General syntax restrictions" is silent on structured metadata values;
    Orion checks only metadata values that are strings, so ``{"field_value": "20.0'"}`` is
    stored and read back as given."""
    eid = new_id()
    create(client, {"id": eid, "A": {"value": 1, "metadata": {"m": {"type": "StructuredValue", "value": value}}}})
    assert _entity(client, eid)["A"]["metadata"]["m"] == {"type": "StructuredValue", "value": value}
    patch = {"A": {"value": 2, "metadata": {"m": {"value": value}}}}
    assert client.patch(f"/v2/entities/{eid}/attrs", json=patch).status_code == 204
    batch = {"actionType": "append", "entities": [{"id": new_id(), "type": "T", **patch}]}
    assert client.post("/v2/op/update", json=batch).status_code == 204


def test_text_unrestricted_does_not_free_metadata(client: ApiClient) -> None:
    """orion-api.md, "General syntax restrictions": the exceptions are attribute values only
    (``TextUnrestricted`` as attribute type, or a ``TextUnrestricted`` metadata): a metadata
    typed ``TextUnrestricted`` and the metadata of a free attribute are still checked."""
    typed = {"id": new_id(), "A": {"value": 1, "metadata": {"m": {"type": "TextUnrestricted", "value": "<b>"}}}}
    error_of(client.post("/v2/entities", json=typed), 400, "BadRequest", "Invalid characters in metadata value")
    free_attr = {"id": new_id(), "A": {"type": "TextUnrestricted", "value": "<ok>",
                                       "metadata": {"m": {"value": "<not ok>"}}}}
    error_of(client.post("/v2/entities", json=free_attr), 400, "BadRequest", "Invalid characters in metadata value")


# --- Exceptions: TextUnrestricted ------------------------------------------------------------


ALL_FORBIDDEN = "".join(FORBIDDEN)


def test_text_unrestricted_attribute_type(client: ApiClient) -> None:
    """orion-api.md, "Special Attribute Types" > ``TextUnrestricted`` (the ``forbiddenAttr``
    example) and "General syntax restrictions" (its exceptions): no check of the value, also
    inside a structured value."""
    eid = new_id()
    create(client, {
        "id": eid,
        "forbiddenAttr": {"type": "TextUnrestricted",
                          "value": "I'm a unrestricted (and I'm using forbidden chars, the apostrophe)"},
        "all": {"type": "TextUnrestricted", "value": ALL_FORBIDDEN},
        "deep": {"type": "TextUnrestricted", "value": {"(A)": ["(A)", {"x": ALL_FORBIDDEN}]}},
    })
    got = _entity(client, eid)
    assert got["forbiddenAttr"]["value"] == "I'm a unrestricted (and I'm using forbidden chars, the apostrophe)"
    assert got["all"] == {"type": "TextUnrestricted", "value": ALL_FORBIDDEN, "metadata": {}}
    assert got["deep"]["value"] == {"(A)": ["(A)", {"x": ALL_FORBIDDEN}]}


def test_text_unrestricted_metadata(client: ApiClient) -> None:
    """orion-api.md, "Special Metadata Types" > ``TextUnrestricted`` (the ``funnyAttr``
    example): "a boolean metadata named TextUnrestricted with value true" frees the value of
    an attribute of any type."""
    eid = new_id()
    funny = {"type": "FunnyType", "value": "Value with <forbidden> characters (like = or ;)",
             "metadata": {"TextUnrestricted": {"value": True, "type": "Boolean"}}}
    create(client, {"id": eid, "funnyAttr": funny})
    assert _entity(client, eid)["funnyAttr"] == funny
    patch = {"funnyAttr": dict(funny, value={"x": ALL_FORBIDDEN})}
    assert client.patch(f"/v2/entities/{eid}/attrs", json=patch).status_code == 204


@pytest.mark.parametrize("flag", [False, "true", 1, None])
def test_text_unrestricted_metadata_must_be_boolean_true(client: ApiClient, flag: Any) -> None:
    """orion-api.md, "Special Metadata Types" > ``TextUnrestricted``: only a boolean ``true``
    lifts the check."""
    entity = {"id": new_id(), "A": {"type": "FunnyType", "value": "<x>",
                                    "metadata": {"TextUnrestricted": {"value": flag}}}}
    error_of(client.post("/v2/entities", json=entity), 400, "BadRequest", "Invalid characters in attribute value")


# --- Identifiers syntax restrictions -----------------------------------------------------------


def _payload(field: str, text: str) -> dict[str, Any]:
    """An entity whose ``field`` is ``text``, the rest valid."""
    eid = new_id()
    if field == "entity id":
        return {"id": text}
    if field == "entity type":
        return {"id": eid, "type": text}
    if field == "attribute name":
        return {"id": eid, text: {"value": 1}}
    if field == "attribute type":
        return {"id": eid, "A": {"value": 1, "type": text}}
    if field == "metadata name":
        return {"id": eid, "A": {"value": 1, "metadata": {text: {"value": 1}}}}
    return {"id": eid, "A": {"value": 1, "metadata": {"m": {"value": 1, "type": text}}}}


FIELDS = ["entity id", "entity type", "attribute name", "attribute type", "metadata name", "metadata type"]


@pytest.mark.parametrize("field", FIELDS)
@pytest.mark.parametrize("char", FORBIDDEN + ID_ONLY_FORBIDDEN)
def test_identifier_characters(client: ApiClient, field: str, char: str) -> None:
    """orion-api.md, "Identifiers syntax restrictions": plain ASCII only, no control
    characters, whitespace, ``&``, ``?``, ``/`` or ``#``, and the "General syntax restrictions"
    apply too; the answer is 400 "Invalid characters in <field>" (the manual's example for
    "attribute type")."""
    error_of(client.post("/v2/entities", json=_payload(field, f"a{char}b")), 400, "BadRequest",
             f"Invalid characters in {field}")


@pytest.mark.parametrize("field", FIELDS)
def test_identifier_length(client: ApiClient, field: str) -> None:
    """orion-api.md, "Identifiers syntax restrictions": "Maximum field length is 256
    characters. Minimum field length is 1 character." (texts of Orion's functional tests)."""
    longest = new_id("x").ljust(256, "x")
    assert client.post("/v2/entities", json=_payload(field, longest)).status_code == 201
    error_of(client.post("/v2/entities", json=_payload(field, "y" * 257)), 400, "BadRequest",
             f"{field} length: 257, max length supported: 256")
    error_of(client.post("/v2/entities", json=_payload(field, "")), 400, "BadRequest",
             f"{field} length: 0, min length supported: 1")


@pytest.mark.parametrize("field", FIELDS)
def test_identifier_punctuation_allowed(client: ApiClient, field: str) -> None:
    """orion-api.md, "Identifiers syntax restrictions": the other printable ASCII characters
    are allowed (``:`` and ``-`` discouraged but allowed)."""
    text = new_id("i") + ":-_.,@!$%*+[]{}|~^`\\"
    assert client.post("/v2/entities", json=_payload(field, text)).status_code == 201


# --- General syntax restrictions: URLs -------------------------------------------------------


def test_url_encoded_id_example(client: ApiClient) -> None:
    """orion-api.md, "General syntax restrictions": an id "E<01>" is sent URL-encoded as
    "E%3C01%3E", and read back with ``GET /v2/entities/E%253C01%253E`` ("%25" encodes "%");
    the decoded forbidden characters in a URL are refused."""
    eid = new_id("E%3C01%3E")
    create(client, {"id": eid, "type": "T"})
    response = client.get("/v2/entities/" + eid.replace("%", "%25"))
    assert response.status_code == 200
    assert response.json()["id"] == eid
    error_of(client.get("/v2/entities/E%3C01%3E"), 400, "BadRequest", "invalid character in URI")


@pytest.mark.parametrize("char", FORBIDDEN)
def test_forbidden_character_in_a_uri_parameter(client: ApiClient, char: str) -> None:
    """orion-api.md, "General syntax restrictions": forbidden in any request, so in URL
    parameters too (Orion's text "invalid character in URI parameter")."""
    for params in ({"type": f"T{char}"}, {"attrs": f"a{char}"}, {"orderBy": f"a{char}"}, {"metadata": f"m{char}"}):
        error_of(client.get("/v2/entities", params=params), 400, "BadRequest", "invalid character in URI parameter")


def test_q_and_mq_allow_the_query_language_characters(client: ApiClient) -> None:
    """orion-api.md, "General syntax restrictions": "URL parameter q allows the special
    characters needed by the Simple Query Language", and so does ``mq``."""
    eid = new_id()
    create(client, {"id": eid, "t": {"value": 25, "metadata": {"acc": {"value": 0.9}}}, "s": {"value": "a b"}})
    found = client.get("/v2/entities", params={"id": eid, "q": "t>=20;t<30;t!=21;s=='a b'"})
    assert [e["id"] for e in found.json()] == [eid]
    found = client.get("/v2/entities", params={"id": eid, "mq": "t.acc>0.5;t.acc<=1"})
    assert [e["id"] for e in found.json()] == [eid]
