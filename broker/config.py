"""Broker configuration: Orion's command-line options, then environment variables, then defaults.

Option names are Orion's (``-port 1026 -dbURI ... -multiservice``) so that existing start-up
scripts keep working; each also reads an ``ORION_*`` environment variable, the names Orion's
Docker image uses. A bad value stops start-up with a message naming the option and the value.
The options are one table, ``OPTIONS`` (``ngsi.settings``), which ``waziup broker --help`` prints.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from ngsi.settings import FLAG, PORT, Ignored, Int, SettingsError, Table, Text, command_line, guards_option, option

DEFAULT_PORT = 1026
DEFAULT_DATA_DIR = "data"
DEFAULT_PAYLOAD_MAX = 1024 * 1024  # Orion's -inReqPayloadMaxSize default: 1 MiB
DEFAULT_CORS_MAX_AGE = 86400


ConfigError = SettingsError  # a command-line option or environment variable without a valid value


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


def _notification_mode(text: str) -> None:
    from .subscriptions.sender import notification_mode

    notification_mode(text)


IGNORED = Ignored(  # Orion options accepted for compatibility that change nothing here
    "ignored",
    valued=(
        "subCacheIval", "reqTimeout", "dbTimeout", "dbPoolSize", "logDir", "pidpath", "maxConnections",
        "reqPoolSize", "t", "notifFlowControl", "mqttMaxAge", "cprForwardLimit", "correlatorId", "logSummary",
        "db", "dbhost", "dbuser", "dbpwd", "rplSet", "dbAuthMech", "dbAuthDb", "key", "cert", "logLineMaxSize",
        "logInfoPayloadMaxSize", "connectionMemory", "notifQueueStats",
    ),
    flags=(
        "ipv4", "ipv6", "fg", "disableFileLog", "noCache", "logForHumans", "ngsiv1Autocast", "statCounters",
        "relogAlarms", "statNotifQueue", "statSemWait", "statTiming", "disableNgsiv1", "disableMetrics", "https",
    ),
)


OPTIONS = Table(
    Config,
    option("-port", field="port", type=PORT, env="ORION_PORT",
           help="HTTP port"),
    option("-localIp", "-host", field="host", type=Text("ADDRESS"), env="ORION_LOCALIP",
           help="address to listen on"),
    option("-dbURI", field="db_uri", type=Text("URL"), env="ORION_DB_URI", shown="sqlite:///<-data>/broker.db",
           help="store: sqlite:///relative.db, sqlite:////absolute.db, postgresql://user:password@host/db, memory://"),
    option("-data", field="data_dir", type=Text("DIR"), env="WAZIUP_DATA_DIR",
           help="where the default SQLite file goes"),
    option("-multiservice", field="multiservice", type=FLAG, env="ORION_MULTI_SERVICE",
           help="honour Fiware-Service (one isolated tenant each)"),
    option("-corsOrigin", field="cors_origin", type=Text("ORIGIN"), env="ORION_CORS_ALLOWED_ORIGIN",
           help="CORS: __ALL or one origin"),
    option("-corsMaxAge", field="cors_max_age", type=Int(-1, metavar="SECONDS"), env="ORION_CORS_MAX_AGE",
           help="CORS preflight cache time"),
    option("-inReqPayloadMaxSize", field="payload_max", type=Int(metavar="BYTES"), env="ORION_IN_REQ_PAYLOAD_MAX_SIZE",
           shown="1048576 (1 MiB)", help="larger requests get 413"),
    option("-workers", field="workers", type=Int(1), env="WAZIUP_WORKERS",
           help="worker processes on one port (an SQLite file or PostgreSQL; see docs/storage.md)"),
    option("-logLevel", field="log_level", type=Text("LEVEL"), env="ORION_LOG_LEVEL",
           help="log level"),
    option("-httpTimeout", field="http_timeout", type=Int(metavar="MS"), env="ORION_HTTP_TIMEOUT",
           shown="0 (5000 ms)", help="notification and forwarding timeout"),
    option("-disableCustomNotifications", field="disable_custom_notifications", type=FLAG,
           env="ORION_DISABLE_CUSTOM_NOTIFICATIONS", help="send httpCustom/mqttCustom as plain http/mqtt"),
    option("-notificationMode", field="notification_mode", type=Text("MODE"), env="ORION_NOTIFICATION_MODE",
           check=_notification_mode, shown="transient",
           help="transient, permanent or threadpool:<queue size>:<connections per destination>"),
    option("-insecureNotif", field="insecure_notif", type=FLAG, env="ORION_INSECURE_NOTIF",
           help="https notifications without certificate checks"),
    guards_option("-guard"),
    ignored=IGNORED,
    about="Orion's option names, each also read from the environment variable beside it (Orion's Docker "
    "image names them so); other Orion options are accepted and ignored, unknown ones stop start-up.",
)


def parse(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> Config:
    """A Config from Orion-style options (``-port 1026``, ``--port=1026``) and the environment."""
    return OPTIONS.build(argv, os.environ if environ is None else environ)


def from_command_line(argv: Sequence[str] | None = None) -> Config:
    """``waziup broker`` / ``python -m broker``: the Config, or the help (exit 0), or the error (exit 1)."""
    return command_line(OPTIONS, parse, sys.argv[1:] if argv is None else argv, prog="waziup broker", show=print)
