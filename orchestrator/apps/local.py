"""The local back end: apps as supervised processes on the orchestrator's host.

Deploy = fetch the source (``source.py``) into ``<data>/apps/<name>/src``, read its
manifest, build it (``runtimes.py``, each command's output streamed as progress and kept
in ``logs/build.log``), issue its credentials (``platform.py``), start it (``supervisor.py``)
and wait until it is healthy, then make its subscriptions, so that the broker's first
notification finds it listening. Anything failing undoes what was made, and the error
carries the build log's tail or the failing health check and the app's last lines.

What was made is persisted in the orchestrator's store (collection ``apps``), so that
``open()`` after a restart of the platform starts every app again (without rebuilding) and
``undeploy`` can remove what a previous run made.

The app's environment holds only what is listed in ``PASSED`` from the orchestrator's own,
never its secrets, then the manifest's ``env``, then what the platform tells it (the
``WAZIUP_*`` variables, ``PORT``), which wins.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import shutil
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, Final

from ngsi.client import HTTPClient, NGSIClient, Transport
from ngsi.client.credentials import OAuth2ClientCredentials
from orchestrator.appserver.config import Config
from orchestrator.waziup_api.store import Store

from .manifest import Manifest, ManifestError, load_manifest, parse_manifest
from .platform import (
    Identity, Issued, PlatformError, create_subscriptions, delete_subscriptions, entity_prefix,
)
from .runtimes import BuildError, plan
from .source import SourceError, fetch
from .supervisor import Launch, Supervisor, kill_leftover, tail

log = logging.getLogger("waziup.apps")

COLLECTION: Final = "apps"
PASSED: Final = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "USER", "LOGNAME", "SSL_CERT_FILE",
                 "SSL_CERT_DIR", "NODE_EXTRA_CA_CERTS", "PIP_INDEX_URL", "PIP_FIND_LINKS", "NPM_CONFIG_CACHE")
TAIL_LINES: Final = 30
STARTUP_WITHOUT_HEALTH: Final = 2.0  # seconds an app without a health check must stay up to count as started
Progress = Callable[[str], Awaitable[None] | None]


ENDPOINT_TTL = 2.0  # seconds the ingress keeps an app's endpoint


class AppError(Exception):
    """A failed operation on an app: ``status`` for HTTP, ``error`` a short name, and
    ``description`` saying why (the build log's tail, the failing health check)."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description


def free_host_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int) -> bool:
    """Free for a server (which sets SO_REUSEADDR: the last run's closed connections linger)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def env_name(port_name: str) -> str:
    return "PORT_" + port_name.upper().replace("-", "_")


async def say(progress: Progress | None, line: str) -> None:
    if progress is not None:
        done = progress(line)
        if done is not None:
            await done


def app_tenant(manifest: Manifest, scope: str | None, default: str) -> str:
    """The app's tenant (both back ends): the manifest's, else the caller's (``scope``, its
    Fiware-Service), else the platform's ``default``; a manifest naming another tenant than
    the caller's is refused."""
    if manifest.tenant is not None:
        if scope is not None and manifest.tenant != scope:
            raise AppError(403, "Forbidden", f"tenant: the manifest asks for tenant {manifest.tenant!r}, the "
                           f"request is for {scope!r} (Fiware-Service)")
        return manifest.tenant
    return scope if scope is not None else default


def identity_from(config: Config) -> Identity | None:
    """The identity manager that issues apps' credentials (both back ends), when the service
    has its administrator and the platform's client; else apps get none."""
    if config.idm_url and config.admin_user and config.admin_password and config.client_id:
        return Identity(config.idm_url, config.admin_user, config.admin_password, config.client_id,
                        config.client_secret)
    return None


async def find_sensors(discovery: Any, manifest: Manifest, tenant: str, progress: Progress | None) -> dict[str, Any]:
    """The discovery hits of ``needs.sensors``, in the app's tenant only (``WAZIUP_SENSORS``)."""
    if not manifest.needs.sensors:
        return {}
    if discovery is None:
        await say(progress, "needs.sensors: no discovery service here, WAZIUP_SENSORS is empty")
        return {need.name: [] for need in manifest.needs.sensors}
    from orchestrator.discovery.model import Query

    found: dict[str, Any] = {}
    for need in manifest.needs.sensors:
        query = Query(text=need.query, near=need.near, seen_within=need.seen, now=time.time(),
                      tenants=frozenset({tenant}))
        hits = await discovery.find(query)
        found[need.name] = [{**asdict(hit.sensor), "score": hit.score} for hit in hits]
        await say(progress, f"sensors {need.name!r}: {len(hits)} found")
    return found


