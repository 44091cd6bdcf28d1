"""The platform's own Kubernetes objects (pure): what ``deploy/kubernetes/`` holds.

Namespace ``waziup``: PostgreSQL (a StatefulSet with its volume claim), and on it the context
broker with several workers, the history, the rules service, the identity manager, the WAZIUP
API and, with ``orchestrator=True``, the orchestrator (``-backend kubernetes``, with the RBAC it
needs to manage the apps' namespaces); the IoT agent (its device registry on a volume); the dashboard. One image
(``deploy/Dockerfile``) runs every service: its entry point is ``waziup``, the arguments
say which (``waziup broker ...``), with the same options as ``waziup run`` gives them
(``orchestrator/run_all.py``).

No password is written here: the objects read the Secrets ``waziup-postgres`` (``password``),
``waziup-idm`` (``admin-password``), ``waziup-api`` and ``waziup-orchestrator`` (their
``WAZIUP_*`` variables), which the operator creates with generated values
(docs/kubernetes.md). The platform runs without ``-auth``: its Services are reachable in the
cluster (the NetworkPolicies keep PostgreSQL to the platform), not from outside until an
Ingress says so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Final

Obj = dict[str, Any]

PLATFORM_NAMESPACE: Final = "waziup"
PLATFORM_UID: Final = 10001  # the user of deploy/Dockerfile
POSTGRES_UID: Final = 70  # the postgres user of the official Alpine image
PART: Final = {"app.kubernetes.io/part-of": "waziup", "app.kubernetes.io/managed-by": "waziup"}
DB_USER: Final = "waziup"
DB_NAME: Final = "waziup"
API_TENANT: Final = "waziup"  # as in run_all: the WAZIUP API's devices


@dataclass(frozen=True)
class PlatformOptions:
    """What differs between clusters. ``app_networks``: addresses of the apps' Services the
    broker may notify (its SSRF guard refuses private addresses otherwise): the cluster's
    service network, kubeadm's default here."""

    namespace: str = PLATFORM_NAMESPACE
    image: str = "waziup/platform:0.1.0"
    broker_workers: int = 4
    broker_replicas: int = 1
    postgres_image: str = "postgres:17-alpine"
    postgres_storage: str = "10Gi"
    agent_storage: str = "1Gi"
    storage_class: str = ""  # "": the cluster's default
    mqtt_uri: str = ""  # the devices' MQTT broker for the agent (mqtt://host:port); "": HTTP devices only
    idm_issuer: str = ""  # the identity manager's public URL; "": its in-cluster URL
    dashboard_public_url: str = ""  # the dashboard as browsers reach it; "": its in-cluster URL
    app_networks: tuple[str, ...] = ("10.96.0.0/12",)
    rules: bool = True
    api: bool = True
    orchestrator: bool = False  # not until `waziup orchestrator` takes -backend kubernetes (docs/kubernetes.md)
    registry: str = "registry.example.org/waziup-apps"  # where the orchestrator pushes the apps' images
    extra_labels: dict[str, str] = field(default_factory=dict)


def _url(options: PlatformOptions, name: str, port: int) -> str:
    return f"http://{name}.{options.namespace}.svc.cluster.local:{port}"


def _host(options: PlatformOptions, name: str, port: int) -> str:
    return f"{name}.{options.namespace}.svc.cluster.local:{port}"


