"""``ClusterBackend`` (``orchestrator/apps/kubernetes/adapter.py``) served by ``AppsComponent``
as ``waziup orchestrator -backend kubernetes`` serves it: examples/average-app deployed through
``/apps`` against the recorded fake of the API server (k8s_recordings/adapter_*.json), with a
real in-process broker: the exact API calls, the subscription pointing at the app's Service
inside the cluster, the record kept; status, scale, restart and logs mapped; undeploy removes
the subscription and the objects. And the service builds with ``-backend kubernetes``.

``WAZIUP_K8S_RECORD=1`` re-records the scenarios from the in-memory model (fake_api.ApiModel).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from starlette.applications import Starlette
from starlette.testclient import TestClient

from broker.app import create_app as broker_app
from broker.config import Config as BrokerConfig
from ngsi.client import ASGITransport, NGSIClient
from orchestrator.appserver.app import components, create_app
from orchestrator.appserver.config import Config, ConfigError, parse
from orchestrator.apps.component import AppsComponent
from orchestrator.apps.kubernetes.adapter import ClusterBackend, cluster_backend, service_url
from orchestrator.apps.kubernetes.backend import KubernetesBackend, api_client
from orchestrator.apps.kubernetes.images import BuildError
from orchestrator.apps.kubernetes.render import PlatformRefs
from orchestrator.apps.local import COLLECTION, AppError
from orchestrator.apps.manifest import Manifest, parse_manifest
from orchestrator.apps.platform import Identity, subscription_body
from orchestrator.waziup_api.store import Store, open_store

from tests.security.idm.conftest import ADMIN_PASSWORD, Clock, make_config, running

from .k8s_recordings.fake_api import ApiModel, FakeApiServer, load, save

RECORD = os.environ.get("WAZIUP_K8S_RECORD") == "1"
ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = str(ROOT / "examples" / "average-app")
IMAGE = "registry.test/farm7-average-app:0123456789abcdef"
NS = "waziup-farm7"
IN_CLUSTER = f"http://average-app.{NS}.svc.cluster.local:8000"
FIND = ("GET", "/apis/apps/v1/deployments?labelSelector=app.kubernetes.io/managed-by%3Dwaziup%2C"
               "app.kubernetes.io/name%3Daverage-app%2Capp.kubernetes.io/part-of%3Dwaziup-apps")
PODS = ("GET", f"/api/v1/namespaces/{NS}/pods?labelSelector=app.kubernetes.io/managed-by%3Dwaziup%2C"
               "app.kubernetes.io/name%3Daverage-app")
LIST = ("GET", "/apis/apps/v1/deployments?labelSelector=app.kubernetes.io/managed-by%3Dwaziup%2C"
               "app.kubernetes.io/part-of%3Dwaziup-apps")
FARM7 = {"Fiware-Service": "farm7"}


class FakeBuilder:
    """Builds nothing (no docker here): says so, names the image, and checks that the
    source it is given is a copy holding the manifest."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.built: list[tuple[str, str | None]] = []

    def build(self, manifest: Manifest, source_dir: Path, progress: Callable[[str], None]) -> str:
        self.built.append((manifest.name, manifest.tenant))
        assert (source_dir / "waziup-app.yaml").exists() and str(source_dir) != EXAMPLE
        if self.fail:
            raise BuildError("docker build exited with status 1:\nno such base image")
        progress(f"building {IMAGE}")
        return IMAGE


@contextlib.contextmanager
def fake_api(scenario: str, model: Callable[[], ApiModel]) -> Iterator[FakeApiServer]:
    """The fake API server replaying ``scenario`` (recording it first with WAZIUP_K8S_RECORD=1);
    on exit, the requests made are checked against the recorded ones, in order."""
    server = FakeApiServer(model=model()) if RECORD else FakeApiServer(exchanges=load(scenario))
    with server:
        yield server
    if RECORD:
        save(scenario, server.recorded)
    assert server.requests == [exchange["request"] for exchange in load(scenario)]


