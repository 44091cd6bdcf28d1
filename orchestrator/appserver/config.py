"""The :8080 service's options (``waziup orchestrator``): one table (``ngsi.settings``),
``WAZIUP_ORCH_*`` variables.

Where the platform's services are (broker, history, IoT agent's north port, identity
manager) and the secrets it needs to act for apps, from the environment only: the
identity manager's administrator (``WAZIUP_ORCH_ADMIN_USER`` / ``WAZIUP_ORCH_ADMIN_PASSWORD``:
it issues each app its credentials), the platform's OAuth client
(``WAZIUP_ORCH_CLIENT_ID`` / ``WAZIUP_ORCH_CLIENT_SECRET``) and, behind a PEP, the service
account the service reaches the broker, the history and the agent with
(``WAZIUP_ORCH_AUTH_USER`` / ``WAZIUP_ORCH_AUTH_PASSWORD``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from ngsi.destinations import Policy, parse_rules
from ngsi.service_options import (
    ServiceConfig, check_store_url, https_options, known_log_level, request_limit_options, with_secrets,
)
from ngsi.settings import (
    PORT, Choice, Int, Prefix, Repeated, SettingsError, Table, Text, command_line, data_dir_option, destination_rules,
    guards_option, http_url, listen_option, log_level_option, option,
)

DEFAULT_PORT: Final = 8080
ConfigError = SettingsError
SECRETS: Final = (("client_secret", "WAZIUP_ORCH_CLIENT_SECRET"), ("admin_password", "WAZIUP_ORCH_ADMIN_PASSWORD"),
                  ("auth_password", "WAZIUP_ORCH_AUTH_PASSWORD"))


@dataclass(frozen=True)
class Config(ServiceConfig):
    STORE_FILE = "orchestrator.db"

    port: int = DEFAULT_PORT
    broker_url: str = "http://localhost:1026"
    history_url: str = ""  # "": no history
    iota_url: str = ""  # the IoT agent's north port (provisioning); "": none
    idm_url: str = ""  # "": no identity manager, apps get no credentials
    mqtt_url: str = ""  # the platform's MQTT broker (mqtt://host:port), told to apps; "": none
    ingress_url: str = ""  # this service as the broker reaches it (apps' notifications); "": loopback, -port
    service: str = ""  # the default tenant (Fiware-Service) of apps and sources; "": the broker's default
    discovery_tenants: tuple[str, ...] = field(default_factory=tuple)  # "": -service only
    discovery_interval: int = 60  # seconds between two reads of the whole platform
    ca_file: str = ""
    max_body: int = 64 * 1024 * 1024  # an app's tarball
    req_timeout: int = 300
    guards: tuple[str, ...] = field(default_factory=tuple)
    allowed_hosts: tuple[str, ...] = field(default_factory=tuple)  # destination rules (ngsi/destinations.py)
    apps_dirs: tuple[str, ...] = field(default_factory=tuple)  # folders of this host /apps may deploy by path
    client_id: str = ""
    client_secret: str = field(default="", repr=False)
    admin_user: str = ""
    admin_password: str = field(default="", repr=False)
    auth_user: str = ""
    auth_password: str = field(default="", repr=False)
    backend: str = "local"  # where apps run: "local" (processes of this host) or "kubernetes"
    registry: str = ""  # kubernetes: the registry app images are pushed to (and the cluster pulls from)
    kubeconfig: str = ""  # kubernetes: a kubeconfig file; "": in-cluster, else KUBECONFIG / ~/.kube/config
    kube_host: str = ""  # kubernetes: the API server's URL, unauthenticated (kubectl proxy, tests); wins

    @property
    def data(self) -> Path:
        return Path(os.path.abspath(self.data_dir))

    @property
    def ingress_base(self) -> str:
        """Where the broker sends apps' notifications: ``<ingress>/ingress/<app>/<key>/<endpoint>``,
        forwarded by this service to the app (the broker needs only this one allowed destination)."""
        if self.ingress_url:
            return self.ingress_url.rstrip("/")
        return f"{'https' if self.https else 'http'}://127.0.0.1:{self.port}"

    def destinations(self) -> Policy:
        """The destination policy of every URL a user gives (a source's URL, a git URL, a tarball URL)."""
        rules = [rule for text in self.allowed_hosts for rule in parse_rules(text)]
        return Policy(rules)


ORCH = Prefix("WAZIUP_ORCH_")

OPTIONS = Table(
    Config,
    option("-port", type=PORT, env=ORCH, help="HTTP port of /apps, /discovery and /sources"),
    listen_option("-host", env=ORCH),
    data_dir_option("-data", help="where apps are built and run, their logs, orchestrator.db"),
    option("-dbURI", type=Text("URL"), env=ORCH, shown="sqlite:///<-data>/orchestrator.db",
           help="the service's own store (apps, sources): sqlite:///FILE or postgresql://user:password@host/db"),
    option("-brokerURL", type=Text("URL"), env=ORCH, check=http_url, help="the context broker"),
    option("-historyURL", type=Text("URL"), env=ORCH, help="the history service; empty: none"),
    option("-iotaURL", type=Text("URL"), env=ORCH, help="the IoT agent's provisioning (north) port; empty: none"),
    option("-idmURL", type=Text("URL"), env=ORCH,
           help="the identity manager (apps' credentials); empty: none, apps get no credentials"),
    option("-mqttURL", type=Text("URL"), env=ORCH, help="the platform's MQTT broker, told to apps (mqtt://host:port)"),
    option("-ingressURL", type=Text("URL"), env=ORCH, shown="http://127.0.0.1:<-port>",
           help="this service as the broker reaches it: apps' subscriptions notify <URL>/ingress/..., forwarded to the app"),
    option("-service", type=Text("TENANT"), env=ORCH, help="the default tenant of apps and sources"),
    option("-discoveryTenants", type=Repeated(metavar="TENANT"), env=ORCH, shown="-service",
           help="the tenants whose sensors discovery registers (NGSI lists no tenants); repeatable or comma-separated, "
           "'' is the default tenant"),
    option("-discoveryInterval", type=Int(5, 86400, metavar="SECONDS"), env=ORCH,
           help="seconds between two reads of the broker, the agent and the registrations by discovery"),
    option("-caFile", type=Text("FILE"), env=ORCH, help="PEM CA certificates trusted for https services"),
    option("-appsDir", field="apps_dirs", type=Repeated(metavar="FOLDER"), env=ORCH,
           help="a folder of this host whose apps (folders, tarballs) POST /apps may name by path; repeatable. "
           "None by default: clients upload what they deploy (waziup apps deploy does)"),
    option("-allowedHosts", type=Repeated(), env=ORCH, check=destination_rules,
           help="a loopback or private destination sources and app downloads may reach: host, host:port, a network"),
    option("-clientId", type=Text("ID"), env=ORCH,
           help="the platform's OAuth client (its secret: WAZIUP_ORCH_CLIENT_SECRET, environment only)"),
    option("-adminUser", type=Text("NAME"), env=ORCH,
           help="the identity manager's administrator, who issues apps' credentials (its password: "
           "WAZIUP_ORCH_ADMIN_PASSWORD, environment only)"),
    option("-authUser", type=Text("NAME"), env=ORCH,
           help="services behind a PEP: the service account (its password: WAZIUP_ORCH_AUTH_PASSWORD)"),
    option("-backend", type=Choice("local", "kubernetes"), env=ORCH,
           help="where apps run: local (supervised processes of this host) or kubernetes (Deployments)"),
    option("-registry", type=Text("HOST[/PATH]"), env=ORCH,
           help="kubernetes: the image registry app images are pushed to, which the cluster pulls from; empty: "
           "images stay in the local Docker daemon (a one-node cluster sharing it)"),
    option("-kubeconfig", type=Text("FILE"), env=ORCH, shown="in-cluster, else KUBECONFIG",
           help="kubernetes: the kubeconfig file; empty: the pod's service account in a cluster, else KUBECONFIG "
           "or ~/.kube/config"),
    option("-kubeHost", type=Text("URL"), env=ORCH,
           help="kubernetes: an API server URL reached without credentials (kubectl proxy, tests); wins over "
           "-kubeconfig"),
    log_level_option("-logLevel", env=("WAZIUP_LOG_LEVEL",), check=known_log_level),
    *request_limit_options(ORCH, body="request"),
    *https_options(ORCH),
    guards_option("-guard"),
    about="The orchestrator's service: apps deployed from source (/apps), sensor discovery (/discovery/sensors) "
    "and external data sources (/sources).",
)


def parse(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> Config:
    environ = os.environ if environ is None else environ
    config = with_secrets(OPTIONS.build(argv, environ), environ, SECRETS)
    config.check_https()
    check_store_url(config, ConfigError)
    if config.auth_user and not config.auth_password:
        raise ConfigError("option -authUser needs the variable WAZIUP_ORCH_AUTH_PASSWORD")
    return config


def from_command_line(argv: Sequence[str] | None = None) -> Config:
    """``waziup orchestrator``: the Config, or the help (exit 0), or the error (exit 1)."""
    return command_line(OPTIONS, parse, sys.argv[1:] if argv is None else argv, prog="waziup orchestrator", show=print)
