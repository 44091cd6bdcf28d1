"""Retention rules a tenant's administrators keep themselves (``GET``/``PUT /v2/retention``),
on SQLite and PostgreSQL: stored per tenant, merged with the flags' by the retention pass
(a tenant's stored rule wins for its types), refused with a 400 when they are not rules
or would outlive the hourly roll-ups."""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analytics.history import retention
from analytics.history.app import create_app
from analytics.history.config import Config
from analytics.history.instants import parse_instant
from analytics.history.retention import Policy, Rule

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

NOW = "2024-03-01T00:00:00Z"
NOW_MS = parse_instant(NOW)
assert NOW_MS is not None
CONFIG = dict(retention_days=365, retention=("*/Room=90", "coop=60", "shortlived=5"), hourly_retention_days=400)


@pytest.fixture(scope="module")
def client(module_store_url: str) -> Iterator[TestClient]:
    app = create_app(Config(db_uri=module_store_url, **CONFIG), clock=lambda: NOW_MS / 1000)  # type: ignore[arg-type]
    with TestClient(app) as the_client:
        yield the_client


@pytest.fixture
def tenant(request: pytest.FixtureRequest, module_store_url: str) -> str:
    """A tenant of the test's own (the module's store is shared)."""
    return re.sub(r"[^a-z0-9_]", "_", request.node.name.lower())[:40]


def put(client: TestClient, tenant: str, body: Any) -> Any:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()  # big integers too
    return client.put("/v2/retention", content=raw, headers={"fiware-service": tenant,
                                                             "content-type": "application/json"})


def rules_of(client: TestClient, tenant: str) -> Any:
    answer = client.get("/v2/retention", headers={"fiware-service": tenant})
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_put_then_get(client: TestClient) -> None:
    answer = put(client, "coop", {"rules": [{"entityType": "Room", "days": 30}, {"entityType": "*", "days": 10}]})
    assert answer.status_code == 204, answer.text
    assert rules_of(client, "coop") == {
        "rules": [{"entityType": "*", "days": 10}, {"entityType": "Room", "days": 30}],
        "defaults": [{"tenant": "*", "entityType": "Room", "days": 90},
                     {"tenant": "coop", "entityType": "*", "days": 60}],
        "defaultDays": 365, "hourlyRetentionDays": 400}
    assert rules_of(client, "neighbour")["rules"] == []  # per tenant
    assert rules_of(client, "neighbour")["defaults"] == [{"tenant": "*", "entityType": "Room", "days": 90}]
    assert put(client, "coop", {"rules": [{"entityType": "Room", "days": 0}]}).status_code == 204  # replaced
    assert rules_of(client, "coop")["rules"] == [{"entityType": "Room", "days": 0}]
    assert put(client, "coop", {"rules": []}).status_code == 204
    assert rules_of(client, "coop")["rules"] == []


BAD = [
    b"", b"not json", b"[]", b"null", b'{"rules": {}}', b'{"rules": [], "more": 1}', b'{}',
    orjson.dumps({"rules": [{"entityType": "Room"}]}),
    orjson.dumps({"rules": [{"days": 3}]}),
    orjson.dumps({"rules": [{"entityType": "Room", "days": 3, "x": 1}]}),
    orjson.dumps({"rules": [{"entityType": "Room", "days": -1}]}),
    orjson.dumps({"rules": [{"entityType": "Room", "days": 36601}]}),
    orjson.dumps({"rules": [{"entityType": "Room", "days": 1.5}]}),
    orjson.dumps({"rules": [{"entityType": "Room", "days": "3"}]}),
    orjson.dumps({"rules": [{"entityType": "Room", "days": True}]}),
    orjson.dumps({"rules": [{"entityType": "", "days": 3}]}),
    orjson.dumps({"rules": [{"entityType": "a room", "days": 3}]}),
    orjson.dumps({"rules": [{"entityType": "x" * 300, "days": 3}]}),
    orjson.dumps({"rules": [{"entityType": 7, "days": 3}]}),
    orjson.dumps({"rules": [{"entityType": "Room", "days": 3}, {"entityType": "Room", "days": 4}]}),
    orjson.dumps({"rules": [{"entityType": "*", "days": 3}] * 1001}),
    orjson.dumps({"rules": [{"entityType": "Room", "days": 401}]}),  # past -hourlyRetentionDays 400
    b'{"rules": [{"entityType": "Room", "days": 1e400}]}',
]


@pytest.mark.parametrize("body", BAD)
def test_bad_rules_are_400_in_quantumleaps_shape(client: TestClient, tenant: str, body: bytes) -> None:
    answer = put(client, tenant, body)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == "Bad Request" and isinstance(answer.json()["description"], str)
    assert rules_of(client, tenant)["rules"] == []  # nothing stored


