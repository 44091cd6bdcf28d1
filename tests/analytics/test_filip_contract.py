"""What FiLiP's QuantumLeapClient (filip 0.8.1, ``clients/ngsi_v2/quantumleap.py``, read
from its wheel) needs from the service, checked against ours.

FiLiP itself runs against the service in test_filip.py, in a venv of its own (its pins,
pydantic<2.14, paho-mqtt~=2.0.0, requests~=2.33, pandas..., would downgrade this venv's
packages). This module checks, in process and cheaply, what that short session does not
reach, such as paging past 10,000 rows:

* the keys each method reads: ``attrName``/``values`` (``AttributeValues(**answer)``),
  ``entityId``/``index``/``values`` of the entities of ``/v2/types/{t}/attrs/{a}``,
  ``entityType`` and ``entities`` of the groups of ``/v2/attrs``, ``attrs`` and
  ``values`` wrappers, ``entities`` of ``/v2/types/{t}`` (items without an
  ``entityType`` key: FiLiP passes its own as a keyword), instants it parses as datetimes;
* its paging (``__query_builder``): pages of at most 10,000 with ``offset + i`` and,
  with ``lastN``, ``lastN - i``, prepended; a 404 whose ``error`` is "Not Found" ends
  the pages, and fails the call when it is the first;
* ``delete_entity``: after the DELETE, reading the entity must fail (404).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from analytics.history.app import create_app
from analytics.history.config import Config

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
HEADERS = {"fiware-service": "filip", "fiware-servicepath": "/"}  # FiLiP's FiwareHeader sends both


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    path: Path = tmp_path_factory.mktemp("filip")
    with TestClient(create_app(Config(db_uri=f"sqlite:///{path}/h.db"))) as client:
        data = [{"id": f"R{r}", "type": "Room", "temperature": {"type": "Number", "value": float(h)},
                 "TimeInstant": {"type": "DateTime", "value": f"2024-01-01T{h:02d}:00:00Z"}}
                for h in range(10) for r in (1, 2)]
        assert client.post("/v2/notify", json={"subscriptionId": "s", "data": data}, headers=HEADERS).status_code == 200
        yield client


class PageError(Exception):
    pass


def pages(client: TestClient, url: str, limit: int, page: int, last_n: int | None = None, offset: int = 0) -> list[Any]:
    """FiLiP's paging loop, with its page size (10,000) as a parameter."""
    answers: list[Any] = []
    i = 0
    while True:
        params: dict[str, Any] = {"offset": offset + i, "limit": min(limit - i, page)}
        if params["limit"] <= 0:
            break
        if last_n:
            params["lastN"] = min(last_n - i, page)
            if params["lastN"] <= 0:
                break
        answer = client.get(url, params=params, headers=HEADERS)
        if answer.status_code == 200:
            answers.insert(0, answer.json()) if last_n else answers.append(answer.json())
        elif answer.status_code == 404 and answer.json().get("error") == "Not Found" and answers:
            break
        else:
            raise PageError(answer.status_code)
        i += page
    return answers


def test_paging_forwards_and_backwards(client: TestClient) -> None:
    url = "/v2/entities/R1/attrs/temperature"
    chunks = pages(client, url, limit=100, page=3)
    assert [c["values"] for c in chunks] == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0], [6.0, 7.0, 8.0], [9.0]]
    chunks = pages(client, url, limit=100, page=3, last_n=7)
    assert [v for c in chunks for v in c["values"]] == [3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]
    index = [datetime.fromisoformat(t) for c in chunks for t in c["index"]]
    assert index == sorted(index) and index[0].utcoffset() is not None  # TimeSeries.extend asserts rising
    with pytest.raises(PageError):
        pages(client, "/v2/entities/R9/attrs/temperature", limit=10, page=3)


def test_the_keys_filip_reads(client: TestClient) -> None:
    get = lambda url: client.get(url, headers=HEADERS).json()
    one = get("/v2/entities/R1/attrs/temperature")
    assert {"attrName", "values", "index"} <= one.keys()
    whole = get("/v2/entities/R1")
    assert {"entityId", "entityType", "index", "attributes"} <= whole.keys()
    by_type = get("/v2/types/Room")
    assert all("entityType" not in e and {"entityId", "index", "attributes"} <= e.keys() for e in by_type["entities"])
    assert all("entityType" not in e for e in get("/v2/types/Room/value")["values"])
    type_attr = get("/v2/types/Room/attrs/temperature")
    assert type_attr["attrName"] == "temperature"
    assert [e["entityId"] for e in type_attr["entities"]] == ["R1", "R2"]
    assert [e["entityId"] for e in get("/v2/types/Room/attrs/temperature/value")["values"]] == ["R1", "R2"]
    for group in get("/v2/attrs")["attrs"]:
        assert group["attrName"] and all({"entityType", "entities"} <= g.keys() for g in group["types"])
    for group in get("/v2/attrs/temperature")["types"]:
        assert all({"entityId", "index", "values"} <= e.keys() for e in group["entities"])
    assert all({"entityId", "entityType", "index"} <= e.keys() for e in get("/v2/entities"))


def test_delete_entity_then_reading_it_fails(client: TestClient) -> None:
    assert client.delete("/v2/entities/R2", params={"type": "Room"}, headers=HEADERS).status_code == 204
    gone = client.get("/v2/entities/R2", params={"type": "Room", "offset": 0, "limit": 10000}, headers=HEADERS)
    assert gone.status_code == 404 and gone.json()["error"] == "Not Found"
