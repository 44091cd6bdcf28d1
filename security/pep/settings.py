"""What the PEP guard is told: one table of options (``ngsi.settings``), read from ``WAZIUP_*``
environment variables by the guard factories and from the command line by ``waziup pep``
(which also reads Wilma's configuration: ``config.py``).

Every field has a default but the identity manager's URL, which the factories require: a
PEP named with ``-guard security.pep:broker_guard`` and no identity manager to ask is a
mistake, and it fails at start-up rather than letting requests through. The password and
the secrets (``WAZIUP_PEP_PASSWORD``, ``WAZIUP_PEP_JWT_SECRET``) are read from the
environment only, never from the command line (which other local users can read in the
process list), and are left out of the dataclass's ``repr``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final, TypeVar

from ngsi.settings import FLAG, Choice, Int, Prefix, Repeated, SettingsError, Table, Text, http_url, option

from .replies import DEFAULT_TEMPLATE

PDPS: Final = ("ours", "idm", "none", "azf", "opa", "xacml")
DEFAULT_PUBLIC: Final[dict[str, tuple[str, ...]]] = {
    "broker": ("/version",),
    # the agent's seam puts the same guards on its north and south ports: the south port's
    # measure routes are authenticated by the device's API key, not by a user's token
    "agent": ("/iot/about", "/version", "/iot/d", "/iot/json", "/iot/json/*", "/iot/waziup"),
    # the history service's probes: its version, and its database's health (QuantumLeap's)
    "history": ("/version", "/health"),
    "rules": ("/version",),
    # the orchestrator's service: the broker's notifications to apps come in on /ingress/<app>/<key>/...
    "orchestrator": ("/version", "/", "/ingress/*"),
    "proxy": (),
}
S = TypeVar("S", bound="Settings")
PEP: Final = Prefix("WAZIUP_PEP_")  # the PEP's variables: WAZIUP_PEP_ and the field in capitals
SECRET_VARIABLES: Final = {name: PEP.variable(name) for name in ("password", "jwt_secret")}  # environment only


@dataclass(frozen=True)
class Settings:
    """The guard's configuration (see docs/security.md, "The PEP", for each variable)."""

    idm_url: str = ""
    app_id: str = ""
    trusted_apps: tuple[str, ...] = ()
    username: str = ""
    password: str = field(default="", repr=False)
    jwt_secret: str = field(default="", repr=False)  # Wilma's pep.token.secret: Keyrock's HS256 JWTs
    issuer: str = ""  # "": the identity manager's discovery document says
    pdp: str = "ours"
    pdp_url: str = ""  # azf, opa, xacml: where the PDP answers
    azf_domain: str = ""  # azf: the domain, when the identity manager does not say (ours does not)
    tenant_header: str = "fiware-service"  # Wilma's authorization.header (the idm PDP's tenant)
    organizations: bool = False  # Wilma's organizations.enabled: the tenant must be one of the user's organizations
    organizations_header: str = "fiware-service"
    public_paths: tuple[str, ...] | None = None  # None: the service's default (DEFAULT_PUBLIC)
    cache_time: int = 300  # seconds a token's answer is kept at most (Wilma's cache_time)
    policy_poll_ms: int = 1000  # a cached decision is used only if the policy version was confirmed this recently
    jwks_refetch_ms: int = 5000  # an unknown kid refetches the JWKS at most this often
    deny_status: int = 403  # 401: Wilma's answer to a valid token that is denied
    error_template: str = DEFAULT_TEMPLATE
    error_content_type: str = "application/json"
    magic_key: str = field(default="", repr=False)  # Wilma's magic_key (the proxy's configuration only)
    multiservice: bool = True  # the protected service honours Fiware-Service
    idm_timeout_ms: int = 5000
    idm_ca: str = ""  # PEM CA certificates trusted for an https identity manager, besides the system's
    max_entries: int = 100_000  # tokens and decisions cached at most (least recently used go first)
    audit: bool = False  # denied requests go to the identity manager's audit trail (ours: POST /audit/events)

    def public(self, service: str) -> tuple[str, ...]:
        return DEFAULT_PUBLIC.get(service, ()) if self.public_paths is None else self.public_paths


def _status(value: int) -> None:
    if value not in (401, 403):
        raise ValueError(f"{value} is not 401 or 403")


