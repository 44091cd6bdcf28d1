"""Broker configuration: Orion's command-line options, then environment variables, then defaults.

Option names are Orion's (``-port 1026 -dbURI ... -multiservice``) so that existing start-up
scripts keep working; each also reads an ``ORION_*`` environment variable, the names Orion's
Docker image uses. A bad value stops start-up with a message naming the option and the value.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

DEFAULT_PORT = 1026
DEFAULT_DATA_DIR = "data"
DEFAULT_PAYLOAD_MAX = 1024 * 1024  # Orion's -inReqPayloadMaxSize default: 1 MiB
DEFAULT_CORS_MAX_AGE = 86400


class ConfigError(Exception):
    """A command-line option or environment variable has no valid value."""


@dataclass(frozen=True)
class Config:
    port: int = DEFAULT_PORT
    host: str = "0.0.0.0"
    db_uri: str = ""  # empty: sqlite file under data_dir
    data_dir: str = DEFAULT_DATA_DIR
    multiservice: bool = False
    cors_origin: str | None = None  # "__ALL" or one origin
    cors_max_age: int = DEFAULT_CORS_MAX_AGE
    payload_max: int = DEFAULT_PAYLOAD_MAX
    workers: int = 1
    log_level: str = "WARN"
    http_timeout: int = 0  # ms; 0: the notifier's default (Orion's -httpTimeout)
    disable_custom_notifications: bool = False
    notification_mode: str = ""  # Orion's -notificationMode; "threadpool:q:n" sizes the queue and connections
    insecure_notif: bool = False  # Orion's -insecureNotif: https notifications without certificate checks
    ignored: tuple[str, ...] = field(default_factory=tuple)
    # The request seam: guards as "module:factory" (each factory takes this Config and
    # returns a guard; see ngsi/server/guards.py), composed by the orchestrator.
    guards: tuple[str, ...] = field(default_factory=tuple)

    @property
    def store_url(self) -> str:
        return self.db_uri or f"sqlite:///{os.path.join(self.data_dir, 'broker.db')}"


def mask_url(url: str) -> str:
    """The URL with its password replaced by ``***``, fit for logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


# option -> (Config field, kind, environment variable)
_OPTIONS: dict[str, tuple[str, str, str]] = {
    "port": ("port", "int", "ORION_PORT"),
    "host": ("host", "str", "ORION_LOCALIP"),
    "localIp": ("host", "str", "ORION_LOCALIP"),
    "dbURI": ("db_uri", "str", "ORION_DB_URI"),
    "data": ("data_dir", "str", "WAZIUP_DATA_DIR"),
    "multiservice": ("multiservice", "flag", "ORION_MULTI_SERVICE"),
    "corsOrigin": ("cors_origin", "str", "ORION_CORS_ALLOWED_ORIGIN"),
    "corsMaxAge": ("cors_max_age", "int", "ORION_CORS_MAX_AGE"),
    "inReqPayloadMaxSize": ("payload_max", "int", "ORION_IN_REQ_PAYLOAD_MAX_SIZE"),
    "workers": ("workers", "int", "WAZIUP_WORKERS"),
    "logLevel": ("log_level", "str", "ORION_LOG_LEVEL"),
    "httpTimeout": ("http_timeout", "int", "ORION_HTTP_TIMEOUT"),
    "disableCustomNotifications": ("disable_custom_notifications", "flag", "ORION_DISABLE_CUSTOM_NOTIFICATIONS"),
    "notificationMode": ("notification_mode", "str", "ORION_NOTIFICATION_MODE"),
    "insecureNotif": ("insecure_notif", "flag", "ORION_INSECURE_NOTIF"),
}

# Orion options accepted for compatibility that change nothing here (valued ones take one word).
_IGNORED_VALUED = {
    "subCacheIval", "reqTimeout", "dbTimeout", "dbPoolSize", "logDir", "pidpath",
    "maxConnections", "reqPoolSize", "t", "notifFlowControl", "mqttMaxAge", "cprForwardLimit",
    "correlatorId", "logSummary", "db", "dbhost", "dbuser", "dbpwd", "rplSet", "dbAuthMech", "dbAuthDb",
    "key", "cert", "logLineMaxSize", "logInfoPayloadMaxSize", "connectionMemory", "notifQueueStats",
}
_IGNORED_FLAGS = {
    "ipv4", "ipv6", "fg", "disableFileLog", "noCache", "logForHumans", "ngsiv1Autocast",
    "statCounters", "relogAlarms", "statNotifQueue", "statSemWait", "statTiming", "disableNgsiv1",
    "disableMetrics", "https",
}


def _convert(option: str, kind: str, raw: str) -> object:
    if kind == "int":
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(f"option -{option}: {raw!r} is not an integer") from None
    if kind == "flag":
        return raw.lower() not in ("", "0", "false", "no", "off")
    return raw


def parse(argv: list[str], environ: dict[str, str] | None = None) -> Config:
    """Build a Config from Orion-style options (``-port 1026`` or ``--port=1026``) and the environment."""
    env = os.environ if environ is None else environ
    values: dict[str, object] = {}
    for option, (name, kind, variable) in _OPTIONS.items():
        if variable in env and name not in values:
            values[name] = _convert(option, kind, env[variable])
    ignored: list[str] = []
    i = 0
    while i < len(argv):
        word = argv[i]
        i += 1
        if not word.startswith("-"):
            raise ConfigError(f"unexpected argument {word!r}")
        option, _, inline = word.lstrip("-").partition("=")
        if option in _OPTIONS:
            name, kind, _ = _OPTIONS[option]
            if kind == "flag":
                values[name] = True if not inline else _convert(option, kind, inline)
                continue
            if not inline:
                if i >= len(argv):
                    raise ConfigError(f"option -{option} needs a value")
                inline = argv[i]
                i += 1
            values[name] = _convert(option, kind, inline)
        elif option in _IGNORED_FLAGS:
            ignored.append(option)
        elif option in _IGNORED_VALUED:
            ignored.append(option)
            if not inline and i < len(argv) and not argv[i].startswith("-"):
                i += 1
        else:
            raise ConfigError(f"unknown option {word!r}")
    if "port" in values and not (0 < int(values["port"]) < 65536):  # type: ignore[arg-type]
        raise ConfigError(f"option -port: {values['port']} is not a valid port")
    if "notification_mode" in values:
        from .subscriptions.sender import notification_mode

        try:
            notification_mode(str(values["notification_mode"]))
        except ValueError as exc:
            raise ConfigError(f"option -notificationMode: {exc}") from None
    return Config(ignored=tuple(ignored), **values)  # type: ignore[arg-type]


def from_command_line() -> Config:
    try:
        return parse(sys.argv[1:])
    except ConfigError as exc:
        sys.exit(f"waziup broker: {exc}")
