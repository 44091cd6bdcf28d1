"""AuthZForce, Open Policy Agent and XACML JSON PDPs called as Wilma calls them, against small
fake HTTP servers (real sockets) that answer as the reference says (security-history-
orchestration.md §2-3): what is sent, how each answer is read, a PDP that is down or has no
domain, and the whole guard deciding with each."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any
from xml.etree import ElementTree

import pytest

from ngsi.client.asgi import ASGITransport
from ngsi.client.http11 import HTTPClient
from ngsi.context import Identity
from security.pep.caller import Caller
from security.pep.guard import PEP
from security.pep.idm import IdMClient
from security.pep.pdp import Payload, PDPError, Question
from security.pep.pdp.azf import AzfClient, NoDomain, decision_of, request_xml
from security.pep.pdp.opa import OpaClient, allow_of
from security.pep.pdp.xacml import XacmlClient
from security.pep.pdp.xacml import decision_of as xacml_decision
from security.pep.replies import INTERNAL

from .conftest import IDM_URL, Monotonic, World, incoming

pytestmark = pytest.mark.anyio

Answer = tuple[int, str, bytes]  # status, content type, body


@dataclass
class FakePDP:
    """An HTTP/1.1 server on loopback: records each request (method, path, headers, body) and
    answers with ``answer(request)``."""

    answer: Callable[[dict[str, Any]], Answer]
    seen: list[dict[str, Any]] = field(default_factory=list)
    port: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                raw = [(k.lower(), v.strip()) for k, _, v in (line.partition(":") for line in lines[1:] if line)]
                headers = dict(raw)
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                request = {"method": method, "path": path, "headers": headers, "raw": raw, "body": body}
                self.seen.append(request)
                status, kind, out = self.answer(request)
                line = f"HTTP/1.1 {status} X\r\nContent-Type: {kind}\r\nContent-Length: {len(out)}\r\n\r\n"
                writer.write(line.encode() + out)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def serving(answer: Callable[[dict[str, Any]], Answer]) -> AsyncIterator[FakePDP]:
    fake = FakePDP(answer)
    server = await asyncio.start_server(fake.handle, "127.0.0.1", 0)
    fake.port = server.sockets[0].getsockname()[1]
    try:
        yield fake
    finally:
        server.close()


def xacml_xml(decision: str) -> bytes:
    status = '<Status><StatusCode Value="urn:oasis:names:tc:xacml:1.0:status:ok"/></Status>'
    return (f'<Response xmlns="urn:oasis:names:tc:xacml:3.0:core:schema:wd-17"><Result><Decision>{decision}</Decision>'
            f"{status}</Result></Response>").encode()


CALLER = Caller(Identity(user_id="u1", app_id="app1", roles=("r1", "farmer"), organizations=("o1",)),
                role_ids=("r1", "r2"), organization_ids=("o1",), azf_domain="dom-from-idm")
QUESTION = Question(CALLER, "app1", "PATCH", "/v2/entities/f1/attrs", "coop", "/farm1",
                    Payload(ids=("f1",), types=("Field",), attrs=("crop",)))


# -- AuthZForce ------------------------------------------------------------------------------


def test_azf_request_and_answer() -> None:
    root = ElementTree.fromstring(request_xml(["r1", "r<2>"], "app1", "/v2/entities", "GET"))
    attributes = root.iter("{urn:oasis:names:tc:xacml:3.0:core:schema:wd-17}Attribute")
    values = {a.get("AttributeId"): [v.text for v in a] for a in attributes}
    assert values == {
        "urn:oasis:names:tc:xacml:2.0:subject:role": ["r1", "r<2>"],
        "urn:oasis:names:tc:xacml:1.0:resource:resource-id": ["app1"],
        "urn:thales:xacml:2.0:resource:sub-resource-id": ["/v2/entities"],
        "urn:oasis:names:tc:xacml:1.0:action:action-id": ["GET"],
    }
    assert decision_of(xacml_xml("Permit")) == "Permit" and decision_of(xacml_xml("NotApplicable")) == "NotApplicable"
    for bad in (b"<x>", b'<!DOCTYPE x [<!ENTITY a "b">]><Response/>', b"<Response/>"):
        with pytest.raises(ValueError):
            decision_of(bad)


async def test_azf_client_against_a_fake_authzforce() -> None:
    def answer(request: dict[str, Any]) -> Answer:
        if request["path"] != "/authzforce-ce/domains/dom1/pdp":
            return 404, "application/xml", b"<error/>"
        permit = b"r2" in request["body"]
        return 200, "application/xml", xacml_xml("Permit" if permit else "Deny")

    async for fake in serving(answer):
        transport = HTTPClient()
        client = AzfClient(fake.url, transport, domain="dom1")
        assert await client.allows(QUESTION)
        assert fake.seen[-1]["headers"]["content-type"].startswith("application/xml")
        assert not await client.allows(Question(Caller(CALLER.identity, role_ids=("r9",)), "app1", "GET", "/"))
        with pytest.raises(NoDomain):
            await AzfClient(fake.url, transport).allows(QUESTION)  # the identity manager's domain: unknown there
        with pytest.raises(PDPError):
            await AzfClient(fake.url, transport).allows(Question(Caller(Identity(user_id="u")), "a", "GET", "/"))
        await transport.aclose()


# -- OPA -------------------------------------------------------------------------------------


def test_opa_answers() -> None:
    assert allow_of({"result": {"allow": True}}) and allow_of({"result": True}) and allow_of({"allow": True})
    docs: list[Any] = [{"result": {"allow": False}}, {"result": {}}, {}, [], {"allow": "true"}, {"result": 1}]
    for doc in docs:
        assert not allow_of(doc)


async def test_opa_client_sends_wilmas_input() -> None:
    async for fake in serving(lambda r: (200, "application/json", b'{"result": {"allow": true}}')):
        transport = HTTPClient()
        assert await OpaClient(fake.url + "/v1/data/fiware/authz", transport).allows(QUESTION)
        sent = json.loads(fake.seen[-1]["body"])
        assert fake.seen[-1]["path"] == "/v1/data/fiware/authz"
        assert sent == {"input": {
            "appId": "app1", "resource": "/v2/entities/f1/attrs", "roles": ["r1", "r2"], "action": "PATCH",
            "tenant": "coop", "ids": ["f1"], "idPatterns": [], "attrs": ["crop"], "types": ["Field"], "userId": "u1",
            "organizations": ["o1"], "servicePath": "/farm1",
        }}
        await transport.aclose()
    async for fake in serving(lambda r: (200, "text/plain", b"yes")):
        transport = HTTPClient()
        with pytest.raises(PDPError):
            await OpaClient(fake.url, transport).allows(QUESTION)
        await transport.aclose()


# -- XACML JSON --------------------------------------------------------------------------------


def test_xacml_answers() -> None:
    assert xacml_decision({"Response": [{"Decision": "Permit"}]}) == "Permit"
    assert xacml_decision({"Response": {"Decision": "Deny"}}) == "Deny"
    assert xacml_decision({"Response": []}) == "" and xacml_decision("x") == ""


async def test_xacml_client_sends_the_json_profile() -> None:
    async for fake in serving(lambda r: (200, "application/xacml+json", b'{"Response": [{"Decision": "Permit"}]}')):
        transport = HTTPClient()
        assert await XacmlClient(fake.url + "/pdp/xacml", transport).allows(QUESTION)
        sent = json.loads(fake.seen[-1]["body"])["Request"]
        resource = {a["AttributeId"]: a["Value"] for a in sent["Resource"][0]["Attribute"]}
        assert resource["urn:oasis:names:tc:xacml:1.0:resource:resource-id"] == "app1"
        assert resource["urn:thales:xacml:2.0:resource:sub-resource-id"] == "/v2/entities/f1/attrs"
        assert resource["urn:fiware:ngsi:entity:id"] == ["f1"] and resource["urn:fiware:ngsi:attribute"] == ["crop"]
        subject = {a["AttributeId"]: a["Value"] for a in sent["AccessSubject"][0]["Attribute"]}
        assert subject["urn:oasis:names:tc:xacml:2.0:subject:role"] == ["r1", "r2"]
        assert sent["Action"][0]["Attribute"][0]["Value"] == "PATCH"
        await transport.aclose()


# -- the guard with each -------------------------------------------------------------------------


async def _guarded(world: World, pdp: str, url: str, **changes: Any) -> Any:
    idm = IdMClient(IDM_URL, transport=ASGITransport(world.idm.app))
    return PEP(world.settings(pdp=pdp, pdp_url=url, **changes), idm=idm, transport=HTTPClient(),
               now=world.idm.clock, monotonic=Monotonic())


async def test_the_guard_with_each_external_pdp(world: World) -> None:
    farmer = world.roles["farmer"]["id"]

    def opa(request: dict[str, Any]) -> Answer:
        data = json.loads(request["body"])["input"]
        return 200, "application/json", json.dumps({"result": {"allow": farmer in data["roles"]}}).encode()

    def azf(request: dict[str, Any]) -> Answer:
        return 200, "application/xml", xacml_xml("Permit" if farmer.encode() in request["body"] else "Deny")

    def xacml(request: dict[str, Any]) -> Answer:
        roles = json.loads(request["body"])["Request"]["AccessSubject"][0]["Attribute"][-1]["Value"]
        return 200, "application/json", json.dumps({"Response": [{"Decision": "Permit" if farmer in roles else "Deny"}]}
                                                   ).encode()

    alice, bob = await world.token("alice"), await world.token("bob")
    for pdp, answer, extra in (("opa", opa, {}), ("azf", azf, {"azf_domain": "dom1"}), ("xacml", xacml, {})):
        async for fake in serving(answer):
            pep = await _guarded(world, pdp, fake.url + ("" if pdp == "azf" else "/decide"), **extra)
            allowed = await pep(incoming("GET", "/v2/entities", {"authorization": f"Bearer {alice}"}))
            assert allowed is not None and allowed.reply is None and allowed.ctx is not None, pdp
            assert allowed.ctx.identity.username == "alice"
            denied = await pep(incoming("GET", "/v2/entities", {"authorization": f"Bearer {bob}"}))
            assert denied is not None and denied.reply is not None and denied.reply.status_code == 403, pdp
            assert len(fake.seen) == 2  # asked on every request
            await pep.aclose()


async def test_a_pdp_that_is_down_is_a_500_never_a_pass(world: World) -> None:
    pep = await _guarded(world, "opa", "http://127.0.0.1:9/decide")
    verdict = await pep(incoming("GET", "/v2/entities", {"authorization": f"Bearer {await world.token('alice')}"}))
    assert verdict is not None and verdict.reply is not None and verdict.reply.status_code == 500
    assert json.loads(verdict.reply.body)["type"] == INTERNAL
    await pep.aclose()