def kubernetes(server: FakeApiServer, builder: FakeBuilder | None = None) -> KubernetesBackend:
    return KubernetesBackend(api_client(host=server.url), builder or FakeBuilder(), PlatformRefs(),
                             now=lambda: datetime(2026, 3, 4, 5, 6, 7, tzinfo=timezone.utc))


@contextlib.asynccontextmanager
async def platform(tmp_path: Path) -> AsyncIterator[tuple[Config, Store, ASGITransport, NGSIClient]]:
    """The orchestrator's config and store, and a real broker in-process (multi-tenant)."""
    config = Config(data_dir=str(tmp_path), broker_url="http://broker", apps_dirs=(str(EXAMPLE),))
    store = open_store(config.store_url)
    await store.open()
    transport = ASGITransport(broker_app(BrokerConfig(db_uri="memory://", multiservice=True)), lifespan=True)
    await transport.start()
    broker = NGSIClient("http://broker", transport=transport)
    try:
        yield config, store, transport, broker
    finally:
        await broker.aclose()
        await store.close()


def calls(requests: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(r["method"], r["path"]) for r in requests]


def test_deploy_status_scale_restart_logs_undeploy_through_the_routes(tmp_path: Path) -> None:
    model = lambda: ApiModel(pods={"average-app": 1}, logs={"average-app-7d9c5-0": "started\naverage 21.5\n"})  # noqa: E731

    async def work(server: FakeApiServer) -> None:
        async with platform(tmp_path) as (config, store, transport, broker):
            backend = ClusterBackend(config, store, kubernetes(server), broker_transport=transport)
            component = AppsComponent(config, store=store, backend=backend)
            await component.open()
            app = Starlette(routes=component.routes())
            try:
                async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://orch") as http:
                    await scenario(http, server, store, broker)
            finally:
                await component.close()

    async def scenario(http: httpx.AsyncClient, server: FakeApiServer, store: Store, broker: NGSIClient) -> None:
        answer = await http.post("/apps", json={"source": EXAMPLE}, headers={**FARM7, "Accept": "application/x-ndjson"})
        lines = [json.loads(line) for line in answer.text.splitlines()]
        progress = [line["progress"] for line in lines if "progress" in line]
        assert progress[:2] == [f"fetching {EXAMPLE}", "manifest: average-app (python, entry app.py)"]
        assert f"building {IMAGE}" in progress and "Deployment average-app created" in progress
        assert f"subscribing (1 subscription(s)) to {IN_CLUSTER}" in progress
        assert progress[-1] == "deployed average-app"
        status = lines[-1]["status"]
        assert status["backend"] == "kubernetes" and status["state"] == "running" and status["tenant"] == "farm7"
        assert status["namespace"] == NS and status["image"] == IMAGE and status["source"] == EXAMPLE
        assert len(status["subscriptions"]) == 1 and status["credentials"] is False
        made = calls(server.requests)
        assert made[0] == FIND and made[-2:] == [("GET", f"/apis/apps/v1/namespaces/{NS}/deployments/average-app"),
                                                 PODS]
        assert ("POST", f"/api/v1/namespaces/{NS}/services") in made
        configmap = next(r["body"] for r in server.requests if r["path"].endswith("/configmaps"))
        assert configmap["data"]["WAZIUP_TENANT"] == "farm7" and configmap["data"]["ATTR"] == "temperature"

        # the subscription notifies the app's Service, in the app's tenant
        subs = await broker.list_subscriptions(service="farm7", service_path="/")
        assert [sub["id"] for sub in subs] == status["subscriptions"]
        assert subs[0]["notification"]["http"]["url"] == IN_CLUSTER + "/notify"
        assert subs[0]["description"] == "waziup-app:average-app"
        assert await broker.list_subscriptions() == []  # not in the default tenant
        doc = await store.get(COLLECTION, "average-app")
        assert doc is not None and doc["tenant"] == "farm7" and doc["namespace"] == NS
        assert doc["subscriptions"] == status["subscriptions"] and doc["manifest"]["name"] == "average-app"
        assert doc["image"] == IMAGE and doc["issued"] is None

        # another tenant sees nothing (answered from the record: no API call)
        before = len(server.requests)
        assert (await http.get("/apps/average-app", headers={"Fiware-Service": "farm8"})).status_code == 404
        assert (await http.post("/apps/average-app/scale", json={"replicas": 3},
                                headers={"Fiware-Service": "farm8"})).status_code == 404
        assert len(server.requests) == before

        listed = (await http.get("/apps", headers=FARM7)).json()
        assert [a["name"] for a in listed] == ["average-app"] and listed[0]["subscriptions"] == status["subscriptions"]
        assert (await http.get("/apps", headers={"Fiware-Service": "farm8"})).json() == []
        one = (await http.get("/apps/average-app", headers=FARM7)).json()
        assert one["state"] == "running" and len(one["pods"]) == 1 and one["endpoint"] == IN_CLUSTER

        scaled = await http.post("/apps/average-app/scale", json={"replicas": 3}, headers=FARM7)
        assert scaled.status_code == 200 and scaled.json()["replicas"] == 3
        restarted = await http.post("/apps/average-app/restart", headers=FARM7)
        assert restarted.status_code == 200 and restarted.json()["name"] == "average-app"
        logs = await http.get("/apps/average-app/logs", params={"tail": "10"}, headers=FARM7)
        assert logs.text == "started\naverage 21.5\n"

        before = len(server.requests)
        assert (await http.delete("/apps/average-app", headers=FARM7)).status_code == 204
        deleted = [path.split("?")[0] for method, path in calls(server.requests[before:]) if method == "DELETE"]
        assert deleted == [f"/apis/apps/v1/namespaces/{NS}/deployments/average-app",
                           f"/api/v1/namespaces/{NS}/services/average-app",
                           f"/apis/networking.k8s.io/v1/namespaces/{NS}/networkpolicies/average-app",
                           f"/api/v1/namespaces/{NS}/configmaps/average-app-env",
                           f"/api/v1/namespaces/{NS}/secrets/average-app-credentials"]
        assert await broker.list_subscriptions(service="farm7", service_path="/") == []
        assert await store.get(COLLECTION, "average-app") is None
        assert (await http.get("/apps/average-app", headers=FARM7)).status_code == 404

    with fake_api("adapter_lifecycle", model) as server:
        asyncio.run(asyncio.wait_for(work(server), 60))
    requests = calls(server.requests)
    assert ("PATCH", f"/apis/apps/v1/namespaces/{NS}/deployments/average-app/scale") in requests
    assert ("PATCH", f"/apis/apps/v1/namespaces/{NS}/deployments/average-app") in requests
    scale = next(r for r in server.requests if r["path"].endswith("/average-app/scale"))
    assert scale["body"] == {"spec": {"replicas": 3}}


