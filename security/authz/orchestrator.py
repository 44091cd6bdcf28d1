"""What a request to the orchestrator's service asks to do, for authorization
(``request.describe`` with ``service="orchestrator"``).

The orchestrator's service (``orchestrator/appserver``, :8080) deploys apps, finds sensors
and runs external data sources, each in a tenant (``Fiware-Service``):

* reading (``GET /apps``, an app's status and logs, ``GET /sources`` and a source's status,
  ``GET /discovery/sensors``, ``POST /discovery/refresh``) is a ``read`` of the tenant, every
  path: an app's logs and a sensor list show what the tenant holds;
* deploying, restarting, scaling and undeploying an app, adding, changing, running and
  removing a source are ``admin`` of the tenant, every path: an app runs code with its own
  credentials, a source writes entities, so only the tenant's administrators may;
* erasing a device or an owner's devices and setting a device's consent
  (``/erasure/...``) are ``admin`` of the tenant, every path: they delete data for good;
* ``/version`` is public, and so is ``/ingress/*``: the broker's notifications to apps,
  each on a path holding the app's unguessable key, which the service checks (the app
  decides nothing else: what reaches it was the subscription the platform made for it);
* anything else is unknown (only a policy granting everything in the tenant passes it).
"""

from __future__ import annotations

from typing import Any, Final

from .request import ADMIN, EVERY_PATH, READ, SERVICES, RequestResource
from .routed import Route, RoutedAnalysis, route_table

PUBLIC: Final[tuple[str, ...]] = ("/version", "/")

# (method, path template, action), in the order of the service's routes
ROUTES: Final[tuple[tuple[str, str, str], ...]] = (
    ("GET", "/apps", READ),
    ("POST", "/apps", ADMIN),
    ("GET", "/apps/{name}", READ),
    ("DELETE", "/apps/{name}", ADMIN),
    ("GET", "/apps/{name}/logs", READ),
    ("POST", "/apps/{name}/restart", ADMIN),
    ("POST", "/apps/{name}/scale", ADMIN),
    ("GET", "/discovery/sensors", READ),
    ("POST", "/discovery/refresh", READ),
    ("GET", "/sources", READ),
    ("POST", "/sources", ADMIN),
    ("GET", "/sources/{name}", READ),
    ("PUT", "/sources/{name}", ADMIN),
    ("DELETE", "/sources/{name}", ADMIN),
    ("POST", "/sources/{name}/run", ADMIN),
    ("POST", "/erasure/devices/{deviceId}", ADMIN),
    ("PUT", "/erasure/devices/{deviceId}/consent", ADMIN),
    ("POST", "/erasure/owners/{owner}", ADMIN),
)


class OrchestratorAnalysis(RoutedAnalysis):
    """One request to the orchestrator's service being read (see the module docstring)."""

    SERVICE = "orchestrator"
    PUBLIC = PUBLIC
    NOTIFICATIONS = "/ingress"  # never a route of its own: the ingress is public (/ingress/*)
    TABLE = route_table(ROUTES)

    def routed(self, route: Route, path: dict[str, str], name: str) -> RequestResource:
        return self.result({route.action}, self.tenant(), (EVERY_PATH,), route=name)

    def ingestion(self, name: str) -> RequestResource:
        self.bad("/ingress is not a route of the orchestrator service")
        return self.result({ADMIN}, self.tenant(), (EVERY_PATH,))


def describe_orchestrator(method: str, path: str, query: Any, headers: Any, body: Any,
                          multiservice: bool) -> RequestResource:
    """``request.describe`` of a request to the orchestrator's service."""
    return OrchestratorAnalysis(method, path, query, headers, body, multiservice).run()


SERVICES["orchestrator"] = describe_orchestrator
