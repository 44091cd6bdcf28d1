"""An app's Kubernetes objects, from its manifest (pure: dicts in the API's JSON shape).

One namespace per tenant (``waziup-<tenant>``), and in it, per app, objects named after the
app and labelled ``app.kubernetes.io/name=<app>``, ``app.kubernetes.io/managed-by=waziup``:

* a ConfigMap with what the local back end puts in an app's environment (the platform's
  URLs, the tenant and service path, ``WAZIUP_SENSORS``) and the manifest's ``env``;
* a Secret with the app's credentials (``Issued.env`` of ``orchestrator/apps/platform.py``:
  ``WAZIUP_TOKEN_URL``, ``WAZIUP_CLIENT_ID``/``SECRET``, ``WAZIUP_USERNAME``/``PASSWORD``),
  and only there;
* a Deployment: replicas, requests and limits, probes from ``health``, non-root, read-only
  root file system (``/tmp``, and Node-RED's ``/data``, are emptyDirs);
* a ClusterIP Service for the first port (where subscriptions notify the app);
* a NetworkPolicy: in, only from the platform's namespace to the app's ports; out, only to
  the platform's broker, history, IoT agent, identity manager (and an MQTT broker labelled
  ``mqtt``) and the cluster DNS.

``render_platform`` (the platform's own objects) and ``dockerfile`` are re-exported here.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from orchestrator.apps.platform import entity_prefix

from .dockerfile import APP_UID, dockerfile, image_name
from .names import app_labels, app_selector, dns_label, env_key, port_name, tenant_namespace
from .platform import PLATFORM_NAMESPACE, PlatformOptions, render_platform

if TYPE_CHECKING:
    from orchestrator.apps.manifest import Health, Manifest

__all__ = ["PlatformRefs", "app_environment", "dockerfile", "image_name", "render_app", "render_platform",
           "PlatformOptions"]

Obj = dict[str, Any]

DEFAULT_REQUESTS: Final = {"cpu": "100m", "memory": "128Mi"}  # an app that says nothing
DEFAULT_LIMITS: Final = {"memory": "512Mi"}
SECRET_SUFFIX: Final = "-credentials"
# the Pod Security Standard the tenant's namespace enforces: what the Deployment already meets
RESTRICTED: Final = {"pod-security.kubernetes.io/enforce": "restricted"}
# what an app may call in the platform's namespace (not PostgreSQL, not the orchestrator's /apps)
APP_REACHES: Final = ("broker", "history", "iot-agent", "idm", "mqtt")


def _svc(name: str, port: int, namespace: str = PLATFORM_NAMESPACE) -> str:
    return f"http://{name}.{namespace}.svc.cluster.local:{port}"


@dataclass(frozen=True)
class PlatformRefs:
    """Where an app reaches the platform from its namespace (the Services of
    ``deploy/kubernetes/``); "" leaves a variable out."""

    broker_url: str = _svc("broker", 1026)
    history_url: str = _svc("history", 8668)
    iota_url: str = _svc("iot-agent", 4041)
    mqtt_url: str = ""
    namespace: str = PLATFORM_NAMESPACE  # the namespace the app's traffic may come from and go to


def _meta(name: str, namespace: str | None, labels: dict[str, str]) -> Obj:
    meta: Obj = {"name": name, "labels": dict(labels)}
    if namespace is not None:
        meta["namespace"] = namespace
    return meta


def app_environment(manifest: Manifest, platform: PlatformRefs, sensors: Mapping[str, Any] | None = None) -> dict[str, str]:
    """The ConfigMap's data, the same variables as the local back end gives
    (``orchestrator/apps/local.py``: ``app_env``): the manifest's ``env``, then the platform's
    ``WAZIUP_*`` and ``PORT`` (which win: an app cannot point itself at another broker by
    accident). ``sensors``: the discovery hits per sensor need (``WAZIUP_SENSORS``)."""
    data = {env_key(key): str(value) for key, value in manifest.env.items()}
    tenant = manifest.tenant or ""
    data.update({
        "WAZIUP_APP": manifest.name, "WAZIUP_BROKER_URL": platform.broker_url,
        "WAZIUP_HISTORY_URL": platform.history_url, "WAZIUP_IOTA_URL": platform.iota_url,
        "WAZIUP_MQTT_URL": platform.mqtt_url, "WAZIUP_TENANT": tenant, "FIWARE_SERVICE": tenant,
        "WAZIUP_SERVICE_PATH": manifest.service_path, "FIWARE_SERVICEPATH": manifest.service_path,
        "WAZIUP_ENTITY_PREFIX": entity_prefix(manifest.name),
        "WAZIUP_SENSORS": json.dumps(dict(sensors or {})),
    })
    for i, port in enumerate(manifest.ports):
        data[env_key("PORT_" + port.name.upper().replace("-", "_"))] = str(port.port)
        if i == 0:
            data["PORT"] = str(port.port)
    return data


def _seconds(value: float, least: int = 1) -> int:
    return max(least, math.ceil(value))


def _probes(manifest: Manifest, health: Health | None) -> Obj:
    """Liveness and readiness from ``health``: ``grace`` delays liveness only, so that a slow
    start is not killed but traffic waits for the first good answer."""
    if health is None:
        return {}
    if health.path is not None:
        check: Obj = {"httpGet": {"path": health.path, "port": port_name(health.port or manifest.ports[0].name)}}
    else:
        check = {"exec": {"command": ["/bin/sh", "-c", health.command or "true"]}}
    timing = {"periodSeconds": _seconds(health.interval), "timeoutSeconds": _seconds(health.timeout)}
    return {
        "livenessProbe": {**check, **timing, "initialDelaySeconds": _seconds(health.grace, 0), "failureThreshold": 3},
        "readinessProbe": {**check, **timing, "failureThreshold": 1},
    }


def _resources(manifest: Manifest) -> Obj:
    r = manifest.resources
    if r is None or (r.cpu is None and r.memory is None):
        return {"requests": dict(DEFAULT_REQUESTS), "limits": dict(DEFAULT_LIMITS)}
    amounts: dict[str, str] = {}
    if r.cpu is not None:
        amounts["cpu"] = f"{max(1, round(r.cpu * 1000))}m"
    if r.memory is not None:
        amounts["memory"] = r.memory
    return {"requests": dict(amounts), "limits": dict(amounts)}  # requests = limits: what is asked is kept


def _deployment(manifest: Manifest, image: str, namespace: str, labels: dict[str, str], config: str,
                secret: str) -> Obj:
    name = dns_label(manifest.name)
    mounts = [{"name": "tmp", "mountPath": "/tmp"}]
    volumes: list[Obj] = [{"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}}]
    if manifest.runtime == "node-red":
        mounts.append({"name": "data", "mountPath": "/data"})
        volumes.append({"name": "data", "emptyDir": {"sizeLimit": "256Mi"}})
    container: Obj = {
        "name": name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",  # the tag is the source's digest: it never changes meaning
        "envFrom": [{"configMapRef": {"name": config}}, {"secretRef": {"name": secret}}],
        "ports": [{"name": port_name(p.name), "containerPort": p.port, "protocol": "TCP"} for p in manifest.ports],
        "resources": _resources(manifest),
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": mounts,
        **_probes(manifest, manifest.health),
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {**_meta(name, namespace, labels), "annotations": {
            # what the status tells, which labels cannot hold (a service path has slashes)
            "waziup.io/runtime": manifest.runtime, "waziup.io/tenant": manifest.tenant or "",
            "waziup.io/service-path": manifest.service_path}},
        "spec": {
            "replicas": manifest.replicas,
            "revisionHistoryLimit": 3,
            "selector": {"matchLabels": app_selector(manifest.name)},
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": {
                    "automountServiceAccountToken": False,  # apps have no business with the Kubernetes API
                    "enableServiceLinks": False,
                    "securityContext": {
                        "runAsNonRoot": True, "runAsUser": APP_UID, "runAsGroup": APP_UID, "fsGroup": APP_UID,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [container],
                    "volumes": volumes,
                },
            },
        },
    }


def _network_policy(manifest: Manifest, namespace: str, labels: dict[str, str], platform: str) -> Obj:
    from_platform = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": platform}}}
    ingress: list[Obj] = []
    if manifest.ports:
        ingress.append({
            "from": [from_platform],
            "ports": [{"protocol": "TCP", "port": port_name(p.name)} for p in manifest.ports],
        })
    dns = {
        "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
    }
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta(dns_label(manifest.name), namespace, labels),
        "spec": {
            "podSelector": {"matchLabels": app_selector(manifest.name)},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": ingress,
            "egress": [{"to": [{**from_platform, "podSelector": {"matchExpressions": [
                {"key": "app.kubernetes.io/name", "operator": "In", "values": list(APP_REACHES)}]}}]}, dns],
        },
    }


def render_app(manifest: Manifest, image: str, platform: PlatformRefs, credentials: Mapping[str, str],
               *, sensors: Mapping[str, Any] | None = None) -> list[Obj]:
    """The app's objects, in the order they are to be created (the namespace first)."""
    namespace = tenant_namespace(manifest.tenant)
    labels = app_labels(manifest.name, manifest.tenant)
    name = dns_label(manifest.name)
    config, secret = f"{name}-env", f"{name}{SECRET_SUFFIX}"
    objects: list[Obj] = [
        {"apiVersion": "v1", "kind": "Namespace",
         "metadata": _meta(namespace, None, {"app.kubernetes.io/managed-by": "waziup",
                                             "waziup.io/tenant": labels["waziup.io/tenant"], **RESTRICTED})},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(config, namespace, labels),
         "data": app_environment(manifest, platform, sensors)},
        {"apiVersion": "v1", "kind": "Secret", "metadata": _meta(secret, namespace, labels), "type": "Opaque",
         "stringData": {env_key(key): value for key, value in credentials.items()}},
        _deployment(manifest, image, namespace, labels, config, secret),
    ]
    if manifest.ports:
        first = manifest.ports[0]
        objects.append({
            "apiVersion": "v1", "kind": "Service", "metadata": _meta(name, namespace, labels),
            "spec": {"type": "ClusterIP", "selector": app_selector(manifest.name),
                     "ports": [{"name": port_name(first.name), "port": first.port,
                                "targetPort": port_name(first.name), "protocol": "TCP"}]},
        })
    objects.append(_network_policy(manifest, namespace, labels, platform.namespace))
    return json.loads(json.dumps(objects))  # no dict shared between two places (deepcopy keeps sharing)
