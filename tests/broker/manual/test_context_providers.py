"""Registrations and forwarding to context providers as Orion's manuals describe them (issue 13).

Written from /work/shared/reference/orion/user/context_providers.md (forwarding,
"Some additional comments", "Pagination with Context Providers") and orion-api.md:
"Registration Operations" (payload datamodel, list, create, retrieve, delete),
"Registration implementation differences", "Service path in subscriptions and
registrations", "Multi tenancy". Each test cites the section it follows; where the manual
gives no text or status, the test follows Orion's functional test cases (named), and
where the broker differs from the manual on purpose the docstring says so.

The whole broker runs in-process (tests/broker/api_client.py) on SQLite and on PostgreSQL
(registrations are written through to the store). Context providers are a real HTTP
server on loopback (``Provider``) that keeps every request and answers NGSIv2
``/op/query``/``/op/update`` and NGSIv1 ``/queryContext``/``/updateContext`` from entities
the test gives it. Each test works in a tenant of its own, so tests share one broker per
store.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.broker.api_client import ApiClient, broker_client, error_of, new_id

from .conftest import LOOPBACK, LoopbackServer, TenantApi

REG_ID = re.compile(r"^[0-9a-f]{24}$")
ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
REG_NOT_FOUND = "The requested registration has not been found. Check id"
ENTITY_NOT_FOUND = "The requested entity has not been found. Check type and id"


# --------------------------------------------------------------------------- the provider


@dataclass
class Request:
    """One request a provider got; header names in lower case, ``path`` without the query."""

    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def _matches(spec: dict[str, str], entity: dict[str, Any]) -> bool:
    if "id" in spec and spec["id"] != entity["id"]:
        return False
    if "idPattern" in spec and not re.search(spec["idPattern"], entity["id"]):
        return False
    return "type" not in spec or spec["type"] == entity.get("type")


class Provider(LoopbackServer):
    """Context providers on one loopback server, one per path prefix (a test's tenant).

    ``entities[prefix]`` is what the provider at ``base + prefix`` holds (NGSIv2 normalized
    entities): op/query answers from it with ``limit``/``offset`` and Fiware-Total-Count,
    op/update writes to it; queryContext/updateContext do the same in NGSIv1. A path with
    a segment ``fail`` is answered 500, one with ``slow`` three seconds late.
    """

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.entities: dict[str, list[dict[str, Any]]] = {}
        self.lock = threading.Lock()
        provider = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))
                url = urlsplit(self.path)
                request = Request(
                    url.path, {k: v[-1] for k, v in parse_qs(url.query).items()},
                    {k.lower(): v for k, v in self.headers.items()}, body,
                )
                with provider.lock:
                    provider.requests.append(request)
                segments = url.path.split("/")
                if "slow" in segments:
                    time.sleep(3)
                if "fail" in segments:
                    self._send(500, {"error": "InternalServerError", "description": "down"})
                    return
                status, answer, headers = provider.answer(request)
                self._send(status, answer, headers)

            def _send(self, status: int, answer: Any, headers: dict[str, str] | None = None) -> None:
                data = b"" if answer is None else json.dumps(answer).encode()
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                if data:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                try:
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the broker gave up waiting (-httpTimeout)

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(Handler)

    def _held(self, path: str, op: str) -> list[dict[str, Any]]:
        return self.entities.setdefault(path[: -len(op)], [])

    def answer(self, request: Request) -> tuple[int, Any, dict[str, str]]:
        body = request.json()
        with self.lock:
            if request.path.endswith("/op/query"):
                held = self._held(request.path, "/op/query")
                found = [e for e in held if any(_matches(s, e) for s in body["entities"])]
                if "attrs" in body:
                    found = [{k: v for k, v in e.items() if k in ("id", "type") or k in body["attrs"]} for e in found]
                offset, limit = int(request.query.get("offset", 0)), int(request.query.get("limit", 20))
                return 200, found[offset : offset + limit], {"Fiware-Total-Count": str(len(found))}
            if request.path.endswith("/op/update"):
                held = self._held(request.path, "/op/update")
                for entity in body["entities"]:
                    target = next((e for e in held if _matches({"id": entity["id"]}, e)), None)
                    if target is None:
                        held.append(dict(entity))
                    else:
                        target.update({k: v for k, v in entity.items() if k not in ("id", "type")})
                return 204, None, {}
            if request.path.endswith("/queryContext"):
                held = self._held(request.path, "/queryContext")
                responses = []
                for e in held:
                    wanted = [s for s in body["entities"] if s["isPattern"] == "false"]
                    if not any(s["id"] == e["id"] and s.get("type", e["type"]) == e["type"] for s in wanted):
                        continue
                    names = body.get("attributes") or [k for k in e if k not in ("id", "type")]
                    attributes = [
                        {"name": n, "type": e[n]["type"], "value": e[n]["value"]} for n in names if n in e
                    ]
                    responses.append({
                        "contextElement": {"attributes": attributes, "id": e["id"], "isPattern": "false", "type": e["type"]},
                        "statusCode": {"code": "200", "reasonPhrase": "OK"},
                    })
                if not responses:
                    return 200, {"errorCode": {"code": "404", "reasonPhrase": "No context element found"}}, {}
                return 200, {"contextResponses": responses}, {}
            if request.path.endswith("/updateContext"):
                held = self._held(request.path, "/updateContext")
                for element in body["contextElements"]:
                    attrs = {a["name"]: {"type": a["type"], "value": a["value"]} for a in element["attributes"]}
                    held.append({"id": element["id"], "type": element.get("type", ""), **attrs})
                return 200, {"contextResponses": [
                    {"contextElement": element, "statusCode": {"code": "200", "reasonPhrase": "OK"}}
                    for element in body["contextElements"]
                ]}, {}
        return 400, {"error": "BadRequest", "description": "unknown operation"}, {}

    def under(self, prefix: str) -> list[Request]:
        with self.lock:
            return [r for r in self.requests if r.path.startswith(prefix + "/")]


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def provider() -> Iterator[Provider]:
    with Provider() as p:
        yield p


class Api(TenantApi):
    """One test's view of the broker (its own tenant) and of its providers (its own paths)."""

    def __init__(self, client: ApiClient, provider: Provider, tenant: str) -> None:
        super().__init__(client, tenant)
        self.provider = provider

    def url(self, name: str = "cpr") -> str:
        """The URL of one of this test's providers, as a registration names it (".../v2")."""
        return f"{self.provider.base}{self.prefix}/{name}/v2"

    def holds(self, name: str, *entities: dict[str, Any]) -> None:
        """Give provider ``name`` entities (NGSIv2 normalized) to answer with."""
        self.provider.entities.setdefault(f"{self.prefix}/{name}/v2", []).extend(entities)

    def held(self, name: str = "cpr") -> list[dict[str, Any]]:
        return self.provider.entities.get(f"{self.prefix}/{name}/v2", [])

    def received(self, name: str = "cpr") -> list[Request]:
        return self.provider.under(f"{self.prefix}/{name}")

    def request(self, method: str, url: str, *, service_path: str | None = None,
                headers: dict[str, str] | None = None, **kwargs: Any) -> httpx.Response:
        return self.client.request(method, url, headers=self.headers(service_path, **(headers or {})), **kwargs)

    def register(self, entities: list[dict[str, str]], attrs: list[str] | None = None, name: str = "cpr", *,
                 service_path: str | None = None, **provider: Any) -> str:
        """A registration that must be created; its id."""
        data: dict[str, Any] = {"entities": entities}
        if attrs is not None:
            data["attrs"] = attrs
        body = {"dataProvided": data, "provider": {"http": {"url": self.url(name)}, **provider}}
        response = self.request("POST", "/v2/registrations", json=body, service_path=service_path)
        assert response.status_code == 201, response.text
        return str(response.headers["location"].rsplit("/", 1)[1])

    def get_reg(self, reg_id: str) -> dict[str, Any]:
        response = self.request("GET", f"/v2/registrations/{reg_id}")
        assert response.status_code == 200, response.text
        return dict(response.json())

    def create(self, entity: dict[str, Any], service_path: str | None = None) -> None:
        response = self.request("POST", "/v2/entities", json=entity, service_path=service_path)
        assert response.status_code == 201, response.text

    def get(self, url: str, **params: str) -> httpx.Response:
        return self.request("GET", url, params=params or None)


@pytest.fixture
def api(client: ApiClient, provider: Provider) -> Api:
    return Api(client, provider, new_id("t").lower())


def _street4(value: Any = "16") -> dict[str, Any]:
    return {"id": "Street4", "type": "Street", "temperature": {"value": value, "type": "float"}}


def _date(text: str) -> float:
    assert ISO.match(text), text
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()


# --------------------------------------------------------------------------- registrations


def test_create_answers_201_with_location(api: Api) -> None:
    """orion-api.md, 'Create Registration `POST /v2/registrations`': 201 Created, the
    ``Location`` header with the path of the registration, whose id is generated (24 hex
    digits, as in the manual's examples)."""
    body = {"description": "Relative Humidity Context Source",
            "dataProvided": {"entities": [{"id": "room2", "type": "Room"}], "attrs": ["relativeHumidity"]},
            "provider": {"http": {"url": api.url()}}}
    response = api.request("POST", "/v2/registrations", json=body)
    assert response.status_code == 201
    location = response.headers["location"]
    assert location.startswith("/v2/registrations/")
    assert REG_ID.match(location.rsplit("/", 1)[1])
    assert response.content == b""


def test_retrieve_renders_every_field(api: Api) -> None:
    """orion-api.md, 'Retrieve Registration `GET /v2/registrations/{registrationId}`' and
    'Registration payload datamodel' (``registration``, ``registration.provider``,
    ``registration.dataProvided``): the fields given, ``supportedForwardingMode`` "all" and
    ``legacyForwarding`` false by default, ``expires`` in ISO8601, ``status`` active; no
    ``forwardingInformation`` before any forwarding (3944_legacy_forwarding_rendering)."""
    body = {"description": "Example Context Source",
            "dataProvided": {"entities": [{"id": "Bcn_Welt", "type": "Room"}], "attrs": ["temperature"]},
            "provider": {"http": {"url": "http://127.0.0.1:1/v2"}},
            "expires": "2040-10-31T12:00:00"}
    response = api.request("POST", "/v2/registrations", json=body)
    reg_id = response.headers["location"].rsplit("/", 1)[1]
    got = api.request("GET", f"/v2/registrations/{reg_id}")
    assert got.status_code == 200
    assert got.headers["content-type"] == "application/json"
    assert got.json() == {
        "id": reg_id,
        "description": "Example Context Source",
        "dataProvided": {"entities": [{"id": "Bcn_Welt", "type": "Room"}], "attrs": ["temperature"]},
        "provider": {"http": {"url": "http://127.0.0.1:1/v2"}, "supportedForwardingMode": "all",
                     "legacyForwarding": False},
        "expires": "2040-10-31T12:00:00.000Z",
        "status": "active",
    }


@pytest.mark.parametrize("mode", ["all", "none", "query", "update"])
def test_supported_forwarding_modes_are_kept(api: Api, mode: str) -> None:
    """orion-api.md, 'registration.provider': ``supportedForwardingMode`` takes none, query,
    update or all, and ``legacyForwarding`` true is kept."""
    reg_id = api.register([{"id": "E", "type": "T"}], supportedForwardingMode=mode, legacyForwarding=True)
    assert api.get_reg(reg_id)["provider"] == {
        "http": {"url": api.url()}, "supportedForwardingMode": mode, "legacyForwarding": True,
    }


def test_id_pattern_and_all_attributes(api: Api) -> None:
    """orion-api.md, 'registration.dataProvided': ``idPattern`` instead of ``id`` (".*"), no
    ``type`` (any type), and ``attrs`` omitted: all attributes (shown as an empty list)."""
    reg_id = api.register([{"idPattern": ".*"}])
    assert api.get_reg(reg_id)["dataProvided"] == {"entities": [{"idPattern": ".*"}], "attrs": []}


def test_list_paginates_and_counts(api: Api) -> None:
    """orion-api.md, 'List Registrations `GET /v2/registrations`': ``limit``, ``offset`` and
    ``options=count`` (Fiware-Total-Count), registrations in creation order."""
    ids = [api.register([{"id": f"E{i}", "type": "T"}]) for i in range(3)]
    listed = api.request("GET", "/v2/registrations", params={"options": "count"})
    assert [r["id"] for r in listed.json()] == ids
    assert listed.headers["fiware-total-count"] == "3"
    page = api.request("GET", "/v2/registrations", params={"limit": "1", "offset": "1"})
    assert [r["id"] for r in page.json()] == ids[1:2]
    assert "fiware-total-count" not in page.headers


def test_delete_answers_204_then_not_found(api: Api) -> None:
    """orion-api.md, 'Delete Registration': 204 No Content; then the registration is gone
    (404 with Orion's text, 3945_servicepath_ignored_in_get_regs)."""
    reg_id = api.register([{"id": "E", "type": "T"}])
    response = api.request("DELETE", f"/v2/registrations/{reg_id}")
    assert response.status_code == 204
    error_of(api.request("GET", f"/v2/registrations/{reg_id}"), 404, "NotFound", REG_NOT_FOUND)
    error_of(api.request("DELETE", f"/v2/registrations/{reg_id}"), 404, "NotFound", REG_NOT_FOUND)
    assert api.request("GET", "/v2/registrations").json() == []


def test_registrations_belong_to_their_tenant(api: Api, client: ApiClient, provider: Provider) -> None:
    """orion-api.md, 'Multi tenancy': another service sees neither the registration nor
    forwards to its provider."""
    reg_id = api.register([{"id": "Street4", "type": "Street"}], ["temperature"])
    other = Api(client, provider, new_id("t").lower())
    error_of(other.request("GET", f"/v2/registrations/{reg_id}"), 404, "NotFound", REG_NOT_FOUND)
    assert other.request("GET", "/v2/registrations").json() == []
    error_of(other.get("/v2/entities/Street4", type="Street"), 404, "NotFound", ENTITY_NOT_FOUND)
    assert api.received() == []


def test_patch_is_not_implemented(api: Api) -> None:
    """orion-api.md, 'Registration implementation differences': "PATCH
    /v2/registration/<id> is not implemented"; the resource allows GET and DELETE only."""
    reg_id = api.register([{"id": "E", "type": "T"}])
    response = api.request("PATCH", f"/v2/registrations/{reg_id}", json={"status": "inactive"})
    error_of(response, 405, "MethodNotAllowed")
    assert response.headers["allow"] == "GET, DELETE"
    assert api.get_reg(reg_id)["status"] == "active"


def test_inactive_status_is_stored_and_retrieved(api: Api) -> None:
    """orion-api.md, 'Registration implementation differences': "the field is
    stored/retrieved correctly" for ``status`` inactive."""
    body = {"dataProvided": {"entities": [{"id": "E", "type": "T"}]}, "provider": {"http": {"url": api.url()}},
            "status": "inactive"}
    response = api.request("POST", "/v2/registrations", json=body)
    reg_id = response.headers["location"].rsplit("/", 1)[1]
    assert api.get_reg(reg_id)["status"] == "inactive"


def test_list_is_narrowed_to_the_service_path(api: Api) -> None:
    """orion-api.md, 'Service path in subscriptions and registrations': the header is taken
    into account in ``GET /v2/registrations`` "to narrow down the results to ... registrations
    that use *exactly* that service path"; without it, all of the service."""
    foo = api.register([{"id": "E", "type": "T"}], service_path="/foo")
    bar = api.register([{"id": "E", "type": "T"}], service_path="/bar")
    assert [r["id"] for r in api.request("GET", "/v2/registrations", service_path="/foo").json()] == [foo]
    assert [r["id"] for r in api.request("GET", "/v2/registrations", service_path="/foo/sub").json()] == []
    assert [r["id"] for r in api.request("GET", "/v2/registrations").json()] == [foo, bar]


def test_get_by_id_follows_orion_not_the_manual_on_service_path(api: Api) -> None:
    """orion-api.md, 'Service path in subscriptions and registrations' says the header "is
    ignored in ... GET /v2/registrations/{id}"; Orion 4's functional test
    3945_servicepath_ignored_in_get_regs shows it is not (404 from another path), and the
    broker follows that case (a difference from the manual, docs/broker.md)."""
    foo = api.register([{"id": "E", "type": "T"}], service_path="/foo")
    assert api.request("GET", f"/v2/registrations/{foo}", service_path="/foo").status_code == 200
    error_of(api.request("GET", f"/v2/registrations/{foo}", service_path="/bar"), 404, "NotFound", REG_NOT_FOUND)
    assert api.request("GET", f"/v2/registrations/{foo}").status_code == 200


def test_hierarchical_service_path_refused(api: Api) -> None:
    """orion-api.md, 'Service path in subscriptions and registrations': "hierarchical
    service paths (i.e. the ones using ending with #) are not allowed in registrations"."""
    body = {"dataProvided": {"entities": [{"id": "E", "type": "T"}]}, "provider": {"http": {"url": api.url()}}}
    error_of(api.request("POST", "/v2/registrations", json=body, service_path="/foo/#"), 400, "BadRequest")
    assert api.request("GET", "/v2/registrations").json() == []


_GOOD = {"dataProvided": {"entities": [{"id": "E", "type": "T"}], "attrs": ["A"]},
         "provider": {"http": {"url": "http://127.0.0.1:1/v2"}}}


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        ([], "not a JSON object"),
        ({}, "empty payload"),
        ({"provider": _GOOD["provider"]}, "dataProvided is not optional"),
        ({"dataProvided": _GOOD["dataProvided"]}, "provider is not optional"),
        (dict(_GOOD, dataProvided={"attrs": ["A"]}), "entities is not optional"),
        (dict(_GOOD, dataProvided={"entities": []}), "entities: at least one"),
        (dict(_GOOD, dataProvided={"entities": [{"type": "T"}]}), "id or idPattern must be present"),
        (dict(_GOOD, dataProvided={"entities": [{"id": "E", "idPattern": ".*"}]}), "not both id and idPattern"),
        (dict(_GOOD, dataProvided={"entities": [{"id": "E"}], "attrs": "A"}), "attrs is an array"),
        (dict(_GOOD, dataProvided={"entities": [{"id": "E"}], "attrs": [1]}), "attrs are names"),
        (dict(_GOOD, provider={}), "http is not optional"),
        (dict(_GOOD, provider={"http": {}}), "http must contain url"),
        (dict(_GOOD, provider={"http": {"url": "not a url"}}), "url must be a URL"),
        (dict(_GOOD, provider={"http": {"url": "http://x"}, "supportedForwardingMode": "most"}), "four modes only"),
        (dict(_GOOD, provider={"http": {"url": "http://x"}, "legacyForwarding": "yes"}), "legacyForwarding is a boolean"),
        (dict(_GOOD, expires="tomorrow"), "expires is ISO8601"),
        (dict(_GOOD, status="sleeping"), "status active or inactive"),
        (dict(_GOOD, description=7), "description is a string"),
        (dict(_GOOD, colour="red"), "no other fields"),
    ],
)
def test_invalid_payloads_are_bad_requests(api: Api, payload: Any, why: str) -> None:
    """orion-api.md, 'Registration payload datamodel' (the tables' types, mandatory fields
    and allowed values) and 'Error Responses': each violation is 400 BadRequest with
    Orion's error body, and nothing is created."""
    error_of(api.request("POST", "/v2/registrations", json=payload), 400, "BadRequest")
    assert api.request("GET", "/v2/registrations").json() == [], why


