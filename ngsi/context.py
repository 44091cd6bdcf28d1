"""The request context: what one request is about, built once at the front, passed explicitly.

Every HTTP service of the platform builds a :class:`RequestContext` from the request's
headers before anything else looks at it (``ngsi.server.guards`` runs the guards on it,
then the route hands it to the domain layer). It says which tenant and service paths the
request is about, which correlator ties its log lines and notifications together, who
made it (``identity``: anonymous until ``security/`` puts one in through a guard) and
the NGSI options that change what a write causes (``forcedUpdate``).

It is a frozen value: a guard that authenticates the caller makes a new one with
``with_identity``; nothing changes it under a handler's feet. The one mutable part is
the :class:`Tally`, the request's own counters (notifications numbered ``cbnotif=<n>``
in the order the request triggers them, the deadline of its back-pressure waits): it
belongs to the request as its correlator does, and dies with it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from .errors import NGSIError
from .servicepath import Scope, parse_scopes, parse_tenant, parse_write_path, write_scopes


@dataclass(frozen=True, slots=True)
class Identity:
    """Who made the request, as the identity manager knows them (Keyrock's user info).

    Empty (``ANONYMOUS``) while security is off. ``app_id`` is the OAuth client the token
    was issued to; ``roles`` and ``organizations`` are names or ids as the PEP found them.
    """

    user_id: str = ""
    username: str = ""
    email: str = ""
    display_name: str = ""
    app_id: str = ""
    roles: tuple[str, ...] = ()
    organizations: tuple[str, ...] = ()
    admin: bool = False

    @property
    def anonymous(self) -> bool:
        return not self.user_id and not self.app_id


ANONYMOUS = Identity()


class Tally:
    """A request's running counters: the mutable part of a request context."""

    __slots__ = ("notifications", "deadline")

    def __init__(self) -> None:
        self.notifications = 0  # notifications this request caused so far (cbnotif)
        self.deadline: float | None = None  # loop time its back-pressure waits must end

    def next_notification(self) -> int:
        self.notifications += 1
        return self.notifications


REQUEST = "request"  # a client's request
INTERNAL = "internal"  # the platform acting on its own (expiry purge, start-up)


@dataclass(frozen=True, slots=True)
class RequestContext:
    """One request, as every layer behind the front sees it.

    ``tenant`` is the parsed ``Fiware-Service`` ("" for the default service; always ""
    when the service does not honour tenants, e.g. the broker without -multiservice);
    ``service`` is the header as received (trimmed), which notifications repeat.
    ``service_path`` is the raw ``Fiware-ServicePath`` header (None when absent): reads
    and writes parse it through ``scopes()`` / ``write_path()`` when they need it, so
    that a bad header is reported at the point Orion reports it. A bad tenant name is
    kept in ``tenant_error`` for the same reason.
    """

    tenant: str = ""
    service: str = ""
    service_path: str | None = None
    correlator: str = ""
    identity: Identity = ANONYMOUS
    auth_token: str | None = None  # X-Auth-Token, passed on to notifications (Orion's rule)
    # The caller's token, from X-Auth-Token or ``Authorization: Bearer``: what context providers
    # get (as X-Auth-Token), so that a provider behind a PEP decides with the caller's rights.
    credential: str | None = None
    options: frozenset[str] = frozenset()
    origin: str = REQUEST
    tenant_error: NGSIError | None = None
    # What an authorization decision lets the caller see of the entities it reads (a guard
    # sets them; the broker applies them when rendering): None = every attribute.
    attrs_visible: frozenset[str] | None = None
    attrs_hidden: frozenset[str] = frozenset()
    # How the answer leaves for this caller (``ngsi/release.py``: a privacy guard sets it
    # when the caller has a policy; the service hands its answer over). None: as it is.
    release: Any = None
    tally: Tally = field(default_factory=Tally, compare=False, repr=False)

    @property
    def forced(self) -> bool:
        """``options=forcedUpdate``: every update counts as a change for subscriptions."""
        return "forcedUpdate" in self.options

    @property
    def internal(self) -> bool:
        return self.origin == INTERNAL

    def scopes(self) -> tuple[Scope, ...]:
        """The service paths a read covers (every path when the header is absent)."""
        return parse_scopes(self.service_path)

    def write_path(self, operation: str = "update") -> str:
        """The one service path a write goes to ("/" when none is given)."""
        return parse_write_path(self.service_path, operation=operation)

    def write_scopes(self, operation: str = "update") -> tuple[Scope, ...]:
        """What an update (``patch``) or deletion (``delete``) of existing entities may touch."""
        return write_scopes(self.service_path, operation=operation)

    def checked_tenant(self) -> str:
        """The tenant, or the error its name gave."""
        if self.tenant_error is not None:
            raise self.tenant_error
        return self.tenant

    def replaced(self, **changes: object) -> RequestContext:
        """A copy with ``changes``: ``dataclasses.replace`` without its checks (a third of its
        cost; guards make one per request). The tally is the same object: same request."""
        copy = object.__new__(RequestContext)
        for name in _FIELDS:
            object.__setattr__(copy, name, changes[name] if name in changes else getattr(self, name))
        return copy

    def with_identity(self, identity: Identity) -> RequestContext:
        return self.replaced(identity=identity)

    def with_options(self, options: frozenset[str]) -> RequestContext:
        return self.replaced(options=options)

    def for_tenant(self, tenant: str) -> RequestContext:
        return self.replaced(tenant=tenant, service=tenant, tenant_error=None)


_FIELDS = tuple(f.name for f in dataclasses.fields(RequestContext))


def from_headers(headers: dict[str, str], correlator: str, *, multiservice: bool = True) -> RequestContext:
    """The context of a request whose headers (lowercase names, first value) are given."""
    service = headers.get("fiware-service")
    tenant = ""
    error: NGSIError | None = None
    if service:
        try:
            tenant = parse_tenant(service)
        except NGSIError as exc:
            error = exc
    return RequestContext(
        tenant=tenant if multiservice else "",
        service=tenant if multiservice and tenant else (service or "").strip(),
        service_path=headers.get("fiware-servicepath"),
        correlator=correlator,
        auth_token=headers.get("x-auth-token"),
        credential=headers.get("x-auth-token") or _bearer(headers.get("authorization")),
        tenant_error=error,
    )


def _bearer(authorization: str | None) -> str | None:
    if authorization is None:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def internal(tenant: str = "") -> RequestContext:
    """The context of what the platform does on its own (no client, no correlator given)."""
    return RequestContext(tenant=tenant, service=tenant, origin=INTERNAL)
