"""``waziup pep``'s configuration, as Wilma takes it: a JSON file with the keys of Wilma's
``config.js`` (``-config FILE``) and the ``PEP_PROXY_*`` variables of its admin guide
(reference ``wilma/admin_guide.md``, "Configuration"), then our own ``WAZIUP_*`` variables
and options (``settings.py``), each later source winning over the earlier ones::

    defaults < the JSON file < PEP_PROXY_* < WAZIUP_* and command-line options

The JSON keys read (Wilma's, with its defaults): ``pep_port`` (1027 here; Wilma's
template says 80), ``https`` {enabled, cert_file, key_file, port}, ``idm`` {host, port,
ssl} (or the older ``idm_host`` URL), ``app`` {host, port, ssl} (the protected service;
or ``app_host``/``app_port``), ``organizations`` {enabled, header}, ``pep`` {app_id,
username, password, token {secret}, trusted_apps}, ``authorization`` {enabled, pdp (idm,
authzforce or azf, opa, xacml, and our ``ours``), header, location {protocol, host, port,
path}, azf {protocol, host, port, domain}} (or the older ``check_permissions``),
``public_paths``, ``magic_key`` (off unless set), ``cache_time``, ``error_template``,
``error_content_type``, ``auth_for_nginx``, and ours under ``waziup`` {deny_status,
issuer, multiservice, policy_poll_ms, timeout_ms}.

Not supported, and why (docs/security.md has the table): ``authorization.azf.custom_policy``
/ ``PEP_PROXY_AZF_CUSTOM_POLICY`` (Wilma runs JavaScript policy scripts; refused at start:
ignoring it would change what is allowed) and ``pdp: iShare`` (refused likewise);
``cors`` / ``PEP_PROXY_CORS_*`` (ignored with a warning: preflights pass the PEP unchecked
and the protected service's own CORS answer goes back, as Orion's ``-corsOrigin`` and
ours do).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from ngsi.settings import (
    FLAG, PORT, Choice, SettingsError, Table, Text, command_line, http_url, listen_option, log_level_option, option,
)

from .settings import PEP, SETTINGS_ROWS, Settings, check, with_secrets

log = logging.getLogger("waziup.security.pep")

DEFAULT_PORT: Final = 1027
PDP_NAMES: Final = {"idm": "idm", "authzforce": "azf", "azf": "azf", "opa": "opa", "xacml": "xacml", "ours": "ours",
                    "none": "none"}
_LIST, _BOOL, _INT = "list", "bool", "int"
APP_ROUTES: Final = ("broker", "history", "rules")  # security.authz.request.describe's services

# PEP_PROXY_* (admin_guide.md's table) -> (the JSON keys it sets, how to read it)
WILMA_ENV: Final[dict[str, tuple[tuple[str, ...], str]]] = {
    "PEP_PROXY_PORT": (("pep_port",), _INT),
    "PEP_PROXY_HTTPS_ENABLED": (("https", "enabled"), _BOOL),
    "PEP_PROXY_HTTPS_PORT": (("https", "port"), _INT),
    "PEP_PROXY_IDM_HOST": (("idm", "host"), ""),
    "PEP_PROXY_IDM_PORT": (("idm", "port"), _INT),
    "PEP_PROXY_IDM_SSL_ENABLED": (("idm", "ssl"), _BOOL),
    "PEP_PROXY_APP_HOST": (("app", "host"), ""),
    "PEP_PROXY_APP_PORT": (("app", "port"), _INT),
    "PEP_PROXY_APP_SSL_ENABLED": (("app", "ssl"), _BOOL),
    "PEP_PROXY_ORG_ENABLED": (("organizations", "enabled"), _BOOL),
    "PEP_PROXY_ORG_HEADER": (("organizations", "header"), ""),
    "PEP_PROXY_APP_ID": (("pep", "app_id"), ""),
    "PEP_PROXY_USERNAME": (("pep", "username"), ""),
    "PEP_PROXY_PASSWORD": (("pep", "password"), ""),
    "PEP_PROXY_TOKEN_SECRET": (("pep", "token", "secret"), ""),
    "PEP_PROXY_TRUSTED_APPS": (("pep", "trusted_apps"), _LIST),
    "PEP_PROXY_AUTH_ENABLED": (("authorization", "enabled"), _BOOL),
    "PEP_PROXY_PDP": (("authorization", "pdp"), ""),
    "PEP_PROXY_PDP_PROTOCOL": (("authorization", "location", "protocol"), ""),
    "PEP_PROXY_PDP_HOST": (("authorization", "location", "host"), ""),
    "PEP_PROXY_PDP_PORT": (("authorization", "location", "port"), _INT),
    "PEP_PROXY_PDP_PATH": (("authorization", "location", "path"), ""),
    "PEP_PROXY_TENANT_HEADER": (("authorization", "header"), ""),
    "PEP_PROXY_AZF_PROTOCOL": (("authorization", "azf", "protocol"), ""),
    "PEP_PROXY_AZF_HOST": (("authorization", "azf", "host"), ""),
    "PEP_PROXY_AZF_PORT": (("authorization", "azf", "port"), _INT),
    "PEP_PROXY_AZF_CUSTOM_POLICY": (("authorization", "azf", "custom_policy"), ""),
    "PEP_PROXY_PUBLIC_PATHS": (("public_paths",), _LIST),
    "PEP_PROXY_AUTH_FOR_NGINX": (("auth_for_nginx",), _BOOL),
    "PEP_PROXY_MAGIC_KEY": (("magic_key",), ""),
    "PEP_PROXY_ERROR_TEMPLATE": (("error_template",), ""),
}
IGNORED_ENV: Final = (
    "PEP_PROXY_CORS_ORIGIN", "PEP_PROXY_CORS_METHODS", "PEP_PROXY_CORS_OPTIONS_SUCCESS_STATUS",
    "PEP_PROXY_CORS_ALLOWED_HEADERS", "PEP_PROXY_CORS_CREDENTIALS", "PEP_PROXY_CORS_MAX_AGE",
)


@dataclass(frozen=True)
class ProxyConfig(Settings):
    """The guard's settings, and where the proxy listens and forwards."""

    config_file: str = ""
    host: str = "0.0.0.0"
    port: int = DEFAULT_PORT
    upstream: str = ""  # the protected service's URL (Wilma's app), e.g. http://orion:1026
    auth_for_nginx: bool = False
    https: bool = False
    https_cert: str = ""
    https_key: str = ""
    log_level: str = "INFO"
    upstream_timeout_ms: int = 60_000
    app_routes: str = "broker"  # whose API the protected service serves: how requests are read for the PDP
    ignored: tuple[str, ...] = field(default_factory=tuple)  # Wilma settings read and not applied (logged)


