"""The admin API of the audit log, for the identity manager to mount: ``GET /audit`` (the
records, filtered as ``waziup audit list``), ``GET /audit/verify`` (the chain's check),
``POST /audit/events`` (an event of another service of the platform: erasures, app
deployments, PEP denials all go to this one trail) and ``POST /audit/pseudonymize`` (a
user's or a device's erasure from the trail).

Protected as the identity manager's admin-only /v1 routes are: the caller's
``X-Auth-Token`` (or ``Authorization: Bearer``) must be an admin's, else 401/403 in
Keyrock's error shape (``security/idm/http.py``). A refused call is itself recorded
(``request.denied``): reading the trail is security-relevant.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from security.idm.http import KeyrockError, api_caller, client_address, json_body

from .log import AuditLog
from .record import Anchor, parse_time
from .store import MAX_LIMIT, AuditError

FORBIDDEN = "User not allowed to perform the action"
ACTOR_KINDS = ("user", "app", "service", "anonymous")
_TEXT_FIELDS = ("target", "tenant", "decision", "reason")
MAX_NAMES = 100  # names one pseudonymization takes (a user's id, username, e-mail, devices...)
# The caller's id when an admin, else raises KeyrockError (401 or 403).
Guard = Callable[[Request, AuditLog], Awaitable[str]]


async def idm_admin(request: Request, audit: AuditLog) -> str:
    """The identity manager's rule for admin-only routes (``caller.admin``)."""
    caller = await api_caller(request)
    if not caller.admin:
        await audit.record(actor=caller.id, action="request.denied", target=request.url.path,
                           source=client_address(request), decision="deny", reason="not an admin")
        raise KeyrockError(403, FORBIDDEN)
    return caller.id


def _int(request: Request, name: str, default: int, high: int) -> int:
    text = request.query_params.get(name)
    if text is None:
        return default
    if not text.isdigit() or int(text) > high:
        raise KeyrockError(400, f"Parameter {name} must be an integer from 0 to {high}")
    return int(text)


def _time(request: Request, name: str) -> str | None:
    text = request.query_params.get(name)
    if text is None:
        return None
    try:
        return parse_time(text)
    except ValueError as exc:
        raise KeyrockError(400, f"Parameter {name} must be an ISO 8601 date or time") from exc


def _text(body: dict[str, Any], name: str, limit: int = 1024) -> str:
    value = body.get(name, "")
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > limit:
        raise KeyrockError(400, f"Parameter {name} must be a string of at most {limit} characters")
    return value


def event_fields(body: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of ``AuditLog.record`` that a posted event gives, or 400. The
    actor and the source are not among them: they are the caller's and its address."""
    action = _text(body, "action", 128)
    if not action.strip():
        raise KeyrockError(400, "Missing parameter action in body")
    kind = _text(body, "actor_kind", 32) or "service"
    if kind not in ACTOR_KINDS:
        raise KeyrockError(400, f"actor_kind is one of {', '.join(ACTOR_KINDS)}")
    details = body.get("details") or {}
    if not isinstance(details, dict):
        raise KeyrockError(400, "Parameter details must be a JSON object")
    return {"action": action, "actor_kind": kind, "details": details,
            **{name: _text(body, name) for name in _TEXT_FIELDS}}


def _names(body: dict[str, Any]) -> list[str]:
    names = body.get("names")
    if (not isinstance(names, list) or not names or len(names) > MAX_NAMES
            or not all(isinstance(n, str) and n and len(n) <= 1024 for n in names)):
        raise KeyrockError(400, f"names must be a list of 1 to {MAX_NAMES} non-empty ids (a user's, a device's)")
    return list(dict.fromkeys(names))


def routes(audit: AuditLog | Callable[[Request], AuditLog], *, guard: Guard = idm_admin) -> list[Route]:
    """``/audit``, ``/audit/verify``, ``/audit/events`` and ``/audit/pseudonymize`` over
    ``audit``, each call passing ``guard`` first.

    ``audit`` may be a function of the request (e.g. ``lambda r: r.app.state.audit``) for an
    app that opens its log in its lifespan, after its routes are made."""
    of = audit if callable(audit) and not isinstance(audit, AuditLog) else (lambda request: audit)

    async def listing(request: Request) -> Response:
        audit = of(request)
        await guard(request, audit)
        params = request.query_params
        records = await audit.query(
            actor=params.get("actor"), action=params.get("action"), tenant=params.get("tenant"),
            since=_time(request, "since"), until=_time(request, "until"),
            limit=_int(request, "limit", 100, MAX_LIMIT), offset=_int(request, "offset", 0, 2**62))
        return JSONResponse([r.as_json() for r in records])

    async def verifying(request: Request) -> Response:
        audit = of(request)
        await guard(request, audit)
        anchor = None
        if "anchor" in request.query_params:
            try:
                anchor = Anchor.parse(request.query_params["anchor"])
            except ValueError as exc:
                raise KeyrockError(400, str(exc)) from exc
        report = await audit.verify(anchor)
        return JSONResponse({"ok": report.ok, "count": report.count, "last_seq": report.last_seq,
                             "last_hash": report.last_hash, "keyed": report.keyed,
                             "pseudonymized": report.pseudonymized, "bad_seq": report.bad_seq,
                             "problem": report.problem, "message": report.message})

    async def posting(request: Request) -> Response:
        """An event of another service, by the caller (its account), from its address. Not
        fail-open: the service is told (503) when its event was not recorded."""
        audit = of(request)
        caller = await guard(request, audit)
        fields = event_fields(await json_body(request))
        try:
            record = await audit.record(actor=caller, source=client_address(request), **fields)
        except AuditError:
            record = None
        if record is None:
            raise KeyrockError(503, "The audit event could not be recorded")
        return JSONResponse(record.as_json(), status_code=201)

    async def pseudonymizing(request: Request) -> Response:
        """Replace every name (a user's id, username, e-mail; a device's id) by one new
        random pseudonym in the records about them (``AuditStore.pseudonymize``)."""
        audit = of(request)
        caller = await guard(request, audit)
        names = _names(await json_body(request))
        pseudonym = "erased-" + secrets.token_hex(8)
        try:
            done = await audit.pseudonymize(names[0], pseudonym, aliases=names[1:], by=caller, by_kind="user")
        except AuditError as exc:
            raise KeyrockError(503, str(exc)) from exc
        return JSONResponse({"pseudonymized": len(done.details.get("seqs", [])), "pseudonym": pseudonym})

    return [Route("/audit", listing, methods=["GET"]), Route("/audit/verify", verifying, methods=["GET"]),
            Route("/audit/events", posting, methods=["POST"]),
            Route("/audit/pseudonymize", pseudonymizing, methods=["POST"])]
