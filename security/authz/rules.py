"""What a request to the rules service asks to do, for authorization (``request.describe``
with ``service="rules"``).

The rules service (``analytics/rules/service``, Perseo's API) keeps rules per tenant
(``Fiware-Service``); ``Fiware-ServicePath`` does not scope them (a rule's paths are in its
condition). A rule's actions run with the service's own account: whoever writes a rule may
make the service update any entity of the tenant, send commands to its devices, post to the
web or send e-mail. So:

* ``GET /rules`` and ``GET /rules/{name}`` are a ``read`` of the tenant, every path, no
  particular entity (a rule names entity types, ids and conditions);
* ``GET /rules/{name}/firings`` is a ``read`` of any entity, every attribute, every path
  of the tenant: a firing holds the values of the entity that fired it;
* ``POST /rules``, ``PUT`` and ``DELETE /rules/{name}``, ``POST /rules/{name}/enable`` and
  ``/disable`` are ``admin`` of the tenant, every path: administration, as the rule's
  actions reach every entity;
* ``POST /notices`` (the broker's notifications) is read as the history's ``/v2/notify``:
  a ``create`` and an ``update`` of each entity of its ``data`` under the notification's
  paths. The broker's service account (``waziup-broker``, which may append everywhere) and
  a user who could have written those entities pass; the PEP also admits the notice
  signature of the rules' own subscriptions (``security.pep.rules``);
* ``/version`` is public; anything else is unknown (only a policy granting everything in
  the tenant passes it, to the service's own 404 or 405).
"""

from __future__ import annotations

from typing import Any, Final

from .history import HistoryAnalysis
from .request import ADMIN, ANY_ENTITY, EVERY_PATH, READ, SERVICES, RequestResource
from .routed import Route, route_table

NOTICES: Final = "/notices"
PUBLIC: Final[tuple[str, ...]] = ("/version",)

# (method, path template, action, targets: "none" | "any"), in the order of the service's routes
ROUTES: Final[tuple[tuple[str, str, str, str], ...]] = (
    ("GET", "/rules", READ, "none"),
    ("POST", "/rules", ADMIN, "none"),
    ("GET", "/rules/{name}", READ, "none"),
    ("PUT", "/rules/{name}", ADMIN, "none"),
    ("DELETE", "/rules/{name}", ADMIN, "none"),
    ("POST", "/rules/{name}/enable", ADMIN, "none"),
    ("POST", "/rules/{name}/disable", ADMIN, "none"),
    ("GET", "/rules/{name}/firings", READ, "any"),
)


class RulesAnalysis(HistoryAnalysis):
    """One request to the rules service being read (see the module docstring)."""

    SERVICE = "rules"
    PUBLIC = PUBLIC
    NOTIFICATIONS = NOTICES
    TABLE = route_table(ROUTES)

    def routed(self, route: Route, path: dict[str, str], name: str) -> RequestResource:
        targets = (ANY_ENTITY,) if route.extra == ("any",) else ()
        return self.result({route.action}, self.tenant(), (EVERY_PATH,), targets, route=name)


def describe_rules(method: str, path: str, query: Any, headers: Any, body: Any, multiservice: bool) -> RequestResource:
    """``request.describe`` of a request to the rules service."""
    return RulesAnalysis(method, path, query, headers, body, multiservice).run()


SERVICES["rules"] = describe_rules