def _labels(options: PlatformOptions, component: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": component, **PART, **options.extra_labels}


def _meta(options: PlatformOptions, name: str, component: str) -> Obj:
    return {"name": name, "namespace": options.namespace, "labels": _labels(options, component)}


def _db_uri(options: PlatformOptions, database: str = DB_NAME) -> str:
    """A PostgreSQL URL whose password Kubernetes fills in from ``$(POSTGRES_PASSWORD)``
    (defined before it in the container's env: the password is hex, nothing to escape)."""
    return f"postgresql://{DB_USER}:$(POSTGRES_PASSWORD)@{_host(options, 'postgres', 5432)}/{database}"


_PASSWORD_ENV: Final = {"name": "POSTGRES_PASSWORD",
                        "valueFrom": {"secretKeyRef": {"name": "waziup-postgres", "key": "password"}}}

_CONTAINER_SECURITY: Final = {
    "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
}


def _pod_security(uid: int) -> Obj:
    return {"runAsNonRoot": True, "runAsUser": uid, "runAsGroup": uid, "fsGroup": uid,
            "seccompProfile": {"type": "RuntimeDefault"}}


@dataclass(frozen=True)
class _Service:
    """One platform service: a Deployment of the platform image, and its ClusterIP Service."""

    name: str
    args: list[str]
    ports: dict[str, int]  # the first is probed
    probe: str | None  # an HTTP path on the first port; None: TCP
    env: list[Obj] = field(default_factory=list)
    env_from: list[Obj] = field(default_factory=list)
    data_claim: str = ""  # a PersistentVolumeClaim for /data; "": an emptyDir
    replicas: int = 1
    account: str = ""  # a ServiceAccount whose token is mounted; "": none
    resources: Obj = field(default_factory=lambda: {"requests": {"cpu": "100m", "memory": "128Mi"},
                                                     "limits": {"memory": "512Mi"}})


def _deployment(options: PlatformOptions, s: _Service) -> Obj:
    first = next(iter(s.ports))
    check: Obj = {"httpGet": {"path": s.probe, "port": first}} if s.probe else {"tcpSocket": {"port": first}}
    data: Obj = {"persistentVolumeClaim": {"claimName": s.data_claim}} if s.data_claim else {"emptyDir": {}}
    container: Obj = {
        "name": s.name,
        "image": options.image,
        "args": s.args,
        "ports": [{"name": name, "containerPort": port, "protocol": "TCP"} for name, port in s.ports.items()],
        "resources": s.resources,
        "securityContext": dict(_CONTAINER_SECURITY),
        "readinessProbe": {**check, "periodSeconds": 5, "timeoutSeconds": 2},
        "livenessProbe": {**check, "initialDelaySeconds": 30, "periodSeconds": 10, "timeoutSeconds": 3,
                          "failureThreshold": 3},
        "volumeMounts": [{"name": "data", "mountPath": "/data"}, {"name": "tmp", "mountPath": "/tmp"}],
    }
    if s.env:
        container["env"] = s.env
    if s.env_from:
        container["envFrom"] = s.env_from
    pod: Obj = {
        "automountServiceAccountToken": bool(s.account),
        "enableServiceLinks": False,
        "securityContext": _pod_security(PLATFORM_UID),
        "containers": [container],
        "volumes": [{"name": "data", **data}, {"name": "tmp", "emptyDir": {}}],
    }
    if s.account:
        pod["serviceAccountName"] = s.account
    spec: Obj = {
        "replicas": s.replicas,
        "selector": {"matchLabels": {"app.kubernetes.io/name": s.name, "app.kubernetes.io/part-of": "waziup"}},
        "template": {"metadata": {"labels": _labels(options, s.name)}, "spec": pod},
    }
    if s.data_claim:  # one writer of the volume at a time
        spec["strategy"] = {"type": "Recreate"}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": _meta(options, s.name, s.name), "spec": spec}


def _service(options: PlatformOptions, s: _Service) -> Obj:
    return {
        "apiVersion": "v1", "kind": "Service", "metadata": _meta(options, s.name, s.name),
        "spec": {"type": "ClusterIP",
                 "selector": {"app.kubernetes.io/name": s.name, "app.kubernetes.io/part-of": "waziup"},
                 "ports": [{"name": name, "port": port, "targetPort": name, "protocol": "TCP"}
                           for name, port in s.ports.items()]},
    }


def _claim(options: PlatformOptions, name: str, component: str, size: str) -> Obj:
    spec: Obj = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}
    if options.storage_class:
        spec["storageClassName"] = options.storage_class
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": _meta(options, name, component),
            "spec": spec}


