"""IoT agent configuration: command-line flags, then ``IOTA_*`` environment variables, then defaults.

The variables carry the names the FIWARE IoT agents read (``IOTA_NORTH_PORT``,
``IOTA_CB_HOST``, ``IOTA_PROVIDER_URL``...), so a docker-compose written for
iotagent-ul/iotagent-json runs this agent unchanged. Each option also has a ``--kebab-case``
flag. A bad value stops start-up with a message naming the option and the value.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, fields
from typing import Any

DEFAULT_DATA_DIR = "data"


class ConfigError(Exception):
    """A flag or environment variable has no valid value."""


@dataclass(frozen=True)
class Config:
    # north port: provisioning API and NGSI context provider
    north_host: str = "0.0.0.0"
    north_port: int = 4041
    # south HTTP port: /iot/d (UL), /iot/json
    http_host: str = "0.0.0.0"
    http_port: int = 7896
    # MQTT southbound (disabled while mqtt_host is empty)
    mqtt_host: str = ""
    mqtt_port: int = 1883
    mqtt_username: str = ""
    mqtt_password: str = ""
    mqtt_qos: int = 0
    mqtt_retain: bool = False
    mqtt_client_id: str = ""
    mqtt_uri: str = ""  # mqtt://[user:password@]host[:port]: sets the four above (-mqttURI)
    # context broker
    cb_host: str = "localhost"
    cb_port: int = 1026
    cb_url: str = ""  # overrides cb_host/cb_port when set (IOTA_CB_URL)
    cb_flow_control: bool = False
    provider_url: str = "http://localhost:4041"
    # provisioning defaults
    default_resource: str = "/iot/d"
    default_key: str = ""
    default_transport: str = "MQTT"
    default_type: str = "Thing"
    default_entity_name_conjunction: str = ":"
    timestamp: bool = False
    autocast: bool = True
    explicit_attrs: bool = False
    cmd_mode: str = "legacy"
    polling_expiration: int = 0  # ms; 0: poll commands never expire
    polling_daemon_frequency: int = 0  # ms
    # persistence: "sqlite" (file under data_dir) or "memory"; "mongodb" is read as "sqlite"
    registry_type: str = "sqlite"
    data_dir: str = DEFAULT_DATA_DIR
    log_level: str = "INFO"

    @property
    def broker_url(self) -> str:
        return (self.cb_url or f"http://{self.cb_host}:{self.cb_port}").rstrip("/")

    @property
    def registry_path(self) -> str | None:
        """SQLite file of the provisioning registry, or None to keep it in memory."""
        if self.registry_type == "memory":
            return None
        return os.path.join(self.data_dir, "iot_agent.db")


# Config field -> environment variable. Flags are the field name in kebab case.
ENVIRONMENT: dict[str, str] = {
    "north_host": "IOTA_NORTH_HOST",
    "north_port": "IOTA_NORTH_PORT",
    "http_host": "IOTA_HTTP_HOST",
    "http_port": "IOTA_HTTP_PORT",
    "mqtt_host": "IOTA_MQTT_HOST",
    "mqtt_port": "IOTA_MQTT_PORT",
    "mqtt_username": "IOTA_MQTT_USERNAME",
    "mqtt_password": "IOTA_MQTT_PASSWORD",
    "mqtt_qos": "IOTA_MQTT_QOS",
    "mqtt_retain": "IOTA_MQTT_RETAIN",
    "mqtt_client_id": "IOTA_MQTT_CLIENT_ID",
    "mqtt_uri": "IOTA_MQTT_URI",
    "cb_host": "IOTA_CB_HOST",
    "cb_port": "IOTA_CB_PORT",
    "cb_url": "IOTA_CB_URL",
    "cb_flow_control": "IOTA_CB_FLOW_CONTROL",
    "provider_url": "IOTA_PROVIDER_URL",
    "default_resource": "IOTA_DEFAULT_RESOURCE",
    "default_key": "IOTA_DEFAULT_KEY",
    "default_transport": "IOTA_DEFAULT_TRANSPORT",
    "default_type": "IOTA_DEFAULT_TYPE",
    "default_entity_name_conjunction": "IOTA_DEFAULT_ENTITY_NAME_CONJUNCTION",
    "timestamp": "IOTA_TIMESTAMP",
    "autocast": "IOTA_AUTOCAST",
    "explicit_attrs": "IOTA_EXPLICIT_ATTRS",
    "cmd_mode": "IOTA_CMD_MODE",
    "polling_expiration": "IOTA_POLLING_EXPIRATION",
    "polling_daemon_frequency": "IOTA_POLLING_DAEMON_FREQ",
    "registry_type": "IOTA_REGISTRY_TYPE",
    "data_dir": "WAZIUP_DATA_DIR",
    "log_level": "IOTA_LOG_LEVEL",
}

_CHOICES = {"registry_type": ("sqlite", "memory", "mongodb"), "cmd_mode": ("legacy", "notification", "advancedNotification")}
_PORTS = ("north_port", "http_port", "mqtt_port", "cb_port")
_KINDS: dict[str, type] = {f.name: type(f.default) for f in fields(Config)}


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _convert(name: str, raw: str, origin: str) -> Any:
    kind = _KINDS[name]
    if kind is bool:
        lowered = raw.strip().lower()
        if lowered in ("true", "1", "yes", "on"):
            return True
        if lowered in ("false", "0", "no", "off", ""):
            return False
        raise ConfigError(f"{origin}: {raw!r} is not a boolean")
    if kind is int:
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(f"{origin}: {raw!r} is not an integer") from None
    return raw


def parse(argv: list[str], environ: dict[str, str] | None = None) -> Config:
    """A Config from ``--flag value`` / ``--flag=value`` words and the environment (flags win)."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for name, variable in ENVIRONMENT.items():
        if variable in env:
            values[name] = _convert(name, env[variable], variable)
    by_flag = {flag(name): name for name in _KINDS}
    by_flag["-mqttURI"] = "mqtt_uri"  # Orion-style spelling, as ``waziup broker -dbURI``
    i = 0
    while i < len(argv):
        word = argv[i]
        i += 1
        option, eq, inline = word.partition("=")
        name = by_flag.get(option)
        if name is None:
            raise ConfigError(f"unknown option {word!r}")
        if _KINDS[name] is bool and not eq:
            values[name] = True
            continue
        if not eq:
            if i >= len(argv):
                raise ConfigError(f"option {option} needs a value")
            inline = argv[i]
            i += 1
        values[name] = _convert(name, inline, option)
    for name in _PORTS:
        if name in values and not 0 < values[name] < 65536:
            raise ConfigError(f"{flag(name)}: {values[name]} is not a valid port")
    for name, allowed in _CHOICES.items():
        if name in values and values[name] not in allowed:
            raise ConfigError(f"{flag(name)}: {values[name]!r} is not one of {', '.join(allowed)}")
    if values.get("mqtt_uri"):
        values.update(_mqtt_uri(values["mqtt_uri"]))
    if values.get("registry_type") == "mongodb":
        values["registry_type"] = "sqlite"
    return Config(**values)


