"""The manifest (``orchestrator/apps/manifest.py``): the schema and the dataclasses agree,
valid manifests parse, and every invalid field is named in the error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.apps.manifest import (
    Health, ManifestError, Port, load_manifest, memory_bytes, parse_manifest, schema,
)

ROOT = Path(__file__).resolve().parents[3]

names = st.from_regex(r"^[a-z][a-z0-9-]{0,10}[a-z0-9]$", fullmatch=True)
port_names = st.from_regex(r"^[a-z][a-z0-9]{0,6}$", fullmatch=True)
words = st.from_regex(r"^[A-Za-z][A-Za-z0-9_]{0,8}$", fullmatch=True)


@st.composite
def manifests(draw: st.DrawFn) -> dict[str, Any]:
    doc: dict[str, Any] = {"name": draw(names), "runtime": draw(st.sampled_from(["python", "node", "shell", "node-red"])),
                           "entry": draw(st.sampled_from(["app.py", "-m pkg", "index.js", "echo hi", "flows.json"]))}
    ports = draw(st.lists(port_names, max_size=3, unique=True))
    if ports:
        doc["ports"] = [{"name": n, "port": draw(st.integers(1, 65535))} for n in ports]
        if draw(st.booleans()):
            doc["health"] = {"path": "/health", "port": draw(st.sampled_from(ports)),
                             "interval": draw(st.integers(1, 60))}
        if draw(st.booleans()):
            doc["needs"] = {"subscriptions": [{"entities": [{"idPattern": ".*", "type": draw(words)}],
                                               "attrs": draw(st.lists(words, max_size=3)),
                                               "throttling": draw(st.integers(0, 100))}]}
    elif draw(st.booleans()):
        doc["health"] = {"command": "true"}
    if draw(st.booleans()):
        doc["env"] = draw(st.dictionaries(words, st.text(max_size=10), max_size=3))
    if draw(st.booleans()):
        doc["resources"] = {"cpu": draw(st.floats(0.01, 8)), "memory": f"{draw(st.integers(1, 4096))}Mi"}
    if draw(st.booleans()):
        doc.setdefault("needs", {})["history"] = draw(st.sampled_from(["none", "read", "write"]))
        doc["needs"]["commands"] = [{"type": draw(words)}]
    if draw(st.booleans()):
        doc["tenant"] = draw(words)
        doc["servicePath"] = "/" + draw(words)
    return doc


@settings(max_examples=150, deadline=None)
@given(manifests())
def test_valid_manifests_parse(doc: dict[str, Any]) -> None:
    manifest = parse_manifest(doc)
    assert manifest.name == doc["name"]
    assert [p.name for p in manifest.ports] == [p["name"] for p in doc.get("ports", [])]
    assert manifest.env == doc.get("env", {})
    if manifest.health is not None and manifest.health.path:
        assert manifest.port_named(manifest.health.port or "") is not None
    assert len(manifest.needs.subscriptions) == len(doc.get("needs", {}).get("subscriptions", []))


BAD_FIELDS: list[tuple[str, Any, str]] = [
    ("name", "Bad_Name", "name"),
    ("name", "x", "name"),
    ("runtime", "java", "runtime"),
    ("entry", "", "entry"),
    ("env", {"A": 1}, "env.A"),
    ("ports", [{"name": "http", "port": 70000}], "ports[0].port"),
    ("replicas", -1, "replicas"),
    ("servicePath", "farm", "servicePath"),
    ("resources", {"memory": "lots"}, "resources.memory"),
    ("needs", {"history": "all"}, "needs.history"),
    ("needs", {"subscriptions": [{"entities": []}]}, "needs.subscriptions[0].entities"),
    ("needs", {"commands": [{}]}, "needs.commands[0].type"),
    ("bogus", 1, "bogus"),
]


@pytest.mark.parametrize(("key", "value", "named"), BAD_FIELDS)
def test_invalid_field_is_named(key: str, value: Any, named: str) -> None:
    doc = {"name": "ok-app", "runtime": "python", "entry": "app.py", "ports": [{"name": "http", "port": 8000}], key: value}
    with pytest.raises(ManifestError) as caught:
        parse_manifest(doc)
    assert str(caught.value).startswith(named), str(caught.value)


@settings(max_examples=80, deadline=None)
@given(manifests(), st.sampled_from(["name", "runtime", "entry"]), st.one_of(st.integers(), st.none(), st.just("")))
def test_a_broken_required_field_is_named(doc: dict[str, Any], key: str, value: Any) -> None:
    doc[key] = value
    with pytest.raises(ManifestError, match=f"^{key}"):
        parse_manifest(doc)


def test_missing_required_field() -> None:
    with pytest.raises(ManifestError, match="^entry: required"):
        parse_manifest({"name": "ok-app", "runtime": "python"})


def test_cross_field_rules() -> None:
    with pytest.raises(ManifestError, match="^health.port"):
        parse_manifest({"name": "ab", "runtime": "shell", "entry": "x", "ports": [{"name": "http", "port": 1}],
                        "health": {"path": "/h", "port": "admin"}})
    with pytest.raises(ManifestError, match="^needs.subscriptions"):
        parse_manifest({"name": "ab", "runtime": "shell", "entry": "x",
                        "needs": {"subscriptions": [{"entities": [{"id": "a"}]}]}})
    with pytest.raises(ManifestError, match="^ports\\[1\\].name"):
        parse_manifest({"name": "ab", "runtime": "shell", "entry": "x",
                        "ports": [{"name": "http", "port": 1}, {"name": "http", "port": 2}]})
    with pytest.raises(ManifestError, match="^health: give either path or command"):
        parse_manifest({"name": "ab", "runtime": "shell", "entry": "x", "health": {"path": "/h", "command": "true"}})


def test_defaults_and_health_port() -> None:
    manifest = parse_manifest({"name": "ab", "runtime": "shell", "entry": "x", "ports": [{"name": "web", "port": 80}],
                               "health": {"path": "/h"}})
    assert manifest.ports == (Port("web", 80),)
    assert manifest.health == Health(path="/h", port="web", interval=10, timeout=2, grace=30)
    assert manifest.replicas == 1 and manifest.tenant is None and manifest.service_path == "/"
    assert manifest.needs.history == "none"


@given(st.integers(0, 10**6), st.sampled_from(["", "Ki", "Mi", "Gi", "K", "M", "G"]))
def test_memory_quantities(number: int, unit: str) -> None:
    factor = {"": 1, "Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "K": 1000, "M": 1000**2, "G": 1000**3}[unit]
    assert memory_bytes(f"{number}{unit}") == number * factor


def test_the_example_manifest_is_valid_and_the_schema_is_published() -> None:
    manifest = load_manifest(ROOT / "examples" / "average-app")
    assert manifest.name == "average-app" and manifest.needs.subscriptions
    assert schema()["title"] == "waziup-app.yaml"


def test_load_manifest_errors(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="no waziup-app.yaml"):
        load_manifest(tmp_path)
    (tmp_path / "waziup-app.yaml").write_text("name: [unclosed")
    with pytest.raises(ManifestError, match="not valid YAML"):
        load_manifest(tmp_path)
    (tmp_path / "waziup-app.yaml").write_text(yaml.safe_dump({"name": "ab", "runtime": "shell", "entry": "true"}))
    assert load_manifest(tmp_path).runtime == "shell"
