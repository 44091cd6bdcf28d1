"""The broker's and the IoT agent's HTTP APIs against their OpenAPI documents, property-based.

``broker/openapi.json`` (NGSI-v2, Orion's manual) and ``iot_agent/openapi.json`` (the
provisioning API, iotagent-node-lib's ``doc/api.md``) must be valid OpenAPI, and the real
servers, started as processes as users start them, must live up to them. Schemathesis
generates requests for every documented operation from the document (its examples, its
boundary values, then valid and invalid data at random) and every answer must:

* never be a 5xx (except the broker's documented 501 for a batch update by idPattern, as Orion);
* as a 4xx, have the service's error shape: ``{"error", "description"}`` for the broker
  (sent as text/plain when Accept admits text/plain but not JSON, as Orion does),
  ``{"name", "message"}`` for the agent;
* as a 2xx with a body, be of a media type the request's Accept admits (broker);
* conform to the document: a documented status code, content type, headers and schema.

Beyond the document, generation is pushed where parsers break: integer URI parameters
(limit, offset) also get digit strings of any length and any Unicode digit class; bodies
also get date-typed values (attributes and metadata of type DateTime, ``expires``) with
fractions of any length; the broker's requests get all kinds of Accept headers.

Two plain tests complete it: every method a documented URL does not serve (the broker
answers 405 with Allow, 411 first when there is no payload, as Orion; the agent a 4xx in
its shape), and one minimal request per input class where a parser broke (edge values), so
that each is checked whatever the random runs meet.

No generated request may send traffic off this machine: every URL in a body (subscription
and registration endpoints, a group's cbHost, a device's endpoint) is rewritten to a
closed loopback port before it is sent (``loopback_only``).

The run is deterministic (fixed seed, no example database, no deadline, no health checks),
bounded by ``MAX_EXAMPLES`` per operation. A failure message ends with a curl command
that reproduces it (runs of one character written ``<N×c>``).
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from openapi_spec_validator import validate

from tests.conftest import BrokerProcess, Mosquitto
from tests.iot_agent.conftest import AgentStack

ROOT = Path(__file__).resolve().parents[1]
BROKER_DOC = ROOT / "broker" / "openapi.json"
AGENT_DOC = ROOT / "iot_agent" / "openapi.json"
SEED = 20261203
MAX_EXAMPLES = 30

# --------------------------------------------------------------------------------------------
# the documents


@pytest.mark.parametrize("path", [BROKER_DOC, AGENT_DOC], ids=["broker", "iot_agent"])
def test_document_is_valid_openapi(path: Path) -> None:
    doc = json.loads(path.read_text())
    validate(doc)  # OpenAPI 3.1 and its JSON Schema dialect; raises on any error
    assert doc["openapi"].startswith("3.1")
    for route, item in doc["paths"].items():
        for method, operation in item.items():
            if method != "parameters":
                assert operation.get("operationId"), f"{method.upper()} {route} has no operationId"


def _config() -> schemathesis.Config:
    return schemathesis.Config.from_dict({
        "seed": SEED,
        "generation": {"mode": "all", "max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none"},
        "phases": {
            "examples": {"enabled": True},
            # Undeclared methods have their own test below (test_*_undeclared_methods).
            "coverage": {"enabled": True, "unexpected-methods": []},
            "fuzzing": {"enabled": True},
            "stateful": {"enabled": False},
        },
        "checks": {
            "enabled": False,
            "status_code_conformance": {"enabled": True},
            "content_type_conformance": {"enabled": True},
            "response_headers_conformance": {"enabled": True},
            "response_schema_conformance": {"enabled": True},
        },
        "operations": [
            # The boundary values of the subscription payload (six notification channels, each
            # with its fields) are thousands of cases: random ones only.
            {"include-operation-id": ["createSubscription", "updateSubscription"],
             "phases": {"coverage": {"enabled": False}}},
        ],
    })


broker_schema = schemathesis.openapi.from_path(BROKER_DOC, config=_config())
agent_schema = schemathesis.openapi.from_path(AGENT_DOC, config=_config())

CI_SETTINGS = settings(
    max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
)


# --------------------------------------------------------------------------------------------
# generation beyond the documents

UNICODE_DIGITS = st.characters(categories=["Nd", "No", "Nl"])


def numeric_strings() -> st.SearchStrategy[str]:
    """What a client may put in an integer URI parameter."""
    return st.one_of(
        st.integers(0, 2000).map(str),
        st.text(UNICODE_DIGITS, min_size=1, max_size=4),
        st.integers(1, 12_000).map(lambda n: "9" * n),
        st.from_regex(r"\A[ +\-]?[0-9]{1,3}(\.[0-9]+|e[0-9]+)?\Z"),
    )


def datetimes() -> st.SearchStrategy[str]:
    """ISO 8601 date-times, mostly well-formed, with fractions of any length and digit class."""
    base = st.sampled_from(["2024-02-29T23:59:59", "0001-01-01T00:00:00", "2024-01-01T00:00", "2024-01-01"])
    fraction = st.one_of(
        st.just(""),
        st.integers(1, 9).map(lambda n: "." + "1234567890"[:n]),
        st.integers(10, 12_000).map(lambda n: "." + "5" * n),
        st.text(st.characters(categories=["Nd"]), min_size=1, max_size=4).map(lambda d: "." + d),
    )
    zone = st.sampled_from(["Z", "", "+01:00", "-23:59"])
    return st.tuples(base, fraction, zone).map("".join)


def numeric_query(context: Any, query: dict[str, Any] | None) -> st.SearchStrategy[Any]:
    names = [name for name in ("limit", "offset") if query and name in query]
    if not names:
        return st.just(query)
    odd = st.fixed_dictionaries({name: numeric_strings() for name in names})
    return st.one_of(st.just(query), odd.map(lambda values: {**(query or {}), **values}))


def _dated_entity(entity: Any, dates: list[str]) -> Any:
    """An entity (or attributes) with date-typed attribute and metadata values."""
    if not isinstance(entity, dict):
        return entity
    out = {key: entity[key] for key in ("id", "type") if isinstance(entity.get(key), str)}
    out["when"] = {"type": "DateTime", "value": dates[0],
                   "metadata": {"at": {"type": "DateTime", "value": dates[-1]}}}
    return out


def _dated(body: Any, dates: list[str]) -> Any:
    if "notification" in body or "dataProvided" in body or "expires" in body:
        return {**body, "expires": dates[0]}
    if isinstance(body.get("entities"), list):
        return {**body, "entities": [_dated_entity(e, dates) for e in body["entities"]]}
    if isinstance(body.get("data"), list):
        return {**body, "data": [_dated_entity(e, dates) for e in body["data"]]}
    if body and set(body) <= {"value", "type", "metadata"}:  # one attribute
        return {"type": "DateTime", "value": dates[0]}
    return _dated_entity(body, dates)


def dated_body(context: Any, body: Any) -> st.SearchStrategy[Any]:
    if not isinstance(body, dict):
        return st.just(body)
    return st.one_of(st.just(body), st.lists(datetimes(), min_size=1, max_size=2).map(lambda d: _dated(body, d)))


ACCEPTS = [None, "application/json", "*/*", "text/plain", "application/*", "text/*", "image/png", "application/xml",
           "text/html", "text/plain, application/json", "application/json;q=0.9, text/plain;q=0.5"]


def any_accept(context: Any, headers: dict[str, Any] | None) -> st.SearchStrategy[Any]:
    def with_accept(accept: str | None) -> dict[str, Any] | None:
        out = dict(headers or {})
        if accept is not None:
            out["Accept"] = accept
        return out or None

    return st.sampled_from(ACCEPTS).map(with_accept)


for _schema in (broker_schema, agent_schema):
    _schema.hook("flatmap_query")(numeric_query)
broker_schema.hook("flatmap_body")(dated_body)
broker_schema.hook("flatmap_headers")(any_accept)


# --------------------------------------------------------------------------------------------
# no traffic off this machine

SINK = "127.0.0.1:9"  # the discard port: nothing listens there
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*\Z")
_HOST_FIELDS = ("cbHost", "endpoint", "host")


def loopback_only(value: Any, key: str | None = None) -> Any:
    """``value`` with every URL (and host field) pointing at ``SINK``; the rest unchanged."""
    if isinstance(value, dict):
        return {k: loopback_only(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [loopback_only(v) for v in value]
    if not isinstance(value, str):
        return value
    if key in _HOST_FIELDS or (key == "url" and "${" in value):  # macros: filled from entity data later
        return f"http://{SINK}/"
    if "://" in value:
        scheme, rest = value.split("://", 1)
        ends = [i for i in (rest.find("/"), rest.find("?"), rest.find("#")) if i >= 0]
        return f"{scheme if _SCHEME.match(scheme) else 'http'}://{SINK}{rest[min(ends):] if ends else ''}"
    return value


def send(case: Any, base_url: str) -> Any:
    if isinstance(case.body, (dict, list)):
        case.body = loopback_only(case.body)
    return case.call(base_url=base_url, timeout=30)


# --------------------------------------------------------------------------------------------
# the properties


def header(response: Any, name: str) -> str:
    for key, value in response.headers.items():
        if key.lower() == name:
            return str(value[0] if isinstance(value, list) else value)
    return ""


def media_type(response: Any) -> str:
    return header(response, "content-type").split(";")[0].strip().lower()


def prefers_text(accept: str | None) -> bool:
    """Orion's rule: Accept admits text/plain and not JSON."""
    if not accept:
        return False
    types = {part.split(";")[0].strip().lower() for part in accept.split(",")}
    return not types & {"application/json", "application/*", "*/*"} and bool(types & {"text/plain", "text/*"})


