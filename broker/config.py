"""Broker configuration: Orion's command-line options, then environment variables, then defaults.

Option names are Orion's (``-port 1026 -dbURI ... -multiservice``) so that existing start-up
scripts keep working; each also reads an ``ORION_*`` environment variable, the names Orion's
Docker image uses. A bad value stops start-up with a message naming the option and the value.
The options are one table, ``OPTIONS`` (``ngsi.settings``), which ``waziup broker --help`` prints.
"""

from __future__ import annotations

import os
import ssl
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from urllib.parse import urlsplit, urlunsplit

from ngsi.settings import (
    FLAG, PORT, Ignored, Int, Repeated, SettingsError, Table, Text, command_line, data_dir_option, destination_rules,
    guards_option, http_url, listen_option, log_level_option, module_attribute, option,
)
from ngsi.tls import check_key_and_cert, trust_context

DEFAULT_PORT = 1026
DEFAULT_DATA_DIR = "data"
DEFAULT_PAYLOAD_MAX = 1024 * 1024  # Orion's -inReqPayloadMaxSize default: 1 MiB
DEFAULT_CORS_MAX_AGE = 86400
# Orion's -reqTimeout is 0 (wait for ever) by default: here a client gets this long to send
# a request's head, and again its body, so a stalled client cannot hold a connection.
DEFAULT_REQ_TIMEOUT = 30


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
    req_timeout: int = DEFAULT_REQ_TIMEOUT  # s; Orion's -reqTimeout: head, then body, must arrive within it (0: no limit)
    workers: int = 1
    log_level: str = "WARN"
    http_timeout: int = 0  # ms; 0: the notifier's default (Orion's -httpTimeout)
    disable_custom_notifications: bool = False
    notification_mode: str = ""  # Orion's -notificationMode; "threadpool:q:n" sizes the queue and connections
    insecure_notif: bool = False  # Orion's -insecureNotif: https notifications without certificate checks
    notif_ca_file: str = ""  # PEM CA certificates trusted for https notifications and forwards, besides the system's
    # The destination policy (ngsi/destinations.py): loopback/private destinations the broker
    # may call for a user (notifications, forwarding); link-local/metadata never.
    notif_allowed_hosts: tuple[str, ...] = field(default_factory=tuple)
    # "module:factory" of the filter that shows each owned subscription only what its creator
    # may read (Notifier.visibility; security's, composed by the orchestrator); "" none.
    notif_filter: str = ""
    # The change feed (broker/feed.py): every acknowledged write of these tenants/types (all
    # when empty) delivered at least once, in order, to this URL ("" none): the history's.
    feed_url: str = ""
    feed_tenants: tuple[str, ...] = field(default_factory=tuple)
    feed_types: tuple[str, ...] = field(default_factory=tuple)
    feed_skip_tenants: tuple[str, ...] = field(default_factory=tuple)
    # The feed's token, for a receiver behind a PEP (the history under ``waziup run -auth``):
    # fetched from this OAuth2 token endpoint ("" none) with the client's id and secret, as a
    # service account (password grant) when a user is given, else client_credentials; sent
    # as X-Auth-Token, fetched again before it expires or when refused. The secrets are read
    # from the environment only (WAZIUP_FEED_CLIENT_SECRET, WAZIUP_FEED_PASSWORD).
    feed_token_url: str = ""
    feed_client_id: str = ""
    feed_client_secret: str = field(default="", repr=False)
    feed_user: str = ""
    feed_password: str = field(default="", repr=False)
    # Notifications (not httpCustom) to these URL prefixes carry that same account's token, in
    # place of the writer's (broker/subscriptions/service_token.py): the platform's receivers
    # behind a PEP (the rules service's /notices) then know the broker sent them.
    notif_token_for: tuple[str, ...] = field(default_factory=tuple)
    https: bool = False  # Orion's -https: TLS on -port, plain HTTP nowhere
    https_key: str = ""  # Orion's -key: the server's private key (PEM)
    https_cert: str = ""  # Orion's -cert: its certificate, then any intermediate CA certificates (PEM)
    # Orion's administration options (admin/cli.md): what GET /statistics measures, deprecated
    # usages logged as warnings, and how long an unused MQTT connection is kept (minutes).
    stat_counters: bool = False
    stat_timing: bool = False
    stat_notif_queue: bool = False
    log_deprecate: bool = False
    mqtt_max_age: int = 60
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
        "subCacheIval", "dbTimeout", "dbPoolSize", "logDir", "pidpath", "maxConnections",
        "reqPoolSize", "t", "notifFlowControl", "cprForwardLimit", "correlatorId", "logSummary",
        "db", "dbhost", "dbuser", "dbpwd", "rplSet", "dbAuthMech", "dbAuthDb", "logLineMaxSize",
        "logInfoPayloadMaxSize", "connectionMemory", "notifQueueStats",
    ),
    flags=(
        "ipv4", "ipv6", "fg", "disableFileLog", "noCache", "logForHumans", "ngsiv1Autocast",
        "relogAlarms", "statSemWait", "disableNgsiv1", "disableMetrics",
    ),
)


