"""The rules service's Starlette app (Perseo-compatible API, port 9090).

The lifespan opens the store (``-dbURI``), the NGSI client of the broker
(``-brokerURL``, ``-brokerCa``, the service account of ``-authTokenURL``), the HTTP client of post actions (behind the destination policy,
``-allowedHosts``), and starts ``RulesService`` (its background tasks and workers); at
shutdown it drains the action queue for a few seconds and saves the engine's state.

Errors: a ``RulesError`` answers its status in Perseo's shape ``{"error", "data": null}``;
a failing store answers 503; Starlette's own 404/405 are reshaped the same; anything else
is a bug, logged, answered 500 in that shape, never a traceback. ``clock`` (epoch
seconds) is the only time the service reads: tests move it to make a minute pass.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from http import HTTPStatus

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from ngsi.client import HTTPClient, NGSIClient
from ngsi.client.credentials import Credentials, OAuth2ClientCredentials
from ngsi.destinations import Gate, Policy, parse_rules
from ngsi.server.guards import Guard
from ngsi.tls import trust_context

from .config import Config
from .errors import RulesError
from .routes import ROUTES
from .seam import SEAM, error
from .service import RulesService
from .store import RulesStore, StoreError, open_store

log = logging.getLogger("waziup.rules")


async def _rules_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RulesError)
    return error(exc.message, exc.status)


async def _store_error(request: Request, exc: Exception) -> Response:
    log.error("store error method=%s path=%s error=%s", request.method, request.url.path, exc)
    return error("the rules database is not available", 503)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    try:
        phrase = HTTPStatus(exc.status_code).phrase
    except ValueError:
        phrase = "Error"
    response = error(str(exc.detail) if exc.detail and exc.detail != phrase else phrase, exc.status_code)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


def post_gate(config: Config) -> Gate:
    """The destination policy of post actions: public addresses, and the loopback or
    private ones ``-allowedHosts`` lists."""
    return Gate(Policy(parse_rules(",".join(config.allowed_hosts)), setting="-allowedHosts"))


def broker_client(config: Config) -> NGSIClient:
    """The NGSI client of the broker: trusting ``-brokerCa`` for https, and with the service
    account's token (``-authTokenURL``) on every request, in ``Authorization: Bearer``: the
    broker passes an ``X-Auth-Token`` on to the notifications a request causes (Orion's
    rule), and this token must not reach other subscribers."""
    ssl_context = trust_context("-brokerCa", config.broker_ca) if config.broker_ca else None
    credentials: Credentials | None = None
    if config.auth_token_url:
        credentials = OAuth2ClientCredentials(
            HTTPClient(max_per_host=1, ssl_context=ssl_context), config.auth_token_url, config.auth_client_id,
            config.auth_client_secret.value, header="Authorization", username=config.auth_user,
            password=config.auth_password.value,
        )
    return NGSIClient(config.broker_url, transport=HTTPClient(ssl_context=ssl_context),
                      timeout=float(config.action_timeout), credentials=credentials)


def create_app(
    config: Config | None = None,
    *,
    store: RulesStore | None = None,
    guards: Sequence[Guard] | None = None,
    clock: Callable[[], float] = time.time,
) -> Starlette:
    """The app; ``store`` replaces the one ``config`` names (opened and closed here either
    way), ``guards`` the ones ``config.guards`` names."""
    config = config or Config()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        the_store = store if store is not None else open_store(config.store_url)
        await the_store.open()
        gate = post_gate(config)
        broker = broker_client(config)
        web = NGSIClient(transport=HTTPClient(gate=gate), timeout=float(config.action_timeout))
        service = RulesService(config, the_store, broker, web, gate, clock)
        await service.start()
        app.state.service = service
        log.info("rules service port=%d broker=%s store=%s guards=%d", config.port, config.broker_url,
                 type(the_store).__name__, len(guards) if guards is not None else len(config.guards))
        try:
            yield
        finally:
            try:
                await service.stop()
            finally:
                await broker.aclose()
                await web.aclose()
                await the_store.close()

    return SEAM.app(config, guards, routes=ROUTES, lifespan=lifespan,
                    exception_handlers={RulesError: _rules_error, StoreError: _store_error, HTTPException: _http_error})