def _postgres(options: PlatformOptions) -> list[Obj]:
    """PostgreSQL: one StatefulSet replica, its data on a claim; the extra databases (the
    identity manager's and the orchestrator's own) made on first start."""
    labels = {"app.kubernetes.io/name": "postgres", "app.kubernetes.io/part-of": "waziup"}
    init = ("CREATE DATABASE waziup_idm OWNER waziup;\n"
            "CREATE DATABASE waziup_orchestrator OWNER waziup;\n")
    ready = {"exec": {"command": ["pg_isready", "-U", DB_USER, "-d", DB_NAME]}}
    claim = _claim(options, "data", "postgres", options.postgres_storage)
    claim["metadata"].pop("namespace")
    return [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(options, "postgres-init", "postgres"),
         "data": {"01-databases.sql": init}},
        {"apiVersion": "v1", "kind": "Service", "metadata": _meta(options, "postgres", "postgres"),
         "spec": {"type": "ClusterIP", "selector": labels,
                  "ports": [{"name": "postgres", "port": 5432, "targetPort": "postgres", "protocol": "TCP"}]}},
        {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": _meta(options, "postgres", "postgres"),
         "spec": {
             "serviceName": "postgres",
             "replicas": 1,
             "selector": {"matchLabels": labels},
             "template": {
                 "metadata": {"labels": _labels(options, "postgres")},
                 "spec": {
                     "automountServiceAccountToken": False,
                     "securityContext": _pod_security(POSTGRES_UID),
                     "containers": [{
                         "name": "postgres",
                         "image": options.postgres_image,
                         "env": [
                             {"name": "POSTGRES_USER", "value": DB_USER},
                             {"name": "POSTGRES_DB", "value": DB_NAME},
                             _PASSWORD_ENV,
                             {"name": "PGDATA", "value": "/var/lib/postgresql/data/pgdata"},
                         ],
                         "ports": [{"name": "postgres", "containerPort": 5432, "protocol": "TCP"}],
                         "resources": {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"memory": "2Gi"}},
                         "securityContext": {**_CONTAINER_SECURITY, "readOnlyRootFilesystem": False},
                         "readinessProbe": {**ready, "periodSeconds": 5},
                         "livenessProbe": {**ready, "initialDelaySeconds": 30, "periodSeconds": 10},
                         "volumeMounts": [
                             {"name": "data", "mountPath": "/var/lib/postgresql/data"},
                             {"name": "init", "mountPath": "/docker-entrypoint-initdb.d", "readOnly": True},
                         ],
                     }],
                     "volumes": [{"name": "init", "configMap": {"name": "postgres-init"}}],
                 },
             },
             "volumeClaimTemplates": [claim],
         }},
    ]


def _services(options: PlatformOptions) -> list[_Service]:
    broker, history = _url(options, "broker", 1026), _url(options, "history", 8668)
    agent, idm = _url(options, "iot-agent", 4041), _url(options, "idm", 3005)
    rules, dashboard = _url(options, "rules", 9090), _url(options, "dashboard", 3000)
    listen = ["-host", "0.0.0.0"]
    allowed = [_host(options, "iot-agent", 4041), _host(options, "dashboard", 3000) + "/notify"]
    if options.rules:
        allowed.append(_host(options, "rules", 9090) + "/notices")
    allowed.extend(options.app_networks)
    broker_args = ["broker", *listen, "-port", "1026", "-data", "/data", "-multiservice",
                   "-workers", str(options.broker_workers), "-feedURL", history + "/v2/notify"]
    if options.api:  # the WAZIUP API hands its datapoints to the history itself
        broker_args += ["-feedSkipTenants", API_TENANT]
    for rule in allowed:
        broker_args += ["-notifAllowedHosts", rule]
    services = [
        _Service("broker", broker_args, {"http": 1026}, "/version",
                 env=[_PASSWORD_ENV, {"name": "ORION_DB_URI", "value": _db_uri(options)}],
                 replicas=options.broker_replicas,
                 resources={"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"memory": "2Gi"}}),
        _Service("history", ["history", *listen, "-port", "8668", "-data", "/data"], {"http": 8668}, "/health",
                 env=[_PASSWORD_ENV, {"name": "WAZIUP_HISTORY_DB_URI", "value": _db_uri(options)}]),
        _Service("idm", ["idm", *listen, "-port", "3005", "-data", "/data",
                         "-issuer", options.idm_issuer or idm],
                 {"http": 3005}, "/.well-known/openid-configuration",
                 env=[_PASSWORD_ENV, {"name": "IDM_DB_URI", "value": _db_uri(options, "waziup_idm")},
                      {"name": "WAZIUP_ADMIN_PASSWORD",
                       "valueFrom": {"secretKeyRef": {"name": "waziup-idm", "key": "admin-password"}}}]),
        _Service("iot-agent", ["iot-agent", "--north-host", "0.0.0.0", "--north-port", "4041",
                               "--http-host", "0.0.0.0", "--http-port", "7896", "--cb-url", broker,
                               "--provider-url", agent, "--data-dir", "/data",
                               *(["--mqtt-uri", options.mqtt_uri] if options.mqtt_uri else [])],
                 {"north": 4041, "http": 7896}, "/iot/about", data_claim="iot-agent-data"),
        _Service("dashboard", ["dashboard", *listen, "-port", "3000", "-brokerURL", broker, "-historyURL", history,
                               "-agentURL", agent, *(["-rulesURL", rules] if options.rules else []),
                               "-notifyURL", dashboard,
                               *(["-publicURL", options.dashboard_public_url]
                                 if options.dashboard_public_url else [])],
                 {"http": 3000}, "/api/config"),
    ]
    if options.rules:
        services.append(_Service(
            "rules", ["rules", *listen, "-port", "9090", "-data", "/data", "-brokerURL", broker,
                      "-notifyURL", rules + "/notices"],
            {"http": 9090}, "/version",
            env=[_PASSWORD_ENV, {"name": "WAZIUP_RULES_DB_URI", "value": _db_uri(options)}]))
    if options.api:
        services.append(_Service(
            "api", ["api", *listen, "-port", "8800", "-data", "/data", "-brokerURL", broker, "-historyURL", history,
                    "-idmURL", idm, "-service", API_TENANT, "-mqttPort", "3883"],
            {"http": 8800, "mqtt": 3883}, "/api/v2/ontologies/units",
            env=[_PASSWORD_ENV, {"name": "WAZIUP_API_DB_URI", "value": _db_uri(options)}],
            # WAZIUP_API_CLIENT_ID/_SECRET, WAZIUP_API_ADMIN_USER/_PASSWORD (orchestrator/waziup_api/config.py)
            env_from=[{"secretRef": {"name": "waziup-api"}}]))
    if options.orchestrator:
        services.append(_Service(
            "orchestrator", ["orchestrator", *listen, "-port", "8080", "-data", "/data", "-brokerURL", broker,
                             "-historyURL", history, "-iotaURL", agent, "-idmURL", idm,
                             "-backend", "kubernetes", "-registry", options.registry],
            {"http": 8080}, None,
            env=[_PASSWORD_ENV, {"name": "WAZIUP_ORCH_DB_URI", "value": _db_uri(options, "waziup_orchestrator")}],
            # WAZIUP_ORCH_ADMIN_USER/_PASSWORD, WAZIUP_ORCH_CLIENT_ID/_SECRET (orchestrator/appserver/config.py)
            env_from=[{"secretRef": {"name": "waziup-orchestrator", "optional": True}}],
            account="orchestrator"))
    return services


def _orchestrator_rbac(options: PlatformOptions) -> list[Obj]:
    """What the orchestrator's ``KubernetesBackend`` does, and nothing more: the apps'
    namespaces and their objects."""
    rules = [
        {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "list", "create", "update", "patch"]},
        {"apiGroups": [""], "resources": ["configmaps", "secrets", "services"],
         "verbs": ["get", "list", "create", "update", "patch", "delete"]},
        {"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": ["apps"], "resources": ["deployments", "deployments/scale"],
         "verbs": ["get", "list", "create", "update", "patch", "delete"]},
        {"apiGroups": ["networking.k8s.io"], "resources": ["networkpolicies"],
         "verbs": ["get", "list", "create", "update", "patch", "delete"]},
    ]
    name = f"{options.namespace}-orchestrator"
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(options, "orchestrator", "orchestrator")},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": {"name": name, "labels": _labels(options, "orchestrator")}, "rules": rules},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": name, "labels": _labels(options, "orchestrator")},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
         "subjects": [{"kind": "ServiceAccount", "name": "orchestrator", "namespace": options.namespace}]},
    ]


