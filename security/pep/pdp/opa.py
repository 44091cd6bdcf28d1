"""Open Policy Agent, as Wilma's ``opa`` plug-in asks it (reference
``security-history-orchestration.md`` §2, "Newer PDP plug-ins").

``POST {pdp_url}`` with ``{"input": {appId, resource, roles, action, tenant, ids,
idPatterns, attrs, types}}`` (OPA's data API takes its input so wrapped; Keyrock's and
our identity manager's ``/pdp/open_policy_agent`` take it bare or wrapped), plus what our
PDP also reads (``userId``, ``organizations``, ``servicePath``; an OPA policy that does not
look at them ignores them). Allowed when the answer says ``result.allow`` is true (OPA,
the path naming the package), ``result`` is true (the path naming the rule), or ``allow``
is true (Keyrock); anything else is a deny, and an answer that is not JSON an error.
"""

from __future__ import annotations

from typing import Any

from . import JsonPDP, Question


def opa_input(question: Question) -> dict[str, Any]:
    """The input document (pure)."""
    identity = question.caller.identity
    payload = question.payload
    data: dict[str, Any] = {
        "appId": question.app_id,
        "resource": question.path,
        "roles": list(question.caller.role_ids),
        "action": question.method,
        "tenant": question.tenant,
        "ids": list(payload.ids),
        "idPatterns": list(payload.id_patterns),
        "attrs": list(payload.attrs),
        "types": list(payload.types),
        "userId": identity.user_id,
        "organizations": list(question.caller.organization_ids),
    }
    if question.service_path is not None:
        data["servicePath"] = question.service_path
    return {"input": data}


def allow_of(doc: Any) -> bool:
    """Whether an answer allows (pure; see the module docstring)."""
    if not isinstance(doc, dict):
        return False
    result = doc.get("result")
    if result is True:
        return True
    if isinstance(result, dict) and result.get("allow") is True:
        return True
    return doc.get("allow") is True


class OpaClient(JsonPDP):
    name = "OPA"

    def document(self, question: Question) -> dict[str, Any]:
        return opa_input(question)

    def allowed(self, answer: Any) -> bool:
        return allow_of(answer)
