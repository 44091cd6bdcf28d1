"""A XACML 3.0 PDP speaking the JSON profile (OASIS "JSON Profile of XACML 3.0"), as Wilma's
``xacml`` plug-in asks one, e.g. Keyrock's ``POST /pdp/xacml`` (reference
``security-history-orchestration.md`` §1 "Decision logic" and §2 "Newer PDP plug-ins").

``POST {pdp_url}`` with ``{"Request": {"AccessSubject", "Action", "Resource"}}``:

* ``AccessSubject``: ``urn:oasis:names:tc:xacml:1.0:subject:subject-id`` (the user id) and
  ``urn:oasis:names:tc:xacml:2.0:subject:role`` (the role ids), as AuthZForce gets them;
* ``Action``: ``urn:oasis:names:tc:xacml:1.0:action:action-id`` (the HTTP verb);
* ``Resource``: ``urn:oasis:names:tc:xacml:1.0:resource:resource-id`` (the application
  id), ``urn:thales:xacml:2.0:resource:sub-resource-id`` (the path), and, where the
  reference is silent and we chose the names, ``urn:fiware:ngsi:tenant``,
  ``urn:fiware:ngsi:servicePath``, ``urn:fiware:ngsi:entity:id``,
  ``urn:fiware:ngsi:entity:idPattern``, ``urn:fiware:ngsi:entity:type`` and
  ``urn:fiware:ngsi:attribute`` (multi-valued, present when the request names any).

Allowed when the (first) result's ``Decision`` is ``Permit``; the profile allows
``Response`` as an object or a list of results.
"""

from __future__ import annotations

from typing import Any

from . import JsonPDP, Question

SUBJECT_ID = "urn:oasis:names:tc:xacml:1.0:subject:subject-id"
ROLE = "urn:oasis:names:tc:xacml:2.0:subject:role"
ACTION_ID = "urn:oasis:names:tc:xacml:1.0:action:action-id"
RESOURCE_ID = "urn:oasis:names:tc:xacml:1.0:resource:resource-id"
SUB_RESOURCE_ID = "urn:thales:xacml:2.0:resource:sub-resource-id"
NGSI = "urn:fiware:ngsi:"


def _attribute(attribute_id: str, value: str | list[str]) -> dict[str, Any]:
    return {"AttributeId": attribute_id, "Value": value}


def xacml_request(question: Question) -> dict[str, Any]:
    """The request document (pure)."""
    subject = [_attribute(ROLE, list(question.caller.role_ids))]
    if question.caller.identity.user_id:
        subject.insert(0, _attribute(SUBJECT_ID, question.caller.identity.user_id))
    payload = question.payload
    resource = [
        _attribute(RESOURCE_ID, question.app_id),
        _attribute(SUB_RESOURCE_ID, question.path),
        _attribute(NGSI + "tenant", question.tenant),
    ]
    if question.service_path is not None:
        resource.append(_attribute(NGSI + "servicePath", question.service_path))
    named = (
        ("entity:id", payload.ids), ("entity:idPattern", payload.id_patterns),
        ("entity:type", payload.types), ("attribute", payload.attrs),
    )
    for name, values in named:
        if values:
            resource.append(_attribute(NGSI + name, list(values)))
    return {
        "Request": {
            "AccessSubject": [{"Attribute": subject}],
            "Action": [{"Attribute": [_attribute(ACTION_ID, question.method)]}],
            "Resource": [{"Attribute": resource}],
        }
    }


def decision_of(doc: Any) -> str:
    """The first result's Decision (pure); "" when the document has none."""
    response = doc.get("Response") if isinstance(doc, dict) else None
    first = response[0] if isinstance(response, list) and response else response
    decision = first.get("Decision") if isinstance(first, dict) else None
    return decision if isinstance(decision, str) else ""


class XacmlClient(JsonPDP):
    name = "XACML PDP"
    headers = (("Content-Type", "application/xacml+json"), ("Accept", "application/xacml+json, application/json"))

    def document(self, question: Question) -> dict[str, Any]:
        return xacml_request(question)

    def allowed(self, answer: Any) -> bool:
        return decision_of(answer) == "Permit"
