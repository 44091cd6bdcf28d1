"""An app's manifest (``waziup-app.yaml``): what the app is and what it needs, as frozen data.

Both back ends (local processes, ``local.py``; Kubernetes, ``kubernetes/``) read the same
``Manifest``, so a manifest that deploys on one means the same on the other. A manifest is
first checked against the published JSON Schema (``waziup-app.schema.json``, so editors and
CI can check it too), then the cross-field rules a schema cannot say (a health check's port
must be one of the ports) are checked here; every error names the field.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Final

import jsonschema
import yaml

MANIFEST_FILE: Final = "waziup-app.yaml"
SCHEMA_FILE: Final = Path(__file__).with_name("waziup-app.schema.json")
RUNTIMES: Final = ("python", "node", "shell", "node-red")
HISTORY: Final = ("none", "read", "write")
_UNITS: Final = {"": 1, "k": 1000, "K": 1000, "M": 1000**2, "G": 1000**3, "T": 1000**4,
                 "Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "Ti": 1024**4}
_MEMORY: Final = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|K|M|G|T|k)?$")


class ManifestError(ValueError):
    """The manifest is not valid; the message names the field (``needs.subscriptions[0].entities``)."""


@dataclass(frozen=True)
class Port:
    name: str
    port: int


@dataclass(frozen=True)
class Health:
    """An HTTP check (``path`` on the port named ``port``) or a ``command`` (exit 0: healthy).
    ``grace``: seconds after a start before failures count."""

    path: str | None = None
    port: str | None = None
    command: str | None = None
    interval: float = 10.0
    timeout: float = 2.0
    grace: float = 30.0


@dataclass(frozen=True)
class Resources:
    cpu: float | None = None  # cores (Kubernetes limits; locally only a lower priority)
    memory: str | None = None  # Kubernetes quantity: 256Mi, 1G, 500000000

    @property
    def memory_bytes(self) -> int | None:
        if self.memory is None:
            return None
        return memory_bytes(self.memory)


@dataclass(frozen=True)
class SensorNeed:
    """A discovery query; its hits reach the app as ``WAZIUP_SENSORS`` (JSON ``{name: [hits]}``)."""

    name: str
    query: str
    near: tuple[float, float, float] | None = None  # lat, lon, metres
    seen: float | None = None  # seconds: only sensors seen that recently


@dataclass(frozen=True)
class EntitySelector:
    id: str | None = None
    id_pattern: str | None = None
    type: str | None = None
    type_pattern: str | None = None

    def ngsi(self) -> dict[str, str]:
        """The NGSI-v2 ``subject.entities`` item."""
        out = {"id": self.id, "idPattern": self.id_pattern, "type": self.type, "typePattern": self.type_pattern}
        return {key: value for key, value in out.items() if value is not None}


@dataclass(frozen=True)
class SubscriptionNeed:
    """A broker subscription made for the app, notifying ``endpoint`` on its first port."""

    entities: tuple[EntitySelector, ...]
    attrs: tuple[str, ...] = ()
    condition: tuple[str, ...] = ()
    endpoint: str = "/notify"
    throttling: int = 0


@dataclass(frozen=True)
class CommandNeed:
    type: str  # a device type whose commands the app may send


@dataclass(frozen=True)
class Needs:
    sensors: tuple[SensorNeed, ...] = ()
    subscriptions: tuple[SubscriptionNeed, ...] = ()
    history: str = "none"  # none | read | write
    commands: tuple[CommandNeed, ...] = ()


@dataclass(frozen=True)
class Manifest:
    name: str
    runtime: str
    entry: str
    env: dict[str, str] = field(default_factory=dict)
    ports: tuple[Port, ...] = ()
    health: Health | None = None
    resources: Resources | None = None
    replicas: int = 1
    tenant: str | None = None  # None: the platform's default tenant
    service_path: str = "/"
    needs: Needs = field(default_factory=Needs)

    @property
    def endpoint_port(self) -> Port | None:
        """The app's endpoint (its first port), where subscriptions notify it."""
        return self.ports[0] if self.ports else None

    def port_named(self, name: str) -> Port | None:
        return next((port for port in self.ports if port.name == name), None)


def memory_bytes(quantity: str) -> int:
    """A Kubernetes memory quantity in bytes (``256Mi`` -> 268435456)."""
    match = _MEMORY.match(quantity)
    if match is None:
        raise ManifestError(f"resources.memory: {quantity!r} is not a quantity such as 256Mi or 1G")
    return int(float(match.group(1)) * _UNITS[match.group(2) or ""])


@cache
def schema() -> dict[str, Any]:
    """The published JSON Schema of ``waziup-app.yaml``."""
    return dict(json.loads(SCHEMA_FILE.read_text()))


