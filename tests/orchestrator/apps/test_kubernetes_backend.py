"""KubernetesBackend against a recorded fake of the API server (k8s_recordings/): the exact
calls it makes for deploy, list, status, scale, restart, logs and undeploy, and how it reads
the answers (409 on create -> replace; 404 on delete ignored; 403 -> AppError).

``WAZIUP_K8S_RECORD=1`` re-records every scenario from the in-memory model (fake_api.ApiModel).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from orchestrator.apps.kubernetes.backend import KubernetesBackend, api_client
from orchestrator.apps.kubernetes.render import PlatformRefs
from orchestrator.apps.local import AppError
from orchestrator.apps.manifest import Manifest, parse_manifest

from .k8s_recordings.fake_api import ApiModel, FakeApiServer, load, save

RECORD = os.environ.get("WAZIUP_K8S_RECORD") == "1"
IMAGE = "registry.test/farm7-average-app:0123456789abcdef"
NS = "waziup-farm7"
SELECTOR = "app.kubernetes.io/managed-by%3Dwaziup%2Capp.kubernetes.io/name%3Daverage-app"
FIND = ("GET", "/apis/apps/v1/deployments?labelSelector=app.kubernetes.io/managed-by%3Dwaziup%2C"
               "app.kubernetes.io/name%3Daverage-app%2Capp.kubernetes.io/part-of%3Dwaziup-apps")

MANIFEST = {
    "name": "average-app", "runtime": "python", "entry": "app.py", "env": {"KEY": "value"},
    "ports": [{"name": "http", "port": 8000}],
    "health": {"path": "/health", "port": "http", "interval": 10, "timeout": 2, "grace": 30},
    "resources": {"cpu": 0.5, "memory": "256Mi"}, "replicas": 2, "tenant": "farm7", "servicePath": "/",
    "needs": {"subscriptions": [{"entities": [{"idPattern": ".*", "type": "Room"}], "attrs": ["temperature"],
                                 "endpoint": "/notify"}], "history": "read"},
}
CREDENTIALS = {"WAZIUP_CLIENT_ID": "platform", "WAZIUP_CLIENT_SECRET": "s3cret-value",
               "WAZIUP_USERNAME": "app-average-app", "WAZIUP_PASSWORD": "pw-9f8e7d"}


class FakeBuilder:
    """Builds nothing: says so, and names the image."""

    def __init__(self) -> None:
        self.built: list[tuple[str, Path]] = []

    def build(self, manifest: Manifest, source_dir: Path, progress: Callable[[str], None]) -> str:
        self.built.append((manifest.name, source_dir))
        progress(f"building {IMAGE}")
        return IMAGE


def manifest() -> Manifest:
    return parse_manifest(MANIFEST)


def deployed_model(**kwargs: Any) -> ApiModel:
    """The model's state after a first deploy of MANIFEST (recording scenarios start from it)."""
    model = ApiModel(**kwargs)
    with FakeApiServer(model=model) as server:
        backend = KubernetesBackend(api_client(host=server.url), FakeBuilder())
        asyncio.run(backend.deploy(manifest(), "/src", credentials=CREDENTIALS))
    return model


def run(scenario: str, model: Callable[[], ApiModel], action: Callable[[KubernetesBackend], Any]) -> tuple[Any, list[dict[str, Any]]]:
    """Run ``action`` against the recording ``scenario`` (recording it first with
    WAZIUP_K8S_RECORD=1); its result and the requests made, checked against the recording."""
    if RECORD:
        server = FakeApiServer(model=model())
    else:
        server = FakeApiServer(exchanges=load(scenario))
    with server:
        backend = KubernetesBackend(api_client(host=server.url), FakeBuilder(), PlatformRefs(),
                                    now=lambda: datetime(2026, 3, 4, 5, 6, 7, tzinfo=timezone.utc))
        try:
            result: Any = asyncio.run(action(backend))
        except AppError as exc:
            result = exc
    if RECORD:
        save(scenario, server.recorded)
    expected = [exchange["request"] for exchange in load(scenario)]
    assert server.requests == expected
    return result, server.requests


def calls(requests: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(r["method"], r["path"]) for r in requests]


async def collect(it: Any) -> list[str]:
    return [line async for line in it]


def test_deploy_creates_every_object_in_order() -> None:
    progress: list[str] = []
    status, requests = run("deploy_new", lambda: ApiModel(pods={"average-app": 2}),
                           lambda b: b.deploy(manifest(), "/src", progress.append, credentials=CREDENTIALS))
    assert calls(requests) == [
        FIND,
        ("POST", "/api/v1/namespaces"),
        ("POST", f"/api/v1/namespaces/{NS}/configmaps"),
        ("POST", f"/api/v1/namespaces/{NS}/secrets"),
        ("POST", f"/apis/apps/v1/namespaces/{NS}/deployments"),
        ("POST", f"/api/v1/namespaces/{NS}/services"),
        ("POST", f"/apis/networking.k8s.io/v1/namespaces/{NS}/networkpolicies"),
        ("GET", f"/apis/apps/v1/namespaces/{NS}/deployments/average-app"),
        ("GET", f"/api/v1/namespaces/{NS}/pods?labelSelector={SELECTOR}"),
    ]
    secret = requests[3]["body"]
    assert secret["stringData"] == CREDENTIALS
    assert "s3cret-value" not in str(requests[2]["body"])
    deployment = requests[4]["body"]
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == IMAGE
    assert progress[0] == f"building {IMAGE}"
    assert "Deployment average-app created" in progress
    assert status["state"] == "running" and status["replicas"] == 2 and len(status["pods"]) == 2
    assert status["endpoint"] == f"http://average-app.{NS}.svc.cluster.local:8000"
    assert status["tenant"] == "farm7" and status["runtime"] == "python"