def test_forbidden_characters_refused(api: Api) -> None:
    """orion-api.md, 'Registration payload datamodel' and Orion's
    3468_v2_registrations_attribute_name_with_forbidden_character: forbidden characters in
    attribute names are 400 with that text."""
    body = dict(_GOOD, dataProvided={"entities": [{"id": "E1", "type": "T1"}], "attrs": ["brandName<"]})
    error_of(api.request("POST", "/v2/registrations", json=body), 400, "BadRequest",
             "forbidden characters in attribute name")


# --------------------------------------------------------------------------- query forwarding


def test_query_forwarded_as_in_the_manual_example(api: Api) -> None:
    """context_providers.md, the Street4 example: Orion does not hold Street4 but a
    registration says the provider knows its temperature, so it forwards ``POST
    <url>/op/query`` with ``{"entities": [{"id": "Street4", "type": "Street"}], "attrs":
    ["temperature"]}`` and forwards the answer to the client."""
    api.holds("cpr", _street4("16"))
    api.register([{"id": "Street4", "type": "Street"}], ["temperature"])
    response = api.get("/v2/entities/Street4/attrs/temperature", type="Street")
    assert response.status_code == 200, response.text
    assert response.json() == {"type": "float", "value": "16", "metadata": {}}
    (sent,) = api.received()
    assert sent.path == f"{api.prefix}/cpr/v2/op/query"
    assert sent.json() == {"entities": [{"id": "Street4", "type": "Street"}], "attrs": ["temperature"]}


