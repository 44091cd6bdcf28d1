"""The WAZIUP API's OpenAPI document: valid OpenAPI 3, written by ``devtools/waziup_openapi.py``
(unchanged since), and naming exactly the operations the app serves."""

from __future__ import annotations

import json

from openapi_spec_validator import validate
from starlette.routing import Route

from devtools.waziup_openapi import OUT, document
from orchestrator.waziup_api.app import create_app


def test_the_document_is_valid_and_current() -> None:
    kept = json.loads(OUT.read_text())
    validate(kept)
    assert kept == json.loads(json.dumps(document())), "run python -m devtools.waziup_openapi"


def test_every_served_operation_is_documented_and_back() -> None:
    served = {(method.lower(), route.path.removeprefix("/api/v2")) for route in create_app().routes
              if isinstance(route, Route) and route.path.startswith("/api/v2")
              for method in (route.methods or ()) if method != "HEAD"}
    served.discard(("get", "/docs/openapi.json"))  # an alias of /openapi.json
    documented = {(method, path) for path, item in json.loads(OUT.read_text())["paths"].items() for method in item}
    assert served == documented