def acceptable(accept: str | None, media: str) -> bool:
    if not accept:
        return True
    for part in accept.split(","):
        wanted = part.split(";")[0].strip().lower()
        if wanted in ("*/*", media) or (wanted.endswith("/*") and media.startswith(wanted[:-1])):
            return True
    return False


def shortened(text: str) -> str:
    """Runs of one character over 40 long written as <N×c>: readable reproductions."""
    return re.sub(r"(.)\1{40,}", lambda m: f"<{len(m.group(0))}×{m.group(1)}>", text)


def explain(case: Any, response: Any, problem: str) -> str:
    body = shortened(response.content[:300].decode("utf-8", "replace"))
    curl = shortened(case.as_curl_command(headers=dict(response.request.headers)))
    return f"{case.method} {case.path}: {problem}\n  answer {response.status_code}: {body}\n  {curl}"


def check_error_shape(case: Any, response: Any, keys: tuple[str, str], media: set[str]) -> None:
    try:
        body = json.loads(response.content)
    except ValueError:
        body = None
    assert isinstance(body, dict) and all(isinstance(body.get(k), str) for k in keys), explain(
        case, response, f"error not in the shape {{{', '.join(keys)}}}"
    )
    assert media_type(response) in media, explain(case, response, f"error as {media_type(response)!r}, not {media}")