PROXY_ROWS = (
    option("-config", field="config_file", type=Text("FILE"), env="WAZIUP_PEP_CONFIG",
           help="Wilma's configuration as JSON (the keys of its config.js)"),
    option("-port", type=PORT, env=PEP, help="HTTP port (Wilma's pep_port)"),
    listen_option("-host", env="WAZIUP_PEP_LISTEN"),
    option("-appURL", field="upstream", type=Text("URL"), env="WAZIUP_PEP_APP_URL", check=http_url,
           help="the protected service (Wilma's app), e.g. http://orion:1026"),
    option("-appRoutes", type=Choice(*APP_ROUTES), env="WAZIUP_PEP_APP_ROUTES",
           help="the protected service's API, which says what each request asks to do: broker (NGSI-v2: Orion, "
           "the IoT agent) history (QuantumLeap's: GET /v2/entities/{id} reads a time series) or rules (Perseo's)"),
    option("-authForNginx", type=FLAG, env=PEP,
           help="answer 204 to an admitted request instead of forwarding it (nginx auth_request)"),
    log_level_option("-logLevel", env="WAZIUP_LOG_LEVEL"),
)

TABLE = Table(
    ProxyConfig, *PROXY_ROWS, *SETTINGS_ROWS,
    about="The PEP proxy (Wilma-compatible): every request is authenticated at the identity manager and "
    "authorized, then forwarded to -appURL. Wilma's configuration is read from -config (JSON) and its PEP_PROXY_* "
    "variables; WAZIUP_* variables and these options win over both. Secrets come from the environment only "
    "(WAZIUP_PEP_PASSWORD, WAZIUP_PEP_JWT_SECRET, or Wilma's file and PEP_PROXY_PASSWORD, PEP_PROXY_TOKEN_SECRET).",
)


# -- Wilma's configuration -> fields -----------------------------------------------------------


def _read(raw: str, kind: str, variable: str) -> Any:
    if kind == _LIST:
        return [item.strip() for item in raw.split(",") if item.strip()]
    if kind == _BOOL:
        lowered = raw.strip().lower()
        if lowered not in ("true", "false", "1", "0", "yes", "no", "on", "off", ""):
            raise SettingsError(f"environment variable {variable}: {raw!r} is not true or false")
        return lowered in ("true", "1", "yes", "on")
    if kind == _INT:
        if not raw.strip().isdigit() or len(raw.strip()) > 9:
            raise SettingsError(f"environment variable {variable}: {raw!r} is not a number")
        return int(raw.strip())
    return raw


