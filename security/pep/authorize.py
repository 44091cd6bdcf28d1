"""What an authenticated caller may do: the PDPs the PEP can ask (``Settings.pdp``).

* ``ours``: NGSI-aware (docs/authorization.md). The policy set comes from the identity
  manager (``GET /v1/ngsi_policies?app_id=``), kept while the policy version holds; each
  request is described (``security.authz.request.describe``: actions, tenant, service
  paths, entities, attributes, from the path, query, headers and body) and decided
  (``security.authz.decide.decide``) here, in the process, with no call. A read may be
  allowed with a *projection*: the attributes the caller may see (``visible``) or may not
  (``hidden``), for the service to apply.
* ``idm``: Keyrock's level 2 (``GET /user?action=<verb>&resource=<path>
  [&authorization_service_header=<tenant>]``, Wilma's basic authorization). Decisions are
  kept per token, verb, path and tenant while the policy version holds (Wilma keeps them
  per token and never forgets them on a role change).
* ``azf``, ``opa``, ``xacml``: asked on every request, as Wilma does (``pdp/``); their
  policies are not the identity manager's, so its version says nothing about them.
* ``none``: authentication only (Wilma's ``authorization.enabled: false``).

A strategy says whether it needs the body (``needs_body``: the payload-aware ones, for
writes) and what to add to the ``/user`` call that authenticates a token
(:meth:`params`), so that the idm PDP's first request costs one call, not two.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from security.authz.decide import decide
from security.authz.policy import PolicySet
from security.authz.request import UNSEEN, RequestResource, describe

from .policyboard import PolicyBoard
from .authenticate import Authenticated, Authenticator
from .cache import Cache
from .caller import Caller
from .pdp import Question, payload_of
from .pdp.azf import AzfClient
from .pdp.opa import OpaClient
from .pdp.xacml import XacmlClient

log = logging.getLogger("waziup.security.pep")

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


@dataclass(frozen=True, slots=True)
class Outcome:
    """A decision: ``reason`` says why (shown in a denial's detail); ``visible`` / ``hidden``
    project a read (None / empty: nothing to project)."""

    allow: bool
    reason: str = ""
    visible: frozenset[str] | None = None
    hidden: frozenset[str] = frozenset()


ALLOW = Outcome(True)


@dataclass(slots=True)
class Asked:
    """The request being decided, as the guard saw it."""

    method: str
    path: str
    query: bytes
    headers: Mapping[str, str]
    body: Any = UNSEEN  # bytes once read, UNSEEN when the strategy did not need it
    multiservice: bool = True
    service: str = "broker"  # whose routes: the history's differ (security.authz.history)
    _resource: RequestResource | None = None

    def resource(self) -> RequestResource:
        """The NGSI description of the request, worked out once."""
        if self._resource is None:
            self._resource = describe(self.method, self.path, self.query, self.headers, self.body,
                                      multiservice=self.multiservice, service=self.service)
        return self._resource

    def tenant(self) -> str:
        return self.resource().tenant


class Strategy(Protocol):
    needs_body: bool

    def params(self, asked: Asked) -> dict[str, str] | None: ...

    async def decide(self, token: str, authenticated: Authenticated, asked: Asked) -> Outcome: ...


class Everyone:
    """``none``: authentication only."""

    needs_body = False

    def params(self, asked: Asked) -> dict[str, str] | None:
        return None

    async def decide(self, token: str, authenticated: Authenticated, asked: Asked) -> Outcome:
        return ALLOW


class NGSIPolicies:
    """``ours``: the NGSI-aware decision, against the identity manager's policy set.

    Decisions of requests without a body (reads, deletions) are kept per token, method,
    path, query, tenant and service path while the policy version holds (``describe``
    reads nothing else of such a request): a repeated read costs a lookup, not an analysis
    (about 35 µs)."""

    needs_body = True

    def __init__(self, authenticator: Authenticator, max_entries: int, board: PolicyBoard | None = None) -> None:
        # the identity manager, policy version, clock, cache time and application of the
        # authenticator: one of each per PEP, held here too as decide() reads them per request
        self.idm = authenticator.idm
        self.board = board  # where each set read is published, for the notification filter (policyboard.py)
        self.freshness = authenticator.freshness
        self.now = authenticator.now
        self.cache_time = authenticator.cache_time
        self.app_id = authenticator.app_id
        self.decisions: Cache[Outcome] = Cache(max_entries)
        self._set: PolicySet | None = None
        self._epoch: int | None = None
        self._lock = asyncio.Lock()

    def params(self, asked: Asked) -> dict[str, str] | None:
        return None

    async def policy_set(self) -> PolicySet:
        epoch = await self.freshness.current()
        if self._set is not None and self._epoch == epoch:
            return self._set
        async with self._lock:  # one fetch at a time; those waiting take its result
            epoch = self.freshness.epoch
            if self._set is not None and self._epoch == epoch:
                return self._set
            version, found = await self.idm.ngsi_policies(self.app_id)
            self._set, self._epoch = found, self.freshness.epoch_for(version)
            if self.board is not None:
                self.board.publish(version, found)
            log.info("NGSI policy set of version %s: %d policies, %d tenant bindings", version,
                     len(found.policies), len(found.bindings))
            return found

    async def decide(self, token: str, authenticated: Authenticated, asked: Asked) -> Outcome:
        policy_set = await self.policy_set()
        key = None
        if asked.method not in BODY_METHODS and self._epoch is not None:
            headers = asked.headers
            key = (token, asked.method, asked.path, asked.query, headers.get("fiware-service"),
                   headers.get("fiware-servicepath"))
            kept = self.decisions.get(key, self.now(), self._epoch)
            if kept is not None:
                return kept
        decision = decide(authenticated.caller.identity, asked.resource(), policy_set)
        outcome = Outcome(decision.allow, decision.reason, decision.allowed_attrs, decision.denied_attrs)
        if key is not None and self._epoch is not None:
            self.decisions.put(key, outcome, self.now() + self.cache_time, self._epoch)
        return outcome


class KeyrockLevels:
    """``idm``: Keyrock's verb-and-path permissions, decided by ``GET /user``."""

    needs_body = False

    def __init__(self, authenticator: Authenticator, tenant_header: str, max_entries: int) -> None:
        self.authenticator = authenticator
        self.freshness = authenticator.freshness
        self.tenant_header = tenant_header.lower()
        self.decisions: Cache[bool] = Cache(max_entries)

    def params(self, asked: Asked) -> dict[str, str]:
        params = {"action": asked.method, "resource": asked.path}
        tenant = asked.headers.get(self.tenant_header) if self.tenant_header else None
        if tenant:
            params["authorization_service_header"] = tenant
        return params

    async def decide(self, token: str, authenticated: Authenticated, asked: Asked) -> Outcome:
        params = self.params(asked)
        key = (token, asked.method, asked.path, params.get("authorization_service_header"))
        now = self.authenticator.now()
        answer = authenticated.answer  # the call that authenticated the token asked already
        if answer is None:
            kept = self.decisions.get(key, now, await self.freshness.current())
            if kept is not None:
                return ALLOW if kept else self._denied(asked)
            answer = (await self.authenticator.ask(token, params, now)).answer
            assert answer is not None
        allowed = answer.decision == "Permit"
        epoch = self.freshness.epoch_for(answer.version)
        if epoch is not None:
            self.decisions.put(key, allowed, now + self.authenticator.cache_time, epoch)
        return ALLOW if allowed else self._denied(asked)

    @staticmethod
    def _denied(asked: Asked) -> Outcome:
        return Outcome(False, f"the identity manager does not permit {asked.method} {asked.path} to this user")


class External:
    """``azf``, ``opa``, ``xacml``: a PDP of its own, asked on every request."""

    def __init__(
        self, client: AzfClient | OpaClient | XacmlClient, app_id: str, *, payload: bool, azf: bool,
        tenant_header: str = "fiware-service",
    ) -> None:
        self.client = client
        self.app_id = app_id
        self.needs_body = payload
        self.azf = azf
        self.tenant_header = tenant_header.lower() or "fiware-service"

    def params(self, asked: Asked) -> dict[str, str] | None:
        return {"authzforce": "true"} if self.azf else None

    async def decide(self, token: str, authenticated: Authenticated, asked: Asked) -> Outcome:
        caller: Caller = authenticated.caller
        resource = asked.resource() if self.needs_body else None
        question = Question(
            caller=caller,
            app_id=self.app_id or caller.identity.app_id,
            method=asked.method,
            path=asked.path,
            tenant=asked.headers.get(self.tenant_header, ""),
            service_path=asked.headers.get("fiware-servicepath"),
            payload=payload_of(resource) if resource is not None else payload_of(RequestResource(frozenset())),
        )
        if await self.client.allows(question):
            return ALLOW
        return Outcome(False, "the policy decision point does not permit this request")