def test_deploy_from_a_folder_makes_the_same_calls(tmp_path: Path) -> None:
    (tmp_path / "waziup-app.yaml").write_text((Path(__file__).parent / "k8s_recordings" / "average-app.yaml").read_text())
    (tmp_path / "app.py").write_text("print('hello')\n")
    progress: list[str] = []
    status, requests = run("deploy_new", lambda: ApiModel(pods={"average-app": 2}),
                           lambda b: b.deploy_source(str(tmp_path), progress.append, credentials=CREDENTIALS))
    assert progress[:2] == [f"fetching {tmp_path}", "manifest: average-app (python, entry app.py)"]
    assert status["name"] == "average-app" and status["state"] == "running"


def test_deploy_from_a_folder_without_manifest_is_a_bad_source(tmp_path: Path) -> None:
    backend = KubernetesBackend(api_client(host="http://127.0.0.1:9"), FakeBuilder())
    with pytest.raises(AppError) as caught:
        asyncio.run(backend.deploy_source(str(tmp_path)))
    assert caught.value.status == 400 and "waziup-app.yaml" in caught.value.description


def test_deploy_replaces_what_exists_but_not_the_namespace() -> None:
    _, requests = run("deploy_existing", deployed_model,
                      lambda b: b.deploy(manifest(), "/src", credentials=CREDENTIALS))
    methods = calls(requests)
    assert methods[:3] == [FIND, ("POST", "/api/v1/namespaces"), ("POST", f"/api/v1/namespaces/{NS}/configmaps")]
    assert ("PUT", f"/api/v1/namespaces/{NS}/configmaps/average-app-env") in methods
    assert ("PUT", f"/apis/apps/v1/namespaces/{NS}/deployments/average-app") in methods
    put = methods.index(("PUT", f"/api/v1/namespaces/{NS}/services/average-app"))
    assert methods[put - 1] == ("GET", f"/api/v1/namespaces/{NS}/services/average-app")  # its cluster IP kept
    assert requests[put]["body"]["spec"]["clusterIP"] == "10.96.0.10"
    assert requests[put]["body"]["metadata"]["resourceVersion"] == "1"
    assert not any(m == "PUT" and "/namespaces/" + NS == p[len("/api/v1"):] for m, p in methods)
    assert [m for m, _ in methods].count("POST") == 6 and [m for m, _ in methods].count("PUT") == 5


def test_deploy_refused_is_an_app_error_without_replace() -> None:
    error, requests = run("deploy_forbidden", lambda: ApiModel(forbidden={"deployments"}),
                          lambda b: b.deploy(manifest(), "/src"))
    assert isinstance(error, AppError) and error.status == 403
    assert "forbidden" in error.description
    assert calls(requests)[-1] == ("POST", f"/apis/apps/v1/namespaces/{NS}/deployments")


def test_deploy_refuses_a_name_another_tenant_has() -> None:
    other = {**MANIFEST, "tenant": "farm8"}

    def model() -> ApiModel:
        state = ApiModel()
        with FakeApiServer(model=state) as server:
            backend = KubernetesBackend(api_client(host=server.url), FakeBuilder())
            asyncio.run(backend.deploy(parse_manifest(other), "/src"))
        return state

    progress: list[str] = []
    error, requests = run("deploy_conflict", model, lambda b: b.deploy(manifest(), "/src", progress.append))
    assert isinstance(error, AppError) and error.status == 409 and "waziup-farm8" in error.description
    assert calls(requests) == [FIND] and progress == []  # nothing built, nothing made


def test_list_and_status() -> None:
    listed, requests = run("list", deployed_model, lambda b: b.list())
    assert calls(requests) == [("GET", "/apis/apps/v1/deployments?labelSelector=app.kubernetes.io/managed-by"
                                       "%3Dwaziup%2Capp.kubernetes.io/part-of%3Dwaziup-apps")]
    assert [app["name"] for app in listed] == ["average-app"]
    status, requests = run("status", lambda: deployed_model(pods={"average-app": 2}), lambda b: b.status("average-app"))
    assert calls(requests)[0] == FIND
    assert [pod["restarts"] for pod in status["pods"]] == [0, 1] and status["restarts"] == 1


def test_status_of_an_unknown_app_is_404() -> None:
    error, requests = run("status_missing", ApiModel, lambda b: b.status("average-app"))
    assert isinstance(error, AppError) and error.status == 404
    assert calls(requests) == [FIND]


