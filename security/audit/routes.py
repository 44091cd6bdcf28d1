"""The admin API of the audit log, for the identity manager to mount: ``GET /audit`` (the
records, filtered as ``waziup audit list``) and ``GET /audit/verify`` (the chain's check).

Protected as the identity manager's admin-only /v1 routes are: the caller's
``X-Auth-Token`` (or ``Authorization: Bearer``) must be an admin's, else 401/403 in
Keyrock's error shape (``security/idm/http.py``). A refused call is itself recorded
(``request.denied``): reading the trail is security-relevant.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from security.idm.http import KeyrockError, api_caller, client_address

from .log import AuditLog
from .record import Anchor, parse_time
from .store import MAX_LIMIT

FORBIDDEN = "User not allowed to perform the action"
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


def routes(audit: AuditLog | Callable[[Request], AuditLog], *, guard: Guard = idm_admin) -> list[Route]:
    """``/audit`` and ``/audit/verify`` over ``audit``, each call passing ``guard`` first.

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

    return [Route("/audit", listing, methods=["GET"]), Route("/audit/verify", verifying, methods=["GET"])]
