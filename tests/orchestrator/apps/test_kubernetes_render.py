"""The Kubernetes objects of apps and of the platform, checked offline against the Kubernetes
1.37 schemas (kubernetes-validate, strict: no unknown field anywhere), for any manifest
(hypothesis), and deploy/kubernetes/ as committed."""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devtools.render_kubernetes import OUT, render_files
from orchestrator.apps.kubernetes.dockerfile import command, dockerfile, image_name
from orchestrator.apps.kubernetes.images import source_digest
from orchestrator.apps.kubernetes.names import dns_label, env_key, port_name, tenant_namespace
from orchestrator.apps.kubernetes.platform import PlatformOptions, render_platform
from orchestrator.apps.kubernetes.render import PlatformRefs, render_app
from orchestrator.apps.manifest import Manifest, parse_manifest

K8S = "1.37.0"
LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
IANA = re.compile(r"^(?=.*[a-z])[a-z0-9]+(-[a-z0-9]+)*$")
C_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
IMAGE = re.compile(r"^[a-z0-9.:-]+(/[a-z0-9]+([._-]+[a-z0-9]+)*)+:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")

# -- manifests ----------------------------------------------------------------------------------

names = st.from_regex(r"\A[a-z][a-z0-9-]{0,38}[a-z0-9]\Z")
port_names = st.from_regex(r"\A[a-z][a-z0-9-]{0,14}\Z").filter(lambda n: port_name(n) == n)
words = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=20)


@st.composite
def manifest_docs(draw: st.DrawFn) -> dict[str, Any]:
    doc: dict[str, Any] = {"name": draw(names), "runtime": draw(st.sampled_from(["python", "node", "shell", "node-red"])),
                           "entry": draw(st.sampled_from(["app.py", "-m app.main", "index.js", "./run.sh --fast",
                                                          "flows.json"]))}
    ports = draw(st.lists(st.tuples(port_names, st.integers(1, 65535)), max_size=3, unique_by=lambda p: p[0]))
    if ports:
        doc["ports"] = [{"name": n, "port": p} for n, p in ports]
    if draw(st.booleans()):
        doc["env"] = draw(st.dictionaries(st.from_regex(r"\A[A-Za-z_][A-Za-z0-9_]{0,15}\Z"), words, max_size=4))
    health = draw(st.sampled_from(["none", "command"] + (["path"] if ports else [])))
    timing = {"interval": draw(st.floats(0.1, 300)), "timeout": draw(st.floats(0.1, 60)), "grace": draw(st.floats(0, 600))}
    if health == "path":
        doc["health"] = {"path": "/health", "port": draw(st.sampled_from([n for n, _ in ports])), **timing}
    elif health == "command":
        doc["health"] = {"command": "test -f /tmp/ok", **timing}
    resources: dict[str, Any] = {}
    if draw(st.booleans()):
        resources["cpu"] = draw(st.floats(0.001, 64))
    if draw(st.booleans()):
        resources["memory"] = draw(st.sampled_from(["64Mi", "256Mi", "1Gi", "500M", "1000000"]))
    if resources or draw(st.booleans()):
        doc["resources"] = resources
    doc["replicas"] = draw(st.integers(0, 100))
    if draw(st.booleans()):
        doc["tenant"] = draw(st.from_regex(r"\A[A-Za-z0-9_]{0,50}\Z"))
    doc["servicePath"] = draw(st.sampled_from(["/", "/garden", "/farm_7/field2"]))
    needs: dict[str, Any] = {"history": draw(st.sampled_from(["none", "read", "write"]))}
    if ports and draw(st.booleans()):
        needs["subscriptions"] = [{"entities": [{"idPattern": ".*", "type": "Room"}], "attrs": ["temperature"]}]
    if draw(st.booleans()):
        needs["sensors"] = [{"name": "soil", "query": "soil moisture", "near": "43.1,5.9,1000"}]
    if draw(st.booleans()):
        needs["commands"] = [{"type": "Valve"}]
    doc["needs"] = needs
    return doc


credentials = st.dictionaries(st.sampled_from(["WAZIUP_CLIENT_ID", "WAZIUP_CLIENT_SECRET", "WAZIUP_USERNAME",
                                               "WAZIUP_PASSWORD", "WAZIUP_TOKEN_URL"]),
                              st.from_regex(r"\As3cr3t-[A-Za-z0-9]{8,20}\Z"))


def validate(obj: dict[str, Any]) -> None:
    try:
        kubernetes_validate.validate(obj, K8S, strict=True)
    except kubernetes_validate.ValidationError as exc:
        pytest.fail(f"{obj['kind']} {obj['metadata'].get('name')}: {str(exc)[:2000]}")


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [obj for obj in objects if obj["kind"] == kind]


SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# -- an app's objects ---------------------------------------------------------------------------


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])  # ~0.1 s an example
@given(manifest_docs(), credentials)
def test_every_object_of_any_app_passes_the_kubernetes_schemas(doc: dict[str, Any], creds: dict[str, str]) -> None:
    manifest = parse_manifest(doc)
    objects = render_app(manifest, image_name("registry.test:5000/apps", manifest, "a" * 64), PlatformRefs(), creds,
                         sensors={"soil": [{"id": "urn:ngsi:Soil:1"}]})
    for obj in objects:
        validate(obj)
        assert LABEL.match(obj["metadata"]["name"]) and len(obj["metadata"]["name"]) <= 63
        for value in obj["metadata"].get("labels", {}).values():
            assert LABEL_VALUE.match(value) and len(value) <= 63
    kinds = [obj["kind"] for obj in objects]
    assert kinds[0] == "Namespace"
    assert kinds.count("Service") == (1 if manifest.ports else 0)


@SETTINGS
@given(manifest_docs(), credentials)
def test_one_namespace_per_tenant(doc: dict[str, Any], creds: dict[str, str]) -> None:
    manifest = parse_manifest(doc)
    objects = render_app(manifest, "registry.test/x:1", PlatformRefs(), creds)
    namespace = tenant_namespace(manifest.tenant)
    assert objects[0]["metadata"]["name"] == namespace
    readable = f"waziup-{manifest.tenant.lower().replace('_', '-')}" if manifest.tenant else "waziup-default"
    if LABEL.match(readable) and len(readable) <= 63:
        assert namespace == readable
    else:  # a tenant "_" or "a__b" makes no label as is: a readable part and a hash of the name
        assert LABEL.match(namespace) and namespace.startswith("waziup-") and namespace != readable
    assert {obj["metadata"]["namespace"] for obj in objects[1:]} == {namespace}


@given(st.from_regex(r"\A[A-Za-z0-9_]{1,50}\Z"), st.from_regex(r"\A[A-Za-z0-9_]{1,50}\Z"))
def test_different_tenants_get_different_namespaces(a: str, b: str) -> None:
    if a.lower() != b.lower():
        assert tenant_namespace(a) != tenant_namespace(b)
    assert LABEL.match(tenant_namespace(a)) and len(tenant_namespace(a)) <= 63


@SETTINGS
@given(manifest_docs(), credentials)
def test_credentials_only_in_the_secret(doc: dict[str, Any], creds: dict[str, str]) -> None:
    manifest = parse_manifest(doc)
    objects = render_app(manifest, "registry.test/x:1", PlatformRefs(), creds)
    (secret,) = by_kind(objects, "Secret")
    assert secret["stringData"] == creds
    elsewhere = json.dumps([obj for obj in objects if obj["kind"] != "Secret"])
    for value in creds.values():
        assert value not in elsewhere
    (deployment,) = by_kind(objects, "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert {"secretRef": {"name": secret["metadata"]["name"]}} in container["envFrom"]
    assert "env" not in container  # nothing given literally


@SETTINGS
@given(manifest_docs())
def test_deployment_follows_the_manifest(doc: dict[str, Any]) -> None:
    manifest = parse_manifest(doc)
    objects = render_app(manifest, "registry.test/x:1", PlatformRefs(), {})
    (deployment,) = by_kind(objects, "Deployment")
    (config,) = by_kind(objects, "ConfigMap")
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert deployment["spec"]["replicas"] == manifest.replicas
    assert deployment["spec"]["selector"]["matchLabels"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    assert deployment["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "waziup"
    assert deployment["metadata"]["labels"]["app.kubernetes.io/name"] == manifest.name
    assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["runAsUser"] != 0
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert pod["automountServiceAccountToken"] is False
    assert [p["containerPort"] for p in container["ports"]] == [p.port for p in manifest.ports]
    assert all(IANA.match(p["name"]) and len(p["name"]) <= 15 for p in container["ports"])
    assert ("livenessProbe" in container) == (manifest.health is not None) == ("readinessProbe" in container)
    if manifest.health is not None:
        assert container["livenessProbe"]["initialDelaySeconds"] >= manifest.health.grace
        assert container["livenessProbe"]["periodSeconds"] >= manifest.health.interval
    if manifest.resources is not None and manifest.resources.memory is not None:
        assert container["resources"]["limits"]["memory"] == manifest.resources.memory
    assert all(C_IDENTIFIER.match(key) for key in config["data"])
    assert config["data"]["WAZIUP_TENANT"] == (manifest.tenant or "")
    assert config["data"]["WAZIUP_SERVICE_PATH"] == manifest.service_path
    for key, value in manifest.env.items():
        if not key.startswith(("WAZIUP_", "FIWARE_", "PORT")):
            assert config["data"][key] == value


@SETTINGS
@given(manifest_docs())
def test_network_policy_lets_only_the_platform_in(doc: dict[str, Any]) -> None:
    manifest = parse_manifest(doc)
    (policy,) = by_kind(render_app(manifest, "registry.test/x:1", PlatformRefs(), {}), "NetworkPolicy")
    spec = policy["spec"]
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    platform = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "waziup"}}}
    assert all(rule["from"] == [platform] for rule in spec["ingress"])
    assert len(spec["ingress"]) == (1 if manifest.ports else 0)
    (to_platform,) = spec["egress"][0]["to"]
    assert to_platform["namespaceSelector"] == platform["namespaceSelector"]
    (reach,) = to_platform["podSelector"]["matchExpressions"]
    assert "broker" in reach["values"] and "postgres" not in reach["values"] and "orchestrator" not in reach["values"]
    assert "ports" not in spec["egress"][0] or spec["egress"][0]["ports"]
    assert {p["port"] for p in spec["egress"][1]["ports"]} == {53}