def test_forwarded_request_headers(api: Api) -> None:
    """context_providers.md (the provider implements the NGSI API, so it gets the request's
    service, service path and token) and orion-api.md, 'Multi tenancy'/'Service path'; the
    correlator carries Orion's ``cbfwd`` marker (3068_ngsi_v2_based_forwarding
    check_no_overquerying shows the headers and the query string)."""
    api.holds("cpr", _street4())
    api.register([{"id": "Street4", "type": "Street"}], ["temperature"], service_path="/city")
    response = api.request("GET", "/v2/entities/Street4", params={"type": "Street"}, service_path="/city",
                           headers={"Fiware-Correlator": "corr-1", "X-Auth-Token": "tok"})
    assert response.status_code == 200, response.text
    (sent,) = api.received()
    assert sent.headers["fiware-service"] == api.tenant
    assert sent.headers["fiware-servicepath"] == "/city"
    assert sent.headers["fiware-correlator"] == "corr-1; cbfwd=1"
    assert sent.headers["x-auth-token"] == "tok"
    assert sent.headers["content-type"] == "application/json; charset=utf-8"
    assert sent.headers["accept"] == "application/json"
    assert sent.query == {"limit": "20", "offset": "0", "options": "count"}


def test_no_service_path_header_forwards_the_registrations(api: Api) -> None:
    """orion-api.md, 'Service path in subscriptions and registrations': the registration's
    service path is the expression of its scope; a request without the header reaches it
    and the provider is told that path (3068 check_no_overquerying: "/" by default)."""
    api.holds("cpr", _street4())
    api.register([{"id": "Street4", "type": "Street"}], ["temperature"], service_path="/city")
    assert api.get("/v2/entities/Street4", type="Street").status_code == 200
    assert api.received()[0].headers["fiware-servicepath"] == "/city"