def check_broker(case: Any, response: Any) -> None:
    status = response.status_code
    accept = response.request.headers.get("Accept")
    if status >= 500 and not (status == 501 and case.path == "/v2/op/update"):
        raise AssertionError(explain(case, response, "server error"))
    if status >= 400:
        check_error_shape(case, response, ("error", "description"), {"text/plain" if prefers_text(accept) else "application/json"})
    elif response.content:
        assert acceptable(accept, media_type(response)), explain(case, response, f"answered despite Accept: {accept}")
    case.validate_response(response)


def check_agent(case: Any, response: Any) -> None:
    if response.status_code >= 500:
        raise AssertionError(explain(case, response, "server error"))
    if response.status_code >= 400:
        check_error_shape(case, response, ("name", "message"), {"application/json"})
    case.validate_response(response)


# --------------------------------------------------------------------------------------------
# the servers

ENTITIES = [  # the documents' examples, so that their requests find something
    {"id": "Bcn-Welt", "type": "Room", "temperature": {"value": 21.7}, "humidity": {"value": 60},
     "location": {"value": {"type": "Point", "coordinates": [2.1864475, 41.3763726]}, "type": "geo:json"}},
    {"id": "room2", "type": "Room", "relativeHumidity": {"value": 40, "metadata": {"accuracy": {"value": 0.9}}}},
    {"id": "P-9873-K", "type": "Car", "speed": {"value": 100},
     "seen": {"type": "DateTime", "value": "2015-06-04T07:20:27.378Z"}},
]