def _network_policies(options: PlatformOptions, services: list[_Service]) -> list[Obj]:
    """PostgreSQL only from the platform's pods; the services only on their own ports."""
    ports = sorted({port for s in services for port in s.ports.values()})
    return [
        {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
         "metadata": _meta(options, "postgres", "postgres"),
         "spec": {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "postgres"}},
                  "policyTypes": ["Ingress"],
                  "ingress": [{"from": [{"podSelector": {"matchLabels": {"app.kubernetes.io/part-of": "waziup"}}}],
                               "ports": [{"protocol": "TCP", "port": 5432}]}]}},
        {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
         "metadata": _meta(options, "services", "platform"),
         "spec": {"podSelector": {"matchExpressions": [
                      {"key": "app.kubernetes.io/name", "operator": "In", "values": [s.name for s in services]}]},
                  "policyTypes": ["Ingress"],
                  "ingress": [{"ports": [{"protocol": "TCP", "port": port} for port in ports]}]}},
    ]


def render_platform(options: PlatformOptions | None = None) -> list[Obj]:
    """Every object of the platform, in the order ``kubectl apply`` should see them."""
    options = options or PlatformOptions()
    services = _services(options)
    objects: list[Obj] = [
        {"apiVersion": "v1", "kind": "Namespace",
         "metadata": {"name": options.namespace, "labels": {
             **PART, "pod-security.kubernetes.io/enforce": "restricted", **options.extra_labels}}},
        *_postgres(options),
        _claim(options, "iot-agent-data", "iot-agent", options.agent_storage),
    ]
    if options.orchestrator:
        objects += _orchestrator_rbac(options)
    for s in services:
        objects += [_deployment(options, s), _service(options, s)]
    # fresh dicts throughout: callers may change them, and YAML then has no anchors
    return json.loads(json.dumps(objects + _network_policies(options, services)))