def test_orion_acts_as_a_pure_proxy(api: Api) -> None:
    """context_providers.md: "Orion acts as a pure NGSI proxy (i.e. Orion doesn't cache the
    result of the query internally)": each query asks again, and nothing is stored."""
    api.holds("cpr", _street4(10))
    api.register([{"id": "Street4", "type": "Street"}], ["temperature"])
    assert api.get("/v2/entities/Street4/attrs/temperature/value", type="Street").json() == 10
    api.held()[0]["temperature"]["value"] = 11
    assert api.get("/v2/entities/Street4/attrs/temperature/value", type="Street").json() == 11
    assert len(api.received()) == 2
    skipped = api.get("/v2/entities/Street4", type="Street", options="skipForwarding")
    error_of(skipped, 404, "NotFound", ENTITY_NOT_FOUND)


def test_local_and_provided_attributes_are_merged(api: Api) -> None:
    """context_providers.md: Orion forwards what "it cannot find ... locally": a local
    entity keeps its own attributes and gets the registered ones it lacks from the provider
    (asked only those: 3068 check_no_overquerying)."""
    api.create({"id": "Street4", "type": "Street", "name": {"value": "Main", "type": "Text"}})
    api.holds("cpr", _street4(16))
    api.register([{"id": "Street4", "type": "Street"}], ["temperature", "name"])
    got = api.get("/v2/entities/Street4", options="keyValues")
    assert got.json() == {"id": "Street4", "type": "Street", "name": "Main", "temperature": 16}
    (sent,) = api.received()
    assert sent.json() == {"entities": [{"id": "Street4", "type": "Street"}], "attrs": ["temperature"]}