def _where(path: Any) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "the manifest"


def _check_schema(doc: Any) -> None:
    validator = jsonschema.Draft202012Validator(schema())
    errors = sorted(validator.iter_errors(doc), key=lambda e: (len(list(e.absolute_path)), list(map(str, e.path))))
    if not errors:
        return
    error = jsonschema.exceptions.best_match(errors) or errors[0]
    where = _where(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = set(error.schema.get("properties", {}))
        extra = sorted(key for key in error.instance if key not in allowed)
        if extra:
            where = _where([*error.absolute_path, extra[0]])
            raise ManifestError(f"{where}: unknown field (known: {', '.join(sorted(allowed))})")
    if error.validator == "required" and isinstance(error.validator_value, list) and isinstance(error.instance, dict):
        missing = [key for key in error.validator_value if key not in error.instance]
        if missing:
            raise ManifestError(f"{_where([*error.absolute_path, missing[0]])}: required")
    if error.validator == "oneOf" and where.endswith("health"):
        raise ManifestError(f"{where}: give either path or command")
    if error.validator == "oneOf":
        raise ManifestError(f"{where}: give either id or idPattern")
    raise ManifestError(f"{where}: {error.message}")


def _near(text: str) -> tuple[float, float, float]:
    lat, lon, metres = (float(part) for part in text.split(","))
    return lat, lon, metres


def parse_manifest(doc: Any) -> Manifest:
    """The Manifest of a parsed ``waziup-app.yaml`` (ManifestError naming the field otherwise)."""
    _check_schema(doc)
    ports = tuple(Port(p["name"], int(p["port"])) for p in doc.get("ports", []))
    names = [port.name for port in ports]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise ManifestError(f"ports[{i}].name: {name!r} is given twice")
    health = None
    if "health" in doc:
        h = doc["health"]
        health = Health(path=h.get("path"), port=h.get("port"), command=h.get("command"),
                        interval=float(h.get("interval", 10)), timeout=float(h.get("timeout", 2)),
                        grace=float(h.get("grace", 30)))
        if health.path is not None:
            if not ports:
                raise ManifestError("health.path: an HTTP health check needs a port (ports)")
            if health.port is None:
                health = Health(health.path, ports[0].name, None, health.interval, health.timeout, health.grace)
            elif health.port not in names:
                raise ManifestError(f"health.port: {health.port!r} is not one of the ports ({', '.join(names)})")
        elif health.port is not None:
            raise ManifestError("health.port: only an HTTP health check (path) has a port")
    resources = None
    if "resources" in doc:
        r = doc["resources"]
        resources = Resources(cpu=float(r["cpu"]) if "cpu" in r else None, memory=r.get("memory"))
        resources.memory_bytes  # noqa: B018  (checks the quantity)
    n = doc.get("needs", {})
    subscriptions = tuple(
        SubscriptionNeed(
            entities=tuple(EntitySelector(e.get("id"), e.get("idPattern"), e.get("type"), e.get("typePattern"))
                           for e in s["entities"]),
            attrs=tuple(s.get("attrs", [])), condition=tuple(s.get("condition", [])),
            endpoint=s.get("endpoint", "/notify"), throttling=int(s.get("throttling", 0)))
        for s in n.get("subscriptions", []))
    if subscriptions and not ports:
        raise ManifestError("needs.subscriptions: subscriptions notify the app's first port: declare ports")
    sensors = []
    for i, s in enumerate(n.get("sensors", [])):
        try:
            near = _near(s["near"]) if "near" in s else None
        except ValueError:
            raise ManifestError(f"needs.sensors[{i}].near: 'lat,lon,metres'") from None
        sensors.append(SensorNeed(s["name"], s["query"], near, float(s["seen"]) if "seen" in s else None))
    needs = Needs(sensors=tuple(sensors), subscriptions=subscriptions, history=n.get("history", "none"),
                  commands=tuple(CommandNeed(c["type"]) for c in n.get("commands", [])))
    return Manifest(name=doc["name"], runtime=doc["runtime"], entry=doc["entry"], env=dict(doc.get("env", {})),
                    ports=ports, health=health, resources=resources, replicas=int(doc.get("replicas", 1)),
                    tenant=doc.get("tenant"), service_path=doc.get("servicePath", "/"), needs=needs)


def load_manifest(folder: Path | str) -> Manifest:
    """The manifest of an app's folder (``waziup-app.yaml``)."""
    path = Path(folder, MANIFEST_FILE)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ManifestError(f"no {MANIFEST_FILE} at the top of the app's source") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{MANIFEST_FILE} cannot be read: {exc}") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ManifestError(f"{MANIFEST_FILE} is not valid YAML: {exc}") from None
    return parse_manifest(doc)
