"""Orion's administration API, written from admin/statistics.md, admin/management_api.md and
admin/logs.md: ``/statistics``, ``/cache/statistics``, ``/admin/log`` and ``/log/trace``, each
test citing the section it follows. Tests marked ``xfail(strict=True)`` state where the broker
differs from the manual today.

Where the manuals give no status or error text (the admin API's errors), the answers follow the
broker's rule: Orion's ``{"error", "description"}`` shape, 400 for a bad value.
"""

from __future__ import annotations

import json
import logging
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from broker import front
from broker.routes import admin
from ngsi.server.guards import Incoming, Verdict, reject
from ngsi.server.reply import json_reply
from tests.broker.api_client import ApiClient, broker_client, create, error_of, new_id
from tests.broker.conftest import Receiver, empty_db
from tests.conftest import BrokerProcess

ROOT = Path(__file__).resolve().parents[3]
FILIP_PYTHON = ROOT / ".venv-filip" / "bin" / "python"
RESET = {"message": "All statistics counter reset"}
ALL_STATS = {"stat_counters": True, "stat_timing": True, "stat_notif_queue": True}
LOOPBACK = ("127.0.0.1",)


@pytest.fixture
def root_level() -> Iterator[None]:
    """PUT /admin/log changes the process's log level: put it back."""
    level = logging.getLogger().level
    yield
    logging.getLogger().setLevel(level)


