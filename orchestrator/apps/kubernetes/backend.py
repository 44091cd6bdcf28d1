"""``KubernetesBackend``: apps as Deployments, through the official ``kubernetes`` client.

The same operations as the local back end (``orchestrator/apps/local.py``), async, with the
same status shape and ``AppError`` for what goes wrong:

* ``deploy``: refuse a name another tenant's app has, build and push the image (``images.Builder``), then create each object of
  ``render.render_app`` in order; an object that exists (409) is replaced, except the
  tenant's namespace, which other apps share;
* ``list`` / ``status``: the Deployments labelled ``managed-by=waziup`` and their pods;
* ``logs``: the pods' logs, followed with ``follow=True, _preload_content=False`` (one
  stream per pod, merged);
* ``restart``: the pod template annotation ``kubectl.kubernetes.io/restartedAt`` (what
  ``kubectl rollout restart`` does), so pods are replaced one by one;
* ``scale``: the Deployment's scale subresource;
* ``undeploy``: every object labelled with the app's name, listed then deleted (a 404, an
  object already gone, is not an error). The namespace stays.

An app is found by its name label across namespaces (``list_deployment_for_all_namespaces``),
as names are unique on the platform as they are locally. The client is blocking: each
operation runs in a worker thread. Objects are read with ``_preload_content=False`` (plain
JSON), so that what the API server adds does not have to fit the client's models.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import tempfile
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from orchestrator.apps.local import AppError

from .images import Builder, BuildError
from .names import (
    APPS_PART, MANAGED_BY, MANAGED_LABEL, NAME_LABEL, PART_LABEL, dns_label, label_selector, tenant_namespace,
)
from .render import PlatformRefs, render_app

if TYPE_CHECKING:
    from orchestrator.apps.manifest import Manifest

Obj = dict[str, Any]
Progress = Callable[[str], Awaitable[None] | None]

RESTARTED_AT: Final = "kubectl.kubernetes.io/restartedAt"
RUNTIME_ANNOTATION: Final = "waziup.io/runtime"
SERVICE_PATH_ANNOTATION: Final = "waziup.io/service-path"
TENANT_ANNOTATION: Final = "waziup.io/tenant"
STRATEGIC: Final = "application/strategic-merge-patch+json"
FAILING: Final = frozenset({"CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull", "CreateContainerConfigError",
                            "InvalidImageName", "RunContainerError"})

# kind -> (API class, the method suffix, namespaced)
_KINDS: Final[dict[str, tuple[type, str, bool]]] = {
    "Namespace": (k8s.CoreV1Api, "namespace", False),
    "ConfigMap": (k8s.CoreV1Api, "namespaced_config_map", True),
    "Secret": (k8s.CoreV1Api, "namespaced_secret", True),
    "Service": (k8s.CoreV1Api, "namespaced_service", True),
    "Deployment": (k8s.AppsV1Api, "namespaced_deployment", True),
    "NetworkPolicy": (k8s.NetworkingV1Api, "namespaced_network_policy", True),
}
# what undeploy removes, the Deployment first so that no pod outlives its configuration
_REMOVED: Final = ("Deployment", "Service", "NetworkPolicy", "ConfigMap", "Secret")


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def api_client(host: str | None = None, *, kubeconfig: str | None = None, context: str | None = None,
               in_cluster: bool = False) -> k8s.ApiClient:
    """An ``ApiClient``: in the cluster (the pod's service account), from a kubeconfig
    (``KUBECONFIG``, ``~/.kube/config``), or plainly at ``host`` (tests, ``kubectl proxy``)."""
    from kubernetes import config as kube_config

    configuration = k8s.Configuration()
    if host is not None:
        configuration.host = host
    elif in_cluster:
        kube_config.load_incluster_config(client_configuration=configuration)
    else:
        kube_config.load_kube_config(config_file=kubeconfig, context=context, client_configuration=configuration)
    return k8s.ApiClient(configuration)


def from_environment(builder: Builder, platform: PlatformRefs | None = None, *, tenant: str = "",
                     kubeconfig: str | None = None, context: str | None = None) -> KubernetesBackend:
    """The back end as ``waziup orchestrator -backend kubernetes`` would make it: in a pod
    (``KUBERNETES_SERVICE_HOST`` set), with the pod's service account (``render_platform``
    with ``orchestrator=True`` gives it the rights it needs); elsewhere from ``KUBECONFIG``
    (or ``~/.kube/config``) and its current context, or ``context``."""
    in_cluster = kubeconfig is None and bool(os.environ.get("KUBERNETES_SERVICE_HOST"))
    return KubernetesBackend(api_client(kubeconfig=kubeconfig, context=context, in_cluster=in_cluster), builder,
                             platform, tenant=tenant)


async def _say(progress: Progress | None, line: str) -> None:
    if progress is not None:
        done = progress(line)
        if done is not None:
            await done


def _reason(exc: ApiException) -> str:
    try:
        return str(json.loads(exc.body or "{}").get("message") or exc.reason)
    except (ValueError, AttributeError):
        return str(exc.reason)


class KubernetesBackend:
    """Apps on a Kubernetes cluster. ``builder`` turns a source folder into an image the
    cluster pulls; ``tenant``: that of manifests without one (the orchestrator's
    ``-service``); ``now``: the clock of ``restart`` (tests fix it)."""

    def __init__(self, api: k8s.ApiClient, builder: Builder, platform: PlatformRefs | None = None, *,
                 tenant: str = "", now: Callable[[], datetime] = _utcnow) -> None:
        self.api = api
        self.builder = builder
        self.platform = platform or PlatformRefs()
        self.tenant = tenant
        self.now = now
        self.core = k8s.CoreV1Api(api)
        self.apps = k8s.AppsV1Api(api)

    async def open(self) -> None:
        """Nothing to start: the cluster keeps the apps running (the local back end's
        ``open`` relaunches its processes)."""

    async def close(self) -> None:
        await asyncio.to_thread(self.api.close)

    # -- the calls ----------------------------------------------------------------------------

    def _call(self, kind: str, verb: str, *args: Any, **kwargs: Any) -> Any:
        api_class, suffix, _ = _KINDS[kind]
        method = getattr(api_class(self.api), f"{verb}_{suffix}")
        return method(*args, **kwargs)

    def _json(self, response: Any) -> Obj:
        return dict(json.loads(response.data or b"{}"))

    def _apply(self, obj: Obj) -> str:
        """Create ``obj``, or replace it when it exists; what was done."""
        kind = obj["kind"]
        _, _, namespaced = _KINDS[kind]
        model = getattr(k8s, "V1" + kind).from_dict(obj)
        name, namespace = obj["metadata"]["name"], obj["metadata"].get("namespace")
        where = (namespace,) if namespaced else ()
        try:
            self._call(kind, "create", *where, model, _preload_content=False)
            return f"{kind} {name} created"
        except ApiException as exc:
            if exc.status != 409:
                raise
        if kind == "Namespace":
            return f"{kind} {name} exists"
        if kind == "Service":
            # a Service's cluster IP cannot change, nor be left out of a replace: keep the one it has
            current = self._json(self.core.read_namespaced_service(name, namespace, _preload_content=False))
            kept = {key: current["spec"][key] for key in ("clusterIP", "clusterIPs") if key in current.get("spec", {})}
            body = {**obj, "spec": {**obj["spec"], **kept},
                    "metadata": {**obj["metadata"], "resourceVersion": current["metadata"].get("resourceVersion")}}
            model = k8s.V1Service.from_dict(body)
        self._call(kind, "replace", name, *where, model, _preload_content=False)
        return f"{kind} {name} replaced"

    def _deployments(self, name: str) -> list[Obj]:
        """The Deployments of apps named ``name``, in every namespace (one, or none)."""
        selector = label_selector({NAME_LABEL: dns_label(name), MANAGED_LABEL: MANAGED_BY, PART_LABEL: APPS_PART})
        found = self._json(self.apps.list_deployment_for_all_namespaces(label_selector=selector,
                                                                       _preload_content=False))
        return list(found.get("items") or [])

    def _find(self, name: str) -> Obj:
        """The app's Deployment (404 when none)."""
        items = self._deployments(name)
        if not items:
            raise AppError(404, "NotFound", f"no app named {name!r} is deployed")
        if len(items) > 1:
            where = ", ".join(sorted(item["metadata"]["namespace"] for item in items))
            raise AppError(409, "Ambiguous", f"apps named {name!r} run in several namespaces ({where})")
        return dict(items[0])

    def _check_unique(self, name: str, namespace: str) -> None:
        """App names are unique on the platform (as locally): not another tenant's."""
        others = sorted({item["metadata"]["namespace"] for item in self._deployments(name)} - {namespace})
        if others:
            raise AppError(409, "Conflict", f"an app named {name!r} is deployed in namespace {others[0]}: "
                                            "undeploy it first, or choose another name")

    def _pods(self, namespace: str, name: str) -> list[Obj]:
        selector = label_selector({NAME_LABEL: dns_label(name), MANAGED_LABEL: MANAGED_BY})
        pods = self._json(self.core.list_namespaced_pod(namespace, label_selector=selector, _preload_content=False))
        return sorted(pods.get("items") or [], key=lambda pod: pod["metadata"]["name"])

    # -- the status ---------------------------------------------------------------------------

    @staticmethod
    def _pod_status(pod: Obj) -> Obj:
        statuses = (pod.get("status") or {}).get("containerStatuses") or []
        waiting = [s.get("state", {}).get("waiting", {}).get("reason") for s in statuses]
        return {"name": pod["metadata"]["name"], "phase": (pod.get("status") or {}).get("phase", "Unknown"),
                "ready": bool(statuses) and all(s.get("ready") for s in statuses),
                "restarts": sum(int(s.get("restartCount", 0)) for s in statuses),
                "reason": next((w for w in waiting if w), None)}

    def _status(self, deployment: Obj, pods: list[Obj] | None) -> Obj:
        meta, spec, status = deployment["metadata"], deployment.get("spec") or {}, deployment.get("status") or {}
        annotations = meta.get("annotations") or {}
        replicas, ready = int(spec.get("replicas", 1)), int(status.get("readyReplicas") or 0)
        container = (((spec.get("template") or {}).get("spec") or {}).get("containers") or [{}])[0]
        ports = {p.get("name", str(p["containerPort"])): p["containerPort"] for p in container.get("ports") or []}
        pod_states = [self._pod_status(pod) for pod in pods or []]
        if replicas == 0:
            state = "stopped"
        elif any(p["reason"] in FAILING for p in pod_states):
            state = "failing"
        elif ready >= replicas and int(status.get("updatedReplicas") or 0) >= replicas:
            state = "running"
        else:
            state = "starting"
        name, namespace = meta["name"], meta["namespace"]
        first = next(iter(ports.items()), None)
        out: Obj = {
            "name": name, "backend": "kubernetes", "runtime": annotations.get(RUNTIME_ANNOTATION),
            "state": state, "healthy": ready > 0 if replicas else None,
            "replicas": replicas, "readyReplicas": ready, "ports": ports,
            "endpoint": f"http://{name}.{namespace}.svc.cluster.local:{first[1]}" if first else None,
            "tenant": annotations.get(TENANT_ANNOTATION, ""),
            "servicePath": annotations.get(SERVICE_PATH_ANNOTATION, "/"),
            "namespace": namespace, "image": container.get("image"),
            "restarts": sum(p["restarts"] for p in pod_states),
            "deployedAt": meta.get("creationTimestamp"),
        }
        if pods is not None:
            out["pods"] = pod_states
        return out

    # -- the operations (blocking) -------------------------------------------------------------

    def _deploy_objects(self, objects: list[Obj], say: Callable[[str], None]) -> Obj:
        for obj in objects:
            say(self._apply(obj))
        deployment = next(obj for obj in objects if obj["kind"] == "Deployment")
        namespace, name = deployment["metadata"]["namespace"], deployment["metadata"]["name"]
        current = self._json(self.apps.read_namespaced_deployment(name, namespace, _preload_content=False))
        return self._status(current, self._pods(namespace, name))

    def status_sync(self, name: str) -> Obj:
        deployment = self._find(name)
        return self._status(deployment, self._pods(deployment["metadata"]["namespace"], name))

    def list_sync(self) -> list[Obj]:
        selector = label_selector({MANAGED_LABEL: MANAGED_BY, PART_LABEL: APPS_PART})
        found = self._json(self.apps.list_deployment_for_all_namespaces(label_selector=selector,
                                                                       _preload_content=False))
        items = sorted(found.get("items") or [], key=lambda d: (d["metadata"]["name"], d["metadata"]["namespace"]))
        return [self._status(item, None) for item in items]

    def restart_sync(self, name: str) -> Obj:
        deployment = self._find(name)
        namespace = deployment["metadata"]["namespace"]
        stamp = self.now().astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        patch = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}}}
        patched = self._json(self.apps.patch_namespaced_deployment(
            deployment["metadata"]["name"], namespace, patch, _content_type=STRATEGIC, _preload_content=False))
        return self._status(patched, None)

    def scale_sync(self, name: str, replicas: int) -> Obj:
        if not 0 <= replicas <= 100:
            raise AppError(400, "BadRequest", "replicas: from 0 to 100")
        deployment = self._find(name)
        meta = deployment["metadata"]
        self.apps.patch_namespaced_deployment_scale(meta["name"], meta["namespace"], {"spec": {"replicas": replicas}},
                                                    _content_type=STRATEGIC, _preload_content=False)
        deployment.setdefault("spec", {})["replicas"] = replicas
        return self._status(deployment, None)

    def undeploy_sync(self, name: str, say: Callable[[str], None] = lambda line: None) -> None:
        namespace = self._find(name)["metadata"]["namespace"]
        selector = label_selector({NAME_LABEL: dns_label(name), MANAGED_LABEL: MANAGED_BY})
        for kind in _REMOVED:
            listed = self._json(self._call(kind, "list", namespace, label_selector=selector, _preload_content=False))
            for item in listed.get("items") or []:
                item_name = item["metadata"]["name"]
                try:
                    self._call(kind, "delete", item_name, namespace, propagation_policy="Foreground",
                               _preload_content=False)
                    say(f"{kind} {item_name} deleted")
                except ApiException as exc:
                    if exc.status != 404:  # gone meanwhile: what undeploy wanted
                        raise

    def _log_lines(self, namespace: str, pod: str, container: str, tail: int) -> list[str]:
        text = self.core.read_namespaced_pod_log(pod, namespace, container=container, tail_lines=tail,
                                                 _preload_content=False).data.decode(errors="replace")
        return text.splitlines()

    def _follow(self, namespace: str, pod: str, container: str, tail: int) -> Any:
        return self.core.read_namespaced_pod_log(pod, namespace, container=container, tail_lines=tail, follow=True,
                                                 _preload_content=False)

    # -- the operations (async, as the local back end's) ---------------------------------------

    async def _blocking(self, function: Callable[..., Any], *args: Any) -> Any:
        try:
            return await asyncio.to_thread(function, *args)
        except ApiException as exc:
            status = exc.status if 400 <= (exc.status or 0) < 500 else 502
            raise AppError(status, "KubernetesError", f"the Kubernetes API answered {exc.status}: {_reason(exc)}") \
                from None

    async def deploy(self, manifest: Manifest, source_dir: Path | str, progress: Progress | None = None, *,
                     credentials: Mapping[str, str] | None = None, sensors: Mapping[str, Any] | None = None) -> Obj:
        """Build the image, then create or replace the app's objects; its status."""
        if manifest.tenant is None and self.tenant:
            manifest = dataclasses.replace(manifest, tenant=self.tenant)
        await self._blocking(self._check_unique, manifest.name, tenant_namespace(manifest.tenant))
        loop = asyncio.get_running_loop()

        def say(line: str) -> None:  # from the worker thread
            asyncio.run_coroutine_threadsafe(_say(progress, line), loop).result()

        try:
            image = await self._blocking(self.builder.build, manifest, Path(source_dir), say)
        except BuildError as exc:
            raise AppError(400, "BuildFailed", str(exc)) from None  # as the local back end
        except FileNotFoundError as exc:  # no docker on this machine
            raise AppError(500, "BuildFailed", f"cannot build the image: {exc.strerror}: {exc.filename}") from None
        objects = render_app(manifest, image, self.platform, credentials or {}, sensors=sensors)
        return dict(await self._blocking(self._deploy_objects, objects, say))

    async def deploy_source(self, source: str | bytes, progress: Progress | None = None, *,
                            policy: Any = None, credentials: Mapping[str, str] | None = None,
                            sensors: Mapping[str, Any] | None = None) -> Obj:
        """``deploy`` from what the local back end takes (a folder, a tarball's path or URL, a
        git URL, or a tarball's bytes): fetched into a temporary folder, which is gone once
        the image is built. ``policy``: the destination policy of URLs (``Config.destinations()``)."""
        from orchestrator.apps.manifest import ManifestError, load_manifest
        from orchestrator.apps.source import SourceError, extract_tarball, fetch

        with tempfile.TemporaryDirectory(prefix="waziup-app-") as tmp:
            folder = Path(tmp, "src")
            await _say(progress, "fetching " + ("the uploaded tarball" if isinstance(source, bytes) else source))
            try:
                if isinstance(source, bytes):
                    await asyncio.to_thread(extract_tarball, source, folder)
                else:
                    if policy is None:
                        from ngsi.destinations import Policy

                        policy = Policy([])
                    await fetch(source, folder, policy)
                manifest = load_manifest(folder)
            except (SourceError, ManifestError) as exc:
                raise AppError(400, "BadSource", str(exc)) from None
            await _say(progress, f"manifest: {manifest.name} ({manifest.runtime}, entry {manifest.entry})")
            return await self.deploy(manifest, folder, progress, credentials=credentials, sensors=sensors)

    async def list(self) -> list[Obj]:
        return list(await self._blocking(self.list_sync))

    async def status(self, name: str) -> Obj:
        return dict(await self._blocking(self.status_sync, name))

    async def restart(self, name: str) -> Obj:
        return dict(await self._blocking(self.restart_sync, name))

    async def scale(self, name: str, replicas: int) -> Obj:
        return dict(await self._blocking(self.scale_sync, name, replicas))

    async def undeploy(self, name: str, progress: Progress | None = None) -> None:
        loop = asyncio.get_running_loop()

        def say(line: str) -> None:
            asyncio.run_coroutine_threadsafe(_say(progress, line), loop).result()

        await self._blocking(self.undeploy_sync, name, say)

    async def logs(self, name: str, tail_lines: int = 100, follow: bool = False) -> AsyncIterator[str]:
        """The last lines of each pod (prefixed ``[pod]`` when there are several), then, with
        ``follow``, each new line until every pod's stream ends."""
        deployment = await self._blocking(self._find, name)
        namespace, app = deployment["metadata"]["namespace"], deployment["metadata"]["name"]
        pods = [pod["metadata"]["name"] for pod in await self._blocking(self._pods, namespace, name)]
        prefix = (lambda pod: f"[{pod}] ") if len(pods) > 1 else (lambda pod: "")
        if not follow:
            for pod in pods:
                for line in await self._blocking(self._log_lines, namespace, pod, app, tail_lines):
                    yield prefix(pod) + line
            return
        async for pod, line in self._merged(namespace, app, pods, tail_lines):
            yield prefix(pod) + line

    async def _merged(self, namespace: str, app: str, pods: list[str], tail: int) -> AsyncIterator[tuple[str, str]]:
        """Every pod's followed stream, line by line, as lines come (one thread per pod)."""
        queue: asyncio.Queue[tuple[str, str | None]] = asyncio.Queue()
        loop = asyncio.get_running_loop()
        streams = [await self._blocking(self._follow, namespace, pod, app, tail) for pod in pods]
        stop = threading.Event()

        def pump(pod: str, stream: Any) -> None:
            try:
                for line in _lines(stream):
                    if stop.is_set():
                        break
                    loop.call_soon_threadsafe(queue.put_nowait, (pod, line))
            except Exception:  # noqa: BLE001  (a stream closed under us ends like one that ended)
                pass
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, (pod, None))

        threads = [threading.Thread(target=pump, args=(pod, stream), daemon=True) for pod, stream in zip(pods, streams)]
        for thread in threads:
            thread.start()
        open_streams = len(threads)
        try:
            while open_streams:
                pod, line = await queue.get()
                if line is None:
                    open_streams -= 1
                else:
                    yield pod, line
        finally:
            stop.set()
            for stream in streams:
                stream.close()  # ends the pod's pump, if it still reads


def _lines(stream: Any) -> Iterator[str]:
    """The lines of a urllib3 response, as they arrive."""
    pending = b""
    for chunk in stream.stream(1024, decode_content=True):
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            yield line.decode(errors="replace")
    if pending:
        yield pending.decode(errors="replace")
