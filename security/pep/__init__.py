"""The policy enforcement point: authentication and authorization of every request against
the identity manager (``security/idm``, or Keyrock), as a guard on the request seam and as
``waziup pep``, a Wilma-compatible reverse proxy.

Guards (``-guard security.pep:broker_guard``, ``--guard security.pep:agent_guard``,
``-guard security.pep:history_guard``, ``-guard security.pep:rules_guard``,
``-guard security.pep:orchestrator_guard``) are
configured from ``WAZIUP_*`` variables (``settings.py``; docs/security.md, "The PEP");
the proxy from Wilma's configuration (``config.py``, ``proxy.py``).

| module | job |
| --- | --- |
| ``tokens.py`` | where the token is (Wilma's order and quirk) |
| ``jwtcheck.py``, ``jwks.py`` | local JWT checks; the identity manager's keys |
| ``idm.py`` | calls to the identity manager |
| ``caller.py`` | Keyrock's user object -> Identity and Wilma's headers |
| ``cache.py``, ``freshness.py`` | remembered answers; the policy version that invalidates them |
| ``authenticate.py`` | token -> caller |
| ``authorize.py``, ``pdp/`` | caller and request -> decision (ours, idm, azf, opa, xacml) |
| ``replies.py`` | refusals in Wilma's error shape |
| ``guard.py`` | the guard itself |
| ``rules.py`` | the rules service's notice signature, in front of the guard |
| ``projection.py`` | a projection applied to NGSI responses (the proxy's) |
| ``settings.py``, ``config.py``, ``proxy.py`` | configuration; the proxy |
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Any

from ngsi.server.guards import Guard

log = logging.getLogger("waziup.security.pep")


def _guard(service: str, multiservice: bool) -> Guard:
    from .guard import PEP
    from .settings import from_environ

    settings = dataclasses.replace(from_environ(), multiservice=multiservice)
    log.info(
        "PEP on the %s: identity manager %s, application %s, PDP %s", service, settings.idm_url,
        settings.app_id or "(any)", settings.pdp,
    )
    return PEP(settings, service=service)


def broker_guard(config: Any) -> Guard:
    """``-guard security.pep:broker_guard``: tenants as the broker reads them (``-multiservice``)."""
    return _guard("broker", bool(getattr(config, "multiservice", False)))


def history_guard(config: Any) -> Guard:
    """``-guard security.pep:history_guard``: the history service honours ``Fiware-Service``
    always; its routes are read with the history's table (``security.authz.history``), and
    ``/version`` and ``/health`` are public."""
    return _guard("history", True)


def rules_guard(config: Any) -> Guard:
    """``-guard security.pep:rules_guard``: the rules service honours ``Fiware-Service``
    always; its routes are read with the rules' table (``security.authz.rules``), ``/version``
    is public, and ``/notices`` also takes the notice signature of the rules' subscriptions
    (``rules.py``; the key: ``WAZIUP_RULES_NOTICE_KEY``, environment only)."""
    from .guard import PEP
    from .rules import NoticeSignature

    pep = _guard("rules", True)
    assert isinstance(pep, PEP)
    return NoticeSignature(pep, os.environ.get("WAZIUP_RULES_NOTICE_KEY", ""), pep.replies)


def orchestrator_guard(config: Any) -> Guard:
    """``-guard security.pep:orchestrator_guard``: the orchestrator's service (apps, discovery,
    sources) honours ``Fiware-Service`` always; its routes are read with its table
    (``security.authz.orchestrator``), and ``/version`` and the apps' ``/ingress/*`` are public."""
    return _guard("orchestrator", True)


def agent_guard(config: Any) -> Guard:
    """``--guard security.pep:agent_guard``: the agent honours ``Fiware-Service`` always; its
    south port's measure routes are public (devices authenticate by API key)."""
    return _guard("agent", True)