def drain(proc: subprocess.Popen[bytes] | None) -> deque[bytes]:
    """Read a started service's stderr as it comes (the last lines are kept): it is a pipe,
    and a service logging one traceback per 500 would block on it once it is full."""
    tail: deque[bytes] = deque(maxlen=200)
    if proc is not None and proc.stderr is not None:
        stream = proc.stderr
        threading.Thread(target=lambda: tail.extend(stream), daemon=True).start()
    return tail


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    process = BrokerProcess(["-multiservice", "-data", str(tmp_path_factory.mktemp("openapi-broker"))]).start()
    drain(process.proc)
    try:
        for tenant in ({}, {"Fiware-Service": "acme", "Fiware-ServicePath": "/Madrid/Gardens"}):
            response = httpx.post(process.url + "/v2/op/update", headers=tenant,
                                  json={"actionType": "append", "entities": ENTITIES})
            assert response.status_code == 204, response.text
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def agent(mosquitto: Mosquitto, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentStack]:
    broker = BrokerProcess(["-multiservice", "-data", str(tmp_path_factory.mktemp("openapi-agent-broker"))]).start()
    drain(broker.proc)
    try:
        stack = AgentStack(broker, mosquitto.host, mosquitto.port, [])
        stack.start()
        drain(stack.proc)
        try:
            doc = json.loads(AGENT_DOC.read_text())
            post = doc["paths"]["/iot/groups"]["post"]
            devices = doc["paths"]["/iot/devices"]["post"]
            tenant = {"fiware-service": "acme", "fiware-servicepath": "/project"}
            for url, operation in (("/iot/groups", post), ("/iot/devices", devices)):
                example = operation["requestBody"]["content"]["application/json"]["example"]
                response = httpx.post(stack.north + url, headers=tenant, json=loopback_only(example))
                assert response.status_code == 201, response.text
            yield stack
        finally:
            stack.stop()
    finally:
        broker.stop()


# --------------------------------------------------------------------------------------------
# the tests


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Give each operation's test its own node id. Schemathesis names its items
    ``test_x[GET /path]``, but pytest 9 builds node ids from the function's original name
    and its parameters only, so every operation got ``test_x``: pytest-xdist's scheduler
    then ran one of them and dropped the others. A parameter (the schemathesis collector
    calls this hook too) makes pytest take the item's own name: ``test_x[GET /path][]``."""
    if "distinct_id" in metafunc.fixturenames:
        metafunc.parametrize("distinct_id", [None], ids=[""])


@pytest.mark.xdist_group("openapi-broker")
@broker_schema.parametrize()
@CI_SETTINGS
def test_broker_api(case: Any, distinct_id: None, broker: BrokerProcess) -> None:
    check_broker(case, send(case, broker.url))


@pytest.mark.xdist_group("openapi-agent")
@agent_schema.parametrize()
@CI_SETTINGS
def test_agent_api(case: Any, distinct_id: None, agent: AgentStack) -> None:
    check_agent(case, send(case, agent.north))


METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE")


def undeclared(path: Path) -> list[tuple[str, str, str, tuple[str, ...]]]:
    """(method, URL path, label, declared methods) for each method a documented URL does not serve."""
    doc = json.loads(path.read_text())
    cases = []
    for route, item in doc["paths"].items():
        declared = tuple(m.upper() for m in item if m != "parameters")
        concrete = re.sub(r"\{[^}]+\}", "x", route)
        for name in re.findall(r"\{([^}]+)\}", route):
            example = next((p.get("example") for p in item.get("parameters", []) if p.get("name") == name), None)
            if example is not None:
                concrete = concrete.replace("x", str(example), 1)
        cases += [(m, concrete, f"{m} {route}", declared) for m in METHODS if m not in declared]
    return cases