def test_only_the_attributes_asked_are_forwarded(api: Api) -> None:
    """context_providers.md (the forwarded query names the attributes wanted) and Orion's
    3068 check_no_overquerying: with ``attrs=A`` of a registration of A, B and C, only A."""
    api.holds("cpr", {"id": "E", "type": "T", "A": {"value": 1, "type": "Number"}, "B": {"value": 2, "type": "Number"}})
    api.register([{"id": "E", "type": "T"}], ["A", "B", "C"])
    response = api.request("POST", "/v2/op/query", json={"entities": [{"id": "E", "type": "T"}], "attrs": ["A"]})
    assert response.json() == [{"id": "E", "type": "T", "A": {"type": "Number", "value": 1, "metadata": {}}}]
    assert api.received()[0].json() == {"entities": [{"id": "E", "type": "T"}], "attrs": ["A"]}


def test_failing_provider_leaves_the_local_result(api: Api) -> None:
    """context_providers.md: a provider that does not answer well is taken as not
    responding; the client still gets the local attributes (Orion's
    3363_fwd_query_on_fail and 3068 query_cpr_fail_but_local_results)."""
    api.create({"id": "sensor001", "type": "TestType", "name": {"value": "Sensor 001", "type": "Text"}})
    api.register([{"id": "sensor001", "type": "TestType"}], ["ping"], name="fail")
    got = api.get("/v2/entities/sensor001", options="keyValues")
    assert got.status_code == 200
    assert got.json() == {"id": "sensor001", "type": "TestType", "name": "Sensor 001"}
    assert len(api.received("fail")) == 1


def test_several_providers_answer_their_part(api: Api) -> None:
    """context_providers.md: a request involving several providers sends each "the
    corresponding piece of the request", gathering all the results before responding."""
    api.holds("a", {"id": "E1", "type": "T", "x": {"value": 1, "type": "Number"}})
    api.holds("b", {"id": "E2", "type": "T", "y": {"value": 2, "type": "Number"}})
    api.register([{"id": "E1", "type": "T"}], ["x"], name="a")
    api.register([{"id": "E2", "type": "T"}], ["y"], name="b")
    response = api.request("POST", "/v2/op/query", params={"options": "keyValues"},
                           json={"entities": [{"id": "E1", "type": "T"}, {"id": "E2", "type": "T"}]})
    assert response.json() == [{"id": "E1", "type": "T", "x": 1}, {"id": "E2", "type": "T", "y": 2}]
    assert [r.json()["entities"] for r in api.received("a")] == [[{"id": "E1", "type": "T"}]]
    assert [r.json()["entities"] for r in api.received("b")] == [[{"id": "E2", "type": "T"}]]


def test_registration_without_type_matches_any_type(api: Api) -> None:
    """context_providers.md: "any type of entity in the NGSIv2 update/query matches
    registrations without entity type"."""
    api.holds("cpr", {"id": "E", "type": "Car", "speed": {"value": 80, "type": "Number"}})
    api.register([{"id": "E"}], ["speed"])
    assert api.get("/v2/entities/E/attrs/speed/value", type="Car").json() == 80
    assert api.received()[0].json()["entities"] == [{"id": "E", "type": "Car"}]


def test_registration_with_type_needs_the_type(api: Api) -> None:
    """context_providers.md: "if you have registrations with types, then you must use
    ``?type`` in NGSIv2 update/query in order to obtain a match"."""
    api.holds("cpr", _street4())
    api.register([{"id": "Street4", "type": "Street"}], ["temperature"])
    error_of(api.get("/v2/entities/Street4"), 404, "NotFound", ENTITY_NOT_FOUND)
    response = api.request("PATCH", "/v2/entities/Street4/attrs", json={"temperature": {"value": 1}})
    error_of(response, 404, "NotFound")
    assert api.received() == []
    assert api.get("/v2/entities/Street4", type="Street").status_code == 200


def test_skip_forwarding_keeps_queries_local(api: Api) -> None:
    """context_providers.md and orion-api.md (``options=skipForwarding``): "the query is
    evaluated using exclusively CB local context information"."""
    api.create({"id": "Street4", "type": "Street", "name": {"value": "Main", "type": "Text"}})
    api.holds("cpr", _street4())
    api.register([{"id": "Street4", "type": "Street"}], ["temperature"])
    got = api.get("/v2/entities/Street4", type="Street", options="skipForwarding,keyValues")
    assert got.json() == {"id": "Street4", "type": "Street", "name": "Main"}
    listed = api.get("/v2/entities", type="Street", options="skipForwarding,keyValues")
    assert listed.json() == [{"id": "Street4", "type": "Street", "name": "Main"}]
    assert api.received() == []


def test_http_timeout_makes_a_slow_provider_not_responding(api: Api, provider: Provider) -> None:
    """context_providers.md, "Some additional comments": past ``-httpTimeout`` "Orion closes
    the connection and assumes that the CPr is not responding" (the local result only)."""
    with broker_client("memory://", notif_allowed_hosts=LOOPBACK, http_timeout=200) as quick:
        slow = Api(quick, provider, api.tenant)
        slow.create({"id": "Street4", "type": "Street", "name": {"value": "Main", "type": "Text"}})
        slow.holds("slow", _street4())
        slow.register([{"id": "Street4", "type": "Street"}], ["temperature"], name="slow")
        started = time.monotonic()
        got = slow.get("/v2/entities/Street4", type="Street", options="keyValues")
        assert time.monotonic() - started < 2.5  # not the provider's 3 s
        assert got.json() == {"id": "Street4", "type": "Street", "name": "Main"}