def test_scale_patches_the_scale_subresource() -> None:
    status, requests = run("scale", deployed_model, lambda b: b.scale("average-app", 5))
    assert calls(requests) == [FIND, ("PATCH", f"/apis/apps/v1/namespaces/{NS}/deployments/average-app/scale")]
    assert requests[1]["body"] == {"spec": {"replicas": 5}}
    assert requests[1]["contentType"] == "application/strategic-merge-patch+json"
    assert status["replicas"] == 5


def test_scale_refuses_a_negative_count_without_calling() -> None:
    backend = KubernetesBackend(api_client(host="http://127.0.0.1:9"), FakeBuilder())
    with pytest.raises(AppError) as caught:
        asyncio.run(backend.scale("average-app", -1))
    assert caught.value.status == 400


def test_restart_sets_the_restarted_at_annotation() -> None:
    _, requests = run("restart", deployed_model, lambda b: b.restart("average-app"))
    assert calls(requests) == [FIND, ("PATCH", f"/apis/apps/v1/namespaces/{NS}/deployments/average-app")]
    assert requests[1]["body"] == {"spec": {"template": {"metadata": {"annotations": {
        "kubectl.kubernetes.io/restartedAt": "2026-03-04T05:06:07Z"}}}}}
    assert requests[1]["contentType"] == "application/strategic-merge-patch+json"


def test_logs_of_every_pod() -> None:
    logs = {"average-app-7d9c5-0": "one\ntwo\n", "average-app-7d9c5-1": "three\n"}
    lines, requests = run("logs", lambda: deployed_model(pods={"average-app": 2}, logs=logs),
                          lambda b: collect(b.logs("average-app", tail_lines=10)))
    assert lines == ["[average-app-7d9c5-0] one", "[average-app-7d9c5-0] two", "[average-app-7d9c5-1] three"]
    assert calls(requests)[-1] == (
        "GET", f"/api/v1/namespaces/{NS}/pods/average-app-7d9c5-1/log?container=average-app&tailLines=10")


def test_logs_followed_stream() -> None:
    logs = {"average-app-7d9c5-0": "started\nGET /health 200\npartial"}
    lines, requests = run("logs_follow", lambda: deployed_model(pods={"average-app": 1}, logs=logs),
                          lambda b: collect(b.logs("average-app", tail_lines=5, follow=True)))
    assert lines == ["started", "GET /health 200", "partial"]
    assert calls(requests)[-1] == (
        "GET", f"/api/v1/namespaces/{NS}/pods/average-app-7d9c5-0/log?container=average-app&follow=true&tailLines=5")


def test_undeploy_deletes_by_label_and_ignores_what_is_gone() -> None:
    progress: list[str] = []
    result, requests = run("undeploy", lambda: deployed_model(vanish={"average-app-env"}),
                           lambda b: b.undeploy("average-app", progress.append))
    assert result is None
    listed = [p.split("?")[0] for m, p in calls(requests)[1:] if m == "GET"]
    assert listed == [f"/apis/apps/v1/namespaces/{NS}/deployments", f"/api/v1/namespaces/{NS}/services",
                      f"/apis/networking.k8s.io/v1/namespaces/{NS}/networkpolicies",
                      f"/api/v1/namespaces/{NS}/configmaps", f"/api/v1/namespaces/{NS}/secrets"]
    deleted = [p for m, p in calls(requests) if m == "DELETE"]
    assert len(deleted) == 5 and not any(p.endswith(f"/namespaces/{NS}") for p in deleted)
    assert all(p.endswith("?propagationPolicy=Foreground") for p in deleted)
    assert "ConfigMap average-app-env deleted" not in progress  # the 404: gone already, no error
    assert "Secret average-app-credentials deleted" in progress


def test_the_fake_refuses_a_call_that_was_not_recorded() -> None:
    """A back end that strays from the recording (here: another clock, so another patch) gets
    a 500 from the fake, and the requests differ from the recorded ones."""
    with FakeApiServer(exchanges=load("restart")) as server:
        backend = KubernetesBackend(api_client(host=server.url), FakeBuilder(),
                                    now=lambda: datetime(2027, 1, 1, tzinfo=timezone.utc))
        with pytest.raises(AppError) as caught:
            asyncio.run(backend.restart("average-app"))
    assert caught.value.status == 502 and "expected" in caught.value.description
    assert server.requests != [exchange["request"] for exchange in load("restart")]


def test_a_failed_build_is_an_app_error_before_any_call() -> None:
    from orchestrator.apps.kubernetes.images import BuildError

    class Failing(FakeBuilder):
        def build(self, manifest: Manifest, source_dir: Path, progress: Callable[[str], None]) -> str:
            raise BuildError("docker build exited with status 1:\nno requirements.txt")

    with FakeApiServer(exchanges=load("status_missing")) as server:  # one list: the name is free
        backend = KubernetesBackend(api_client(host=server.url), Failing())
        with pytest.raises(AppError) as caught:
            asyncio.run(backend.deploy(manifest(), "/src"))
    assert caught.value.status == 400 and caught.value.error == "BuildFailed"
    assert calls(server.requests) == [FIND]