def test_a_failed_build_leaves_nothing(tmp_path: Path) -> None:
    async def work(server: FakeApiServer) -> None:
        async with platform(tmp_path) as (config, store, transport, broker):
            builder = FakeBuilder(fail=True)
            backend = ClusterBackend(config, store, kubernetes(server, builder), broker_transport=transport)
            with pytest.raises(AppError) as caught:
                await backend.deploy(EXAMPLE, scope="farm7")
            assert caught.value.status == 400 and "no such base image" in caught.value.description
            assert builder.built == [("average-app", "farm7")]
            assert await store.list(COLLECTION) == []
            assert await broker.list_subscriptions(service="farm7", service_path="/") == []
            await backend.close()

    with fake_api("adapter_build_failed", ApiModel) as server:
        asyncio.run(work(server))
    assert calls(server.requests) == [FIND, FIND]  # the name is free; nothing of ours to remove


def test_a_manifest_naming_another_tenant_is_refused_before_any_call(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "waziup-app.yaml").write_text("name: other\nruntime: shell\nentry: sleep 60\ntenant: farm7\n")

    async def work(server: FakeApiServer) -> None:
        async with platform(tmp_path / "data") as (config, store, transport, _):
            backend = ClusterBackend(config, store, kubernetes(server), broker_transport=transport)
            with pytest.raises(AppError) as caught:
                await backend.deploy(str(source), scope="farm8")
            assert caught.value.status == 403
            await backend.close()

    with FakeApiServer(exchanges=[]) as server:
        asyncio.run(work(server))
    assert server.requests == []


