"""The PEP as a guard on the request seam (``ngsi/server/guards.py``): who is calling, and
may they do this.

For each request, in order:

1. ``OPTIONS`` (CORS preflights, which browsers send without credentials) and the public
   paths (``/version`` by default; ``/prefix/*`` for a subtree, as Wilma's
   ``public_paths``; never a path with ``.`` or ``..`` segments) pass as they are;
2. the token (``tokens.py``; none: 401 MissingAuthenticationToken; Wilma's ``magic_key``,
   when configured, passes as is);
3. the caller (``authenticate.py``: JWTs here, other tokens at the identity manager,
   both cached; 401 Invalid/ExpiredAuthenticationToken, InvalidRole for another
   application's token);
4. with ``organizations``, the tenant header must name one of the caller's organizations
   (Wilma's ``organizations.enabled``);
5. the decision (``authorize.py``, the configured PDP); a denial is ``deny_status`` (403;
   401 as Wilma) InvalidRole with the reason in ``detail``, and is logged.

An admitted request continues with the caller's :class:`~ngsi.context.Identity` in its
context and, for a read the policies project, ``attrs_visible`` / ``attrs_hidden``, which
the broker applies to everything it returns. The identity manager or a PDP that cannot be
reached is 500 InternalServerError (Wilma's), never a pass.

:class:`PEP` is the guard; :meth:`PEP.admit` is the same check returning the caller too,
for the proxy (``proxy.py``), which adds Wilma's headers to what it forwards.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ngsi.client.http11 import HTTPClient
from ngsi.tls import trust_context
from ngsi.client.transport import Transport
from ngsi.context import RequestContext
from ngsi.server.guards import Incoming, Verdict, admit, reject

from .authenticate import Authenticator
from .authorize import ALLOW, BODY_METHODS, Asked, Everyone, External, KeyrockLevels, NGSIPolicies, Outcome, Strategy
from .caller import Caller
from .denials import DenialReporter
from .freshness import Freshness
from .idm import IdMClient, IdMError
from .jwks import KeySource
from .pdp import PDPError
from .pdp.azf import AzfClient, NoDomain
from .pdp.opa import OpaClient
from .pdp.xacml import XacmlClient
from .policyboard import board_for
from .replies import INVALID_ROLE, UNAUTHORIZED_ENDPOINT, Refusal, Replies, invalid, missing, unavailable
from .settings import Settings
from .tokens import Malformed, token_of

log = logging.getLogger("waziup.security.pep")


def _same(given: str, secret: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8", "replace"), secret.encode("utf-8", "replace"))


class PublicPaths:
    """Paths served without a token: exact ones (with or without one trailing slash, as the
    broker reads them) and ``/prefix/*`` subtrees."""

    __slots__ = ("exact", "prefixes")

    def __init__(self, paths: Iterable[str]) -> None:
        exact: set[str] = set()
        prefixes: list[str] = []
        for path in paths:
            if path.endswith("/*"):
                prefixes.append(path[:-1])
            else:
                base = path.rstrip("/")
                exact.update((base, base + "/") if base else ("/",))
        self.exact = frozenset(exact)
        self.prefixes = tuple(prefixes)

    def __contains__(self, path: str) -> bool:
        if path in self.exact:
            return True
        if self.prefixes and path.startswith(self.prefixes):
            segments = path.split("/")
            return "." not in segments and ".." not in segments
        return False


@dataclass(frozen=True, slots=True)
class Admission:
    """An admitted request: its new context, its caller (None: public or magic key) and
    the decision (with its projection)."""

    ctx: RequestContext
    caller: Caller | None
    outcome: Outcome = ALLOW


class PEP:
    """The guard (see the module docstring); ``service`` picks the default public paths
    (``broker``, ``agent``, ``proxy``, ``history``) and, for ``history``, the route table
    requests are read with (``security.authz.history``); ``routes`` names that table apart
    (the proxy: no public paths of its own, the routes of the service behind it)."""

    def __init__(
        self,
        settings: Settings,
        *,
        service: str = "broker",
        routes: str | None = None,
        idm: IdMClient | None = None,
        transport: Transport | None = None,
        now: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.service = service
        self.routes = routes or service
        timeout = settings.idm_timeout_ms / 1000.0
        self.transport = transport if transport is not None else HTTPClient(
            max_per_host=32, ssl_context=trust_context("WAZIUP_PEP_IDM_CA", settings.idm_ca) if settings.idm_ca else None
        )
        self.idm = idm if idm is not None else IdMClient(
            settings.idm_url, transport=self.transport, timeout=timeout, username=settings.username,
            password=settings.password,
        )
        self.freshness = Freshness(self.idm.policy_version, settings.policy_poll_ms / 1000.0, monotonic)
        refetch = settings.jwks_refetch_ms / 1000.0
        self.keys = KeySource(self.idm, issuer=settings.issuer, refetch=refetch, clock=monotonic)
        self.authenticator = Authenticator(settings, self.idm, self.freshness, self.keys, now=now)
        self.strategy = self._strategy(timeout)
        self.public = PublicPaths(settings.public(service))
        self.replies = Replies(settings.idm_url, settings.error_template, settings.error_content_type)
        self.org_header = settings.organizations_header.lower()
        self.denials = DenialReporter(self.idm, service) if settings.audit else None

    def _strategy(self, timeout: float) -> Strategy:
        s = self.settings
        if s.pdp == "ours":
            return NGSIPolicies(self.authenticator, s.max_entries, board_for(s.idm_url, s.app_id))
        if s.pdp == "idm":
            return KeyrockLevels(self.authenticator, s.tenant_header, s.max_entries)
        if s.pdp == "azf":
            azf = AzfClient(s.pdp_url, self.transport, domain=s.azf_domain, timeout=timeout)
            return External(azf, s.app_id, payload=False, azf=True, tenant_header=s.tenant_header)
        if s.pdp in ("opa", "xacml"):
            client = (OpaClient if s.pdp == "opa" else XacmlClient)(s.pdp_url, self.transport, timeout=timeout)
            return External(client, s.app_id, payload=True, azf=False, tenant_header=s.tenant_header)
        return Everyone()

    async def __call__(self, request: Incoming) -> Verdict | None:
        try:
            admission = await self.admit(request)
        except Refusal as refusal:
            return reject(self.replies.reply(refusal))
        if admission.caller is None:
            return None
        return admit(admission.ctx)

    async def admit(self, request: Incoming) -> Admission:
        """The check; Refusal when the request may not pass."""
        method = request.method
        if method == "OPTIONS" or request.path in self.public:
            return Admission(request.ctx, None)
        headers = request.headers
        magic = self.settings.magic_key
        if magic and _same(headers.get("x-auth-token", ""), magic):  # Wilma compares the header as sent
            return Admission(request.ctx, None)
        try:
            token = token_of(headers)
        except Malformed as exc:
            raise invalid(str(exc)) from None
        if token is None:
            raise missing()
        if magic and _same(token, magic):
            return Admission(request.ctx, None)
        asked = Asked(method, request.path, request.query_string, headers, multiservice=self.settings.multiservice,
                      service=self.routes)
        strategy = self.strategy
        try:
            authenticated = await self.authenticator.authenticate(token, strategy.params(asked))
            caller = authenticated.caller
            if self.settings.organizations:
                self._check_organization(caller, headers)
            if strategy.needs_body and method in BODY_METHODS:
                asked.body = await request.body()
            elif strategy.needs_body:
                asked.body = b""
            outcome = await strategy.decide(token, authenticated, asked)
        except IdMError as exc:
            log.warning("identity manager: %s", exc)
            raise unavailable("The identity manager") from None
        except NoDomain as exc:
            log.warning("%s", exc)
            raise Refusal(401, UNAUTHORIZED_ENDPOINT, "The authorization domain does not exist") from None
        except PDPError as exc:
            log.warning("policy decision point: %s", exc)
            raise unavailable("The policy decision point") from None
        if not outcome.allow:
            who = caller.identity.user_id or f"application {caller.identity.app_id}"
            log.info("denied %s %r to %s: %s", method, request.path, who, outcome.reason)
            if self.denials is not None:
                self.denials.report(user=who, method=method, path=request.path, tenant=request.ctx.tenant,
                                    source=request.client[0] if request.client else "", reason=outcome.reason or "")
            raise Refusal(self.settings.deny_status, INVALID_ROLE, outcome.reason or "Access denied")
        ctx = request.ctx.replaced(identity=caller.identity, attrs_visible=outcome.visible, attrs_hidden=outcome.hidden)
        return Admission(ctx, caller, outcome)

    def _check_organization(self, caller: Caller, headers: dict[str, str]) -> None:
        organization = headers.get(self.org_header, "")
        if organization not in caller.organization_ids:
            raise Refusal(self.settings.deny_status, INVALID_ROLE,
                          f"The user is not a member of the organization the {self.org_header} header names")

    async def aclose(self) -> None:
        await self.transport.aclose()
