"""The identity manager's Starlette app (Keyrock-compatible, port 3005).

Routes, each module citing the part of the Keyrock reference it follows:

* ``routes/oauth2.py``: ``/oauth2/token``, ``/oauth2/authorize`` (the sign-in page,
  ``pages/login.py``), ``/oauth2/revoke``, ``/oauth2/introspect``;
* ``routes/user.py``: ``/user`` (PEP token validation and decisions),
  ``/pdp/open_policy_agent``;
* ``routes/wellknown.py``: OpenID Connect discovery, JWKS, ``/userinfo``;
* ``routes/policies.py``: ``/v1/ngsi_policies`` (the NGSI policy set, for PEPs) and the
  NGSI-aware PDP (``/pdp/ngsi/decide``, ``/pdp/ngsi/open_policy_agent``), for
  authenticated PEPs;
* ``routes/privacy.py``: ``/v1/privacy/...``, the privacy policies, the pseudonyms' key
  ring and the epsilon ledger (docs/privacy.md "The policy API"), for admins;
* ``routes/v1_*.py``: the management API under ``/v1``, and under ``/v3`` too (Keyrock
  mounts it there for Keystone-era clients; Wilma logs in at ``/v3/auth/tokens``).

The store opens in the lifespan; the first admin is made there when none exists
(``bootstrap.py``). ``clock`` (seconds since the epoch) is the only time the app reads,
injected by tests. Anything unexpected answers 500 in Keyrock's error shape, logged
without the request's body or headers (which hold passwords and tokens).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount
from starlette.types import ASGIApp

from ngsi.server.service import LastResort

from .bootstrap import ensure_admin
from .config import Config
from .http import KeyrockError
from security.audit.log import AuditLog
from security.audit.routes import routes as audit_routes

from .routes import (
    oauth2,
    policies,
    privacy,
    user,
    v1_applications,
    v1_auth,
    v1_organizations,
    v1_users,
    wellknown,
)
from .service import IdentityService
from .store import IdmStore, StoreError, open_store

log = logging.getLogger("waziup.idm")

V1 = [*v1_auth.ROUTES, *v1_users.ROUTES, *v1_organizations.ROUTES, *v1_applications.ROUTES]


async def _keyrock_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, KeyrockError)
    return exc.response()


async def _store_error(request: Request, exc: Exception) -> Response:
    log.error("store error on %s %s: %s", request.method, request.url.path, exc)
    return KeyrockError(503, "The identity manager's database is not available").response()


def _internal_error() -> ASGIApp:
    """A bug's answer (``LastResort``): 500 in Keyrock's shape, never a traceback."""
    return KeyrockError(500, "Internal error").response()


def create_app(
    config: Config | None = None,
    *,
    clock: Callable[[], float] = time.time,
    store: IdmStore | None = None,
    show: Callable[[str], object] = print,
) -> Starlette:
    """The app; ``store`` overrides the one ``config`` names, ``show`` is where the first
    admin's generated password is printed (the console)."""
    config = config or Config()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        the_store = store if store is not None else open_store(config.store_url)
        await the_store.open()
        the_service = IdentityService(the_store, config, clock)
        # the audit trail (security/audit): sign-ins, tokens, role and policy changes, beside the data
        audit = the_service.audit = app.state.audit = AuditLog.open(config.data_dir)
        try:
            await ensure_admin(the_store, config, clock(), show)
            await the_service.load_keys()
            await the_service.signing_key()
            await the_store.purge_tokens(clock())
            app.state.service = the_service
            log.info("identity manager on port %s, issuer %s", config.port, config.issuer_url)
            yield
        finally:
            await the_store.close()
            audit.close()

    app = Starlette(
        routes=[
            *oauth2.ROUTES, *user.ROUTES, *wellknown.ROUTES, *policies.ROUTES, *privacy.ROUTES,
            Mount("/v1", routes=V1), Mount("/v3", routes=V1),
            *audit_routes(lambda request: request.app.state.audit),  # /audit, /audit/verify, /audit/events, /audit/pseudonymize: admins only
        ],
        middleware=[Middleware(LastResort, answer=_internal_error, log=log)],
        exception_handlers={KeyrockError: _keyrock_error, StoreError: _store_error},
        lifespan=lifespan,
    )
    app.state.config = config
    return app
