"""``ClusterBackend``: the Kubernetes back end (``backend.py``) behind the local back end's
interface (``orchestrator/apps/local.py``), so that ``AppsComponent`` serves ``/apps`` from a
cluster without knowing it (``waziup orchestrator -backend kubernetes``).

``KubernetesBackend`` only makes and reads objects. What the platform does around an app is
here, as the local back end does it: the source is fetched with the destination policy
(``source.py``), the tenant is the manifest's, else the caller's (``Fiware-Service``), else the
platform's (a manifest naming another tenant than the caller's is refused); credentials are
issued by the identity manager (``platform.Identity``) and handed to ``deploy`` (they end up in
the app's Secret only); discovery answers ``needs.sensors``; then, once the objects exist,
the subscriptions are made.

Subscriptions notify the app's Service inside the cluster,
``http://<name>.<namespace>.svc.cluster.local:<port><endpoint>``, not this service's
``/ingress``: the broker and the app are both in the cluster and the app's NetworkPolicy only
lets the platform's namespace in, which is what the ingress key proves locally; a Service
spreads notifications over the replicas; and the orchestrator stays out of the data path (it
may restart, or run outside the cluster, without apps missing notifications). The broker must
be allowed to notify ``*.svc.cluster.local`` (its destination rules). ``endpoint_of`` is
therefore always None.

What was made (subscription ids, issued credentials, the raw manifest, the tenant) is kept in
the store's ``apps`` collection, in the local back end's document shape, so that ``undeploy``
removes it, even after a restart. The cluster is the truth about what runs: statuses come from
it, with the record's subscriptions, credentials and source added. Anything failing during a
deploy undoes what was made.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, Final

import yaml

from ngsi.client import HTTPClient, NGSIClient, Transport
from ngsi.client.credentials import OAuth2ClientCredentials
from orchestrator.appserver.config import Config, ConfigError
from orchestrator.apps.local import COLLECTION, AppError, Progress, app_tenant, find_sensors, identity_from, say
from orchestrator.apps.manifest import MANIFEST_FILE, Manifest, ManifestError, load_manifest
from orchestrator.apps.platform import Identity, Issued, PlatformError, create_subscriptions, delete_subscriptions
from orchestrator.apps.source import SourceError, extract_tarball, fetch
from orchestrator.waziup_api.store import Store

from .backend import KubernetesBackend, api_client, from_environment
from .images import Builder, DockerBuilder
from .names import dns_label, tenant_namespace


LOCAL_REGISTRY: Final = "waziup.local"  # -registry "": images stay in the node's daemon, never pushed


def service_url(manifest: Manifest) -> str:
    """The app's Service as the broker reaches it inside the cluster (``render.render_app``
    makes one ClusterIP Service, for the first port, named after the app in its tenant's
    namespace); "" for an app without ports."""
    first = manifest.endpoint_port
    if first is None:
        return ""
    return f"http://{dns_label(manifest.name)}.{tenant_namespace(manifest.tenant)}.svc.cluster.local:{first.port}"


def _raw_manifest(folder: Path) -> dict[str, Any]:
    """The manifest as written: what the record keeps (the dataclasses are not stored)."""
    return dict(yaml.safe_load(Path(folder, MANIFEST_FILE).read_text()))


class ClusterBackend:
    """Apps on a Kubernetes cluster, with ``LocalBackend``'s methods. ``kubernetes`` makes the
    objects; ``identity`` (default: from ``config``) issues credentials; ``broker_transport``
    reaches the broker (tests: in-process; a given transport is left open)."""

    def __init__(self, config: Config, store: Store, kubernetes: KubernetesBackend, *, discovery: Any = None,
                 identity: Identity | None = None, broker_transport: Transport | None = None) -> None:
        self.config = config
        self.store = store
        self.kubernetes = kubernetes
        self.discovery = discovery
        self.identity = identity if identity is not None else identity_from(config)
        self.broker_transport = broker_transport
        self._lock = asyncio.Lock()

    # -- lifecycle ---------------------------------------------------------------------------

    async def open(self) -> None:
        """Nothing to start again: the cluster keeps the apps running across our restarts."""
        await self.kubernetes.open()

    async def close(self) -> None:
        await self.kubernetes.close()

    @contextlib.asynccontextmanager
    async def broker(self) -> AsyncIterator[NGSIClient]:
        """The broker as the orchestrator reaches it (its service account behind a PEP)."""
        credentials = None
        if self.config.auth_user and self.config.idm_url:
            credentials = OAuth2ClientCredentials(
                HTTPClient(), self.config.idm_url.rstrip("/") + "/oauth2/token", self.config.client_id,
                self.config.client_secret, username=self.config.auth_user, password=self.config.auth_password)
        client = NGSIClient(self.config.broker_url, transport=self.broker_transport or HTTPClient(),
                            credentials=credentials, timeout=15)
        try:
            yield client
        finally:
            if self.broker_transport is None:
                await client.aclose()

    def tenant_of(self, manifest: Manifest, scope: str | None = None) -> str:
        return app_tenant(manifest, scope, self.config.service)

    # -- deploy --------------------------------------------------------------------------------

    async def deploy(self, source: str | bytes, progress: Progress | None = None,
                     label: str | None = None, scope: str | None = None) -> dict[str, Any]:
        """Deploy from a folder, a URL or a tarball's bytes: the image is built from a
        temporary copy (gone once built), then the objects, then the subscriptions."""
        shown = (label or "the uploaded tarball") if isinstance(source, bytes) else source
        with tempfile.TemporaryDirectory(prefix="waziup-app-") as tmp:
            folder = Path(tmp, "src")
            await say(progress, f"fetching {shown}")
            try:
                if isinstance(source, bytes):
                    await asyncio.to_thread(extract_tarball, source, folder)
                else:
                    await fetch(source, folder, self.config.destinations())
                manifest = load_manifest(folder)
                raw = _raw_manifest(folder)
            except (SourceError, ManifestError) as exc:
                raise AppError(400, "BadSource", str(exc)) from None
            await say(progress, f"manifest: {manifest.name} ({manifest.runtime}, entry {manifest.entry})")
            tenant = self.tenant_of(manifest, scope)
            manifest = dataclasses.replace(manifest, tenant=tenant or None)  # its namespace, its grants
            async with self._lock:
                existing = await self.store.get(COLLECTION, manifest.name)
                if existing is not None and (existing.get("tenant") or "") != tenant:
                    raise AppError(409, "Conflict", f"an app named {manifest.name!r} is deployed in another tenant")
                if existing is not None:  # its objects are replaced in place; what was issued for it is not
                    await say(progress, f"replacing the deployed {manifest.name}")
                    problems = await self._release(existing)
                    if problems:  # a second set of subscriptions would notify the app twice
                        await self.store.put(COLLECTION, manifest.name, existing)
                        raise AppError(502, "ReplaceFailed", "; ".join(problems))
                label_shown = (label or "uploaded tarball") if isinstance(source, bytes) else source
                return await self._install(manifest, raw, folder, label_shown, tenant, progress)

    async def _install(self, manifest: Manifest, raw: dict[str, Any], folder: Path, source: str, tenant: str,
                       progress: Progress | None) -> dict[str, Any]:
        name = manifest.name
        doc: dict[str, Any] = {"name": name, "backend": "kubernetes", "source": source, "manifest": raw,
                               "tenant": tenant, "namespace": tenant_namespace(manifest.tenant),
                               "ports": {port.name: port.port for port in manifest.ports}, "subscriptions": [],
                               "issued": None, "sensors": {}, "deployedAt": time.time(), "image": None}
        try:
            doc["sensors"] = await find_sensors(self.discovery, manifest, tenant, progress)
            credentials: dict[str, str] = {}
            if self.identity is not None:
                await say(progress, "issuing the app's credentials (identity manager)")
                try:
                    issued = await self.identity.issue(name, manifest, tenant)
                except PlatformError as exc:
                    raise AppError(502, "IdentityFailed", str(exc)) from None
                doc["issued"] = asdict(issued)
                credentials = issued.env(self.config.idm_url, self.config.client_id, self.config.client_secret)
            await self.store.put(COLLECTION, name, doc)  # from here, undeploy can find what was made
            status = await self.kubernetes.deploy(manifest, folder, progress, credentials=credentials,
                                                  sensors=doc["sensors"])
            doc["image"] = status.get("image")
            if manifest.needs.subscriptions:
                url = service_url(manifest)
                await say(progress, f"subscribing ({len(manifest.needs.subscriptions)} subscription(s)) to {url}")
                async with self.broker() as client:
                    try:
                        doc["subscriptions"] = await create_subscriptions(client, name, manifest, tenant or None, url)
                    except PlatformError as exc:
                        raise AppError(502, "SubscriptionFailed", str(exc)) from None
            await self.store.put(COLLECTION, name, doc)
        except BaseException:
            with contextlib.suppress(Exception):
                await self._remove(doc, only_namespace=doc["namespace"])
            raise
        await say(progress, f"deployed {name}")
        return self._merged(status, doc)

    # -- undoing -------------------------------------------------------------------------------

    async def _release(self, doc: dict[str, Any]) -> list[str]:
        """Remove the app's subscriptions and credentials (not its objects); the problems."""
        problems: list[str] = []
        name, manifest = doc["name"], doc["manifest"]
        if (manifest.get("needs") or {}).get("subscriptions") or doc.get("subscriptions"):
            try:
                async with self.broker() as client:
                    await delete_subscriptions(client, name, doc.get("subscriptions", []), doc.get("tenant") or None,
                                               manifest.get("servicePath", "/"))
                doc["subscriptions"] = []
            except PlatformError as exc:
                problems.append(str(exc))
        if doc.get("issued") and self.identity is not None:
            try:
                await self.identity.revoke(Issued(**doc["issued"]))
                doc["issued"] = None
            except PlatformError as exc:
                problems.append(str(exc))
        return problems

    async def _remove(self, doc: dict[str, Any], only_namespace: str | None = None) -> None:
        """Subscriptions, then objects, then credentials, then the record (kept when
        something could not be removed, so that undeploy can be tried again).
        ``only_namespace``: remove objects only if the app found is there (a failed deploy
        must not remove another tenant's app of the same name)."""
        name = doc["name"]
        problems = await self._release(doc)
        ours = True
        if only_namespace is not None:
            try:
                ours = (await self.kubernetes.status(name)).get("namespace") == only_namespace
            except AppError:  # none (404), or several (409): nothing that is surely ours
                ours = False
        if ours:
            try:
                await self.kubernetes.undeploy(name)
            except AppError as exc:
                if exc.status != 404:  # already gone: what undeploy wanted
                    problems.append(exc.description)
        if problems:
            await self.store.put(COLLECTION, name, doc)
            raise AppError(502, "UndeployIncomplete", "; ".join(problems))
        await self.store.delete(COLLECTION, name)

    # -- the other operations -----------------------------------------------------------------

    async def _record(self, name: str, scope: str | None) -> dict[str, Any] | None:
        """The app's record (None when it was made without this service); another tenant's
        app is not found (404), as locally. Without a record, the cluster tells the tenant."""
        doc = await self.store.get(COLLECTION, name)
        if scope is None:
            return doc
        if doc is not None:
            tenant = doc.get("tenant") or ""
        else:
            tenant = (await self.kubernetes.status(name)).get("tenant") or ""
        if tenant != scope:
            raise AppError(404, "NotFound", f"no app named {name!r} is deployed")
        return doc

    @staticmethod
    def _merged(status: dict[str, Any], doc: dict[str, Any] | None) -> dict[str, Any]:
        """The cluster's status, with what the record knows (as the local status has it)."""
        out = dict(status)
        out.setdefault("source", None)
        out.setdefault("subscriptions", [])
        out.setdefault("credentials", False)
        if doc is not None:
            out.update({"name": doc["name"], "source": doc.get("source"), "tenant": doc.get("tenant") or "",
                        "subscriptions": doc.get("subscriptions", []), "credentials": bool(doc.get("issued"))})
        return out

    @staticmethod
    def _missing(doc: dict[str, Any]) -> dict[str, Any]:
        """The status of a recorded app whose Deployment is gone (deleted by hand): undeploy
        it to remove its subscriptions and credentials."""
        manifest = doc["manifest"]
        return {"name": doc["name"], "backend": "kubernetes", "runtime": manifest.get("runtime"), "state": "missing",
                "healthy": None, "replicas": 0, "readyReplicas": 0, "ports": doc.get("ports", {}), "endpoint": None,
                "tenant": doc.get("tenant") or "", "servicePath": manifest.get("servicePath", "/"),
                "namespace": doc.get("namespace"), "image": doc.get("image"), "restarts": 0,
                "source": doc.get("source"), "subscriptions": doc.get("subscriptions", []),
                "credentials": bool(doc.get("issued")), "deployedAt": doc.get("deployedAt")}

    async def list(self, scope: str | None = None) -> list[dict[str, Any]]:
        docs = {dns_label(doc["name"]): doc for doc in await self.store.list(COLLECTION)}
        out: list[dict[str, Any]] = []
        for status in await self.kubernetes.list():
            doc = docs.pop(status["name"], None)
            merged = self._merged(status, doc)
            if scope is None or merged["tenant"] == scope:
                out.append(merged)
        out += [self._missing(doc) for doc in docs.values() if scope is None or (doc.get("tenant") or "") == scope]
        return sorted(out, key=lambda status: str(status["name"]))

    async def status(self, name: str, scope: str | None = None) -> dict[str, Any]:
        doc = await self._record(name, scope)
        try:
            return self._merged(await self.kubernetes.status(name), doc)
        except AppError as exc:
            if exc.status == 404 and doc is not None:
                return self._missing(doc)
            raise

    async def restart(self, name: str, scope: str | None = None) -> dict[str, Any]:
        doc = await self._record(name, scope)
        return self._merged(await self.kubernetes.restart(name), doc)

    async def scale(self, name: str, replicas: int, scope: str | None = None) -> dict[str, Any]:
        doc = await self._record(name, scope)
        return self._merged(await self.kubernetes.scale(name, replicas), doc)

    async def undeploy(self, name: str, scope: str | None = None) -> None:
        async with self._lock:
            doc = await self._record(name, scope)
            if doc is None:  # made without this service: its objects, and subscriptions of its description
                status = await self.kubernetes.status(name)
                async with self.broker() as client:
                    try:
                        await delete_subscriptions(client, name, [], status.get("tenant") or None,
                                                   status.get("servicePath") or "/")
                    except PlatformError as exc:
                        raise AppError(502, "UndeployIncomplete", str(exc)) from None
                await self.kubernetes.undeploy(name)
                return
            await self._remove(doc)

    async def logs(self, name: str, tail_lines: int = 100, follow: bool = False,
                   scope: str | None = None) -> AsyncIterator[str]:
        """The pods' last lines, then (``follow``) each new one while a pod runs."""
        await self._record(name, scope)
        async for line in self.kubernetes.logs(name, tail_lines, follow):
            yield line

    async def endpoint_of(self, name: str, key: str) -> str | None:
        """None: notifications go straight to the app's Service, never through ``/ingress``."""
        return None