@pytest.mark.xdist_group("openapi-broker")
@pytest.mark.parametrize(("method", "url", "label", "declared"), undeclared(BROKER_DOC),
                         ids=[c[2] for c in undeclared(BROKER_DOC)])
def test_broker_undeclared_methods(broker: BrokerProcess, method: str, url: str, label: str, declared: tuple[str, ...]) -> None:
    """405 with the URL's methods in Allow; as in Orion, a write without payload is a 411 first."""
    with_body = httpx.request(method, broker.url + url, json={"x": {"value": 1}})
    assert with_body.status_code == 405, with_body.text
    assert {m.strip() for m in with_body.headers["Allow"].split(",")} == set(declared)
    body = with_body.json()
    assert body == {"error": "MethodNotAllowed", "description": "method not allowed"}
    if method in ("POST", "PUT", "PATCH"):
        without = httpx.request(method, broker.url + url)
        assert without.status_code == 411 and set(without.json()) == {"error", "description"}, without.text


@pytest.mark.xdist_group("openapi-agent")
@pytest.mark.parametrize(("method", "url", "label", "declared"), undeclared(AGENT_DOC),
                         ids=[c[2] for c in undeclared(AGENT_DOC)])
def test_agent_undeclared_methods(agent: AgentStack, method: str, url: str, label: str, declared: tuple[str, ...]) -> None:
    """A method a URL does not serve: a 4xx in the agents' error shape."""
    response = httpx.request(method, agent.north + url, json={},
                             headers={"fiware-service": "acme", "fiware-servicepath": "/project"})
    assert 400 <= response.status_code < 500, response.text
    try:
        body = response.json()
    except ValueError:
        body = None
    assert isinstance(body, dict) and set(body) == {"name", "message"}, f"{response.status_code} {response.text!r}"


# --------------------------------------------------------------------------------------------
# the input classes where parsers broke (before dc33797: 500s, and 200 JSON to any Accept),
# one minimal request each, whatever the random runs above meet at SEED.

LONG = "1" * 4301  # one digit more than Python's int() takes from a string
DATE = "2024-02-29T23:59:59." + "5" * 4301 + "Z"

Edge = tuple[str, str, str, dict[str, Any]]  # method, path, what, httpx.request keyword arguments


def _broker_edges() -> list[Edge]:
    edges: list[Edge] = []
    lists: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", path, {}) for path in ("/v2/entities", "/v2/types", "/v2/subscriptions", "/v2/registrations")
    ]
    lists.append(("POST", "/v2/op/query", {"json": {"entities": [{"idPattern": ".*"}]}}))
    for method, path, extra in lists:
        for param in ("limit", "offset"):
            for what, value in (("superscript two", "²"), ("4301 digits", LONG)):
                edges.append((method, path, f"{param}={what}", {**extra, "params": {param: value}}))
    dated = {"type": "DateTime", "value": DATE}
    sub = {"subject": {"entities": [{"idPattern": ".*"}]}, "notification": {"http": {"url": f"http://{SINK}/"}}}
    reg = {"dataProvided": {"entities": [{"id": "edge"}]}, "provider": {"http": {"url": f"http://{SINK}"}}}
    for method, path, what, body in (
        ("POST", "/v2/entities", "DateTime attribute", {"id": "edge-new", "when": dated}),
        ("POST", "/v2/entities", "DateTime metadata", {"id": "edge-new", "a": {"value": 1, "metadata": {"at": dated}}}),
        ("POST", "/v2/entities", "dateExpires", {"id": "edge-new", "dateExpires": dated}),
        ("POST", "/v2/entities/edge/attrs", "DateTime attribute", {"when": dated}),
        ("PATCH", "/v2/entities/edge/attrs", "DateTime attribute", {"a": dated}),
        ("PUT", "/v2/entities/edge/attrs", "DateTime attribute", {"a": dated}),
        ("PUT", "/v2/entities/edge/attrs/a", "DateTime attribute", dated),
        ("POST", "/v2/op/update", "DateTime attribute", {"actionType": "append", "entities": [{"id": "edge", "when": dated}]}),
        ("POST", "/v2/op/notify", "DateTime attribute", {"subscriptionId": "x", "data": [{"id": "edge", "when": dated}]}),
        ("POST", "/v2/subscriptions", "expires", {**sub, "expires": DATE}),
        ("PATCH", "/v2/subscriptions/62aa3d3ac734067e6f0d0871", "expires", {"expires": DATE}),
        ("POST", "/v2/registrations", "expires", {**reg, "expires": DATE}),
    ):
        edges.append((method, path, f"{what} with a 4301-digit fraction", {"json": body}))
    for value in ("-9223372036854775809", "9" * 30):  # past SQLite's 64-bit integers
        edges.append(("PUT", "/v2/entities/edge/attrs/a/value", f"text/plain {value}",
                      {"content": value, "headers": {"Content-Type": "text/plain"}}))
    for path in ("/version", "/v2", "/v2/entities", "/v2/entities/edge", "/v2/entities/edge/attrs",
                 "/v2/entities/edge/attrs/a", "/v2/types", "/v2/types/Edge", "/v2/subscriptions", "/v2/registrations"):
        edges.append(("GET", path, "Accept: image/png", {"headers": {"Accept": "image/png"}}))
    edges.append(("POST", "/v2/op/query", "Accept: image/png",
                  {"headers": {"Accept": "image/png"}, "json": {"entities": [{"idPattern": ".*"}]}}))
    return edges