OPTIONS = Table(
    Config,
    option("-port", type=PORT, env="ORION_PORT", help="HTTP port (HTTPS with -https)"),
    listen_option("-localIp", "-host", env="ORION_LOCALIP"),
    option("-dbURI", type=Text("URL"), env="ORION_DB_URI", shown="sqlite:///<-data>/broker.db",
           help="store: sqlite:///relative.db, sqlite:////absolute.db, postgresql://user:password@host/db, memory://"),
    data_dir_option("-data", help="where the default SQLite file goes"),
    option("-multiservice", type=FLAG, env="ORION_MULTI_SERVICE",
           help="honour Fiware-Service (one isolated tenant each)"),
    option("-corsOrigin", type=Text("ORIGIN"), env="ORION_CORS_ALLOWED_ORIGIN", help="CORS: __ALL or one origin"),
    option("-corsMaxAge", type=Int(-1, metavar="SECONDS"), env="ORION_CORS_MAX_AGE", help="CORS preflight cache time"),
    option("-inReqPayloadMaxSize", field="payload_max", type=Int(metavar="BYTES"), env="ORION_IN_REQ_PAYLOAD_MAX_SIZE",
           shown="1048576 (1 MiB)", help="larger requests get 413"),
    option("-reqTimeout", type=Int(metavar="SECONDS"), env="ORION_REQ_TIMEOUT",
           shown=f"{DEFAULT_REQ_TIMEOUT} (Orion: 0)",
           help="seconds a client has to send a request's head, then its body (else 408 and the connection "
           "closes); 0: no limit"),
    option("-workers", type=Int(1), env="WAZIUP_WORKERS",
           help="worker processes on one port (an SQLite file or PostgreSQL; see docs/storage.md)"),
    log_level_option("-logLevel", env="ORION_LOG_LEVEL"),
    option("-httpTimeout", type=Int(metavar="MS"), env="ORION_HTTP_TIMEOUT", shown="0 (5000 ms)",
           help="notification and forwarding timeout"),
    option("-disableCustomNotifications", type=FLAG, env="ORION_DISABLE_CUSTOM_NOTIFICATIONS",
           help="send httpCustom/mqttCustom as plain http/mqtt"),
    option("-notificationMode", type=Text("MODE"), env="ORION_NOTIFICATION_MODE", check=_notification_mode,
           shown="transient", help="transient, permanent or threadpool:<queue size>:<connections per destination>"),
    option("-insecureNotif", type=FLAG, env="ORION_INSECURE_NOTIF",
           help="https notifications without certificate checks"),
    option("-notifCaFile", type=Text("FILE"), env="WAZIUP_NOTIF_CA_FILE",
           help="PEM file of CA certificates trusted for https notifications and forwarded requests, besides "
           "the system's (receivers and context providers of a private CA)"),
    option("-notifAllowedHosts", type=Repeated(), env="WAZIUP_NOTIF_ALLOWED_HOSTS", check=destination_rules,
           help="a loopback or private destination notifications and forwarded requests may go to: host, "
           "host:port, host:port/path-prefix or a network (10.0.0.0/8); repeatable or comma-separated. Others of "
           "those ranges are refused (400 at creation, a failure at send time); link-local and cloud metadata "
           "addresses always"),
    option("-notifFilter", type=Text("MODULE:FACTORY"), env="WAZIUP_NOTIF_FILTER", check=module_attribute,
           help="what notifications of a subscription with a known creator may show (an authorization "
           "module's filter: the factory takes this Config and returns it)"),
    option("-feedURL", type=Text("URL"), env="WAZIUP_FEED_URL", check=http_url,
           help="the change feed: every acknowledged create and update, kept in the store until this NGSI "
           "notification receiver (the history service's /v2/notify) acknowledges it (docs/subscriptions.md)"),
    option("-feedTenants", type=Repeated(), env="WAZIUP_FEED_TENANTS",
           help="the tenants (Fiware-Service) the feed carries; repeatable or comma-separated; default all"),
    option("-feedTypes", type=Repeated(), env="WAZIUP_FEED_TYPES",
           help="the entity types the feed carries; repeatable or comma-separated; default all"),
    option("-feedSkipTenants", type=Repeated(), env="WAZIUP_FEED_SKIP_TENANTS",
           help="tenants the feed leaves out (one whose writer feeds the history itself, as the WAZIUP API); "
           "repeatable or comma-separated"),
    option("-feedTokenURL", type=Text("URL"), env="WAZIUP_FEED_TOKEN_URL",
           help="the OAuth2 token endpoint (the identity manager's /oauth2/token) the feed gets the X-Auth-Token "
           "it sends from, for a receiver behind a PEP; needs -feedClientId and WAZIUP_FEED_CLIENT_SECRET"),
    option("-feedClientId", type=Text("ID"), env="WAZIUP_FEED_CLIENT_ID",
           help="-feedTokenURL: the OAuth2 client (application) the token is asked for"),
    option("-feedUser", type=Text("NAME"), env="WAZIUP_FEED_USER",
           help="-feedTokenURL: a service account, whose password is WAZIUP_FEED_PASSWORD (the password grant); "
           "else the client's own token (client_credentials)"),
    option("-notifTokenFor", type=Repeated(metavar="URL"), env="WAZIUP_NOTIF_TOKEN_FOR", check=http_url,
           help="notifications (not httpCustom) to this URL or below carry the broker's own token (the "
           "-feedTokenURL account) instead of the writer's: a platform receiver behind a PEP; repeatable"),
    option("-https", type=FLAG, env="ORION_HTTPS", help="serve HTTPS only, on -port (needs -key and -cert)"),
    option("-key", field="https_key", type=Text("FILE"), env="ORION_HTTPS_KEYFILE",
           help="-https: the server's private key, PEM, not encrypted"),
    option("-cert", field="https_cert", type=Text("FILE"), env="ORION_HTTPS_CERTFILE",
           help="-https: the server's certificate, PEM, followed by any intermediate CA certificates"),
    option("-statCounters", type=FLAG, env="ORION_STAT_COUNTERS",
           help="GET /statistics counts requests by URL and verb, notifications, deprecated usages"),
    option("-statTiming", type=FLAG, env="ORION_STAT_TIMING", help="GET /statistics times the requests"),
    option("-statNotifQueue", type=FLAG, env="ORION_STAT_NOTIF_QUEUE",
           help="GET /statistics shows the notification queue (-notificationMode threadpool)"),
    option("-logDeprecate", type=FLAG, env="ORION_LOG_DEPRECATE",
           help="log deprecated usages as warnings (also PUT /admin/log?deprecate=true)"),
    option("-mqttMaxAge", type=Int(1, metavar="MINUTES"), env="ORION_MQTT_MAX_AGE",
           help="minutes an unused MQTT connection of the notifier is kept"),
    guards_option("-guard"),
    ignored=IGNORED,
    about="Orion's option names, each also read from the environment variable beside it (Orion's Docker "
    "image names them so); other Orion options are accepted and ignored, unknown ones stop start-up.",
)


