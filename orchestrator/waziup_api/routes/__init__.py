"""The API's routes under ``/api/v2`` (contract §3 and §7), one module per resource."""

from __future__ import annotations

from starlette.routing import BaseRoute

from . import accounts, devices, gateways, notifications, projects


def routes() -> list[BaseRoute]:
    return [*devices.ROUTES, *gateways.ROUTES, *projects.ROUTES, *notifications.ROUTES, *accounts.ROUTES]