# --------------------------------------------------------------------------- update forwarding


def test_update_forwarded_and_not_stored(api: Api) -> None:
    """context_providers.md: an update of a registered attribute the broker does not hold
    is forwarded (NGSIv2: ``POST <url>/op/update``, orion-api.md 'Registration Operations')
    and, Orion being a pure proxy, not stored locally."""
    api.register([{"id": "Street4", "type": "Street"}], ["temperature"])
    response = api.request("PATCH", "/v2/entities/Street4/attrs", params={"type": "Street"},
                           json={"temperature": {"value": 21, "type": "Number"}})
    assert response.status_code == 204, response.text
    (sent,) = api.received()
    assert sent.path == f"{api.prefix}/cpr/v2/op/update"
    assert sent.json() == {"actionType": "update", "entities": [
        {"id": "Street4", "type": "Street", "temperature": {"type": "Number", "value": 21, "metadata": {}}}
    ]}
    assert api.held()[0]["temperature"]["value"] == 21
    error_of(api.get("/v2/entities/Street4", type="Street", options="skipForwarding"), 404, "NotFound")


def test_attribute_update_forwarded(api: Api) -> None:
    """context_providers.md (update forwarding) through ``PUT
    /v2/entities/{id}/attrs/{attrName}/value``: the value reaches the provider."""
    api.register([{"id": "Street4", "type": "Street"}], ["temperature"])
    response = api.request("PUT", "/v2/entities/Street4/attrs/temperature/value", params={"type": "Street"},
                           content=b"17", headers={"Content-Type": "text/plain"})
    assert response.status_code == 204, response.text
    (sent,) = api.received()
    assert sent.json()["entities"][0]["temperature"]["value"] == 17


def test_local_attributes_stay_local_in_an_update(api: Api) -> None:
    """context_providers.md: only what the broker "cannot find locally" is forwarded; an
    update of a local entity writes its own attributes here and sends the registered
    attributes it lacks to the provider."""
    api.create({"id": "Street4", "type": "Street", "name": {"value": "Main", "type": "Text"}})
    api.register([{"id": "Street4", "type": "Street"}], ["temperature"])
    response = api.request("POST", "/v2/op/update", json={"actionType": "update", "entities": [
        {"id": "Street4", "type": "Street", "name": {"value": "High"}, "temperature": {"value": 5}}]})
    assert response.status_code == 204, response.text
    (sent,) = api.received()
    assert list(sent.json()["entities"][0]) == ["id", "type", "temperature"]
    local = api.get("/v2/entities/Street4", type="Street", options="skipForwarding,keyValues").json()
    assert local == {"id": "Street4", "type": "Street", "name": "High"}


def test_batch_update_pieces_go_to_each_provider(api: Api) -> None:
    """context_providers.md: "an update including 3 context elements, each one being an
    entity managed by a different Context Provider" sends each provider its piece."""
    api.register([{"id": "E1", "type": "T"}], ["x"], name="a")
    api.register([{"id": "E2", "type": "T"}], ["x"], name="b")
    response = api.request("POST", "/v2/op/update", json={"actionType": "update", "entities": [
        {"id": "E1", "type": "T", "x": {"value": 1}}, {"id": "E2", "type": "T", "x": {"value": 2}}]})
    assert response.status_code == 204, response.text
    assert [e["id"] for r in api.received("a") for e in r.json()["entities"]] == ["E1"]
    assert [e["id"] for r in api.received("b") for e in r.json()["entities"]] == ["E2"]


def test_failing_provider_update_is_not_found(api: Api) -> None:
    """context_providers.md: attributes whose provider fails are not updated and are listed
    in the error's description (the entity held nowhere else: Orion's 404)."""
    api.register([{"id": "Street4", "type": "Street"}], ["temperature"], name="fail")
    response = api.request("PATCH", "/v2/entities/Street4/attrs", params={"type": "Street"},
                           json={"temperature": {"value": 1}})
    error_of(response, 404, "NotFound", ENTITY_NOT_FOUND)
    batch = api.request("POST", "/v2/op/update", json={"actionType": "update", "entities": [
        {"id": "Street4", "type": "Street", "temperature": {"value": 1}}]})
    body = error_of(batch, 422, "Unprocessable")
    assert "temperature" in body["description"]


def test_partial_update_with_a_failing_provider_is_404(api: Api) -> None:
    """context_providers.md, "Some additional comments": "In the case of partial updates
    ... due to failing or missing CPrs, a 404 Not Found is returned to the client. The
    ``error`` field in this case is ``PartialUpdate``" and the description lists the
    attributes not updated."""
    api.register([{"id": "E", "type": "T"}], ["good"], name="a")
    api.register([{"id": "E", "type": "T"}], ["bad"], name="fail")
    response = api.request("POST", "/v2/op/update", json={"actionType": "update", "entities": [
        {"id": "E", "type": "T", "good": {"value": 1}, "bad": {"value": 2}}]})
    body = error_of(response, 404, "PartialUpdate")
    assert "bad" in body["description"] and "good" not in body["description"]


def test_partial_update_with_a_failing_provider_reports_the_failed_attributes(api: Api) -> None:
    """context_providers.md, "Some additional comments": a partial update (one provider
    took its attributes, another failed) is an error ``PartialUpdate`` whose description
    lists the attributes not updated, and only the provider that took its own was sent them."""
    api.register([{"id": "E", "type": "T"}], ["good"], name="a")
    api.register([{"id": "E", "type": "T"}], ["bad"], name="fail")
    response = api.request("POST", "/v2/op/update", json={"actionType": "update", "entities": [
        {"id": "E", "type": "T", "good": {"value": 1}, "bad": {"value": 2}}]})
    assert response.json()["error"] == "PartialUpdate"
    assert "bad" in response.json()["description"] and "good" not in response.json()["description"]
    assert len(api.received("a")) == 1