def _feed_credentials(config: Config, environ: Mapping[str, str]) -> Config:
    """The feed's secrets, from the environment only (a command line is visible to every
    local user), and a check that -feedTokenURL has what it needs."""
    config = replace(config, feed_client_secret=environ.get("WAZIUP_FEED_CLIENT_SECRET", ""),
                     feed_password=environ.get("WAZIUP_FEED_PASSWORD", ""))
    if not config.feed_token_url:
        if config.notif_token_for:
            raise ConfigError("option -notifTokenFor needs the broker's account: -feedTokenURL, -feedClientId and "
                              "WAZIUP_FEED_CLIENT_SECRET")
        return config
    try:
        http_url(config.feed_token_url)  # checked with its companions: they make one setting
    except ValueError as exc:
        raise ConfigError(f"option -feedTokenURL: {exc}") from None
    if not config.feed_client_id or not config.feed_client_secret:
        raise ConfigError("option -feedTokenURL needs -feedClientId (WAZIUP_FEED_CLIENT_ID) and the variable "
                          "WAZIUP_FEED_CLIENT_SECRET")
    if config.feed_user and not config.feed_password:
        raise ConfigError("option -feedUser needs the variable WAZIUP_FEED_PASSWORD")
    return config


def parse(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> Config:
    """A Config from Orion-style options (``-port 1026``, ``--port=1026``) and the environment."""
    environ = os.environ if environ is None else environ
    config = _feed_credentials(OPTIONS.build(argv, environ), environ)
    missing = [name for name, path in (("-key", config.https_key), ("-cert", config.https_cert)) if not path]
    if config.https and missing:
        # Orion starts and fails at the first request; better not to start at all
        raise ConfigError(
            f"option -https needs -key FILE and -cert FILE (or ORION_HTTPS_KEYFILE, ORION_HTTPS_CERTFILE): "
            f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} missing"
        )
    return config