def test_service_url_is_the_first_port_in_the_tenant_namespace() -> None:
    manifest = parse_manifest({"name": "pump-ctl", "runtime": "shell", "entry": "sleep 1",
                               "ports": [{"name": "api", "port": 9000}, {"name": "ui", "port": 9001}]})
    assert service_url(manifest) == "http://pump-ctl.waziup-default.svc.cluster.local:9000"
    assert service_url(parse_manifest({"name": "xy", "runtime": "shell", "entry": "true"})) == ""


def test_the_service_builds_with_the_kubernetes_backend(tmp_path: Path) -> None:
    with FakeApiServer(exchanges=load("list")) as server:
        config = parse(["-backend", "kubernetes", "-kubeHost", server.url, "-data", str(tmp_path),
                        "-registry", "registry.test", "-brokerURL", "http://127.0.0.1:9"], {})
        assert config.backend == "kubernetes" and config.kube_host == server.url
        store = open_store(config.store_url)
        apps = next(part for part in components(config, store) if isinstance(part, AppsComponent))
        assert isinstance(apps.backend, ClusterBackend)
        assert apps.backend.kubernetes.builder.registry == "registry.test"  # type: ignore[attr-defined]
        with TestClient(create_app(config)) as client:
            listed = client.get("/apps")
        assert listed.status_code == 200, listed.text
        assert [(a["name"], a["backend"], a["state"]) for a in listed.json()] == [("average-app", "kubernetes", "running")]
    assert calls(server.requests) == [LIST]
    assert parse([], {}).backend == "local"


def test_credentials_in_the_secret_a_redeploy_replaces_and_undeploy_revokes(tmp_path: Path) -> None:
    """Against the model (the issued password is random, so not a recording): the identity
    manager's account goes into the Secret only and gets tokens; a second deploy replaces the
    objects and leaves one subscription and one account; undeploy revokes it."""
    async def work(server: FakeApiServer) -> None:
        async with running(make_config(tmp_path / "idm"), Clock()) as idm, \
                platform(tmp_path / "data") as (config, store, transport, broker):
            app = await idm.application(name="waziup")
            config = Config(data_dir=config.data_dir, broker_url=config.broker_url, idm_url="http://idm.test",
                            client_id=app["id"], client_secret=app["secret"], admin_user="admin@test.com",
                            admin_password=ADMIN_PASSWORD)
            identity = Identity(config.idm_url, config.admin_user, config.admin_password, app["id"], app["secret"],
                                transport=ASGITransport(idm.app))
            backend = ClusterBackend(config, store, kubernetes(server), identity=identity, broker_transport=transport)
            first = await backend.deploy(EXAMPLE, scope="farm7")
            assert first["credentials"] is True
            secrets = [r["body"] for r in server.requests if r["method"] == "POST" and r["path"].endswith("/secrets")]
            data = secrets[0]["stringData"]
            assert data["WAZIUP_USERNAME"] == "app-average-app" and data["WAZIUP_CLIENT_ID"] != app["id"]  # its own client
            assert data["WAZIUP_TOKEN_URL"] == "http://idm.test/oauth2/token" and app["secret"] not in data.values()
            configmap = next(r["body"] for r in server.requests if r["path"].endswith("/configmaps"))
            assert data["WAZIUP_PASSWORD"] not in json.dumps(configmap)
            own = {"id": data["WAZIUP_CLIENT_ID"], "secret": data["WAZIUP_CLIENT_SECRET"]}
            assert (await idm.password_token(own, data["WAZIUP_USERNAME"], data["WAZIUP_PASSWORD"])).status_code == 200

            progress: list[str] = []
            second = await backend.deploy(EXAMPLE, progress.append, scope="farm7")
            assert "replacing the deployed average-app" in progress and "Deployment average-app replaced" in progress
            renewed = next(r["body"] for r in reversed(server.requests) if r["path"].endswith(
                "/secrets/average-app-credentials") and r["method"] == "PUT")["stringData"]
            assert renewed["WAZIUP_PASSWORD"] != data["WAZIUP_PASSWORD"]
            assert (await idm.password_token(own, data["WAZIUP_USERNAME"], data["WAZIUP_PASSWORD"])).status_code != 200
            subs = await broker.list_subscriptions(service="farm7", service_path="/")
            assert [sub["id"] for sub in subs] == second["subscriptions"] != first["subscriptions"]

            renewed_own = {"id": renewed["WAZIUP_CLIENT_ID"], "secret": renewed["WAZIUP_CLIENT_SECRET"]}
            assert (await idm.password_token(renewed_own, renewed["WAZIUP_USERNAME"],
                                             renewed["WAZIUP_PASSWORD"])).status_code == 200
            await backend.undeploy("average-app", "farm7")
            assert (await idm.password_token(renewed_own, renewed["WAZIUP_USERNAME"],
                                             renewed["WAZIUP_PASSWORD"])).status_code != 200
            users = (await idm.http.get("/v1/users", headers=idm.admin())).json()["users"]
            assert not any(u.get("username") == "app-average-app" for u in users)
            assert await broker.list_subscriptions(service="farm7", service_path="/") == []
            assert await backend.list() == []
            await backend.close()

    with FakeApiServer(model=ApiModel(pods={"average-app": 1})) as server:
        asyncio.run(asyncio.wait_for(work(server), 60))