def cluster_backend(config: Config, store: Store, discovery: Any = None, *,
                    builder: Builder | None = None) -> ClusterBackend:
    """The back end of ``waziup orchestrator -backend kubernetes``: the API server at
    ``-kubeHost`` (no credentials: ``kubectl proxy``, tests), else from ``-kubeconfig``, else
    the pod's service account in a cluster, else ``KUBECONFIG`` / ``~/.kube/config``. Images
    are built with docker and pushed to ``-registry``; without one they stay in the local
    daemon (a one-node cluster sharing it: Docker Desktop, ``minikube docker-env``)."""
    if builder is None:
        builder = DockerBuilder(config.registry or LOCAL_REGISTRY, push=bool(config.registry))
    if config.kube_host:
        kubernetes = KubernetesBackend(api_client(host=config.kube_host), builder, tenant=config.service)
    else:
        from kubernetes.config.config_exception import ConfigException

        try:
            kubernetes = from_environment(builder, tenant=config.service, kubeconfig=config.kubeconfig or None)
        except (ConfigException, OSError) as exc:  # said once, at start, rather than at the first deploy
            raise ConfigError(f"-backend kubernetes: no way to reach the cluster ({exc}): give -kubeconfig FILE or "
                              "-kubeHost URL, set KUBECONFIG, or run the orchestrator in a pod") from None
    return ClusterBackend(config, store, kubernetes, discovery=discovery)


__all__ = ["ClusterBackend", "cluster_backend", "find_sensors", "identity_from", "service_url"]