def _mqtt_uri(uri: str) -> dict[str, Any]:
    """``mqtt://user:password@host:1883`` -> mqtt_host/port/username/password."""
    from urllib.parse import urlsplit

    parts = urlsplit(uri if "://" in uri else "mqtt://" + uri)
    try:
        port = parts.port or 1883
    except ValueError:
        raise ConfigError(f"-mqttURI: {uri!r} has no valid port") from None
    if parts.scheme not in ("mqtt", "tcp") or not parts.hostname:
        raise ConfigError(f"-mqttURI: {uri!r} is not mqtt://host[:port]")
    out: dict[str, Any] = {"mqtt_host": parts.hostname, "mqtt_port": port}
    if parts.username:
        out["mqtt_username"] = parts.username
        out["mqtt_password"] = parts.password or ""
    return out


def usage() -> str:
    lines = ["usage: waziup iot-agent [options]", "", "options (environment variable in brackets):"]
    for name, variable in ENVIRONMENT.items():
        value = "" if _KINDS[name] is bool else " VALUE"
        lines.append(f"  {flag(name)}{value}  [{variable}]  default {getattr(Config(), name)!r}")
    return "\n".join(lines)


def from_command_line(argv: list[str] | None = None) -> Config:
    try:
        return parse(sys.argv[1:] if argv is None else argv)
    except ConfigError as exc:
        sys.exit(f"waziup iot-agent: {exc}")
