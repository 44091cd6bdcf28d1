"""``waziup pep`` end to end: the identity manager, the broker and the proxy as processes, a real
token from ``/oauth2/token`` (password grant) over HTTP; the proxy configured by a Wilma JSON
file, then by PEP_PROXY_* variables alone; magic key off by default; ``auth_for_nginx``. And,
in-process, what the proxy forwards: Wilma's headers, never a client's own."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from ngsi.client.asgi import ASGITransport
from ngsi.client.http11 import HTTPClient
from security.pep.config import ProxyConfig
from security.pep.guard import PEP
from security.pep.idm import IdMClient
from security.pep.proxy import Proxy
from security.pep.replies import INVALID, INVALID_ROLE, MISSING
from tests.conftest import ROOT, BrokerProcess, free_port, stop_process, wait_until_answering
from tests.security.idm.conftest import ADMIN_PASSWORD, IdM

from .conftest import IDM_URL, PASSWORDS, Monotonic, World
from .test_pdp_clients import serving

FIELD = {"id": "urn:ngsi-ld:Field:1", "type": "Field", "crop": {"value": "wheat"}, "owner": {"value": "alice"}}
TENANT = {"Fiware-Service": "coop", "Fiware-ServicePath": "/farm1"}


def launch(argv: list[str], env: dict[str, str], probe: str, what: str) -> subprocess.Popen[bytes]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("WAZIUP_", "PEP_PROXY_", "IDM_", "ORION_"))}
    proc = subprocess.Popen([sys.executable, *argv], cwd=ROOT, env={**base, **env}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        wait_until_answering(proc, probe, what)
    except BaseException:
        stop_process(proc)
        raise
    return proc


@dataclass
class Platform:
    idm_url: str
    broker_url: str
    world: World
    passwords: dict[str, str]

    def token(self, user: str, *, jwt: bool = False) -> str:
        """A real token, asked over HTTP as a client application would."""
        app = self.world.app
        basic = base64.b64encode(f"{app['id']}:{app['secret']}".encode()).decode()
        form = {"grant_type": "password", "username": user, "password": self.passwords[user]}
        if jwt:
            form["scope"] = "jwt"
        r = httpx.post(f"{self.idm_url}/oauth2/token", data=form, headers={"Authorization": f"Basic {basic}"})
        assert r.status_code == 200, r.text
        return str(r.json()["access_token"])

    def wilma_config(self, **changes: Any) -> dict[str, Any]:
        idm_port = int(self.idm_url.rsplit(":", 1)[1])
        broker_port = int(self.broker_url.rsplit(":", 1)[1])
        doc: dict[str, Any] = {
            "pep_port": free_port(),
            "idm": {"host": "127.0.0.1", "port": idm_port, "ssl": False},
            "app": {"host": "127.0.0.1", "port": broker_port, "ssl": False},
            "pep": {"app_id": self.world.app["id"], "username": "pep", "password": PASSWORDS["pep"],
                    "trusted_apps": []},
            "authorization": {"enabled": True, "pdp": "ours", "header": "fiware-service"},
            "public_paths": ["/version"],
            "cache_time": 300,
        }
        doc.update(changes)
        return doc


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    data = tmp_path_factory.mktemp("idm")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    idm = launch(["-m", "security.idm", "-host", "127.0.0.1", "-port", str(port), "-data", str(data), "-issuer", url],
                 {"WAZIUP_ADMIN_PASSWORD": ADMIN_PASSWORD, "WAZIUP_ADMIN_EMAIL": "admin@test.com"},
                 url + "/.well-known/openid-configuration", "identity manager")
    broker = BrokerProcess(["-multiservice", "-dbURI", "memory://"])
    try:
        broker.start()

        async def build() -> World:
            async with httpx.AsyncClient(base_url=url) as http:
                the_idm = IdM(http, clock=None, app=None)  # type: ignore[arg-type]
                the_idm.admin_token = await the_idm.login("admin@test.com", ADMIN_PASSWORD)
                world = await World(the_idm).build()
                world.idm = replace(the_idm, http=None)  # type: ignore[arg-type]
                return world

        world = asyncio.run(build())
        r = httpx.post(f"{broker.url}/v2/entities", json=FIELD, headers=TENANT)  # straight to the broker
        assert r.status_code == 201, r.text
        yield Platform(url, broker.url, world, PASSWORDS)
    finally:
        broker.stop()
        stop_process(idm)


class PepProcess:
    def __init__(self, platform: Platform, tmp: Path, *, doc: dict[str, Any] | None = None,
                 env: dict[str, str] | None = None) -> None:
        argv = ["-m", "security.pep"]
        if doc is not None:
            path = tmp / "wilma.json"
            path.write_text(json.dumps(doc))
            argv += ["-config", str(path)]
            self.port = doc["pep_port"]
        else:
            self.port = int((env or {})["PEP_PROXY_PORT"])
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = launch([*argv, "-host", "127.0.0.1"], env or {}, self.url + "/version", "PEP proxy")

    def get(self, path: str, token: str | None = None, **headers: str) -> httpx.Response:
        sent = dict(TENANT)
        if token:
            sent["Authorization"] = f"Bearer {token}"
        sent.update(headers)
        return httpx.get(self.url + path, headers=sent)

    def stop(self) -> None:
        stop_process(self.proc)


def test_the_proxy_configured_by_a_wilma_file(platform: Platform, tmp_path: Path) -> None:
    pep = PepProcess(platform, tmp_path, doc=platform.wilma_config())
    try:
        assert httpx.get(pep.url + "/version").status_code == 200  # public
        r = pep.get("/v2/entities?type=Field")
        assert r.status_code == 401 and r.json()["type"] == MISSING
        assert r.headers["www-authenticate"].startswith('Bearer realm="http://127.0.0.1:')
        assert set(r.json()) == {"type", "title", "detail"}
        assert pep.get("/v2/entities?type=Field", "not-a-real-token").json()["type"] == INVALID
        assert pep.get("/v2/entities?type=Field", None, **{"X-Auth-Token": "magic"}).status_code == 401  # no magic key

        alice = platform.token("alice")
        r = pep.get("/v2/entities?type=Field", alice)
        assert r.status_code == 200, r.text
        assert r.json() == [{"id": FIELD["id"], "type": "Field", "crop": {"type": "Text", "value": "wheat",
                                                                           "metadata": {}}}]  # owner taken out
        r = pep.get("/v2/entities?type=Field&options=keyValues", platform.token("alice", jwt=True))
        assert r.status_code == 200 and r.json() == [{"id": FIELD["id"], "type": "Field", "crop": "wheat"}]
        r = httpx.patch(f"{pep.url}/v2/entities/{FIELD['id']}/attrs?type=Field", json={"crop": {"value": "rye"}},
                        headers={**TENANT, "Authorization": f"Bearer {alice}"})
        assert r.status_code == 204, r.text
        r = pep.get("/v2/entities?type=Field", platform.token("bob"))
        assert r.status_code == 403 and r.json()["type"] == INVALID_ROLE
    finally:
        pep.stop()


def test_the_proxy_configured_by_wilmas_variables_alone_strictly(platform: Platform, tmp_path: Path) -> None:
    idm_port = platform.idm_url.rsplit(":", 1)[1]
    env = {
        "PEP_PROXY_PORT": str(free_port()), "PEP_PROXY_IDM_HOST": "127.0.0.1", "PEP_PROXY_IDM_PORT": idm_port,
        "PEP_PROXY_APP_HOST": "127.0.0.1", "PEP_PROXY_APP_PORT": platform.broker_url.rsplit(":", 1)[1],
        "PEP_PROXY_APP_ID": platform.world.app["id"], "PEP_PROXY_USERNAME": "pep",
        "PEP_PROXY_PASSWORD": PASSWORDS["pep"],
        "PEP_PROXY_AUTH_ENABLED": "true", "PEP_PROXY_PDP": "ours", "PEP_PROXY_PUBLIC_PATHS": "/version",
        "WAZIUP_PEP_DENY_STATUS": "401",
    }
    pep = PepProcess(platform, tmp_path, env=env)
    try:
        assert pep.get("/v2/entities?type=Field").status_code == 401
        assert pep.get("/v2/entities?type=Field", platform.token("alice")).status_code == 200
        r = pep.get("/v2/entities?type=Field", platform.token("bob"))
        assert r.status_code == 401 and r.json()["type"] == INVALID_ROLE  # Wilma's answer to a denial
    finally:
        pep.stop()


def test_auth_for_nginx_answers_204(platform: Platform, tmp_path: Path) -> None:
    doc = platform.wilma_config(auth_for_nginx=True, authorization={"enabled": False})
    pep = PepProcess(platform, tmp_path, doc=doc)
    try:
        r = pep.get("/v2/entities?type=Field", platform.token("alice"))
        assert r.status_code == 204 and r.content == b""
        assert r.headers["x-nick-name"] == platform.world.users["alice"]["id"]
        assert pep.get("/v2/entities").status_code == 401
    finally:
        pep.stop()


# -- what is forwarded (in-process proxy, a fake service behind it) --------------------------------


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_forwarded_headers_are_wilmas_and_never_the_clients_own(world: World) -> None:
    answer = (200, "application/json", b'[{"id": "f", "type": "Field", "crop": 1, "owner": 2}]')
    async for service in serving(lambda request: answer):
        config = ProxyConfig(**{**vars_of(world.settings()), "upstream": service.url})
        idm = IdMClient(IDM_URL, transport=ASGITransport(world.idm.app), username="pep", password=PASSWORDS["pep"])
        pep = PEP(config, service="proxy", idm=idm, now=world.idm.clock, monotonic=Monotonic())
        proxy = Proxy(config, pep=pep, upstream=HTTPClient())
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=proxy, client=("192.0.2.7", 5)),
                                     base_url="http://pep") as client:
            alice = await world.token("alice")
            r = await client.get("/v2/entities?type=Field&options=keyValues", headers={
                **TENANT, "Authorization": f"Bearer {alice}", "X-Nick-Name": "admin", "X-Roles": "[\"admin\"]",
                "X-Forwarded-For": "10.0.0.1", "Connection": "keep-alive"})
            assert r.status_code == 200 and r.json() == [{"id": "f", "type": "Field", "crop": 1}]  # projected here
            sent = service.seen[-1]
            assert sent["path"] == "/v2/entities?type=Field&options=keyValues"
            headers = sent["headers"]
            assert headers["x-nick-name"] == world.users["alice"]["id"]
            assert [r["name"] for r in json.loads(headers["x-organizations"])] == ["coop-org"]
            assert json.loads(headers["x-roles"]) == [] and headers["x-app-id"] == world.app["id"]
            assert headers["x-display-name"] == "alice"
            assert headers["authorization"] == f"Bearer {alice}"  # passed on, as Wilma does
            assert headers["x-forwarded-for"] == "10.0.0.1, 192.0.2.7"
            assert headers["fiware-service"] == "coop"
            twice = [*TENANT.items(), ("Fiware-Service", "town"), ("Authorization", f"Bearer {alice}")]
            r = await client.get("/v2/entities?type=Field", headers=twice)
            assert r.status_code == 200
            assert [v for k, v in service.seen[-1]["raw"] if k == "fiware-service"] == ["coop"]  # the one decided on
            big = {**TENANT, "Authorization": f"Bearer {alice}", "Content-Type": "application/json"}
            r = await client.post("/v2/entities", content=b"x" * ((1 << 20) + 1), headers=big)
            assert r.status_code == 413 and r.json()["error"] == "RequestEntityTooLarge"
        await proxy.upstream.aclose()


@pytest.mark.anyio
async def test_a_proxy_in_front_of_the_history_reads_its_routes(world: World) -> None:
    """``-appRoutes history``: the proxy describes requests with the history's table, so
    QuantumLeap's ``GET /v2/attrs/{attr}`` is a read of that attribute (allowed for alice's
    Field entities, not for the attribute her policy denies); with the broker's table (the
    default) the route is unknown and refused."""
    answer = (200, "application/json", b'{"attrName": "crop", "types": []}')
    async for service in serving(lambda request: answer):
        for routes, allowed in (("broker", False), ("history", True)):
            config = ProxyConfig(**{**vars_of(world.settings()), "upstream": service.url, "app_routes": routes})
            idm = IdMClient(IDM_URL, transport=ASGITransport(world.idm.app), username="pep", password=PASSWORDS["pep"])
            proxy = Proxy(config, pep=PEP(config, service="proxy", routes=config.app_routes, idm=idm,
                                          now=world.idm.clock, monotonic=Monotonic()), upstream=HTTPClient())
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=proxy), base_url="http://pep") as client:
                headers = {**TENANT, "Authorization": f"Bearer {await world.token('alice')}"}
                r = await client.get("/v2/attrs/crop?type=Field", headers=headers)
                assert (r.status_code == 200) is allowed, (routes, r.status_code, r.text)
                r = await client.get("/v2/attrs/owner?type=Field", headers=headers)
                assert r.status_code in (401, 403), (routes, r.status_code, r.text)
            await proxy.upstream.aclose()


@pytest.mark.anyio
async def test_a_service_that_does_not_answer_is_wilmas_500(world: World) -> None:
    config = ProxyConfig(**{**vars_of(world.settings(pdp="none")), "upstream": "http://127.0.0.1:9"})
    pep = PEP(config, service="proxy", idm=IdMClient(IDM_URL, transport=ASGITransport(world.idm.app)),
              now=world.idm.clock, monotonic=Monotonic())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=Proxy(config, pep=pep)), base_url="http://pep") as c:
        r = await c.get("/v2/entities", headers={"Authorization": f"Bearer {await world.token('alice')}"})
        assert r.status_code == 500 and r.json()["type"] == "urn:dx:as:InternalServerError"


def vars_of(settings: Any) -> dict[str, Any]:
    from dataclasses import fields

    return {f.name: getattr(settings, f.name) for f in fields(settings)}