def _agent_edges() -> list[Edge]:
    tenant = {"fiware-service": "acme", "fiware-servicepath": "/project"}
    return [
        ("GET", path, f"{param}={what}", {"params": {param: value}, "headers": tenant})
        for path in ("/iot/groups", "/iot/services", "/iot/devices")
        for param in ("limit", "offset")
        for what, value in (("superscript two", "²"), ("4301 digits", LONG))
    ]


def _edge_params(edges: list[Edge]) -> list[Any]:
    return [pytest.param(method, path, kwargs, id=f"{method} {path}: {what}") for method, path, what, kwargs in edges]


@pytest.mark.xdist_group("openapi-broker")
@pytest.mark.parametrize(("method", "path", "kwargs"), _edge_params(_broker_edges()))
def test_broker_edge_values(broker: BrokerProcess, method: str, path: str, kwargs: dict[str, Any]) -> None:
    httpx.post(broker.url + "/v2/entities?options=upsert", json={"id": "edge", "type": "Edge", "a": {"value": 1}})
    response = httpx.request(method, broker.url + path, timeout=30, **kwargs)
    accept = response.request.headers.get("Accept")
    assert response.status_code < 500, f"{response.status_code} {response.text}"
    if response.status_code >= 400:
        body = response.json()
        assert isinstance(body.get("error"), str) and isinstance(body.get("description"), str), response.text
    elif response.content:
        assert acceptable(accept, response.headers["Content-Type"].split(";")[0]), (
            f"{response.status_code} {response.headers['Content-Type']} for Accept: {accept}"
        )


@pytest.mark.xdist_group("openapi-agent")
@pytest.mark.parametrize(("method", "path", "kwargs"), _edge_params(_agent_edges()))
def test_agent_edge_values(agent: AgentStack, method: str, path: str, kwargs: dict[str, Any]) -> None:
    response = httpx.request(method, agent.north + path, timeout=30, **kwargs)
    assert response.status_code < 500, f"{response.status_code} {response.text}"
    if response.status_code >= 400:
        assert set(response.json()) == {"name", "message"}, response.text


def test_the_documents_are_served(broker: BrokerProcess, agent: AgentStack) -> None:
    """``GET /openapi.json`` on each service answers its document (read once, off the hot path)."""
    for url, path in ((broker.url, BROKER_DOC), (agent.north, AGENT_DOC)):
        answer = httpx.get(url + "/openapi.json", timeout=10)
        assert answer.status_code == 200 and answer.headers["content-type"].startswith("application/json")
        assert answer.json() == json.loads(path.read_text())
