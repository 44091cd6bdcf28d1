"""``/erasure`` of the orchestrator's service (:8080), a part as ``appserver.component``
describes it: its clients of the broker, the agent, the history and the identity manager
are made at ``open`` with the service's account (behind PEPs), and closed at ``close``.

* ``POST /erasure/devices/{deviceId}``: the device's provisioning, pending commands,
  entity and history deleted; 200 and the report, 502 and the report when a step failed;
* ``POST /erasure/owners/{owner}``: every device of the owner, the same way;
* ``PUT /erasure/devices/{deviceId}/consent`` ``{"consent": false|true}``.

The tenant is ``Fiware-Service`` (none: the default one) and the path
``Fiware-ServicePath`` (default ``/``). The PEP requires ``admin`` of the tenant
(``security/authz/orchestrator.py``).
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ngsi.client import HTTPClient, NGSIClient
from ngsi.client.credentials import OAuth2ClientCredentials

from ..audit_client import AuditClient
from . import plan
from .run import Eraser, Services


def _error(status: int, name: str, description: str) -> JSONResponse:
    return JSONResponse({"error": name, "description": description}, status_code=status)


def _where(request: Request) -> tuple[str, str]:
    tenant = (request.headers.get("fiware-service") or "").strip()
    path = (request.headers.get("fiware-servicepath") or "/").strip() or "/"
    return tenant, path


def _actor(request: Request) -> str:
    """The caller's user id as the PEP found it ("" unguarded)."""
    ctx = getattr(request.state, "ctx", None)
    identity = getattr(ctx, "identity", None)
    return str(getattr(identity, "user_id", "") or getattr(identity, "app_id", "") or "")


class ErasureComponent:
    """The erasure part of the :8080 service (``appserver.component.Component``)."""

    def __init__(self, config: Any, services: Services | None = None) -> None:
        self.config = config
        self.services = services
        self._owned: list[Any] = []

    async def open(self) -> None:
        if self.services is not None:
            return
        config = self.config
        context = None
        if config.ca_file:
            from ngsi.tls import trust_context

            context = trust_context("-caFile", config.ca_file)
        credentials = None
        if config.auth_user and config.idm_url:  # services behind a PEP: the service account
            token_client = HTTPClient(max_per_host=1, ssl_context=context)
            self._owned.append(token_client)
            credentials = OAuth2ClientCredentials(
                token_client, config.idm_url.rstrip("/") + "/oauth2/token", config.client_id, config.client_secret,
                username=config.auth_user, password=config.auth_password)

        def client(url: str) -> NGSIClient | None:
            if not url:
                return None
            made = NGSIClient(url, transport=HTTPClient(ssl_context=context), credentials=credentials, timeout=30)
            self._owned.append(made)
            return made

        broker = client(config.broker_url)
        assert broker is not None
        self.services = Services(broker=broker, agent=client(config.iota_url), history=client(config.history_url),
                                 audit=AuditClient.from_config(config))

    async def close(self) -> None:
        for owned in reversed(self._owned):
            await owned.aclose()
        self._owned.clear()

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/erasure/devices/{deviceId}", self.device, methods=["POST"]),
            Route("/erasure/devices/{deviceId}/consent", self.consent, methods=["PUT"]),
            Route("/erasure/owners/{owner}", self.owner, methods=["POST"]),
        ]

    def _eraser(self) -> Eraser:
        assert self.services is not None, "ErasureComponent.open() first"
        return Eraser(self.services)

    async def device(self, request: Request) -> Response:
        tenant, path = _where(request)
        report = await self._eraser().erase_device(request.path_params["deviceId"], tenant, path,
                                                   actor=_actor(request))
        return JSONResponse(report, status_code=plan.status_of(report))

    async def owner(self, request: Request) -> Response:
        tenant, path = _where(request)
        report = await self._eraser().erase_owner(request.path_params["owner"], tenant, path, actor=_actor(request))
        return JSONResponse(report, status_code=plan.status_of(report))

    async def consent(self, request: Request) -> Response:
        try:
            body = json.loads(await request.body())
            consent = body["consent"]
            if not isinstance(consent, bool):
                raise ValueError
        except (ValueError, KeyError, TypeError):
            return _error(400, "BadRequest", 'the body is {"consent": false} or {"consent": true}')
        tenant, path = _where(request)
        report = await self._eraser().set_consent(request.path_params["deviceId"], tenant, path, consent,
                                                  actor=_actor(request))
        status = report.pop("status", None) or plan.status_of(report)
        return JSONResponse(report, status_code=status)