def test_the_issue_example_renders_as_described() -> None:
    doc = yaml.safe_load((Path(__file__).parent / "k8s_recordings" / "average-app.yaml").read_text())
    manifest = parse_manifest(doc)
    objects = render_app(manifest, "registry.test/farm7-average-app:abc", PlatformRefs(), {"WAZIUP_PASSWORD": "p"})
    (deployment,) = by_kind(objects, "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"] == {"requests": {"cpu": "500m", "memory": "256Mi"},
                                      "limits": {"cpu": "500m", "memory": "256Mi"}}
    assert container["readinessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    (service,) = by_kind(objects, "Service")
    assert service["spec"]["ports"] == [{"name": "http", "port": 8000, "targetPort": "http", "protocol": "TCP"}]
    (config,) = by_kind(objects, "ConfigMap")
    assert config["data"]["WAZIUP_BROKER_URL"] == "http://broker.waziup.svc.cluster.local:1026"
    assert config["data"]["PORT"] == "8000" and config["data"]["KEY"] == "value"


# -- names, images ------------------------------------------------------------------------------


@given(st.text(max_size=120), st.integers(10, 63))
def test_dns_label_is_always_a_label(text: str, limit: int) -> None:
    label = dns_label(text, limit)
    assert LABEL.match(label) and len(label) <= limit


@given(st.text(min_size=1, max_size=30))
def test_env_key_and_port_name_are_valid(text: str) -> None:
    assert C_IDENTIFIER.match(env_key(text))
    assert IANA.match(port_name(text)) and len(port_name(text)) <= 15


@SETTINGS
@given(manifest_docs(), st.from_regex(r"\A[0-9a-f]{64}\Z"))
def test_dockerfile_and_image_name(doc: dict[str, Any], digest: str) -> None:
    manifest = parse_manifest(doc)
    text = dockerfile(manifest)
    assert text.startswith("FROM ") and "\nUSER 10001:10001\n" in text
    cmd_line = text.strip().splitlines()[-1]
    assert cmd_line.startswith("CMD ") and json.loads(cmd_line[4:]) == command(manifest)
    image = image_name("registry.test:5000/apps", manifest, digest)
    assert IMAGE.match(image) and image.endswith(":" + digest)
    assert f"/{dns_label((manifest.tenant or 'default') + '-' + manifest.name)}:" in image


def test_runtimes_commands() -> None:
    def cmd(runtime: str, entry: str) -> list[str]:
        return command(Manifest(name="a1", runtime=runtime, entry=entry))

    assert cmd("python", "-m app.main") == ["python", "-m", "app.main"]
    assert cmd("node", "index.js") == ["node", "index.js"]
    assert cmd("shell", "./run.sh --fast") == ["/bin/sh", "-c", "./run.sh --fast"]
    assert cmd("node-red", "flows.json") == ["node-red", "--userDir", "/data", "/app/flows.json"]


def test_source_digest_follows_the_content(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("print(1)\n")
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "x.py").write_text("x = 1\n")
    first = source_digest(tmp_path)
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "HEAD").write_text("ref: main\n")
    assert source_digest(tmp_path) == first
    (tmp_path / "lib" / "x.py").write_text("x = 2\n")
    assert source_digest(tmp_path) != first
    assert re.fullmatch(r"[0-9a-f]{64}", first)


# -- the platform -------------------------------------------------------------------------------


def _platform_objects() -> list[dict[str, Any]]:
    """Everything the platform may have (the orchestrator too, off by default)."""
    return render_platform(PlatformOptions(orchestrator=True))


