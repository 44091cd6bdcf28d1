"""FiLiP's QuantumLeapClient against our history service: run by tests/analytics/test_filip.py
under the Python of .venv-filip (FiLiP pins versions this project's venv does not use).
Prints one JSON object with what each call returned."""

from __future__ import annotations

import json
import sys

from filip.clients.ngsi_v2 import QuantumLeapClient
from filip.models.base import FiwareHeader
from filip.models.ngsi_v2.context import ContextEntity
from filip.models.ngsi_v2.subscriptions import Message

url, service = sys.argv[1], sys.argv[2]
out: dict[str, object] = {}
with QuantumLeapClient(url=url, fiware_header=FiwareHeader(service=service, service_path="/")) as ql:
    out["version"] = ql.get_version()
    for value in (20, 21, 22):
        room = ContextEntity(id="Room1", type="Room", temperature={"type": "Number", "value": value},
                             humidity={"type": "Number", "value": value + 40})
        ql.post_notification(Message(subscriptionId="5f0000000000000000000001", data=[room]))
    out["entity"] = ql.get_entity_by_id("Room1", entity_type="Room").model_dump(mode="json")
    out["last"] = ql.get_entity_attr_by_id("Room1", attr_name="temperature", entity_type="Room", last_n=1).model_dump(mode="json")
    out["by_type"] = [series.model_dump(mode="json") for series in ql.get_entity_by_type("Room")]
    out["entities"] = [entity.model_dump(mode="json") for entity in ql.get_entities()]
    ql.delete_entity("Room1", entity_type="Room")
    try:
        ql.get_entity_by_id("Room1", entity_type="Room")
        out["after_delete"] = "found"
    except Exception as exc:  # FiLiP raises requests' HTTPError on 404
        out["after_delete"] = getattr(getattr(exc, "response", None), "status_code", type(exc).__name__)
print(json.dumps(out))
