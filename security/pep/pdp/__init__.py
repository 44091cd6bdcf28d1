"""Policy decision points the PEP calls as Wilma calls them: AuthZForce (``azf.py``), Open
Policy Agent (``opa.py``) and a XACML JSON PDP (``xacml.py``).

Each has a pure part (the request it sends, the answer it reads) and a client that posts
it over the project's HTTP client. What they need of a request is :class:`Question`: the
caller, the verb and path, the tenant, and the payload's entity ids, id patterns, types
and attribute names (what Wilma's payload analysis fills for its payload-aware PDPs; here
taken from ``security.authz.request.describe``, which reads bodies, queries and
subscriptions the way the broker does). A PDP that cannot be reached, or answers
something it should not, raises :class:`PDPError` (500 InternalServerError, as Wilma).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

import orjson

from ngsi.client.http11 import HTTPError
from ngsi.client.transport import Transport
from security.authz.request import RequestResource

from ..caller import Caller


class PDPError(Exception):
    """The PDP gave no usable answer (the message says which, never a token)."""


@dataclass(frozen=True, slots=True)
class Payload:
    ids: tuple[str, ...] = ()
    id_patterns: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    attrs: tuple[str, ...] = ()


def _unique(values: Iterable[str | None]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v for v in values if v))


def payload_of(resource: RequestResource) -> Payload:
    """The entity ids, id patterns, types and attributes a request names (attributes only
    when named: a read of "every attribute" names none, as in Wilma)."""
    targets = [t for t in resource.targets if not t.entityless]
    return Payload(
        ids=_unique(t.id for t in targets),
        id_patterns=_unique(t.id_pattern for t in targets),
        types=_unique(t.type for t in targets),
        attrs=_unique(a for t in resource.targets if t.attrs is not None for a in sorted(t.attrs)),
    )


@dataclass(frozen=True, slots=True)
class Question:
    """What a PDP is asked about one request."""

    caller: Caller
    app_id: str  # the PEP's application (Wilma's resource-id / appId)
    method: str
    path: str
    tenant: str = ""
    service_path: str | None = None
    payload: Payload = Payload()


class JsonPDP:
    """A PDP asked by posting a JSON document and answering JSON (OPA, a XACML JSON PDP):
    the exchange and its failures are the same, only the document and its reading differ."""

    name: ClassVar[str]  # how PDPError messages name it
    headers: ClassVar[tuple[tuple[str, str], ...]] = (
        ("Content-Type", "application/json"), ("Accept", "application/json"),
    )

    def __init__(self, url: str, transport: Transport, *, timeout: float = 5.0) -> None:
        self.url = url
        self.transport = transport
        self.timeout = timeout

    def document(self, question: Question) -> dict[str, Any]:
        """What is posted about ``question`` (pure)."""
        raise NotImplementedError

    def allowed(self, answer: Any) -> bool:
        """Whether the parsed answer allows (pure)."""
        raise NotImplementedError

    async def allows(self, question: Question) -> bool:
        body = orjson.dumps(self.document(question))
        try:
            response = await self.transport.request("POST", self.url, list(self.headers), body, self.timeout)
        except HTTPError as exc:
            raise PDPError(f"{self.name}: {exc.reason}") from None
        if response.status != 200:
            raise PDPError(f"{self.name}: status {response.status}")
        try:
            return self.allowed(response.json())
        except ValueError:
            raise PDPError(f"{self.name}: the answer is not JSON") from None