class LocalBackend:
    """Apps as processes of this host. ``open()`` re-launches what the store holds."""

    def __init__(self, config: Config, store: Store, *, discovery: Any = None, identity: Identity | None = None,
                 broker_transport: Transport | None = None, environ: dict[str, str] | None = None,
                 backoff_base: float = 1.0, ingress: bool = True) -> None:
        self.config = config
        self.ingress = ingress  # notifications through this service's /ingress (False: straight to the app)
        self.store = store
        self.discovery = discovery
        self.environ = dict(os.environ if environ is None else environ)
        self.broker_transport = broker_transport
        self.backoff_base = backoff_base
        self.identity = identity if identity is not None else identity_from(config)
        self.root = config.data / "apps"
        self.running: dict[str, Supervisor] = {}
        # the ingress's answers, kept ENDPOINT_TTL seconds: without them each forwarded
        # notification read the app's whole record from the store (bench O2: 0.26x the app's rate)
        self._endpoints: dict[tuple[str, str], tuple[float, str]] = {}
        self._lock = asyncio.Lock()

    def broker(self) -> NGSIClient:
        """The broker as the orchestrator reaches it (its service account behind a PEP)."""
        credentials = None
        transport = self.broker_transport or HTTPClient()
        if self.config.auth_user and self.config.idm_url:
            credentials = OAuth2ClientCredentials(
                HTTPClient(), self.config.idm_url.rstrip("/") + "/oauth2/token", self.config.client_id,
                self.config.client_secret, username=self.config.auth_user, password=self.config.auth_password)
        return NGSIClient(self.config.broker_url, transport=transport, credentials=credentials, timeout=15)

    def tenant_of(self, manifest: Manifest, scope: str | None = None) -> str:
        return app_tenant(manifest, scope, self.config.service)

    # -- lifecycle ---------------------------------------------------------------------------

    async def open(self) -> None:
        """Start every app the store holds (built by an earlier run)."""
        self.root.mkdir(parents=True, exist_ok=True)
        for doc in await self.store.list(COLLECTION):
            try:
                await self._relaunch(doc)
            except (AppError, ManifestError, BuildError, PlatformError, OSError) as exc:
                log.error("app %s could not be started again: %s", doc.get("name"), exc)

    async def close(self) -> None:
        """Stop the processes; the apps stay deployed (``open`` starts them again)."""
        for supervisor in list(self.running.values()):
            await supervisor.stop()
        self.running.clear()

    async def _relaunch(self, doc: dict[str, Any]) -> None:
        name = doc["name"]
        manifest = parse_manifest(doc["manifest"])
        folder = self.root / name / "src"
        left = kill_leftover(self.root / name / "app.pid", folder)
        if left is not None:
            log.warning("app %s: killed process group %d left running by the last run", name, left)
            await asyncio.sleep(0.2)  # its ports free again
        ports = dict(doc.get("ports", {}))
        moved = [p for p, number in ports.items() if not port_is_free(int(number))]
        for port_name in moved:  # taken meanwhile: a new one, and subscriptions pointing at it
            ports[port_name] = free_host_port()
        if moved:
            doc["ports"] = ports
        supervisor = self._supervisor(name, manifest, folder, ports, doc)
        self.running[name] = supervisor
        await supervisor.start()
        if moved and manifest.needs.subscriptions and not self.ingress:
            async with self.broker() as client:
                tenant = doc.get("tenant") or None
                await delete_subscriptions(client, name, doc.get("subscriptions", []), tenant, manifest.service_path)
                doc["subscriptions"] = await create_subscriptions(client, name, manifest, tenant,
                                                                  self._url_base(manifest, ports, doc))
        if moved:
            await self.store.put(COLLECTION, name, doc)
        log.info("app %s started again", name)

    # -- deploy --------------------------------------------------------------------------------

    async def deploy(self, source: str | bytes, progress: Progress | None = None,
                     label: str | None = None, scope: str | None = None) -> dict[str, Any]:
        """Deploy from a folder, a URL, or the bytes of a tarball; the app's status when it
        is running and healthy, AppError (with why) otherwise. ``label``: what the status
        shows as the source of uploaded bytes (the CLI sends the folder's path); ``scope``: the
        caller's tenant (``Fiware-Service``), the app's unless its manifest names another (403)."""
        self.root.mkdir(parents=True, exist_ok=True)
        incoming = self.root / f".incoming-{uuid.uuid4().hex[:12]}"
        try:
            shown = (label or "the uploaded tarball") if isinstance(source, bytes) else source
            await say(progress, f"fetching {shown}")
            try:
                if isinstance(source, bytes):
                    from .source import extract_tarball

                    await asyncio.to_thread(extract_tarball, source, incoming)
                else:
                    await fetch(source, incoming, self.config.destinations())
                manifest = load_manifest(incoming)
            except (SourceError, ManifestError) as exc:
                raise AppError(400, "BadSource", str(exc)) from None
            await say(progress, f"manifest: {manifest.name} ({manifest.runtime}, entry {manifest.entry})")
            tenant = self.tenant_of(manifest, scope)
            async with self._lock:
                existing = await self.store.get(COLLECTION, manifest.name)
                if existing is not None and scope is not None and (existing.get("tenant") or "") != scope:
                    raise AppError(409, "Conflict", f"an app named {manifest.name!r} is deployed in another tenant")
                if existing is not None:
                    await say(progress, f"replacing the deployed {manifest.name}")
                    await self._remove(manifest.name, progress)
                shown = (label or "uploaded tarball") if isinstance(source, bytes) else source
                return await self._install(manifest, incoming, shown, progress, tenant)
        finally:
            shutil.rmtree(incoming, ignore_errors=True)

    async def _install(self, manifest: Manifest, incoming: Path, source: str, progress: Progress | None,
                       tenant: str) -> dict[str, Any]:
        name = manifest.name
        home = self.root / name
        shutil.rmtree(home, ignore_errors=True)
        (home / "logs").mkdir(parents=True)
        folder = home / "src"
        shutil.move(str(incoming), folder)
        doc: dict[str, Any] = {"name": name, "source": source, "manifest": _raw(manifest, incoming, folder),
                               "tenant": tenant, "ports": {}, "subscriptions": [],
                               "issued": None, "sensors": {}, "deployedAt": time.time(),
                               "key": secrets.token_urlsafe(24)}
        try:
            await self._build(manifest, folder, home / "logs" / "build.log", progress)
            doc["ports"] = {port.name: free_host_port() for port in manifest.ports}
            doc["sensors"] = await find_sensors(self.discovery, manifest, tenant, progress)
            if self.identity is not None:
                await say(progress, "issuing the app's credentials (identity manager)")
                try:
                    issued = await self.identity.issue(name, manifest, doc["tenant"])
                except PlatformError as exc:
                    raise AppError(502, "IdentityFailed", str(exc)) from None
                doc["issued"] = asdict(issued)
            await self.store.put(COLLECTION, name, doc)  # from here, undeploy can find what was made
            supervisor = self._supervisor(name, manifest, folder, doc["ports"], doc)
            self.running[name] = supervisor
            await say(progress, "starting")
            await supervisor.start()
            await self._wait_started(name, manifest, supervisor, progress)
            if manifest.needs.subscriptions:
                await say(progress, f"subscribing ({len(manifest.needs.subscriptions)} subscription(s))")
                async with self.broker() as client:
                    try:
                        doc["subscriptions"] = await create_subscriptions(
                            client, name, manifest, doc["tenant"] or None, self._url_base(manifest, doc["ports"], doc))
                    except PlatformError as exc:
                        raise AppError(502, "SubscriptionFailed", str(exc)) from None
                await self.store.put(COLLECTION, name, doc)
        except BaseException:
            with contextlib.suppress(Exception):
                await self._remove(name, None, keep_logs=True)
            raise
        await say(progress, f"deployed {name}")
        return self._status(doc)

    async def _build(self, manifest: Manifest, folder: Path, build_log: Path, progress: Progress | None) -> None:
        try:
            the_plan = plan(manifest, folder, self.config.data, self.environ)
        except BuildError as exc:
            raise AppError(400, "BuildFailed", str(exc)) from None
        env = self._base_env()
        with open(build_log, "ab") as out:
            for step in the_plan.steps:
                await say(progress, f"build: {step.what}")
                out.write(f"$ {' '.join(step.argv)}\n".encode())
                proc = await asyncio.create_subprocess_exec(
                    *step.argv, cwd=str(folder), env=env, stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, start_new_session=True)
                assert proc.stdout is not None
                async for line in proc.stdout:
                    out.write(line)
                    await say(progress, "  " + line.decode(errors="replace").rstrip())
                code = await proc.wait()
                if code != 0:
                    out.flush()
                    last = "\n".join(build_log.read_text(errors="replace").splitlines()[-TAIL_LINES:])
                    raise AppError(400, "BuildFailed", f"{step.what} failed (exit status {code}); the build log "
                                   f"ends with:\n{last}")

    def _url_base(self, manifest: Manifest, ports: dict[str, int], doc: dict[str, Any]) -> str:
        """Where the app's subscriptions notify: this service's ``/ingress/<name>/<key>``
        (the one destination the broker must be allowed; the key, unguessable, is checked
        there), or the app's own port when ``ingress`` is off."""
        if self.ingress:
            return f"{self.config.ingress_base}/ingress/{doc['name']}/{doc['key']}"
        first = manifest.endpoint_port
        return f"http://127.0.0.1:{ports[first.name]}" if first else ""

    async def endpoint_of(self, name: str, key: str) -> str | None:
        """The app's endpoint (``http://127.0.0.1:<port>``) when ``key`` is its ingress key; None
        otherwise. A right key's answer is kept ``ENDPOINT_TTL`` seconds: an app undeployed or
        deployed again meanwhile is at worst told a notification its old port no longer takes
        (the broker sees a failed notification); a wrong key is never kept, always read."""
        now = time.monotonic()
        known = self._endpoints.get((name, key))
        if known is not None and known[0] > now:
            return known[1]
        doc = await self.store.get(COLLECTION, name)
        if doc is None or not doc.get("key") or not secrets.compare_digest(str(doc["key"]), key):
            return None
        first = (doc["manifest"].get("ports") or [{}])[0].get("name")
        port = doc.get("ports", {}).get(first)
        if not port:
            return None
        if len(self._endpoints) > 1000:
            self._endpoints.clear()
        endpoint = self._endpoints[(name, key)] = (now + ENDPOINT_TTL, f"http://127.0.0.1:{port}")
        return endpoint[1]

    def _base_env(self) -> dict[str, str]:
        return {key: self.environ[key] for key in PASSED if key in self.environ}

    def app_env(self, name: str, manifest: Manifest, ports: dict[str, int], doc: dict[str, Any],
                venv: dict[str, str]) -> dict[str, str]:
        """The app's whole environment (see the module docstring for the order)."""
        env = {**self._base_env(), **manifest.env, **venv}
        if "VIRTUAL_ENV" in venv:
            env["PATH"] = str(Path(venv["VIRTUAL_ENV"], "bin")) + os.pathsep + env.get("PATH", os.defpath)
        tenant = doc.get("tenant") or ""
        env.update({
            "WAZIUP_APP": name, "WAZIUP_BROKER_URL": self.config.broker_url,
            "WAZIUP_HISTORY_URL": self.config.history_url, "WAZIUP_IOTA_URL": self.config.iota_url,
            "WAZIUP_MQTT_URL": self.config.mqtt_url, "WAZIUP_TENANT": tenant, "FIWARE_SERVICE": tenant,
            "WAZIUP_SERVICE_PATH": manifest.service_path, "FIWARE_SERVICEPATH": manifest.service_path,
            "WAZIUP_ENTITY_PREFIX": entity_prefix(name), "WAZIUP_SENSORS": json.dumps(doc.get("sensors") or {}),
        })
        for i, port in enumerate(manifest.ports):
            env[env_name(port.name)] = str(ports[port.name])
            if i == 0:
                env["PORT"] = str(ports[port.name])
        if doc.get("issued") and self.config.idm_url:
            issued = Issued(**doc["issued"])
            env.update(issued.env(self.config.idm_url, self.config.client_id, self.config.client_secret))
        return env

    def _supervisor(self, name: str, manifest: Manifest, folder: Path, ports: dict[str, int],
                    doc: dict[str, Any]) -> Supervisor:
        the_plan = plan(manifest, folder, self.config.data, self.environ)
        health_port = None
        if manifest.health is not None and manifest.health.port is not None:
            health_port = ports[manifest.health.port]
        launch = Launch(command=the_plan.command, cwd=folder, env=self.app_env(name, manifest, ports, doc,
                                                                                 the_plan.env),
                        log_dir=self.root / name / "logs", health=manifest.health, health_port=health_port,
                        memory_bytes=manifest.resources.memory_bytes if manifest.resources else None,
                        cpu=manifest.resources.cpu if manifest.resources else None,
                        pid_file=self.root / name / "app.pid")
        return Supervisor(name, launch, backoff_base=self.backoff_base)

    async def _wait_started(self, name: str, manifest: Manifest, supervisor: Supervisor,
                            progress: Progress | None) -> None:
        """Until the app is healthy (or, without a health check, up for a moment)."""
        health = manifest.health
        if health is None:
            await asyncio.sleep(STARTUP_WITHOUT_HEALTH)
            if supervisor.state == "running":
                return
            raise AppError(422, "StartFailed", self._why(name, supervisor, "the app exited at start"))
        await say(progress, f"waiting for the health check ({'GET ' + health.path if health.path else health.command})")
        deadline = time.monotonic() + health.grace + 3 * health.interval
        while time.monotonic() < deadline:
            if supervisor.healthy:
                return
            if supervisor.state in ("backoff", "stopped") or supervisor.restarts:
                raise AppError(422, "StartFailed", self._why(name, supervisor, "the app exited at start"))
            if supervisor.state == "unhealthy":
                break
            await asyncio.sleep(0.2)
        raise AppError(422, "Unhealthy", self._why(name, supervisor, "the health check failed"))

    def _why(self, name: str, supervisor: Supervisor, what: str) -> str:
        lines = [what + (f": {supervisor.health_failure}" if supervisor.health_failure else "")]
        if supervisor.last_exit is not None:
            lines.append(f"last exit status: {supervisor.last_exit}")
        lines.append("the app's log ends with:")
        lines += tail(self.root / name / "logs", TAIL_LINES)
        return "\n".join(lines)

    # -- the other operations -----------------------------------------------------------------

    async def _doc(self, name: str, scope: str | None = None) -> dict[str, Any]:
        """The app's record; ``scope``: the caller's tenant (another tenant's app is not found)."""
        doc = await self.store.get(COLLECTION, name)
        if doc is None or (scope is not None and (doc.get("tenant") or "") != scope):
            raise AppError(404, "NotFound", f"no app named {name!r} is deployed")
        return doc

    def _status(self, doc: dict[str, Any]) -> dict[str, Any]:
        name = doc["name"]
        manifest = doc["manifest"]
        supervisor = self.running.get(name)
        running = supervisor.status() if supervisor else {"state": "stopped", "pid": None, "healthy": None,
                                                            "healthFailure": None, "restarts": 0, "lastExit": None,
                                                            "uptime": None}
        ports = doc.get("ports", {})
        first = (manifest.get("ports") or [{}])[0].get("name")
        return {"name": name, "backend": "local", "runtime": manifest["runtime"], "source": doc.get("source"),
                **running, "replicas": 1, "ports": ports,
                "endpoint": f"http://127.0.0.1:{ports[first]}" if first in ports else None,
                "tenant": doc.get("tenant") or "", "servicePath": manifest.get("servicePath", "/"),
                "subscriptions": doc.get("subscriptions", []), "credentials": bool(doc.get("issued")),
                "deployedAt": doc.get("deployedAt")}

    async def list(self, scope: str | None = None) -> list[dict[str, Any]]:
        return [self._status(doc) for doc in await self.store.list(COLLECTION)
                if scope is None or (doc.get("tenant") or "") == scope]

    async def status(self, name: str, scope: str | None = None) -> dict[str, Any]:
        return self._status(await self._doc(name, scope))

    async def restart(self, name: str, scope: str | None = None) -> dict[str, Any]:
        doc = await self._doc(name, scope)
        supervisor = self.running.get(name)
        if supervisor is None:  # it could not be started with the service: try again, and say why not
            try:
                await self._relaunch(doc)
            except (ManifestError, BuildError, PlatformError, OSError) as exc:
                raise AppError(503, "StartFailed", f"{name} cannot be started: {exc}") from None
        else:
            await supervisor.restart()
        return self._status(doc)

    async def scale(self, name: str, replicas: int, scope: str | None = None) -> dict[str, Any]:
        doc = await self._doc(name, scope)
        if replicas != 1:
            raise AppError(400, "BadRequest", "scaling is only on Kubernetes: the local back end runs one process")
        return self._status(doc)

    async def undeploy(self, name: str, scope: str | None = None) -> None:
        async with self._lock:
            await self._doc(name, scope)
            await self._remove(name, None)

    async def _remove(self, name: str, progress: Progress | None, keep_logs: bool = False) -> None:
        """Stop the process, remove the subscriptions, credentials and files, then the record."""
        self._endpoints = {known: value for known, value in self._endpoints.items() if known[0] != name}
        supervisor = self.running.pop(name, None)
        if supervisor is not None:
            await say(progress, f"stopping {name}")
            await supervisor.stop()
        doc = await self.store.get(COLLECTION, name)
        problems: list[str] = []
        if doc is not None:
            manifest = doc["manifest"]
            if manifest.get("needs", {}).get("subscriptions") or doc.get("subscriptions"):
                try:
                    async with self.broker() as client:
                        await delete_subscriptions(client, name, doc.get("subscriptions", []),
                                                   doc.get("tenant") or None, manifest.get("servicePath", "/"))
                except PlatformError as exc:
                    problems.append(str(exc))
            if doc.get("issued") and self.identity is not None:
                try:
                    await self.identity.revoke(Issued(**doc["issued"]))
                except PlatformError as exc:
                    problems.append(str(exc))
        if problems:  # the record stays, so that undeploy can be tried again
            raise AppError(502, "UndeployIncomplete", "; ".join(problems))
        await self.store.delete(COLLECTION, name)
        home = self.root / name
        if keep_logs:
            shutil.rmtree(home / "src", ignore_errors=True)
        else:
            shutil.rmtree(home, ignore_errors=True)

    def log_dir(self, name: str) -> Path:
        return self.root / name / "logs"

    async def logs(self, name: str, tail_lines: int = 100, follow: bool = False,
                   scope: str | None = None) -> AsyncIterator[str]:
        """The app's last lines, then (``follow``) each new one until it is undeployed."""
        await self._doc(name, scope)
        folder = self.log_dir(name)
        for line in tail(folder, tail_lines):
            yield line
        if not follow:
            return
        path = folder / "app.log"
        position = path.stat().st_size if path.exists() else 0
        inode = path.stat().st_ino if path.exists() else None
        pending = b""
        while name in self.running or await self.store.get(COLLECTION, name) is not None:
            try:
                stat = path.stat()
            except FileNotFoundError:
                await asyncio.sleep(0.3)
                continue
            if stat.st_ino != inode or stat.st_size < position:  # rotated
                inode, position = stat.st_ino, 0
            if stat.st_size > position:
                with open(path, "rb") as file:
                    file.seek(position)
                    chunk = file.read()
                position += len(chunk)
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    yield line.decode(errors="replace")
            else:
                await asyncio.sleep(0.3)


def _raw(manifest: Manifest, *folders: Path) -> dict[str, Any]:
    """The manifest as written (re-parsed at each start: the dataclasses are not stored)."""
    import yaml

    for folder in folders:
        path = folder / "waziup-app.yaml"
        if path.exists():
            return dict(yaml.safe_load(path.read_text()))
    raise ManifestError(f"the manifest of {manifest.name} disappeared")
