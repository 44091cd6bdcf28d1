"""request.describe(service="rules"): the rules service's routes (security/authz/rules.py) as
NGSI actions (reading rules ``read``, writing them ``admin`` of the tenant, ``/notices`` an
append), and decided by the same policies as the broker's requests. Pure: no service runs."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.routing import Route

from analytics.rules.service.routes import ROUTES as RULES_ROUTES
from security.authz.decide import decide
from security.authz.policy import Subject, parse_policy_set
from security.authz.request import (
    ADMIN,
    ANY_ENTITY,
    CREATE,
    EVERY_PATH,
    NO_ENTITY,
    READ,
    UPDATE,
    Target,
    describe,
)
from security.authz.rules import ROUTES

COOP = {"fiware-service": "Coop", "fiware-servicepath": "/farm1"}
NOTICE = orjson.dumps({"subscriptionId": "s1", "data": [{"id": "B1", "type": "Boiler", "t": {"value": 55}}]})


def rules(method: str, path: str, headers: dict[str, str] | None = None, body: Any = b"") -> Any:
    return describe(method, path, "", headers or {}, body, service="rules")


def test_the_table_covers_every_route_the_rules_service_serves() -> None:
    """Drift check: each of the service's routes maps to its action, and the table has no other."""
    served = []
    for route in RULES_ROUTES:
        assert isinstance(route, Route) and route.methods
        for method in sorted(route.methods - {"HEAD"}):
            resource = rules(method, route.path.replace("{name}", "hot"), COOP, NOTICE)
            assert not resource.unknown, (method, route.path, resource.unknown)
            if route.path == "/version":
                assert resource.public
            elif route.path == "/notices":
                assert resource.actions == {CREATE, UPDATE}
            else:
                served.append((method, route.path))
    assert sorted(served) == sorted((method, template) for method, template, _, _ in ROUTES)


def test_reading_rules_is_read_writing_them_admin_of_the_whole_tenant() -> None:
    listed = rules("GET", "/rules", COOP)
    assert (listed.actions, listed.tenant, listed.scopes, listed.targets) == ({READ}, "coop", (EVERY_PATH,), (NO_ENTITY,))
    assert rules("GET", "/rules/hot", COOP).actions == {READ}
    firings = rules("GET", "/rules/hot/firings", COOP)
    assert firings.actions == {READ} and firings.targets == (ANY_ENTITY,)  # firings hold entity values
    for method, path in (("POST", "/rules"), ("PUT", "/rules/hot"), ("DELETE", "/rules/hot"),
                         ("POST", "/rules/hot/enable"), ("POST", "/rules/hot/disable")):
        written = rules(method, path, COOP, b'{"name": "hot"}')
        assert (written.actions, written.scopes, written.targets) == ({ADMIN}, (EVERY_PATH,), (NO_ENTITY,)), path


def test_a_notice_appends_each_entity_under_its_path() -> None:
    notice = rules("POST", "/notices", COOP, NOTICE)
    assert notice.actions == {CREATE, UPDATE} and notice.scopes == (("/farm1", False),)
    assert notice.targets == (Target(id="B1", type="Boiler", attrs=frozenset({"t"})),)
    assert rules("POST", "/notices", COOP, b"{}").unknown  # no data vector


def test_public_version_other_methods_and_unknown_routes() -> None:
    assert rules("GET", "/version").public and rules("OPTIONS", "/rules").public
    assert not rules("POST", "/version").public and rules("POST", "/version").unknown
    assert rules("PATCH", "/rules/hot").unknown and rules("GET", "/notices").unknown
    assert rules("GET", "/nowhere", COOP).unknown and rules("GET", "/rules/a/b", COOP).unknown


POLICIES = parse_policy_set([
    {"id": "coop-reader", "subject": {"roles": ["reader"]}, "actions": ["read"], "tenant": "coop"},
    {"id": "farm1", "subject": {"roles": ["farmer"]}, "actions": ["read", "update", "admin"], "tenant": "coop",
     "servicePaths": ["/farm1/#"]},
    {"id": "coop-admin", "subject": {"roles": ["admin"]}, "actions": ["read", "admin"], "tenant": "coop"},
    {"id": "feed", "subject": {"roles": ["feed"]}, "actions": ["create", "update"], "tenant": "*"},
])


def test_policies_decide_rules_requests() -> None:
    reader, farmer, admin, feed = (Subject(user_id=r, roles=frozenset({r})) for r in ("reader", "farmer", "admin", "feed"))
    rule = b'{"name": "hot"}'
    assert decide(reader, rules("GET", "/rules", COOP), POLICIES).allow
    assert decide(reader, rules("GET", "/rules/hot/firings", COOP), POLICIES).allow
    assert not decide(reader, rules("POST", "/rules", COOP, rule), POLICIES).allow
    assert not decide(reader, rules("GET", "/rules", {"fiware-service": "town"}), POLICIES).allow
    assert decide(admin, rules("POST", "/rules", COOP, rule), POLICIES).allow
    assert decide(admin, rules("POST", "/rules/hot/disable", COOP), POLICIES).allow
    # a rule's actions reach every path of the tenant: one path's rights do not make rules
    assert not decide(farmer, rules("POST", "/rules", COOP, rule), POLICIES).allow
    assert not decide(farmer, rules("GET", "/rules", COOP), POLICIES).allow
    # notices: the broker's account (append everywhere) passes; readers and updaters do not
    assert decide(feed, rules("POST", "/notices", COOP, NOTICE), POLICIES).allow
    assert not decide(feed, rules("GET", "/rules", COOP), POLICIES).allow
    assert not decide(reader, rules("POST", "/notices", COOP, NOTICE), POLICIES).allow
    assert not decide(farmer, rules("POST", "/notices", COOP, NOTICE), POLICIES).allow  # no create