def test_skip_forwarding_has_no_effect_on_updates(api: Api) -> None:
    """context_providers.md: "Note that in forwarding skipForwarding has no effect (if you
    want an update to be interpreted locally to the CB just use an update request with
    append/creation semantics)"."""
    api.register([{"id": "Street4", "type": "Street"}], ["temperature"])
    response = api.request("PATCH", "/v2/entities/Street4/attrs", params={"type": "Street", "options": "skipForwarding"},
                           json={"temperature": {"value": 3}})
    assert response.status_code == 204, response.text
    assert len(api.received()) == 1
    appended = api.request("POST", "/v2/op/update", json={"actionType": "append", "entities": [
        {"id": "Street4", "type": "Street", "temperature": {"value": 4}}]})
    assert appended.status_code == 204
    assert len(api.received()) == 1  # append creates locally, nothing forwarded
    local = api.get("/v2/entities/Street4", type="Street", options="skipForwarding,keyValues").json()
    assert local["temperature"] == 4


# --------------------------------------------------------------------------- forwarding modes


@pytest.mark.parametrize(
    ("mode", "queried", "updated"),
    [("all", True, True), ("query", True, False), ("update", False, True), ("none", False, False)],
)
def test_supported_forwarding_mode(api: Api, mode: str, queried: bool, updated: bool) -> None:
    """orion-api.md, 'registration.provider', ``supportedForwardingMode``: none (no
    forwarding), query (queries only), update (updates only), all (both)."""
    api.holds("cpr", _street4())
    api.register([{"id": "Street4", "type": "Street"}], ["temperature"], supportedForwardingMode=mode)
    query = api.get("/v2/entities/Street4", type="Street")
    assert query.status_code == (200 if queried else 404)
    update = api.request("PATCH", "/v2/entities/Street4/attrs", params={"type": "Street"},
                         json={"temperature": {"value": 30}})
    assert update.status_code == (204 if updated else 404), update.text
    ops = [r.path.rsplit("/", 1)[1] for r in api.received()]
    assert ops == (["query"] if queried else []) + (["update"] if updated else [])


# --------------------------------------------------------------------------- legacy forwarding


def test_legacy_forwarding_queries_with_ngsiv1(api: Api) -> None:
    """orion-api.md, 'Registration Operations' and 'registration.provider': with
    ``legacyForwarding`` true "a NGSIv1-based query/update will be used": ``POST
    <url>/queryContext`` with NGSIv1's entities/attributes, answered with
    ``contextResponses``."""
    api.holds("cpr", _street4("16"))
    api.register([{"id": "Street4", "type": "Street"}], ["temperature"], legacyForwarding=True)
    got = api.get("/v2/entities/Street4/attrs/temperature", type="Street")
    assert got.status_code == 200, got.text
    assert got.json() == {"type": "float", "value": "16", "metadata": {}}
    (sent,) = api.received()
    assert sent.path == f"{api.prefix}/cpr/v2/queryContext"
    assert sent.json() == {"entities": [{"type": "Street", "isPattern": "false", "id": "Street4"}],
                           "attributes": ["temperature"]}


def test_legacy_forwarding_updates_with_ngsiv1(api: Api) -> None:
    """orion-api.md, 'registration.provider', ``legacyForwarding``: updates go as NGSIv1
    ``POST <url>/updateContext`` (``contextElements``, ``updateAction`` UPDATE)."""
    api.register([{"id": "Street4", "type": "Street"}], ["temperature"], legacyForwarding=True)
    response = api.request("PATCH", "/v2/entities/Street4/attrs", params={"type": "Street"},
                           json={"temperature": {"value": 21, "type": "Number"}})
    assert response.status_code == 204, response.text
    (sent,) = api.received()
    assert sent.path == f"{api.prefix}/cpr/v2/updateContext"
    assert sent.json() == {"contextElements": [{"id": "Street4", "isPattern": "false", "type": "Street",
                                                "attributes": [{"name": "temperature", "type": "Number", "value": 21}]}],
                           "updateAction": "UPDATE"}


def test_legacy_provider_error_is_a_failure(api: Api) -> None:
    """orion-api.md, 'registration.provider', ``legacyForwarding``: an NGSIv1 ``errorCode``
    answer ("No context element found") gives nothing; the entity is not found."""
    api.register([{"id": "Nowhere", "type": "T"}], ["x"], legacyForwarding=True)
    error_of(api.get("/v2/entities/Nowhere", type="T"), 404, "NotFound", ENTITY_NOT_FOUND)
    assert len(api.received()) == 1


# --------------------------------------------------------------------------- pagination


def test_pagination_local_first_then_providers_in_registration_order(api: Api) -> None:
    """context_providers.md, 'Pagination with Context Providers': ``limit`` and ``offset``
    apply to the local entities first, then the providers' ones "ordered by registration
    time"; ``fiware-total-count`` "includes the sum of entities stored in Context Broker and
    in the Context Providers"."""
    for i in range(3):
        api.create({"id": f"L{i}", "type": "T", "n": {"value": i}})
    api.holds("a", *({"id": f"A{i}", "type": "T", "n": {"value": i, "type": "Number"}} for i in range(3)))
    api.holds("b", *({"id": f"B{i}", "type": "T", "n": {"value": i, "type": "Number"}} for i in range(3)))
    api.register([{"idPattern": ".*", "type": "T"}], name="a")
    api.register([{"idPattern": ".*", "type": "T"}], name="b")

    def page(limit: int, offset: int) -> tuple[list[str], str]:
        response = api.get("/v2/entities", type="T", limit=str(limit), offset=str(offset), options="count,keyValues")
        assert response.status_code == 200, response.text
        return [e["id"] for e in response.json()], response.headers["fiware-total-count"]

    assert page(4, 0) == (["L0", "L1", "L2", "A0"], "9")
    assert page(4, 4) == (["A1", "A2", "B0", "B1"], "9")
    assert page(4, 8) == (["B2"], "9")
    assert page(20, 0)[0] == ["L0", "L1", "L2", "A0", "A1", "A2", "B0", "B1", "B2"]
    assert page(2, 20) == ([], "9")


