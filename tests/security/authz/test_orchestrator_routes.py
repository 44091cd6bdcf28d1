"""request.describe(service="orchestrator"): the orchestrator's routes (security/authz/
orchestrator.py) as NGSI actions: reading apps, sources and sensors is ``read`` of the tenant,
changing them ``admin``; ``/version`` and the apps' ``/ingress/*`` are public (the PEP's
public paths, security/pep/settings.py). Pure: no service runs."""

from __future__ import annotations

from typing import Any

import pytest

from security.authz.decide import decide
from security.authz.orchestrator import ROUTES
from security.authz.policy import Subject, parse_policy_set
from security.authz.request import ADMIN, EVERY_PATH, READ, describe
from security.pep.guard import PublicPaths
from security.pep.settings import DEFAULT_PUBLIC

FARM = {"fiware-service": "farm7"}


def orchestrator(method: str, path: str, headers: dict[str, str] | None = None) -> Any:
    return describe(method, path, "", headers if headers is not None else FARM, b"", service="orchestrator")


@pytest.mark.parametrize(("method", "path", "action"), [
    ("GET", "/apps", READ), ("POST", "/apps", ADMIN), ("GET", "/apps/avg", READ), ("DELETE", "/apps/avg", ADMIN),
    ("GET", "/apps/avg/logs", READ), ("POST", "/apps/avg/restart", ADMIN), ("POST", "/apps/avg/scale", ADMIN),
    ("GET", "/discovery/sensors", READ), ("GET", "/sources", READ), ("POST", "/sources", ADMIN),
    ("PUT", "/sources/weather", ADMIN), ("DELETE", "/sources/weather", ADMIN), ("POST", "/sources/weather/run", ADMIN),
    ("HEAD", "/apps", READ),
])
def test_each_route_is_its_action_on_the_tenant_every_path(method: str, path: str, action: str) -> None:
    asked = orchestrator(method, path)
    assert asked.actions == frozenset({action}) and asked.tenant == "farm7" and not asked.unknown
    assert not asked.public


def test_a_method_or_path_it_does_not_serve_is_unknown() -> None:
    assert orchestrator("PUT", "/apps").unknown
    assert orchestrator("GET", "/apps/avg/secrets").unknown
    assert orchestrator("GET", "/version").public


def test_reading_needs_a_read_grant_and_deploying_an_admin_one() -> None:
    policies = parse_policy_set([
        {"id": "viewer", "subject": {"roles": ["viewer"]}, "actions": ["read"], "tenant": "farm7"},
        {"id": "farm1", "subject": {"roles": ["farmer"]}, "actions": ["read", "admin"], "tenant": "farm7",
         "servicePaths": ["/farm1/#"]},
        {"id": "admins", "subject": {"roles": ["farm-admin"]}, "actions": ["read", "admin"], "tenant": "farm7"},
    ])
    viewer, farmer, admin = (Subject(user_id=r, roles=frozenset({r})) for r in ("viewer", "farmer", "farm-admin"))
    assert decide(viewer, orchestrator("GET", "/apps"), policies).allow
    assert not decide(viewer, orchestrator("POST", "/apps"), policies).allow
    assert decide(admin, orchestrator("POST", "/apps"), policies).allow
    assert not decide(admin, orchestrator("POST", "/apps", {"fiware-service": "other"}), policies).allow
    # an app reaches every path of its tenant: one path's rights do not deploy apps
    assert not decide(farmer, orchestrator("POST", "/apps"), policies).allow


def test_the_ingress_is_public_and_nothing_beside_it() -> None:
    public = PublicPaths(DEFAULT_PUBLIC["orchestrator"])
    assert "/ingress/avg/key/notify" in public and "/version" in public
    assert "/apps" not in public and "/ingressx" not in public
    assert "/ingress/avg/../../apps" not in public


def test_every_row_names_a_method_and_an_action() -> None:
    assert all(method in {"GET", "POST", "PUT", "DELETE"} and action in {READ, ADMIN} for method, _, action in ROUTES)
    assert EVERY_PATH


def test_the_table_covers_every_route_the_service_serves(tmp_path: Any) -> None:
    """Drift check: the orchestrator's served routes (every part) are exactly the table's,
    besides its public ones (/, /version, the ingress)."""
    from starlette.routing import Route

    from orchestrator.appserver.app import create_app
    from orchestrator.appserver.config import Config

    served = set()
    for route in create_app(Config(data_dir=str(tmp_path))).routes:
        assert isinstance(route, Route)
        if route.path in ("/", "/version") or route.path.startswith("/ingress/"):
            continue
        served |= {(method, route.path) for method in route.methods or () if method != "HEAD"}
    assert served == {(method, path) for method, path, _ in ROUTES}
