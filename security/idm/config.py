"""The identity manager's options: one table (``ngsi.settings``), Keyrock's variable names.

Each option also reads the environment variable Keyrock's Docker image uses for the same
setting (``reference/keyrock/environment_variables.md``: ``IDM_PORT``, ``IDM_HOST``,
``IDM_OAUTH_*_LIFETIME``, ``IDM_API_LIFETIME``, ``IDM_PDP_LEVEL``, ``IDM_ADMIN_*``), and a
``WAZIUP_*`` one where Keyrock has none. The first admin's password is read from the
environment only (``WAZIUP_ADMIN_PASSWORD`` or Keyrock's ``IDM_ADMIN_PASS``), never from
the command line, which other local users can read in the process list.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from ngsi.service_options import ServiceConfig
from ngsi.settings import (
    FLAG, PORT, Choice, Int, SettingsError, Table, Text, command_line, data_dir_option, environment_secret, http_url,
    listen_option, log_level_option, option,
)

DEFAULT_PORT = 3005  # Keyrock's
DAY = 86400

ConfigError = SettingsError


@dataclass(frozen=True)
class Config(ServiceConfig):
    STORE_FILE = "idm.db"

    port: int = DEFAULT_PORT
    issuer: str = ""  # empty: http(s)://localhost:<port>
    auth_lifetime: int = 300  # authorization code, seconds (Keyrock: 5 min)
    access_lifetime: int = 3600  # access token (Keyrock: 1 h)
    refresh_lifetime: int = 14 * DAY  # refresh token (Keyrock: 14 days)
    api_lifetime: int = 3600  # /v1 API token (Keyrock: config.api.token_lifetime, 1 h)
    pdp_level: str = "basic"
    signing_algorithm: str = "RS256"
    key_rotation: int = 30 * DAY  # seconds a signing key signs before a new one replaces it
    lockout_attempts: int = 5  # failed logins of one account that lock it
    lockout_address_attempts: int = 20  # failed logins from one address that lock it
    lockout_seconds: int = 300  # how long a lock lasts (and the window failures are counted in)
    trust_forwarded: bool = False  # take the client address from X-Forwarded-For (behind a proxy that sets it)
    admin_id: str = "admin"
    admin_username: str = "admin"
    admin_email: str = "admin@localhost"
    admin_password: str = field(default="", repr=False)  # environment only

    @property
    def issuer_url(self) -> str:
        """The ``iss`` of tokens and the base of the discovery document's URLs (no trailing slash)."""
        if self.issuer:
            return self.issuer.rstrip("/")
        return f"{'https' if self.https else 'http'}://localhost:{self.port}"

    @property
    def admin_password_file(self) -> str:
        return os.path.join(self.data_dir, "admin-password")


_LIFETIME = Int(1, 10 * 365 * DAY, metavar="SECONDS")

OPTIONS = Table(
    Config,
    option("-port", type=PORT, env="IDM_PORT", help="HTTP port (HTTPS with -https)"),
    listen_option("-host", env="WAZIUP_IDM_LISTEN"),
    data_dir_option("-data", help="where idm.db and the generated admin password file go"),
    option("-dbURI", type=Text("URL"), env="IDM_DB_URI", shown="sqlite:///<-data>/idm.db",
           help="store: sqlite:///relative.db, sqlite:////absolute.db, postgresql://user:password@host/db"),
    option("-issuer", type=Text("URL"), env="IDM_HOST", check=http_url, shown="http://localhost:<-port>",
           help="the public URL of this identity manager: the iss of its tokens, the base of its discovery URLs"),
    option("-https", type=FLAG, env="IDM_HTTPS_ENABLED", help="serve HTTPS only (needs -key and -cert)"),
    option("-key", field="https_key", type=Text("FILE"), env="WAZIUP_IDM_HTTPS_KEY", help="-https: private key, PEM"),
    option("-cert", field="https_cert", type=Text("FILE"), env="WAZIUP_IDM_HTTPS_CERT",
           help="-https: certificate, PEM, then any intermediate CA certificates"),
    log_level_option("-logLevel", env="WAZIUP_LOG_LEVEL"),
    option("-authLifetime", type=_LIFETIME, env="IDM_OAUTH_AUTH_LIFETIME", help="authorization code lifetime"),
    option("-accessLifetime", type=_LIFETIME, env="IDM_OAUTH_ACC_LIFETIME",
           help="access token (and ID token) lifetime"),
    option("-refreshLifetime", type=_LIFETIME, env="IDM_OAUTH_REFR_LIFETIME", help="refresh token lifetime"),
    option("-apiLifetime", type=_LIFETIME, env="IDM_API_LIFETIME", help="/v1 API token (X-Subject-Token) lifetime"),
    option("-pdpLevel", type=Choice("basic", "payload"), env="IDM_PDP_LEVEL",
           help="GET /user decisions: basic (verb, path, tenant) or payload (also entity ids, attributes, types)"),
    option("-signingAlgorithm", type=Choice("RS256", "ES256"), env="WAZIUP_IDM_SIGNING_ALG",
           help="the key that signs ID tokens and JWT access tokens of applications that use it"),
    option("-keyRotation", type=_LIFETIME, env="WAZIUP_IDM_KEY_ROTATION", shown="2592000 (30 days)",
           help="seconds a signing key signs before a new one replaces it"),
    option("-lockoutAttempts", type=Int(0, 1000), env="WAZIUP_IDM_LOCKOUT_ATTEMPTS",
           help="failed logins of one account that lock it (0: never)"),
    option("-lockoutAddressAttempts", type=Int(0, 100000), env="WAZIUP_IDM_LOCKOUT_ADDRESS_ATTEMPTS",
           help="failed logins from one client address that lock it (0: never)"),
    option("-lockoutSeconds", type=_LIFETIME, env="WAZIUP_IDM_LOCKOUT_SECONDS",
           help="how long a lock lasts, and the window failed logins are counted in"),
    option("-trustForwarded", type=FLAG, env="WAZIUP_IDM_TRUST_FORWARDED",
           help="client address from X-Forwarded-For (only behind a proxy that replaces that header)"),
    option("-adminId", type=Text("ID"), env="IDM_ADMIN_ID", help="id of the first admin"),
    option("-adminUsername", type=Text("NAME"), env=("WAZIUP_ADMIN_USERNAME", "IDM_ADMIN_USER"),
           help="username of the first admin"),
    option("-adminEmail", type=Text("EMAIL"), env=("WAZIUP_ADMIN_EMAIL", "IDM_ADMIN_EMAIL"),
           help="e-mail (login) of the first admin"),
    about="The identity manager (Keyrock-compatible). The first admin's password comes from WAZIUP_ADMIN_PASSWORD "
    "(or IDM_ADMIN_PASS); without it one is generated on the first start, printed once and kept in "
    "<-data>/admin-password (mode 0600).",
)

PASSWORD_VARIABLES = ("WAZIUP_ADMIN_PASSWORD", "IDM_ADMIN_PASS")


def parse(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> Config:
    environ = os.environ if environ is None else environ
    config = OPTIONS.build(argv, environ)
    config = replace(config, admin_password=environment_secret(environ, *PASSWORD_VARIABLES))
    config.check_https()
    return config


def from_command_line(argv: Sequence[str] | None = None) -> Config:
    """``python -m security.idm``: the Config, or the help (exit 0), or the error (exit 1)."""
    return command_line(OPTIONS, parse, sys.argv[1:] if argv is None else argv, prog="waziup idm", show=print)