def _statistics(client: ApiClient, **params: str) -> dict[str, Any]:
    response = client.get("/statistics", params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    return body


# --- admin/statistics.md, "GET /statistics" -------------------------------------------------------------


def test_statistics_without_flags_has_the_two_unconditional_fields() -> None:
    """admin/statistics.md, "GET /statistics": "four conditional blocks and two unconditional
    fields"; the blocks come only with their -statXXX flags; "If statistics have not been reset
    since Orion start, [measuring_interval_in_secs] matches uptime_in_secs"."""
    with broker_client() as client:
        body = _statistics(client)
    assert set(body) == {"uptime_in_secs", "measuring_interval_in_secs"}
    assert isinstance(body["uptime_in_secs"], int) and body["uptime_in_secs"] >= 0
    assert abs(body["measuring_interval_in_secs"] - body["uptime_in_secs"]) <= 1


def test_counter_block_counts_requests_per_url_and_verb() -> None:
    """admin/statistics.md, "Counter block" (``-statCounters``): "counters for the times a
    particular request type has been received", per URL pattern and verb; "If a particular request
    URL (or verb) has not been received, its corresponding counter is not shown"."""
    with broker_client(stat_counters=True) as client:
        eid = new_id()
        create(client, {"id": eid, "type": "T", "A": {"value": 1}})
        client.get("/v2/entities")
        client.get("/v2/entities")
        client.get(f"/v2/entities/{eid}")
        client.patch(f"/v2/entities/{eid}/attrs", json={"A": {"value": 2}})
        client.put(f"/v2/entities/{eid}/attrs/A/value", content=b"hello", headers={"content-type": "text/plain"})
        client.get("/v2/no/such/url")  # invalid
        client.put("/v2/entities", json={})  # a verb /v2/entities does not serve
        counters = _statistics(client)["counters"]
    assert counters["requests"] == {
        "/v2/entities": {"POST": 1, "GET": 2},
        "/v2/entities/{id}": {"GET": 1},
        "/v2/entities/{id}/attrs": {"PATCH": 1},
        "/v2/entities/{id}/attrs/{name}/value": {"PUT": 1},
        "/statistics": {"GET": 1},
    }
    assert counters["jsonRequests"] == 3  # POST, PATCH, the refused PUT
    assert counters["textRequests"] == 1
    assert counters["noPayloadRequests"] == 5  # 3 GETs, the invalid URL, this GET /statistics
    assert counters["invalidRequests"] == 1
    assert counters["missedVerb"] == 1
    assert "notificationsSent" not in counters and "deprecatedFeatures" not in counters  # nothing counted


def test_full_counters_shows_every_counter() -> None:
    """admin/statistics.md, "Counter block": "except if the fullCounters option is used (i.e.
    GET /statistics?options=fullCounters)": unseen URLs and verbs too, as 0."""
    with broker_client(stat_counters=True) as client:
        counters = _statistics(client, options="fullCounters")["counters"]
    for name in ("invalidRequests", "jsonRequests", "missedVerb", "notificationsSent", "textRequests"):
        assert counters[name] == 0, name
    assert counters["noPayloadRequests"] == 1  # this GET
    assert counters["deprecatedFeatures"] == {"geoFormat": 0, "ngsiv1Forwarding": 0}
    assert counters["requests"]["/v2/entities"] == {"GET": 0, "POST": 0}
    assert counters["requests"]["/v2/subscriptions/{id}"] == {"GET": 0, "PATCH": 0, "DELETE": 0}
    assert counters["requests"]["/statistics"] == {"GET": 1, "DELETE": 0}


def test_deprecated_geo_formats_are_counted() -> None:
    """admin/logs.md, "Log deprecated usages": "Deprecated features usage is tracked in
    deprecatedFeature object in the counters block of the statistics API, even when -logDeprecate
    ... is not used"; admin/statistics.md shows it as ``deprecatedFeatures.geoFormat``."""
    with broker_client(stat_counters=True) as client:
        create(client, {"id": new_id(), "type": "T", "p": {"type": "geo:point", "value": "1, 2"}})
        create(client, {"id": new_id(), "type": "T", "p": {"type": "geo:json", "value": {"type": "Point", "coordinates": [2, 1]}}})
        client.post("/v2/op/update", json={"actionType": "append", "entities": [
            {"id": new_id(), "type": "T", "b": {"type": "geo:box", "value": ["1, 2", "3, 4"]}}]})
        counters = _statistics(client)["counters"]
    assert counters["deprecatedFeatures"] == {"geoFormat": 2}


def test_notifications_sent_are_counted(receiver: Receiver) -> None:
    """admin/statistics.md, "Counter block": "also for notifications being sent" (``notificationsSent``)."""
    with broker_client(stat_counters=True, notif_allowed_hosts=LOOPBACK) as client:
        eid = new_id()
        create(client, {"id": eid, "type": "T", "A": {"value": 1}})
        client.post("/v2/subscriptions", json={"subject": {"entities": [{"id": eid}]},
                                               "notification": {"http": {"url": receiver.url}}})
        for value in (2, 3):
            client.patch(f"/v2/entities/{eid}/attrs", json={"A": {"value": value}})
        receiver.wait_for(2)
        deadline = time.monotonic() + 10
        while _statistics(client)["counters"].get("notificationsSent", 0) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _statistics(client)["counters"]["notificationsSent"] == 2


def test_timing_block_has_the_total_time() -> None:
    """admin/statistics.md, "Timing block" (``-statTiming``): ``accumulated`` since start and
    ``last`` (the last request), ``total`` being the "processing time for the whole request"."""
    with broker_client(stat_timing=True) as client:
        client.get("/v2/entities")
        client.get("/v2/entities")
        body = _statistics(client)
    assert "counters" not in body  # a block per flag
    timing = body["timing"]
    assert 0 < timing["last"]["total"] <= timing["accumulated"]["total"]


def test_notification_queue_block(receiver: Receiver) -> None:
    """admin/statistics.md, "NotifQueue block" (``-statNotifQueue``), "only shown if
    -notificationMode is set to threadpool": ``in``, ``out``, ``reject``, ``sentOk`` ("successfully
    sent"), ``sentError`` ("unsuccessful notification-attempts") and ``size``."""
    with broker_client(stat_notif_queue=True, notification_mode="threadpool:100:2",
                       notif_allowed_hosts=LOOPBACK) as client:
        eid = new_id()
        create(client, {"id": eid, "type": "T", "A": {"value": 1}})
        for url in (receiver.url, "http://127.0.0.1:9/closed"):  # port 9: nothing listens
            client.post("/v2/subscriptions", json={"subject": {"entities": [{"id": eid}]},
                                                   "notification": {"http": {"url": url}}})
        client.patch(f"/v2/entities/{eid}/attrs", json={"A": {"value": 2}})
        receiver.wait_for(1)
        deadline = time.monotonic() + 10
        while _statistics(client)["notifQueue"]["out"] < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        queue = _statistics(client)["notifQueue"]
    assert queue == {"in": 2, "out": 2, "reject": 0, "sentOk": 1, "sentError": 1, "size": 0}
    with broker_client(stat_notif_queue=True) as client:  # transient mode: no queue to show
        assert "notifQueue" not in _statistics(client)


def test_delete_statistics_resets_the_counters() -> None:
    """admin/statistics.md, "Reseting statistics": ``DELETE /statistics`` answers
    ``{"message": "All statistics counter reset"}``; ``measuring_interval_in_secs`` "is set to 0
    each time statistics are reset"."""
    with broker_client(**ALL_STATS) as client:
        client.get("/v2/entities")
        create(client, {"id": new_id(), "type": "T", "p": {"type": "geo:point", "value": "1, 2"}})
        reset = client.delete("/statistics")
        assert reset.status_code == 200 and reset.json() == RESET
        body = _statistics(client)
    assert body["counters"] == {"noPayloadRequests": 1, "requests": {"/statistics": {"GET": 1}}}
    assert body["measuring_interval_in_secs"] == 0
    assert body["measuring_interval_in_secs"] <= body["uptime_in_secs"]


# --- admin/statistics.md, "GET /cache/statistics" -------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return empty_db(request, tmp_path)


def _subscribe(client: ApiClient) -> str:
    response = client.post("/v2/subscriptions", json={
        "subject": {"entities": [{"idPattern": ".*"}]}, "notification": {"http": {"url": "http://127.0.0.1:9/n"}}})
    assert response.status_code == 201, response.text
    return response.headers["location"].rsplit("/", 1)[1]


def test_cache_statistics_counts_cache_operations(store: str) -> None:
    """admin/statistics.md, "GET /cache/statistics": "counters for the context subscription cache
    operations (refresh, insert, remove and update), along with the current number of cached
    items", and their ids; "Reseting statistics": DELETE resets the counters, not "the fields that
    come from the state of the system" (the items)."""
    with broker_client(store, notif_allowed_hosts=LOOPBACK) as client:
        kept, patched, removed = _subscribe(client), _subscribe(client), _subscribe(client)
        assert client.patch(f"/v2/subscriptions/{patched}", json={"throttling": 5}).status_code == 204
        assert client.delete(f"/v2/subscriptions/{removed}").status_code == 204
        response = client.get("/cache/statistics")
        assert response.status_code == 200
        assert response.json() == {"ids": f"{kept}, {patched}", "refreshs": 1, "inserts": 3, "removes": 1,
                                   "updates": 1, "items": 2}
        reset = client.delete("/cache/statistics")
        assert reset.status_code == 200 and reset.json() == RESET
        assert client.get("/cache/statistics").json() == {
            "ids": f"{kept}, {patched}", "refreshs": 0, "inserts": 0, "removes": 0, "updates": 0, "items": 2}
    with broker_client(store, notif_allowed_hosts=LOOPBACK) as client:  # the start-up load fills the cache
        assert client.get("/cache/statistics").json() == {
            "ids": f"{kept}, {patched}", "refreshs": 1, "inserts": 0, "removes": 0, "updates": 0, "items": 2}


def test_cache_statistics_ids_are_capped() -> None:
    """admin/statistics.md, "GET /cache/statistics": "If the length is longer than that limit,
    instead of presenting the complete list of subscription-identifiers, the text "too many
    subscriptions" is presented instead"."""
    with broker_client(notif_allowed_hosts=LOOPBACK) as client:
        count = admin.IDS_MAX // len(_subscribe(client) + ", ") + 1
        for _ in range(count):
            _subscribe(client)
        body = client.get("/cache/statistics").json()
    assert body["ids"] == "too many subscriptions"
    assert body["items"] == count + 1


# --- admin/management_api.md, "Log configs and Trace levels" ----------------------------------------------


def test_log_config_defaults() -> None:
    """admin/management_api.md, "Log configs and Trace levels": GET /admin/log answers
    ``infoPayloadMaxSize``, ``level``, ``lineMaxSize``, ``deprecate``; the initial level is
    -logLevel's (admin/logs.md, "Log file": WARN by default); the sizes are -logInfoPayloadMaxSize's
    and -logLineMaxSize's defaults, 5 KB and 32 KB (admin/cli.md)."""
    with broker_client() as client:
        response = client.get("/admin/log")
        assert response.status_code == 200
        assert response.json() == {"infoPayloadMaxSize": 5120, "level": "WARN", "lineMaxSize": 32768, "deprecate": False}
    with broker_client(log_level="info") as client:
        assert client.get("/admin/log").json()["level"] == "INFO"


def test_log_deprecate_and_mqtt_max_age_options() -> None:
    """admin/cli.md: ``-logDeprecate`` ("Log deprecation usages as warnings ... It can be changed
    after Orion startup with the log admin REST API, with the ``deprecated`` field") starts
    with ``deprecate`` on; ``-mqttMaxAge`` ("Max time (in minutes) that an unused MQTT connection
    is kept. Default: 60") is the notifier's MQTT connection age, in minutes."""
    from broker.config import OPTIONS

    with broker_client(log_deprecate=True, mqtt_max_age=5) as client:
        assert client.get("/admin/log").json()["deprecate"] is True
        assert client.app.state.notifier.mqtt.max_age == 300
    with broker_client() as client:
        assert client.get("/admin/log").json()["deprecate"] is False
        assert client.app.state.notifier.mqtt.max_age == 3600
    parsed = OPTIONS.build(["-logDeprecate", "-mqttMaxAge", "7", "-statCounters"], {})
    assert (parsed.log_deprecate, parsed.mqtt_max_age, parsed.stat_counters) == (True, 7, True)
    env = OPTIONS.build([], {"ORION_STAT_TIMING": "true", "ORION_MQTT_MAX_AGE": "2"})
    assert (env.stat_timing, env.mqtt_max_age) == (True, 2)


@pytest.mark.parametrize("level", ["NONE", "FATAL", "ERROR", "WARN", "INFO", "DEBUG", "debug", "Info"])
def test_put_log_level_changes_it_at_run_time(root_level: None, level: str) -> None:
    """admin/management_api.md: ``PUT /admin/log?level=<NONE|FATAL|ERROR|WARN|INFO|DEBUG>``, with no
    payload; admin/logs.md, "Log file": "The log level can be changed (and retrieved) in run-time"
    and each level lets through its messages and the more severe ones (NONE: none)."""
    with broker_client() as client:
        response = client.put("/admin/log", params={"level": level})
        assert response.status_code == 200 and response.content == b""
        assert client.get("/admin/log").json()["level"] == level.upper()
    logger = logging.getLogger("waziup.broker")
    expected = {"NONE": None, "FATAL": logging.CRITICAL, "ERROR": logging.ERROR, "WARN": logging.WARNING,
                "INFO": logging.INFO, "DEBUG": logging.DEBUG}[level.upper()]
    for python_level in (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL):
        assert logger.isEnabledFor(python_level) == (expected is not None and python_level >= expected)


def test_put_log_without_content_length_header(root_level: None) -> None:
    """admin/management_api.md: the manual's ``curl -X PUT <host>:<port>/admin/log?level=...`` sends
    no body and no Content-Length: no 411 for it."""
    with broker_client() as client:
        request = client._http.build_request("PUT", "/admin/log?level=INFO")
        del request.headers["content-length"]
        response = client._run(client._http.send(request))
        assert response.status_code == 200
        assert client.get("/admin/log").json()["level"] == "INFO"


def test_put_log_sizes_and_deprecate(root_level: None) -> None:
    """admin/management_api.md: ``infoPayloadMaxSize``, ``lineMaxSize`` and ``deprecate=true|false``
    change the config GET shows; several may go in one request."""
    with broker_client() as client:
        assert client.put("/admin/log?infoPayloadMaxSize=100&lineMaxSize=200&deprecate=true").status_code == 200
        assert client.get("/admin/log").json() == {
            "infoPayloadMaxSize": 100, "level": "WARN", "lineMaxSize": 200, "deprecate": True}
        assert client.put("/admin/log?deprecate=false").status_code == 200
        assert client.get("/admin/log").json()["deprecate"] is False


@pytest.mark.parametrize(("query", "description"), [
    ("level=VERBOSE", "invalid log level, accepted values: NONE, FATAL, ERROR, WARN, INFO, DEBUG"),
    ("level=WARNING", "invalid log level, accepted values: NONE, FATAL, ERROR, WARN, INFO, DEBUG"),
    ("level=", "Empty right-hand-side for URI param /level/"),
    ("", "log config missing: give level, infoPayloadMaxSize, lineMaxSize or deprecate"),
    ("other=1", "log config missing: give level, infoPayloadMaxSize, lineMaxSize or deprecate"),
    ("lineMaxSize=99", "invalid lineMaxSize value: an integer, 100 or more"),
    ("infoPayloadMaxSize=-1", "invalid infoPayloadMaxSize value: an integer, 0 or more"),
    ("deprecate=yes", "invalid deprecate value: true or false"),
    ("level=DEBUG&lineMaxSize=big", "invalid lineMaxSize value: an integer, 100 or more"),
])
def test_put_log_refuses_bad_values_and_changes_nothing(root_level: None, query: str, description: str) -> None:
    """admin/management_api.md lists the values each parameter takes (levels NONE, FATAL, ERROR,
    WARN, INFO, DEBUG; ``deprecate=true|false``; admin/cli.md: lineMaxSize "Minimum allowed value:
    100 bytes"); anything else is a 400 and nothing changes, not even the valid parameters beside it."""
    with broker_client() as client:
        before = client.get("/admin/log").json()
        error_of(client.put(f"/admin/log?{query}"), 400, "BadRequest", description)
        assert client.get("/admin/log").json() == before


def test_deprecate_logs_deprecated_geo_types(root_level: None, caplog: pytest.LogCaptureFixture) -> None:
    """admin/logs.md, "Log deprecated usages": with ``deprecate`` (PUT /admin/log?deprecate=true)
    "Usages of geo:point, geo:line, geo:box" are WARN traces ("Deprecated usage of geo:point
    detected in attribute location at entity update, please use geo:json instead"); none without."""
    with broker_client() as client, caplog.at_level(logging.WARNING, logger="waziup.broker"):
        eid = new_id()
        create(client, {"id": eid, "type": "T", "location": {"type": "geo:point", "value": "1, 2"}})
        assert not [r for r in caplog.records if "Deprecated usage" in r.getMessage()]
        assert client.put("/admin/log?deprecate=true").status_code == 200
        client.patch(f"/v2/entities/{eid}/attrs", json={"location": {"type": "geo:point", "value": "3, 4"}})
        client.patch(f"/v2/entities/{eid}/attrs", json={"other": {"type": "geo:json", "value": {
            "type": "Point", "coordinates": [4, 3]}}})
    warned = [r for r in caplog.records if "Deprecated usage" in r.getMessage()]
    assert [(r.levelno, r.getMessage()) for r in warned] == [(logging.WARNING,
        "Deprecated usage of geo:point detected in attribute location at entity update, please use geo:json instead")]


def test_get_and_delete_trace_levels() -> None:
    """admin/management_api.md: ``GET /log/trace`` and ``DELETE /log/trace`` (every level off)."""
    with broker_client() as client:
        response = client.get("/log/trace")
        assert response.status_code == 200 and response.json() == {"tracelevels": "empty"}
        deleted = client.delete("/log/trace")
        assert deleted.status_code == 200 and deleted.json() == {"tracelevels": "empty"}


def test_put_and_delete_trace_levels() -> None:
    """admin/management_api.md: ``PUT /log/trace/t1-t2,t3-t4`` sets the levels ("'PUT-requests'
    overwrite the previous log settings"), ``DELETE /log/trace/t1`` removes some."""
    with broker_client() as client:
        assert client.put("/log/trace/180-199").json() == {"tracelevels": "180-199"}
        assert client.put("/log/trace/1-3,7").json() == {"tracelevels": "1-3,7"}  # overwrites
        assert client.get("/log/trace").json() == {"tracelevels": "1-3,7"}
        assert client.delete("/log/trace/2").json() == {"tracelevels": "1,3,7"}
        error_of(client.put("/log/trace/300"), 400, "BadRequest")


@pytest.mark.parametrize(("text", "levels", "shown"), [
    ("70", {70}, "70"), ("20-23", {20, 21, 22, 23}, "20-23"), ("70,90", {70, 90}, "70,90"),
    ("60,80-82", {60, 80, 81, 82}, "60,80-82"), ("0-255", set(range(256)), "0-255"),
])
def test_trace_level_strings(text: str, levels: set[int], shown: str) -> None:
    """admin/cli.md, ``-t``: "a single value (e.g. "-t 70"), a range (e.g. "-t 20-80"), a
    comma-separated list (e.g. "-t 70,90") or a combination of them (e.g. "-t 60,80-90")", 0 to 255."""
    assert admin.parse_trace(text) == frozenset(levels)
    assert admin.render_trace(frozenset(levels)) == shown


@pytest.mark.parametrize("text", ["", "256", "5-3", "a", "1-", "-1", "1,,2", "1-2-3"])
def test_bad_trace_level_strings(text: str) -> None:
    """admin/cli.md, ``-t``: anything but numbers 0-255, ranges and lists of them is refused."""
    with pytest.raises(Exception) as raised:
        admin.parse_trace(text)
    assert getattr(raised.value, "status", None) == 400


# --- the same front end as every route -----------------------------------------------------------------------


def test_unserved_methods_answer_405_with_allow() -> None:
    """admin/statistics.md: GET and DELETE on the statistics URLs; admin/management_api.md: GET and
    PUT on /admin/log, GET and DELETE on /log/trace. Other methods: Orion's 405 and Allow list."""
    with broker_client() as client:
        for method, path, allow in [("POST", "/statistics", "GET, DELETE"), ("PUT", "/cache/statistics", "GET, DELETE"),
                                    ("DELETE", "/admin/log", "GET, PUT"), ("POST", "/log/trace", "GET, DELETE")]:
            response = client.request(method, path, json={"x": 1})
            error_of(response, 405, "MethodNotAllowed", "method not allowed")
            assert response.headers["allow"] == allow


def refuse_admin(config: Any) -> Callable[[Incoming], Any]:
    """A guard factory (``-guard tests.broker.manual.test_admin:refuse_admin``): no admin URL passes."""

    async def guard(request: Incoming) -> Verdict | None:
        if request.path.startswith(("/statistics", "/cache", "/admin", "/log")):
            return reject(json_reply({"error": "Forbidden", "description": "admins only"}, 403))
        return None

    return guard


def test_admin_urls_go_through_the_request_seam() -> None:
    """The admin API is served by the same front end as NGSI: the guards (the PEP with -auth) see
    and may refuse each request, before any handler runs."""
    with broker_client(guards=("tests.broker.manual.test_admin:refuse_admin",)) as client:
        for method, path in [("GET", "/statistics"), ("DELETE", "/statistics"), ("GET", "/cache/statistics"),
                             ("PUT", "/admin/log?level=DEBUG"), ("GET", "/log/trace")]:
            error_of(client.request(method, path), 403, "Forbidden", "admins only")
        assert client.get("/version").status_code == 200


def test_every_route_has_a_counter_name() -> None:
    """admin/statistics.md, "Counter block": requests are counted per URL; every resource the front
    end routes to has its pattern (none is counted as an invalid request)."""
    routed = set(front.FIXED.values()) | {one[0] for one in front._ONE.values()}
    from broker.routes import entities

    routed |= {entities.ATTRS, entities.ATTR, entities.ATTR_VALUE}
    assert routed <= set(admin.PATTERNS)


# --- a FIWARE client library -------------------------------------------------------------------------------


def test_filip_get_statistics(broker_process: Callable[[list[str]], BrokerProcess]) -> None:
    """admin/statistics.md, "GET /statistics", as FiLiP's ``ContextBrokerClient.get_statistics()``
    calls it (it got a 400 "Service not found" before the route existed), against a broker process."""
    if not FILIP_PYTHON.exists():
        pytest.fail(f"{FILIP_PYTHON} is missing: `make test` installs FiLiP there", pytrace=False)
    broker = broker_process(["-dbURI", "memory://", "-statCounters"])
    httpx.get(broker.url + "/v2/entities")
    code = (
        "import json, sys\n"
        "from filip.clients.ngsi_v2 import ContextBrokerClient\n"
        "from filip.models.base import FiwareHeader\n"
        "client = ContextBrokerClient(url=sys.argv[1], fiware_header=FiwareHeader(service='acme', service_path='/'))\n"
        "print(json.dumps(client.get_statistics()))\n"
    )
    run = subprocess.run([str(FILIP_PYTHON), "-c", code, broker.url], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    body = json.loads(run.stdout.strip().splitlines()[-1])
    assert body["counters"]["requests"]["/v2/entities"] == {"GET": 1}
    assert body["counters"]["requests"]["/statistics"] == {"GET": 1}
    assert isinstance(body["uptime_in_secs"], int)