def test_platform_objects_pass_the_kubernetes_schemas() -> None:
    objects = _platform_objects()
    for obj in objects:
        validate(obj)
    kinds = {obj["kind"] for obj in objects}
    assert {"Namespace", "StatefulSet", "PersistentVolumeClaim", "Deployment", "Service", "NetworkPolicy",
            "ConfigMap", "ServiceAccount", "ClusterRole", "ClusterRoleBinding"} <= kinds
    deployments = {obj["metadata"]["name"] for obj in by_kind(objects, "Deployment")}
    assert {"broker", "iot-agent", "history", "idm", "dashboard", "api", "rules", "orchestrator"} == deployments
    assert all(obj["metadata"].get("namespace", "waziup") == "waziup" for obj in objects)


def test_deploy_folder_is_up_to_date_and_valid() -> None:
    files = render_files()
    assert sorted(files) == sorted(path.name for path in OUT.glob("*.yaml")), "python -m devtools.render_kubernetes"
    for name, text in files.items():
        assert (OUT / name).read_text() == text, f"{name}: python -m devtools.render_kubernetes"
        for obj in yaml.safe_load_all(text):
            validate(obj)


def test_no_password_is_written_in_the_platform() -> None:
    objects = _platform_objects()
    assert not by_kind(objects, "Secret")  # the operator makes them, with generated values
    for obj in objects:
        pod = obj.get("spec", {}).get("template", {}).get("spec", {})
        for container in pod.get("containers", []):
            for env in container.get("env", []):
                if re.search(r"PASSWORD|SECRET|PASS$", env["name"]):
                    assert "value" not in env and "secretKeyRef" in env["valueFrom"], env
                if "value" in env and env["value"].startswith("postgresql://"):
                    assert ":$(POSTGRES_PASSWORD)@" in env["value"]
    text = "\n".join(render_files().values()).lower()
    for default in ("password: ", "changeme", "postgres:postgres@", "admin123"):
        assert default not in text


def test_broker_runs_several_workers_on_postgresql() -> None:
    (broker,) = [obj for obj in by_kind(_platform_objects(), "Deployment") if obj["metadata"]["name"] == "broker"]
    container = broker["spec"]["template"]["spec"]["containers"][0]
    args = container["args"]
    assert args[args.index("-workers") + 1] == "4"
    env = {item["name"]: item for item in container["env"]}
    assert env["ORION_DB_URI"]["value"].startswith("postgresql://waziup:$(POSTGRES_PASSWORD)@postgres.waziup.svc")
    assert [item["name"] for item in container["env"]].index("POSTGRES_PASSWORD") == 0  # defined before use


SERVICE_CONFIGS = {"broker": "broker.config", "history": "analytics.history.config", "idm": "security.idm.config",
                   "iot-agent": "iot_agent.config", "dashboard": "analytics.dashboard.config",
                   "rules": "analytics.rules.service.config", "api": "orchestrator.waziup_api.config",
                   "orchestrator": "orchestrator.appserver.config"}
NOT_YET = ("-backend", "-registry")  # the orchestrator's back-end options (orchestrator/appserver, another change)


@pytest.mark.parametrize("name", sorted(SERVICE_CONFIGS))
def test_platform_commands_are_what_the_services_accept(name: str) -> None:
    """Each container's arguments and environment read by the service's own option table."""
    (deployment,) = [obj for obj in by_kind(_platform_objects(), "Deployment") if obj["metadata"]["name"] == name]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    environ = {"POSTGRES_PASSWORD": "0123abcd"}
    for item in container.get("env", []):
        value = item.get("value", "generated-secret")
        environ[item["name"]] = re.sub(r"\$\((\w+)\)", lambda m: environ[m.group(1)], value)
    if name == "api":  # its Secret's variables
        environ.update({"WAZIUP_API_CLIENT_ID": "c", "WAZIUP_API_CLIENT_SECRET": "s", "WAZIUP_API_ADMIN_USER": "a",
                        "WAZIUP_API_ADMIN_PASSWORD": "p"})
    args = list(container["args"][1:])
    config = importlib.import_module(SERVICE_CONFIGS[name])
    options = {row for option in config.OPTIONS.options for row in option.names} \
        if hasattr(config.OPTIONS, "options") else set()
    for flag in NOT_YET:
        if flag in args and flag not in options:
            i = args.index(flag)
            del args[i:i + 2]
    parsed = config.parse(args, environ)
    if hasattr(parsed, "host"):
        assert parsed.host == "0.0.0.0"


def test_every_platform_pod_meets_the_restricted_pod_security_standard() -> None:
    objects = _platform_objects()
    assert objects[0]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    pods = [obj["spec"]["template"]["spec"] for obj in objects if obj["kind"] in ("Deployment", "StatefulSet")]
    assert len(pods) == 9
    for pod in pods:
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] > 0
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False and context["capabilities"] == {"drop": ["ALL"]}
            assert "hostPort" not in json.dumps(container)
        assert all(set(volume) & {"emptyDir", "configMap", "secret", "persistentVolumeClaim"}
                   for volume in pod.get("volumes", []))