def test_the_hourly_check_names_the_rule(client: TestClient, tenant: str) -> None:
    answer = put(client, tenant, {"rules": [{"entityType": "Room", "days": 401}]})
    assert "Room" in answer.json()["description"] and "hourly" in answer.json()["description"]


def test_a_bad_tenant_is_400(client: TestClient) -> None:
    answer = client.get("/v2/retention", headers={"fiware-service": "bad tenant!"})
    assert answer.status_code == 400 and answer.json()["error"] == "Bad Request"
    assert client.delete("/v2/retention").status_code == 405


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                  max_size=3), max_leaves=10)
RULE = st.fixed_dictionaries({"entityType": st.one_of(st.sampled_from(["*", "Room", "", "a/b"]), st.text(max_size=5),
                                                      JSON),
                              "days": st.one_of(st.integers(-5, 40000), JSON)})
BODIES = st.one_of(JSON, st.fixed_dictionaries({"rules": st.lists(st.one_of(RULE, JSON), max_size=4)}),
                   st.binary(max_size=20))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=BODIES)
def test_any_body_is_stored_or_refused_never_a_500(client: TestClient, body: Any) -> None:
    answer = put(client, "fuzzed", body)
    assert answer.status_code in (204, 400), answer.text
    if answer.status_code == 400:
        assert set(answer.json()) == {"error", "description"}


# -- the retention pass ----------------------------------------------------------------------------


def room(eid: str, at: str) -> dict[str, Any]:
    return {"id": eid, "type": "Room", "temperature": {"type": "Number", "value": 1.0},
            "TimeInstant": {"type": "DateTime", "value": at}}


def fill(client: TestClient, tenant: str) -> None:
    for at in ("2024-01-01T10:00:00Z", "2024-02-25T10:00:00Z"):  # 60 days and 5 days before NOW
        answer = client.post("/v2/notify", json={"subscriptionId": "s", "data": [room("R1", at)]},
                             headers={"fiware-service": tenant})
        assert answer.status_code == 200


def index(client: TestClient, tenant: str) -> list[str]:
    answer = client.get("/v2/entities/R1/attrs/temperature", headers={"fiware-service": tenant})
    assert answer.status_code == 200, answer.text
    return [t[:10] for t in answer.json()["index"]]


def test_a_pass_applies_each_tenants_stored_rule(client: TestClient) -> None:
    for tenant in ("cutter", "keeper", "shortlived"):
        fill(client, tenant)
    assert put(client, "cutter", {"rules": [{"entityType": "Room", "days": 10}]}).status_code == 204
    assert put(client, "shortlived", {"rules": [{"entityType": "*", "days": 0}]}).status_code == 204  # beats =5
    swept = client.portal.call(retention.apply, client.app.state.store, client.app.state.config.policy, NOW_MS)
    assert swept.points >= 1
    assert index(client, "cutter") == ["2024-02-25"]  # its stored 10 days, not the flags' 90
    assert index(client, "keeper") == ["2024-01-01", "2024-02-25"]  # */Room=90 of the flags
    assert index(client, "shortlived") == ["2024-01-01", "2024-02-25"]  # its 0 (for ever), not shortlived=5
    day = client.get("/v2/entities/R1/attrs/temperature?aggrMethod=count&aggrPeriod=day",
                     headers={"fiware-service": "cutter"}).json()
    assert day["values"] == [1, 1]  # roll-ups stay


# -- the merge, pure -------------------------------------------------------------------------------


def test_stored_rules_win_for_their_tenant_and_type() -> None:
    policy = Policy.of(365, ["*/Room=90", "coop=60", "coop/Hall=20"], 400).with_stored(
        [Rule("coop", "Room", 30), Rule("coop", "*", 10), Rule("farm", "Hall", 0)])
    assert policy.days("coop", "Room") == 30  # its own rule for the type
    assert policy.days("coop", "Hall") == 10  # its own "*" beats the flags' coop/Hall
    assert policy.days("farm", "Hall") == 0 and policy.days("farm", "Room") == 90  # others follow the flags
    assert policy.days("else", "Kitchen") == 365
    assert policy.stored_problem([Rule("coop", "Room", 401)]) is not None
    assert policy.stored_problem([Rule("coop", "Room", 400)]) is None
    assert Policy(hourly_days=0).stored_problem([Rule("coop", "Room", 36600)]) is None


def test_a_stored_rule_the_hourly_retention_no_longer_allows_is_ignored() -> None:
    stored = [Rule("coop", "Room", 300), Rule("coop", "Hall", 3)]
    assert retention._usable(Policy(hourly_days=100), stored) == [Rule("coop", "Hall", 3)]