def test_apps_without_a_record_and_records_without_an_app(tmp_path: Path) -> None:
    """Against the model: an app made without this service (no record) is seen, scoped by
    its tenant annotation, and undeployed with the subscriptions of its description; a
    record whose Deployment was deleted by hand shows ``missing`` and undeploys cleanly."""
    async def work(server: FakeApiServer) -> None:
        async with platform(tmp_path) as (config, store, transport, broker):
            cluster = kubernetes(server)
            backend = ClusterBackend(config, store, cluster, broker_transport=transport)
            manifest = parse_manifest({**yaml.safe_load(Path(EXAMPLE, "waziup-app.yaml").read_text()), "tenant": "farm7"})
            shutil.copytree(EXAMPLE, tmp_path / "copy")
            await cluster.deploy(manifest, tmp_path / "copy")
            await broker.create_subscription(subscription_body("average-app", manifest.needs.subscriptions[0],
                                                               IN_CLUSTER), service="farm7", service_path="/")
            status = await backend.status("average-app", "farm7")
            assert status["state"] == "running" and status["source"] is None and status["tenant"] == "farm7"
            assert [a["name"] for a in await backend.list("farm7")] == ["average-app"]
            assert await backend.list("farm8") == []
            for call in (backend.status("average-app", "farm8"), backend.undeploy("average-app", "farm8")):
                with pytest.raises(AppError) as caught:
                    await call
                assert caught.value.status == 404  # another tenant's app is not found
            await backend.undeploy("average-app", "farm7")
            assert await broker.list_subscriptions(service="farm7", service_path="/") == []
            assert await cluster.list() == []

            await backend.deploy(EXAMPLE, scope="farm7")
            await cluster.undeploy("average-app")  # kubectl delete, behind the orchestrator's back
            missing = await backend.status("average-app")
            assert missing["state"] == "missing" and len(missing["subscriptions"]) == 1
            assert [(a["name"], a["state"]) for a in await backend.list()] == [("average-app", "missing")]
            await backend.undeploy("average-app")
            assert await broker.list_subscriptions(service="farm7", service_path="/") == []
            assert await store.list(COLLECTION) == []
            await backend.close()

    with FakeApiServer(model=ApiModel(pods={"average-app": 1})) as server:
        asyncio.run(asyncio.wait_for(work(server), 60))


def test_an_unreachable_cluster_configuration_is_said_at_start(tmp_path: Path) -> None:
    config = parse(["-backend", "kubernetes", "-kubeconfig", str(tmp_path / "none.yaml"), "-data", str(tmp_path)], {})
    with pytest.raises(ConfigError, match="no way to reach the cluster"):
        cluster_backend(config, open_store(config.store_url))