def forwarding_ssl_context(config: Config) -> ssl.SSLContext | None:
    """The TLS context of the broker's https requests when ``-notifCaFile`` is given: the
    system's CAs plus that file's (CA certificates, or a peer's self-signed one, such as
    the IoT agent's under ``waziup run -tls``). None otherwise: the client's default
    context. Raises ConfigError for a file that cannot be read or holds no PEM
    certificate, which start-up reports. Requests forwarded to context providers use it
    as it is; notifications through :func:`notification_ssl_context`."""
    return trust_context("-notifCaFile", config.notif_ca_file) if config.notif_ca_file else None


def notification_ssl_context(config: Config) -> ssl.SSLContext | None:
    """The notifier's: :func:`forwarding_ssl_context`, but None with ``-insecureNotif``,
    since a given context would override the notifier's ``verify=False``."""
    return None if config.insecure_notif else forwarding_ssl_context(config)


def check_files(config: Config) -> Config:
    """The files the options name, loaded once at start-up: with ``-https``, the key and
    certificate uvicorn will load (a missing, unreadable, encrypted or mismatched file is an
    error naming it, not a traceback from uvicorn, nor a worker restarted over and over);
    ``-notifCaFile``. Raises ConfigError; returns the Config."""
    forwarding_ssl_context(config)  # the notifier builds it again
    if config.https:
        check_key_and_cert("-key", config.https_key, "-cert", config.https_cert)
    return config


def from_command_line(argv: Sequence[str] | None = None) -> Config:
    """``waziup broker`` / ``python -m broker``: the Config, or the help (exit 0), or the error
    (exit 1); the files it names are checked here, before the server is even imported."""
    return command_line(
        OPTIONS, lambda words: check_files(parse(words)), sys.argv[1:] if argv is None else argv,
        prog="waziup broker", show=print,
    )