def wilma_environ(environ: Mapping[str, str]) -> dict[str, Any]:
    """The ``PEP_PROXY_*`` variables as a nested document of Wilma's keys."""
    doc: dict[str, Any] = {}
    for variable, (keys, kind) in WILMA_ENV.items():
        if variable not in environ:
            continue
        node = doc
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = _read(environ[variable], kind, variable)
    return doc


def merge(base: Mapping[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``top``'s keys over it, objects merged key by key."""
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _object(doc: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = doc.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SettingsError(f"Wilma configuration: {key} must be an object")
    return value


def _string(value: Any, where: str) -> str:
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise SettingsError(f"Wilma configuration: {where} must be a string")
    return str(value)


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SettingsError(f"Wilma configuration: {where} must be a list of strings")
    return tuple(value)


def _flag(value: Any, where: str) -> bool:
    if value is None:
        return False
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes", "on")
    if not isinstance(value, (bool, int)):
        raise SettingsError(f"Wilma configuration: {where} must be true or false")
    return bool(value)


def _number(value: Any, where: str, low: int, high: int) -> int:
    if isinstance(value, str) and value.strip().isdigit() and len(value.strip()) < 10:
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise SettingsError(f"Wilma configuration: {where} must be a number between {low} and {high}")
    return value


def _endpoint(section: Mapping[str, Any], where: str, default_port: int | None) -> str:
    """``{host, port, ssl | protocol, path}`` as a URL ("" without a host)."""
    host = _string(section.get("host"), f"{where}.host")
    if not host:
        return ""
    if host.startswith(("http://", "https://")):
        return host.rstrip("/")
    protocol = _string(section.get("protocol"), f"{where}.protocol") or (
        "https" if _flag(section.get("ssl"), f"{where}.ssl") else "http")
    if protocol not in ("http", "https"):
        raise SettingsError(f"Wilma configuration: {where}.protocol must be http or https")
    port = section.get("port", default_port)
    netloc = f"[{host}]" if ":" in host else host
    if port not in (None, ""):
        netloc += f":{_number(port, f'{where}.port', 1, 65535)}"
    return f"{protocol}://{netloc}{_string(section.get('path'), f'{where}.path')}"


def from_wilma(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The fields a Wilma configuration document sets (see the module docstring)."""
    fields: dict[str, Any] = {}
    ignored: list[str] = []
    if "pep_port" in doc:
        fields["port"] = _number(doc["pep_port"], "pep_port", 1, 65535)
    https = _object(doc, "https")
    if _flag(https.get("enabled"), "https.enabled"):
        fields.update(https=True, https_cert=_string(https.get("cert_file"), "https.cert_file"),
                      https_key=_string(https.get("key_file"), "https.key_file"))
        if "port" in https:
            fields["port"] = _number(https["port"], "https.port", 1, 65535)
    idm = _endpoint(_object(doc, "idm"), "idm", 3005) or _string(doc.get("idm_host"), "idm_host").rstrip("/")
    if idm:
        fields["idm_url"] = idm
    app = _object(doc, "app") or {"host": doc.get("app_host"), "port": doc.get("app_port")}
    upstream = _endpoint(app, "app", None)
    if upstream:
        fields["upstream"] = upstream
    organizations = _object(doc, "organizations")
    if organizations:
        fields["organizations"] = _flag(organizations.get("enabled"), "organizations.enabled")
        if organizations.get("header"):
            fields["organizations_header"] = _string(organizations["header"], "organizations.header")
    pep = _object(doc, "pep")
    for key, name in (("app_id", "app_id"), ("username", "username"), ("password", "password")):
        if pep.get(key):
            fields[name] = _string(pep[key], f"pep.{key}")
    token = pep.get("token")
    if isinstance(token, dict) and token.get("secret"):
        fields["jwt_secret"] = _string(token["secret"], "pep.token.secret")
    if pep.get("trusted_apps"):
        fields["trusted_apps"] = _strings(pep["trusted_apps"], "pep.trusted_apps")
    fields.update(_authorization(doc, ignored))
    if "public_paths" in doc:
        fields["public_paths"] = _strings(doc["public_paths"], "public_paths")
    if doc.get("magic_key"):
        fields["magic_key"] = _string(doc["magic_key"], "magic_key")
    if "cache_time" in doc:
        fields["cache_time"] = _number(doc["cache_time"], "cache_time", 0, 86400)
    for key in ("error_template", "error_content_type"):
        if doc.get(key):
            fields[key] = _string(doc[key], key)
    if "auth_for_nginx" in doc:
        fields["auth_for_nginx"] = _flag(doc["auth_for_nginx"], "auth_for_nginx")
    for key in ("cors", "corsOptions"):
        if key in doc:
            ignored.append(key)
    ours = _object(doc, "waziup")
    if "deny_status" in ours:
        fields["deny_status"] = _number(ours["deny_status"], "waziup.deny_status", 401, 403)
        if fields["deny_status"] not in (401, 403):
            raise SettingsError("Wilma configuration: waziup.deny_status must be 401 or 403")
    if ours.get("issuer"):
        fields["issuer"] = _string(ours["issuer"], "waziup.issuer")
    if "multiservice" in ours:
        fields["multiservice"] = _flag(ours["multiservice"], "waziup.multiservice")
    if "policy_poll_ms" in ours:
        fields["policy_poll_ms"] = _number(ours["policy_poll_ms"], "waziup.policy_poll_ms", 0, 60000)
    if "timeout_ms" in ours:
        fields["idm_timeout_ms"] = _number(ours["timeout_ms"], "waziup.timeout_ms", 1, 600000)
    fields["ignored"] = tuple(ignored)
    return fields


def _authorization(doc: Mapping[str, Any], ignored: list[str]) -> dict[str, Any]:
    section = _object(doc, "authorization")
    enabled = _flag(section.get("enabled"), "authorization.enabled") if section else _flag(
        doc.get("check_permissions"), "check_permissions")
    fields: dict[str, Any] = {}
    if section.get("header") is not None:
        fields["tenant_header"] = _string(section["header"], "authorization.header")
    if not enabled:
        fields["pdp"] = "none"
        return fields
    name = _string(section.get("pdp"), "authorization.pdp") or "idm"
    pdp = PDP_NAMES.get(name.lower())
    if pdp is None:
        raise SettingsError(f"Wilma configuration: authorization.pdp {name!r} is not supported "
                            f"(one of {', '.join(PDP_NAMES)})")
    fields["pdp"] = pdp
    azf = _object(section, "azf")
    if azf.get("custom_policy"):
        raise SettingsError("Wilma configuration: authorization.azf.custom_policy (JavaScript policy scripts) is not "
                            "supported")
    location = _object(section, "location")
    if pdp == "azf":
        url = _endpoint(location, "authorization.location", 8080) or _endpoint(azf, "authorization.azf", 8080)
        if azf.get("domain"):
            fields["azf_domain"] = _string(azf["domain"], "authorization.azf.domain")
    else:
        url = _endpoint(location, "authorization.location", 8181 if pdp == "opa" else 8080)
    if url and pdp in ("azf", "opa", "xacml"):
        fields["pdp_url"] = url
    return fields


# -- all sources ------------------------------------------------------------------------------


def load_file(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            doc = orjson.loads(handle.read())
    except OSError as exc:
        raise SettingsError(f"-config {path}: {exc.strerror}") from None
    except orjson.JSONDecodeError as exc:
        raise SettingsError(f"-config {path}: not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise SettingsError(f"-config {path}: not a JSON object")
    return doc


def parse(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> ProxyConfig:
    """The proxy's configuration from every source (see the module docstring), checked."""
    environ = os.environ if environ is None else environ
    given = TABLE.parse(argv, environ)
    doc = load_file(given["config_file"]) if given.get("config_file") else {}
    doc = merge(doc, wilma_environ(environ))
    fields = from_wilma(doc)
    fields.update(given)
    ignored = [*fields.pop("ignored", ()), *(v for v in IGNORED_ENV if v in environ)]
    config = with_secrets(ProxyConfig(**fields, ignored=tuple(ignored)), environ)
    check(config)
    if not config.upstream and not config.auth_for_nginx:
        raise SettingsError("the PEP proxy needs the protected service (-appURL, WAZIUP_PEP_APP_URL, app in the Wilma "
                            "configuration, PEP_PROXY_APP_HOST)")
    if config.https and not (config.https_cert and config.https_key):
        raise SettingsError("https needs cert_file and key_file")
    return config


def from_command_line(argv: Sequence[str] | None = None) -> ProxyConfig:
    """``waziup pep``: the configuration, or the help (exit 0), or the error (exit 1)."""
    return command_line(TABLE, parse, sys.argv[1:] if argv is None else argv, prog="waziup pep", show=print)
