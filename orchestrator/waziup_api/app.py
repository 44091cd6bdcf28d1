"""The WAZIUP API's Starlette app (``/api/v2``) and, in its lifespan, its MQTT broker.

The lifespan opens the API's store, the NGSI clients of the broker and the history (with
the service account's token behind a PEP), the identity manager's client, the privacy
policies' feed (with the identity manager and its admin account: ``privacy.py``), and
starts the MQTT broker (``-mqttPort``) whose hooks call the same objects as the routes do.

Errors: an ``ApiError`` answers its status with its text (contract §1: free text, only the
status matters); Starlette's own 404/405 the same; anything else is a bug, logged, and
answered 500 in text, never a traceback.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ngsi.client import HTTPClient, NGSIClient
from ngsi.client.credentials import Credentials, OAuth2ClientCredentials
from ngsi.server.guards import Guard
from ngsi.tls import trust_context

from .accounts import Accounts
from .backend import Backend
from .config import Config
from .errors import ApiError
from .history import History
from .http import json_response
from .mqtt import MqttBroker
from .mqtt_hooks import ApiHooks
from .privacy import ApiPrivacy
from .routes import routes
from .seam import SEAM
from .service import WaziupApi
from .store import Store, StoreError, open_store

log = logging.getLogger("waziup.api")
OPENAPI = Path(__file__).with_name("openapi.json")


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return Response(exc.text, exc.status, media_type="text/plain")


async def _store_error(request: Request, exc: Exception) -> Response:
    log.error("store error method=%s path=%s error=%s", request.method, request.url.path, exc)
    return Response("the API's store is not available", 503, media_type="text/plain")


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return Response(str(exc.detail), exc.status_code, media_type="text/plain", headers=exc.headers)


async def openapi(request: Request) -> Response:
    return json_response(json.loads(OPENAPI.read_text()))


def _credentials(config: Config, ssl_context: object) -> Credentials | None:
    """Behind a PEP (``-authUser``): the service account's token on every call."""
    if not config.auth_user:
        return None
    return OAuth2ClientCredentials(
        HTTPClient(max_per_host=1, ssl_context=ssl_context), config.idm_url.rstrip("/") + "/oauth2/token",
        config.client_id, config.client_secret, header="Authorization", username=config.auth_user,
        password=config.auth_password,
    )


def create_app(config: Config | None = None, *, guards: Sequence[Guard] | None = None,
               accounts: Accounts | None = None, privacy: ApiPrivacy | None = None,
               clock: Callable[[], float] = time.time) -> Starlette:
    """The app; ``accounts`` replaces the identity manager's client ``config`` names, and
    ``privacy`` the privacy policies' feed it follows (``privacy.py``)."""
    config = config or Config()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        ssl_context = trust_context("-caFile", config.ca_file) if config.ca_file else None
        credentials = _credentials(config, ssl_context)
        broker = NGSIClient(config.broker_url, transport=HTTPClient(ssl_context=ssl_context), timeout=15,
                            credentials=credentials)
        history_client = NGSIClient(config.history_url, transport=HTTPClient(ssl_context=ssl_context), timeout=15,
                                    credentials=credentials) if config.history_url else None
        store = open_store(config.store_url)
        await store.open()
        the_accounts = accounts
        if the_accounts is None and config.idm_url:
            the_accounts = Accounts(config.idm_url, config.client_id, config.client_secret, config.admin_user,
                                    config.admin_password, ssl_context=ssl_context, profiles=StoreProfiles(store))
        if the_accounts is not None:
            await the_accounts.open()
        backend = Backend(broker, History(history_client, config.service) if history_client else None,
                          tenant=config.service, clock=clock)
        the_privacy = privacy if privacy is not None else ApiPrivacy.from_config(config, ssl_context)
        if the_privacy is not None:
            the_privacy.start()
            backend.privacy = the_privacy
        api = WaziupApi(backend, store, the_accounts, clock=clock)
        await api.open()
        app.state.api = api
        mqtt = None
        if config.mqtt_port:
            mqtt = MqttBroker(ApiHooks(api), host=config.mqtt_host or config.host, port=config.mqtt_port,
                              ssl_context=_server_tls(config))
            await mqtt.start()
            backend.publish = lambda topic, payload: mqtt.publish(topic, payload)  # type: ignore[union-attr]
        log.info("waziup api port=%d mqtt=%s broker=%s history=%s idm=%s tenant=%s privacy=%s", config.port,
                 mqtt.port if mqtt else "off", config.broker_url, config.history_url or "-", config.idm_url or "-",
                 config.service, "on" if the_privacy is not None else "off")
        try:
            yield
        finally:
            if mqtt is not None:
                await mqtt.stop()
            if the_accounts is not None:
                await the_accounts.close()
            if the_privacy is not None:
                await the_privacy.close()
            await broker.aclose()
            if history_client is not None:
                await history_client.aclose()
            await store.close()

    return SEAM.app(config, guards, routes=[*routes(), Route("/api/v2/openapi.json", openapi, methods=["GET"]),
                                            Route("/api/v2/docs/openapi.json", openapi, methods=["GET"])],
                    lifespan=lifespan, exception_handlers={ApiError: _api_error, StoreError: _store_error,
                                                        HTTPException: _http_error})


def _server_tls(config: Config) -> object:
    """MQTT over TLS with the HTTP port's certificate when ``-https``."""
    if not config.https:
        return None
    import ssl

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(os.path.abspath(config.https_cert), os.path.abspath(config.https_key))
    return context


class StoreProfiles:
    """The profile fields the identity manager has no column for, in the API's store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def get(self, user_id: str) -> dict[str, object]:
        return await self.store.get("profiles", user_id) or {}

    async def put(self, user_id: str, fields: dict[str, object]) -> None:
        await self.store.put("profiles", user_id, {**await self.get(user_id), **fields})
