"""OAuth 2.0 endpoints: ``/oauth2/token``, ``/oauth2/authorize``, ``/oauth2/revoke``, ``/oauth2/introspect``.

Reference: ``reference/keyrock/oauth_documentation.md`` (grants, Basic client
authentication, ``scope=permanent``/``jwt``, revocation) and ``oidc_documentation.md``
("OIDC over Authorization Code Flow"); ``security-history-orchestration.md`` §1 "OAuth2
endpoints". Introspection is RFC 7662 (Keyrock has none). Each handler prefetches into a
:class:`~security.idm.oauth.Session`, lets authlib decide, then applies the writes.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

from authlib.oauth2.rfc6749 import OAuth2Error
from starlette.requests import Request
from starlette.responses import Response

from ..credentials import digest, same
from ..http import KeyrockError, client_address, form_pairs, json, query_pairs, service
from ..model import ACCESS, REFRESH, Token
from ..oauth import (
    SECRET_METHODS,
    Session,
    basic_credentials,
    build_server,
    split_scope,
)
from ..oauth import Request as OAuthRequest
from ..pages import login as page
from . import audited, route_table

log = logging.getLogger("waziup.idm.oauth2")

Result = tuple[int, Any, list[tuple[str, str]]]


def _respond(result: Result) -> Response:
    status, body, headers = result
    if status == 302:
        return Response(status_code=302, headers=dict(headers))
    return json(body, status, dict(headers))


def _error(error: str, description: str, status: int = 400) -> Response:
    return json({"error": error, "error_description": description}, status,
                {"Cache-Control": "no-store", "Pragma": "no-cache"})


def _client_id(oauth: OAuthRequest, headers: Any) -> str | None:
    credentials = basic_credentials(headers.get("authorization"))
    if credentials is not None:
        return credentials[0]
    return oauth.payload.data.get("client_id")


async def _new_session(request: Request, oauth: OAuthRequest, client_id: str | None) -> Session:
    the_service = service(request)
    session = Session(the_service, the_service.now())
    if client_id and len(client_id) <= 256:
        session.client = await the_service.store.get_application(client_id)
    return session


async def _posted(request: Request) -> tuple[OAuthRequest, Session] | Response:
    """The form POSTed to a client's endpoint (token, revoke, introspect) and the session of
    the client it names; or, for a body that cannot be read, the OAuth error answer."""
    try:
        form = await form_pairs(request)
    except KeyrockError as exc:
        return _error("invalid_request", exc.message, exc.code)
    oauth = OAuthRequest("POST", request.url.path, request.headers, [], form)
    return oauth, await _new_session(request, oauth, _client_id(oauth, request.headers))


async def _apply(session: Session, result: Result) -> Result:
    """Write what the request decided; a code or refresh token already consumed turns the
    answer into invalid_grant and revokes its family."""
    store = session.service.store
    if session.reused_family:
        count = await store.revoke_family(session.reused_family)
        log.warning("a used code or rotated refresh token came back: %d tokens of its family revoked", count)
    for record in session.consume:
        if not await store.consume_token(record.hash):
            if record.family:
                await store.revoke_family(record.family)
            log.warning("a code or refresh token was used twice at once: its family is revoked")
            return 400, {"error": "invalid_grant", "error_description": "Invalid grant"}, [("Cache-Control", "no-store")]
    for record in session.saves:
        await store.save_token(record)
    for record in session.revocations:
        if record.kind == "refresh" and record.family:
            await store.revoke_family(record.family)  # a refresh token takes its access tokens along
        else:
            await store.revoke_token(record.hash)
    for kid, until in session.key_uses:
        await session.service.key_signed(kid, until)
    return result


async def _prefetch_user(session: Session, user_id: str | None) -> None:
    if user_id is None or session.client is None:
        return
    user = await session.service.store.get_user(user_id)
    if user is not None:
        session.user = user
        session.user_claims = await session.service.user_object(user, session.client.id)


async def _signing_key(session: Session, scope: str | None) -> None:
    if session.client is None:
        return
    uses_key = not (session.client.jwt_algorithm == "HS256" and session.client.jwt_secret)
    if uses_key and {"jwt", "openid"} & set(split_scope(scope)):
        session.signing_key = await session.service.signing_key()


def _decide(call: Any) -> Result:
    """authlib's answer; its ValueError for a parameter it cannot quote back (an error
    description may only hold some ASCII) is a plain invalid_request."""
    try:
        return call()  # type: ignore[no-any-return]
    except ValueError:
        return 400, {"error": "invalid_request"}, [("Cache-Control", "no-store")]


# -- the audit trail: who got or lost a token, never the token ----------------------------------


async def _audit_issued(request: Request, session: Session, grant_type: str | None) -> None:
    """``token.issued``: by the user (or, for a client's own token, the client), with the
    grant, the client and the scope."""
    access = next((t for t in session.saves if t.kind == ACCESS), None)
    if access is None:
        return
    actor, kind = (access.user_id, "user") if access.user_id else (access.client_id or "", "app")
    details = {"grant_type": access.extra.get("grant") or grant_type or "", "client_id": access.client_id or "", "scope": access.scope,
               "format": access.extra.get("format", "opaque"), "refresh": any(t.kind == REFRESH for t in session.saves)}
    await audited(request, actor, "token.issued", actor_kind=kind, target=access.client_id or "", details=details)


async def _audit_revoked(request: Request, session: Session, record: Token, reason: str) -> None:
    """``token.revoked``: by the client that asked (or that presented a used code or
    refresh token again), about the token's user."""
    client = session.client.id if session.client is not None else record.client_id or ""
    details = {"client_id": record.client_id or "", "kind": record.kind, "family": bool(record.family)}
    await audited(request, client, "token.revoked", actor_kind="app", target=record.user_id or record.client_id or "",
                  reason=reason, details=details)


# -- POST /oauth2/token (oauth_documentation.md: every grant; oidc_documentation.md: id_token) --


async def token(request: Request) -> Response:
    posted = await _posted(request)
    if isinstance(posted, Response):
        return posted
    oauth, session = posted
    the_service = service(request)
    store = the_service.store
    grant_type = oauth.form.get("grant_type")
    scope = oauth.form.get("scope")
    if grant_type == "password" and session.client is not None:
        username, password = oauth.form.get("username"), oauth.form.get("password")
        try:  # the client first: a request that cannot authenticate as one never tries a password
            build_server(session).authenticate_client(oauth, SECRET_METHODS)
            authenticated = session.client.grant_types and "password" in session.client.grant_types
        except OAuth2Error:
            authenticated = False
        if authenticated and username and password:
            session.login = await the_service.login(username, password, client_address(request))
            if session.login.user is not None:
                session.user = session.login.user
                session.user_claims = await the_service.user_object(session.user, session.client.id)
    elif grant_type == "authorization_code" and oauth.form.get("code"):
        session.code = await store.get_token(digest(oauth.form["code"]))
        if session.code is not None:
            await _prefetch_user(session, session.code.user_id)
            scope = session.code.scope
    elif grant_type == "refresh_token" and oauth.form.get("refresh_token"):
        session.refresh = await store.get_token(digest(oauth.form["refresh_token"]))
        if session.refresh is not None:
            await _prefetch_user(session, session.refresh.user_id)
            scope = scope or session.refresh.scope
    await _signing_key(session, scope)
    server = build_server(session)
    result = _decide(lambda: server.create_token_response(oauth))
    if result[0] != 200:
        if session.reused_family:
            await _apply(Session(the_service, session.now, reused_family=session.reused_family), result)
            used = session.code or session.refresh
            if used is not None:
                await _audit_revoked(request, session, used, "a used code or rotated refresh token came back: "
                                                             "its family is revoked")
        return _respond(result)
    result = await _apply(session, result)
    if result[0] == 200:
        await _audit_issued(request, session, grant_type)
    return _respond(result)


# -- POST /oauth2/revoke (oauth_documentation.md "Revoke Token"; RFC 7009) ----------------------


async def _token_endpoint(request: Request, name: str) -> Response:
    posted = await _posted(request)
    if isinstance(posted, Response):
        return posted
    oauth, session = posted
    value = oauth.form.get("token")
    if value and len(value) <= 16 * 1024:
        session.target = await session.service.store.get_token(digest(value))
        if session.target is not None and session.target.user_id is not None:
            session.target_user = await session.service.store.get_user(session.target.user_id)
    server = build_server(session)
    result = _decide(lambda: server.create_endpoint_response(name, oauth))
    if result[0] == 200:
        result = await _apply(session, result)
        for record in session.revocations:
            await _audit_revoked(request, session, record, "revoked by the client")
    return _respond(result)


async def revoke(request: Request) -> Response:
    return await _token_endpoint(request, "revocation")


# -- POST /oauth2/introspect (RFC 7662) -------------------------------------------------------


async def introspect(request: Request) -> Response:
    return await _token_endpoint(request, "introspection")


# -- GET/POST /oauth2/authorize (oauth_documentation.md "Authorization Code Grant") -------------


def _secure(request: Request) -> bool:
    return bool(request.app.state.config.https or request.app.state.config.issuer_url.startswith("https://"))


def _rejected(error: OAuth2Error) -> Response:
    """An invalid authorization request: back to the application when its redirect URI is
    known to be the application's, else said on a page."""
    if error.redirect_uri:
        try:
            return _respond(error())
        except ValueError:
            pass
    return page.problem(f"{error.error}: {error.description or 'invalid authorization request'}")


async def _consent(request: Request, pairs: list[tuple[str, str]]) -> tuple[Session, OAuthRequest, Any] | Response:
    """Validate an authorization request: (session, request, grant); or, when invalid, the
    answer that refuses it (the sign-in page and its form refuse alike)."""
    try:
        oauth = OAuthRequest(request.method, request.url.path, request.headers, pairs, [])
        session = await _new_session(request, oauth, oauth.payload.data.get("client_id"))
        server = build_server(session)
        grant = server.get_consent_grant(oauth, end_user=None)
    except OAuth2Error as error:
        return _rejected(error)
    except ValueError:
        return page.problem("invalid authorization request")
    return session, oauth, grant


async def authorize_page(request: Request) -> Response:
    consent = await _consent(request, query_pairs(request))
    if isinstance(consent, Response):
        return consent
    session, oauth, grant = consent
    assert session.client is not None
    return page.sign_in(app_name=session.client.name, scopes=split_scope(oauth.payload.data.get("scope")),
                        params=dict(oauth.payload.data), csrf=secrets.token_urlsafe(24), secure=_secure(request),
                        redirect_uri=_return_to(session, grant))


def _return_to(session: Session, grant: Any) -> str | None:
    """Where the validated authorization request sends the browser back to."""
    assert session.client is not None
    return getattr(grant, "redirect_uri", None) or session.client.get_default_redirect_uri()


async def authorize_submit(request: Request) -> Response:
    the_service = service(request)
    try:
        form = await form_pairs(request)
    except KeyrockError as exc:
        return page.problem(exc.message, exc.code)
    fields = dict(form)
    cookie = request.cookies.get(page.CSRF_COOKIE, "")
    if not cookie or not same(cookie, fields.get(page.CSRF_FIELD, "")):
        return page.problem("The form expired or did not come from this site: start again from the application.", 403)
    carried = [(name, value) for name, value in form if name in page.CARRIED]
    consent = await _consent(request, carried)
    if isinstance(consent, Response):
        return consent
    session, oauth, grant = consent
    assert session.client is not None
    server = build_server(session)
    csrf = secrets.token_urlsafe(24)
    if fields.get("decision") != "allow":
        result = _decide(lambda: server.create_authorization_response(oauth, grant_user=None, grant=grant))
        return _respond(result)
    login = fields.get("username", "")
    result_login = await the_service.login(login, fields.get("password", ""), client_address(request))
    scopes = split_scope(oauth.payload.data.get("scope"))
    if result_login.locked:
        return page.sign_in(app_name=session.client.name, scopes=scopes, params=dict(oauth.payload.data), csrf=csrf,
                            login=login, status=429, secure=_secure(request), redirect_uri=_return_to(session, grant),
                            error=f"Too many failed sign-ins: this account is locked for {int(result_login.locked) + 1} s.")
    if result_login.user is None:
        return page.sign_in(app_name=session.client.name, scopes=scopes, params=dict(oauth.payload.data), csrf=csrf,
                            login=login, status=401, secure=_secure(request), redirect_uri=_return_to(session, grant),
                            error="Wrong e-mail, username or password.")
    session.user = result_login.user
    grant.request.user = result_login.user
    result = _decide(lambda: server.create_authorization_response(oauth, grant_user=result_login.user, grant=grant))
    if result[0] == 302:
        result = await _apply(session, result)
        await _audit_issued(request, session, "implicit")  # a code is not a token: only the implicit grant's
    return _respond(result)


ROUTES = route_table({
    "/oauth2/token": {"POST": token},
    "/oauth2/revoke": {"POST": revoke},
    "/oauth2/introspect": {"POST": introspect},
    "/oauth2/authorize": {"GET": authorize_page, "POST": authorize_submit},
})