def test_listing_reaches_providers_of_that_type(api: Api) -> None:
    """context_providers.md, 'Pagination with Context Providers' (``GET /v2/entities``
    includes the providers' entities) with the matching rule of "Some additional comments":
    a registration with a type is reached only by a query with that type."""
    api.holds("a", {"id": "A0", "type": "T", "n": {"value": 0, "type": "Number"}})
    api.register([{"idPattern": ".*", "type": "T"}], name="a")
    assert [e["id"] for e in api.get("/v2/entities", type="T").json()] == ["A0"]
    assert api.get("/v2/entities", type="Other").json() == []
    assert api.get("/v2/entities").json() == []
    assert len(api.received("a")) == 1


# --------------------------------------------------------------------------- forwardingInformation


def test_forwarding_information_counts_and_dates(api: Api) -> None:
    """orion-api.md, 'registration.forwardingInformation': ``timesSent`` (forwardings sent
    due to the registration), ``lastForwarding``, ``lastSuccess`` and ``lastFailure`` in
    ISO8601, the last two absent until such a forwarding happened; shown by GET of the
    registration and of the list."""
    api.holds("cpr", _street4())
    good = api.register([{"id": "Street4", "type": "Street"}], ["temperature"])
    bad = api.register([{"id": "Street4", "type": "Street"}], ["humidity"], name="fail")
    assert "forwardingInformation" not in api.get_reg(good)
    before = time.time()
    assert api.get("/v2/entities/Street4", type="Street").status_code == 200
    info = api.get_reg(good)["forwardingInformation"]
    assert set(info) == {"timesSent", "lastForwarding", "lastSuccess"}
    assert info["timesSent"] == 1
    assert before - 1 <= _date(info["lastForwarding"]) <= time.time() + 1
    assert _date(info["lastSuccess"]) >= _date(info["lastForwarding"])
    failed = api.get_reg(bad)["forwardingInformation"]
    assert set(failed) == {"timesSent", "lastForwarding", "lastFailure"}
    assert failed["timesSent"] == 1
    api.request("PATCH", "/v2/entities/Street4/attrs", params={"type": "Street"}, json={"temperature": {"value": 2}})
    assert api.get_reg(good)["forwardingInformation"]["timesSent"] == 2
    listed = {r["id"]: r for r in api.request("GET", "/v2/registrations").json()}
    assert listed[good]["forwardingInformation"]["timesSent"] == 2
    assert listed[bad]["forwardingInformation"]["timesSent"] == 1


def test_forwarding_information_is_not_editable(api: Api) -> None:
    """orion-api.md, 'registration.forwardingInformation': "Not editable, only present in GET
    operations": given at creation it is not taken."""
    body = dict(_GOOD, forwardingInformation={"timesSent": 5})
    response = api.request("POST", "/v2/registrations", json=body)
    reg_id = response.headers["location"].rsplit("/", 1)[1]
    assert "forwardingInformation" not in api.get_reg(reg_id)


def test_forwarding_information_survives_a_restart(provider: Provider, tmp_path: Path) -> None:
    """orion-api.md, 'registration.forwardingInformation' is part of the registration: on
    a single-process store (SQLite) its counters are written with it and read back after a
    restart. (Workers sharing a store keep their own counters: docs/broker.md.)"""
    uri = f"sqlite:///{tmp_path}/broker.db"
    tenant = new_id("t").lower()
    with broker_client(uri, notif_allowed_hosts=LOOPBACK) as first:
        api = Api(first, provider, tenant)
        api.holds("cpr", _street4())
        reg_id = api.register([{"id": "Street4", "type": "Street"}], ["temperature"])
        assert api.get("/v2/entities/Street4", type="Street").status_code == 200
        before = api.get_reg(reg_id)["forwardingInformation"]
    with broker_client(uri, notif_allowed_hosts=LOOPBACK) as second:
        again = Api(second, provider, tenant).get_reg(reg_id)
    assert again["forwardingInformation"] == before


# --------------------------------------------------------------------------- differences on purpose


def test_inactive_and_expired_registrations_are_not_forwarded_to(api: Api) -> None:
    """orion-api.md, 'Registration implementation differences' says Orion's registration "is
    always active, even when the value is inactive" (and shows expired ones active). The
    broker follows the NGSIv2 specification instead: an inactive or expired registration
    forwards nothing (a deliberate difference, docs/broker.md)."""
    api.holds("cpr", _street4())
    for extra in ({"status": "inactive"}, {"expires": "2000-01-01T00:00:00Z"}):
        body = {"dataProvided": {"entities": [{"id": "Street4", "type": "Street"}], "attrs": ["temperature"]},
                "provider": {"http": {"url": api.url()}}, **extra}
        assert api.request("POST", "/v2/registrations", json=body).status_code == 201
    error_of(api.get("/v2/entities/Street4", type="Street"), 404, "NotFound", ENTITY_NOT_FOUND)
    assert api.received() == []


def test_filtered_queries_are_not_forwarded(api: Api) -> None:
    """context_providers.md, "Some additional comments": query filtering "is not supported
    on query forwarding": Orion forwards without the filter and returns the providers'
    entities unfiltered. The broker does not forward such a query, so that every entity it
    returns matches the filter (a deliberate difference, docs/broker.md)."""
    api.create({"id": "L", "type": "Street", "temperature": {"value": 50}})
    api.holds("cpr", _street4(10))
    api.register([{"idPattern": ".*", "type": "Street"}], ["temperature"])
    got = api.get("/v2/entities", type="Street", q="temperature>40")
    assert [e["id"] for e in got.json()] == ["L"]
    assert api.received() == []