SETTINGS_ROWS = (
    option("-idmURL", type=Text("URL"), env="WAZIUP_IDM_URL", check=http_url,
           help="the identity manager (ours or Keyrock), e.g. http://idm:3005"),
    option("-appId", type=Text("ID"), env=PEP,
           help="the application the protected service is: tokens must be issued to it (or a trusted one)"),
    option("-trustedApp", field="trusted_apps", type=Repeated("ID"), env=PEP,
           help="another application whose tokens are accepted; repeatable"),
    option("-username", type=Text("NAME"), env=PEP,
           help="the PEP's own login at the identity manager (its password: WAZIUP_PEP_PASSWORD)"),
    option("-issuer", type=Text("URL"), env=PEP, shown="the discovery document's",
           help="the iss of the identity manager's JWTs"),
    option("-pdp", type=Choice(*PDPS), env=PEP,
           help="who decides: ours (NGSI-aware policies from the identity manager), idm (Keyrock's verb and path "
           "permissions), none (authentication only), azf (AuthZForce), opa, xacml"),
    option("-pdpURL", type=Text("URL"), env=PEP, check=http_url,
           help="azf, opa, xacml: the PDP's URL (azf: its base, e.g. http://azf:8080)"),
    option("-azfDomain", type=Text("ID"), env=PEP,
           help="azf: the AuthZForce domain (else the identity manager's app_azf_domain)"),
    option("-tenantHeader", type=Text("NAME"), env=PEP,
           help="idm: the header whose value is sent as authorization_service_header (empty: none)"),
    option("-organizations", type=FLAG, env=PEP,
           help="the tenant header must name one of the user's organizations (Wilma's organizations.enabled)"),
    option("-orgHeader", field="organizations_header", type=Text("NAME"), env="WAZIUP_PEP_ORG_HEADER",
           help="-organizations: the header holding the organization"),
    option("-publicPath", field="public_paths", type=Repeated("PATH"), env=PEP,
           shown="broker /version; agent /iot/about, /version, the south measure routes; history /version, /health; "
           "rules /version; proxy none",
           help="a path served without a token (/prefix/* for a subtree); repeatable; an empty variable: none"),
    option("-cacheTime", type=Int(0, 86400, metavar="SECONDS"), env=PEP,
           help="how long a token's validation is kept at most (a JWT: until its exp at most)"),
    option("-policyPoll", field="policy_poll_ms", type=Int(0, 60000, metavar="MS"), env=PEP,
           help="cached decisions and policies are used only while the identity manager's policy version was "
           "confirmed within this time (so a role removed takes effect within it)"),
    option("-jwksRefetch", field="jwks_refetch_ms", type=Int(0, 3600000, metavar="MS"), env=PEP,
           help="a JWT with an unknown kid refetches the JWKS at most this often"),
    option("-denyStatus", type=Int(401, 403, metavar="STATUS"), env=PEP, check=_status,
           help="the status of a valid token that is denied: 403, or 401 as Wilma answers"),
    option("-errorTemplate", type=Text("TEMPLATE"), env=PEP, shown="Wilma's",
           help="the error body: {{type}}, {{title}} and {{message}} are replaced"),
    option("-multiservice", type=FLAG, env=PEP,
           help="the protected service honours Fiware-Service (false: every request is of the default tenant)"),
    option("-idmTimeout", field="idm_timeout_ms", type=Int(1, 600000, metavar="MS"), env=PEP,
           help="how long a call to the identity manager or a PDP may take"),
    option("-audit", type=FLAG, env=PEP,
           help="record denied requests in the identity manager's audit trail (ours only: Keyrock has none)"),
    option("-idmCa", type=Text("FILE"), env=PEP,
           help="PEM file of CA certificates trusted for an https identity manager or PDP, besides the system's"),
)

TABLE = Table(Settings, *SETTINGS_ROWS)


def with_secrets(settings: S, environ: Mapping[str, str]) -> S:
    """``settings`` with the password and JWT secret of the environment, where given."""
    found: dict[str, Any] = {
        name: environ[variable] for name, variable in SECRET_VARIABLES.items() if environ.get(variable)
    }
    return replace(settings, **found) if found else settings


def check(settings: S) -> S:
    """``settings`` if they make a working PEP, else SettingsError saying what is missing."""
    if not settings.idm_url:
        raise SettingsError("the PEP needs the identity manager's URL (WAZIUP_IDM_URL, -idmURL, or idm in the"
                            " Wilma configuration)")
    if settings.pdp == "ours" and not (settings.username and settings.password):
        raise SettingsError("the ours PDP reads the policies from the identity manager and needs the PEP's login:"
                            " WAZIUP_PEP_USERNAME and WAZIUP_PEP_PASSWORD (or WAZIUP_PEP_PDP=none for"
                            " authentication only, idm for Keyrock's permissions)")
    if settings.pdp in ("opa", "xacml") and not settings.pdp_url:
        raise SettingsError(f"the {settings.pdp} PDP needs its URL (WAZIUP_PEP_PDP_URL, -pdpURL)")
    if settings.pdp == "azf" and not settings.pdp_url:
        raise SettingsError("the azf PDP needs AuthZForce's URL (WAZIUP_PEP_PDP_URL, -pdpURL)")
    for path in settings.public_paths or ():
        if not path.startswith("/"):
            raise SettingsError(f"public path {path!r} does not start with /")
    return settings


def from_environ(environ: Mapping[str, str] | None = None, argv: Sequence[str] = ()) -> Settings:
    """The guard's settings from ``WAZIUP_*`` variables (and options, for tools), checked."""
    environ = os.environ if environ is None else environ
    return check(with_secrets(TABLE.build(argv, environ), environ))
