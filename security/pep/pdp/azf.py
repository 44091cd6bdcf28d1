"""AuthZForce, as Wilma's ``lib/pdp/authzforce.js`` asks it (reference
``security-history-orchestration.md`` §2, level 3, and §3).

``POST {azf}/authzforce-ce/domains/{domain}/pdp`` with a XACML 3.0 ``<Request>`` (XML):
the subject's roles (``urn:oasis:names:tc:xacml:2.0:subject:role``, one value per role id,
the user's own and their organizations'), the resource (``resource-id`` = the application
id, ``urn:thales:xacml:2.0:resource:sub-resource-id`` = the path) and the action
(``action-id`` = the HTTP verb). The answer's ``<Decision>`` must be ``Permit``; a 404 (no
such domain) is Wilma's ``UnauthorizedEndpoint``.

The domain is the configured one, else the ``app_azf_domain`` the identity manager gives
with the user (Keyrock creates one per application; ours has none, so configure it).
"""

from __future__ import annotations

from urllib.parse import quote
from xml.etree import ElementTree
from xml.sax.saxutils import escape

from ngsi.client.http11 import HTTPError
from ngsi.client.transport import Transport

from . import PDPError, Question

XACML = "urn:oasis:names:tc:xacml:3.0:core:schema:wd-17"
MAX_ANSWER = 64 * 1024
STRING = "http://www.w3.org/2001/XMLSchema#string"


class NoDomain(PDPError):
    """AuthZForce has no such domain (404): Wilma's UnauthorizedEndpoint."""


def _attribute(attribute_id: str, values: list[str]) -> str:
    inner = "".join(f'<AttributeValue DataType="{STRING}">{escape(v)}</AttributeValue>' for v in values)
    return f'<Attribute AttributeId="{attribute_id}" IncludeInResult="false">{inner}</Attribute>'


def request_xml(role_ids: list[str], app_id: str, path: str, verb: str) -> bytes:
    """Wilma's XACML request (pure)."""
    subject = _attribute("urn:oasis:names:tc:xacml:2.0:subject:role", role_ids) if role_ids else ""
    resource = _attribute("urn:oasis:names:tc:xacml:1.0:resource:resource-id", [app_id]) + _attribute(
        "urn:thales:xacml:2.0:resource:sub-resource-id", [path]
    )
    action = _attribute("urn:oasis:names:tc:xacml:1.0:action:action-id", [verb])
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><Request xmlns="{XACML}" CombinedDecision="false" '
        'ReturnPolicyIdList="false">'
        f'<Attributes Category="urn:oasis:names:tc:xacml:1.0:subject-category:access-subject">{subject}</Attributes>'
        f'<Attributes Category="urn:oasis:names:tc:xacml:3.0:attribute-category:resource">{resource}</Attributes>'
        f'<Attributes Category="urn:oasis:names:tc:xacml:3.0:attribute-category:action">{action}</Attributes>'
        '<Attributes Category="urn:oasis:names:tc:xacml:3.0:attribute-category:environment"/>'
        "</Request>"
    ).encode()


def decision_of(body: bytes) -> str:
    """The first ``Decision`` of a XACML ``<Response>`` (pure); ValueError when there is none.
    Documents with a DOCTYPE are refused (no entity expansion of any kind)."""
    if len(body) > MAX_ANSWER or b"<!DOCTYPE" in body.upper() or b"<!ENTITY" in body.upper():
        raise ValueError("not a plain XACML response")
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError as exc:
        raise ValueError(f"not XML: {exc}") from None
    for element in root.iter():
        if element.tag.rsplit("}", 1)[-1] == "Decision":
            return (element.text or "").strip()
    raise ValueError("no Decision in the response")


class AzfClient:
    def __init__(self, base_url: str, transport: Transport, *, domain: str = "", timeout: float = 5.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.transport = transport
        self.domain = domain
        self.timeout = timeout

    async def allows(self, question: Question) -> bool:
        domain = self.domain or question.caller.azf_domain
        if not domain:
            raise PDPError("AuthZForce: no domain (configure it: the identity manager gives none)")
        url = f"{self.base_url}/authzforce-ce/domains/{quote(domain, safe='')}/pdp"
        body = request_xml(list(question.caller.role_ids), question.app_id, question.path, question.method)
        headers = [("Content-Type", "application/xml; charset=UTF-8"), ("Accept", "application/xml")]
        try:
            response = await self.transport.request("POST", url, headers, body, self.timeout)
        except HTTPError as exc:
            raise PDPError(f"AuthZForce: {exc.reason}") from None
        if response.status == 404:
            raise NoDomain(f"AuthZForce has no domain {domain}")
        if response.status != 200:
            raise PDPError(f"AuthZForce: status {response.status}")
        try:
            return decision_of(response.body) == "Permit"
        except ValueError as exc:
            raise PDPError(f"AuthZForce: {exc}") from None
