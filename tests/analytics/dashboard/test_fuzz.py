"""Bad input never makes the dashboard answer 500: random methods, paths under each of its
routes (the page, the config, the live feed, the broker's notifications, the forwarding to
each service, sign-in), query strings, headers (tenants, service paths, cookies, tokens)
and bodies, with sign-in off and on (hypothesis). The services behind it answer as
``FakeClient`` does (test_service.py), with a broker that refuses reads (so that a live
feed ends instead of streaming on); what is fuzzed is the dashboard's own handling.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from analytics.dashboard.app import create_app
from analytics.dashboard.config import Config
from tests.analytics.dashboard.test_service import FakeClient

PREFIXES = ["/", "/api/config", "/api/events", "/notify/", "/api/broker/", "/api/history/", "/api/agent/",
            "/api/rules/", "/api/nope/", "/auth/login", "/auth/callback", "/auth/me", "/auth/logout", "/static/"]
text = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=40)  # what a client can send
segment = text.map(lambda s: quote(s, safe=""))  # as a client sends it: percent-encoded
header_value = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=60)


def _apps() -> list[TestClient]:
    plain = Config(broker_url="http://refuse:1026")
    signed = Config(broker_url="http://refuse:1026", idm_url="http://idm:3005", client_id="app", client_secret="s")
    return [TestClient(create_app(config, client=FakeClient()), raise_server_exceptions=False)  # type: ignore[arg-type]
            for config in (plain, signed)]


CLIENTS = _apps()
for _client in CLIENTS:
    _client.__enter__()  # the lifespan (HTTP client, hub, sign-in), once for the module


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    which=st.sampled_from([0, 1]),
    method=st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]),
    prefix=st.sampled_from(PREFIXES),
    rest=st.lists(segment, max_size=3),
    query=st.dictionaries(st.sampled_from(["service", "servicepath", "token", "next", "code", "state", "error",
                                           "error_description", "limit", "q"]), text, max_size=4),
    headers=st.dictionaries(st.sampled_from(["fiware-service", "fiware-servicepath", "cookie", "authorization",
                                             "x-auth-token", "content-type", "accept", "fiware-correlator"]),
                            header_value, max_size=5),
    body=st.binary(max_size=300),
)
def test_no_request_makes_the_dashboard_fail(which: int, method: str, prefix: str, rest: list[str],
                                             query: dict[str, str], headers: dict[str, str], body: bytes) -> None:
    client = CLIENTS[which]
    path = prefix + "/".join(rest)
    answer: Any = client.request(method, path, params=query, headers=headers, content=body or None,
                                 follow_redirects=False)
    assert answer.status_code < 500, (method, path, query, headers, answer.status_code, answer.text[:300])
