"""OAuth 2.0 and OpenID Connect by authlib, its storage callbacks served from a unit of work.

authlib's framework-agnostic server (``authlib.oauth2.rfc6749.AuthorizationServer``, the
grants, RFC 7636 PKCE, RFC 7009 revocation, RFC 7662 introspection, ``authlib.oidc.core``
ID tokens) does the protocol: parameter checks, client authentication, redirect URI
matching, error shapes. Its storage callbacks are synchronous, the store is async; so a
request runs in three steps:

1. **prefetch** (async, in the route): everything authlib may ask for is read first into
   a :class:`Session` (the client named by the request, the code or refresh token it
   carries, the user and their Keyrock user object; for the password grant the login is
   checked here, with its lockout, once the client has authenticated);
2. **decide** (sync, pure over the session): a fresh authlib server per request whose
   callbacks read the session and *record* what to write (tokens to save, a code or
   refresh token to consume, a family to revoke, a signing key used);
3. **apply** (async): the recorded writes. Consuming a code or rotating a refresh token is
   a conditional update that succeeds once: a request that loses a race (or replays a
   code, or reuses a rotated refresh token) gets ``invalid_grant`` and the whole family of
   tokens that authorization produced is revoked (RFC 6749 §4.1.2, RFC 9700 §4.14).

Keyrock's shapes (``reference/keyrock/oauth_documentation.md``): ``token_type`` is
``bearer`` (lowercase) or ``jwt``; ``scope`` may be written Keyrock's way with commas
(``jwt,permanent``); ``permanent`` gives a token without expiry and without refresh token;
``jwt`` a JWT access token (the application's ``token_types`` must allow either).
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from authlib.oauth2.rfc6749 import (
    AuthorizationServer,
    ClientMixin,
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    OAuth2Error,
    OAuth2Payload,
    OAuth2Request,
    TokenMixin,
    grants,
)
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from authlib.oidc.core import AuthorizationCodeMixin
from authlib.oidc.core.grants import OpenIDCode
from joserfc.jwk import ECKey, OctKey, RSAKey

from .credentials import digest, new_token, same_digest
from .keys import sign_hs256
from .model import ACCESS, CODE, REFRESH, Application, SigningKey, Token, User
from .service import IdentityService, LoginResult

KNOWN_SCOPES = ("openid", "profile", "email", "permanent", "jwt")
SECRET_METHODS = ["client_secret_basic", "client_secret_post"]
ANY_METHOD = [*SECRET_METHODS, "none"]


def split_scope(raw: str | None) -> list[str]:
    """Keyrock writes ``jwt,permanent``, RFC 6749 ``openid profile``: both, in order, once each."""
    if not raw:
        return []
    return list(dict.fromkeys(part for part in raw.replace(",", " ").split() if part))


def basic_credentials(header: str | None) -> tuple[str, str] | None:
    """(client_id, secret) of an ``Authorization: Basic`` header, None when absent or undecodable."""
    if not header or header[:6].lower() != "basic ":
        return None
    try:
        text = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    client_id, colon, secret = text.partition(":")
    return (client_id, secret) if colon else None


class _Payload(OAuth2Payload):
    def __init__(self, data: dict[str, str], datalist: dict[str, list[str]]) -> None:
        self._data = data
        self._datalist = datalist

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> dict[str, list[str]]:  # type: ignore[override]
        return self._datalist


class Request(OAuth2Request):
    """An HTTP request as authlib reads it: query, form (each value's first occurrence;
    all of them in ``datalist``) and headers. ``scope`` is normalized from Keyrock's commas.
    An ``Authorization`` header authlib could not decode (not base64, not UTF-8) is left out,
    which authlib answers as a client that did not authenticate."""

    def __init__(self, method: str, path: str, headers: Mapping[str, str], query: list[tuple[str, str]],
                 form: list[tuple[str, str]]) -> None:
        clean = {"Authorization": headers["authorization"]} if basic_credentials(headers.get("authorization")) else {}
        # authlib refuses http:// URIs unless told otherwise; TLS is the deployment's (or -https's) business
        super().__init__(method, "https://idm.invalid" + path, headers=clean)
        self._args = _first(query)
        self._form = _first(form)
        datalist: dict[str, list[str]] = {}
        for name, value in [*query, *form]:
            datalist.setdefault(name, []).append(value)
        data = {**self._args, **self._form}
        if "scope" in data:
            data["scope"] = " ".join(split_scope(data["scope"]))
            if "scope" in self._form:
                self._form["scope"] = data["scope"]
        self.payload = _Payload(data, datalist)

    @property
    def args(self) -> dict[str, str]:
        return self._args

    @property
    def form(self) -> dict[str, str]:
        return self._form


def _first(pairs: list[tuple[str, str]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in pairs:
        out.setdefault(name, value)
    return out


class AccountLocked(OAuth2Error):
    """A login refused because of repeated failures (not because of this password)."""

    error = "invalid_grant"

    def __init__(self, seconds: float) -> None:
        self.retry_after = max(1, int(seconds + 0.999))
        super().__init__(
            description=f"Account temporarily locked after repeated failed logins: retry in {self.retry_after} s",
            status_code=400,
        )

    def get_headers(self) -> list[tuple[str, str]]:
        return [*super().get_headers(), ("Retry-After", str(self.retry_after))]


# -- authlib's models over our records ----------------------------------------------------------


class Client(ClientMixin):
    def __init__(self, app: Application) -> None:
        self.app = app

    @property
    def public(self) -> bool:
        return self.app.public

    def get_client_id(self) -> str:
        return self.app.id

    def get_default_redirect_uri(self) -> str | None:
        return self.app.redirect_uris[0] if self.app.redirect_uris else None

    def get_allowed_scope(self, scope: str | None) -> str | None:
        """The scopes granted (unknown ones dropped, as Keyrock does); None when the request
        asks for ``permanent`` or ``jwt`` and the application's token types do not allow it."""
        wanted = split_scope(scope)
        for special in ("permanent", "jwt"):
            if special in wanted and special not in self.app.token_types:
                return None
        return " ".join(s for s in wanted if s in KNOWN_SCOPES)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.app.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return not self.app.public and same_digest(client_secret, self.app.secret_hash)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if self.app.public:
            return method == "none" and endpoint in ("token", "revocation")
        return method in SECRET_METHODS

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and "authorization_code" in self.app.grant_types

    def check_grant_type(self, grant_type: str) -> bool:
        if grant_type == "refresh_token":  # refresh tokens come from these grants; Keyrock lists it or not
            return bool({"refresh_token", "password", "authorization_code"} & set(self.app.grant_types))
        return grant_type in self.app.grant_types


class Code(AuthorizationCodeMixin):
    def __init__(self, record: Token) -> None:
        self.record = record
        self.code_challenge = record.extra.get("code_challenge")
        self.code_challenge_method = record.extra.get("code_challenge_method")

    def get_redirect_uri(self) -> str | None:
        return self.record.extra.get("redirect_uri")

    def get_scope(self) -> str:
        return self.record.scope

    def get_nonce(self) -> str | None:
        return self.record.extra.get("nonce")

    def get_auth_time(self) -> int | None:
        auth_time = self.record.extra.get("auth_time")
        return int(auth_time) if auth_time is not None else None


class Issued(TokenMixin):
    def __init__(self, record: Token, now: float, user: User | None) -> None:
        self.record, self.now, self.user = record, now, user

    def check_client(self, client: Client) -> bool:
        return self.record.client_id == client.get_client_id()

    def get_scope(self) -> str:
        return self.record.scope

    def get_expires_in(self) -> int:
        return 0 if self.record.expires_at is None else int(self.record.expires_at - self.record.issued_at)

    def is_expired(self) -> bool:
        return self.record.expired(self.now)

    def is_revoked(self) -> bool:
        return self.record.revoked or (self.record.user_id is not None and (self.user is None or not self.user.enabled))

    def get_user(self) -> User | None:
        return self.user

    def get_client(self) -> None:
        return None


# -- the unit of work -------------------------------------------------------------------------


@dataclass
class Session:
    """What one request may need (prefetched) and what it decided to write (recorded)."""

    service: IdentityService
    now: float
    client: Application | None = None
    user: User | None = None
    user_claims: dict[str, Any] | None = None
    login: LoginResult | None = None
    code: Token | None = None
    refresh: Token | None = None
    target: Token | None = None  # the token a revocation or introspection names
    target_user: User | None = None
    signing_key: SigningKey | None = None
    saves: list[Token] = field(default_factory=list)
    consume: list[Token] = field(default_factory=list)
    revocations: list[Token] = field(default_factory=list)
    reused_family: str | None = None
    key_uses: list[tuple[str, float | None]] = field(default_factory=list)

    @property
    def config(self) -> Any:
        return self.service.config

    def family(self) -> str:
        origin = self.code or self.refresh
        if origin is not None and origin.family:
            return origin.family
        if not hasattr(self, "_family"):
            self._family = secrets.token_urlsafe(16)
        return self._family

    # -- JWTs --------------------------------------------------------------------------------
    def sign(self, claims: dict[str, Any], app: Application, until: float | None) -> tuple[str, str]:
        """A JWT signed the application's way: (token, algorithm)."""
        if app.jwt_algorithm == "HS256" and app.jwt_secret:
            return sign_hs256(claims, app.jwt_secret), "HS256"
        key = self.signing_key
        if key is None:
            raise OAuth2Error(description="No signing key", status_code=500)
        self.key_uses.append((key.kid, until))
        return self.service.keyring.sign(claims, key), key.alg

    def jwt_access_token(self, app: Application, user: User | None, expires_at: float | None) -> str:
        now = int(self.now)
        if user is not None:
            claims = dict(self.user_claims or {})
            claims.update(type="user", sub=user.id)
        else:
            claims = {"app_id": app.id, "type": "app", "sub": app.id}
        claims.update(iss=self.config.issuer_url, aud=app.id, iat=now, jti=secrets.token_urlsafe(12))
        if expires_at is not None:
            claims["exp"] = int(expires_at)
        return self.sign(claims, app, expires_at)[0]

    # -- authlib's token generator -----------------------------------------------------------
    def generate_token(
        self, grant_type: str, client: Client, user: User | None = None, scope: str | None = None,
        expires_in: int | None = None, include_refresh_token: bool = True,
    ) -> dict[str, Any]:
        granted = client.get_allowed_scope(scope)
        if granted is None:
            raise InvalidScopeError("The application's token types do not allow this scope")
        scopes = granted.split()
        permanent = "permanent" in scopes
        lifetime = None if permanent else float(self.config.access_lifetime)
        expires_at = None if lifetime is None else self.now + lifetime
        if "jwt" in scopes:
            access, token_type = self.jwt_access_token(client.app, user, expires_at), "jwt"
        else:
            access, token_type = new_token(), "bearer"
        token: dict[str, Any] = {"access_token": access, "token_type": token_type}
        if lifetime is not None:
            token["expires_in"] = int(lifetime)
        if include_refresh_token and not permanent and user is not None:
            token["refresh_token"] = new_token()
        if scopes:
            token["scope"] = " ".join(scopes)
        return token

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        app = request.client.app
        user_id = request.user.id if request.user is not None else None
        scope = token.get("scope", "")
        family = self.family()
        expires = self.now + token["expires_in"] if "expires_in" in token else None
        extra = {"format": "jwt" if token["token_type"] == "jwt" else "opaque", "grant": request.payload.grant_type}
        self.saves.append(Token(digest(token["access_token"]), ACCESS, app.id, user_id, scope, self.now, expires,
                                family=family, extra=extra))
        if "refresh_token" in token:
            self.saves.append(Token(digest(token["refresh_token"]), REFRESH, app.id, user_id, scope, self.now,
                                    self.now + self.config.refresh_lifetime, family=family))


class Server(AuthorizationServer):
    def __init__(self, session: Session) -> None:
        super().__init__(scopes_supported=None)
        self.session = session

    def query_client(self, client_id: str) -> Client | None:
        app = self.session.client
        return Client(app) if app is not None and app.id == client_id else None

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        self.session.save_token(token, request)

    def create_oauth2_request(self, request: Request) -> Request:
        return request

    def create_json_request(self, request: Any) -> Any:
        raise NotImplementedError()

    def handle_response(self, status: int, body: Any, headers: Any) -> tuple[int, Any, list[tuple[str, str]]]:
        return status, body, list(headers)

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        return None


def _session(grant: Any) -> Session:
    return grant.server.session  # type: ignore[no-any-return]


class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ANY_METHOD

    def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
        session = _session(self)
        data = request.payload.data
        extra = {
            "redirect_uri": request.payload.redirect_uri,
            "code_challenge": data.get("code_challenge"),
            "code_challenge_method": data.get("code_challenge_method"),
            "nonce": data.get("nonce"),
            "auth_time": int(session.now),
        }
        session.saves.append(Token(digest(code), CODE, request.client.get_client_id(), request.user.id, request.scope or "",
                                   session.now, session.now + session.config.auth_lifetime, family=session.family(),
                                   extra=extra))

    def query_authorization_code(self, code: str, client: Client) -> Code | None:
        session = _session(self)
        record = session.code
        if record is None or record.kind != CODE or record.client_id != client.get_client_id():
            return None
        if record.revoked:
            session.reused_family = record.family  # a code used twice: revoke what it gave
            return None
        return None if record.expired(session.now) else Code(record)

    def delete_authorization_code(self, authorization_code: Code) -> None:
        _session(self).consume.append(authorization_code.record)

    def authenticate_user(self, authorization_code: Code) -> User | None:
        user = _session(self).user
        return user if user is not None and user.enabled and user.id == authorization_code.record.user_id else None


class PasswordGrant(grants.ResourceOwnerPasswordCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = SECRET_METHODS

    def authenticate_user(self, username: str, password: str) -> User | None:
        login = _session(self).login
        if login is not None and login.locked:
            raise AccountLocked(login.locked)
        if login is None or login.user is None:  # Keyrock's (node-oauth2-server's) answer
            raise InvalidGrantError("Invalid grant: user credentials are invalid")
        return login.user


class ClientCredentialsGrant(grants.ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = SECRET_METHODS


class RefreshTokenGrant(grants.RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ANY_METHOD
    INCLUDE_NEW_REFRESH_TOKEN = True  # rotation: each refresh token is used once

    def authenticate_refresh_token(self, refresh_token: str) -> Issued | None:
        session = _session(self)
        record = session.refresh
        if record is None or record.kind != REFRESH:
            return None
        if record.revoked:
            session.reused_family = record.family  # a rotated (or revoked) refresh token again: theft
            return None
        return None if record.expired(session.now) else Issued(record, session.now, session.user)

    def authenticate_user(self, refresh_token: Issued) -> User | None:
        user = _session(self).user
        return user if user is not None and user.enabled and user.id == refresh_token.record.user_id else None

    def revoke_old_credential(self, refresh_token: Issued) -> None:
        _session(self).consume.append(refresh_token.record)


class PKCE(CodeChallenge):
    """RFC 7636 with S256 only: ``plain`` (the verifier in clear in the front channel) is
    refused, and public clients must use it (OAuth 2.1, RFC 9700 §2.1.1)."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]  # noqa: RUF012 - authlib's attribute
    DEFAULT_CODE_CHALLENGE_METHOD = "S256"

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        challenge, method = data.get("code_challenge"), data.get("code_challenge_method")
        if grant.request.client.public and not challenge:
            raise InvalidRequestError("Public clients must send code_challenge with code_challenge_method=S256")
        if challenge and method != "S256":
            raise InvalidRequestError("code_challenge_method must be S256 (plain is refused)")
        super().validate_code_challenge(grant, redirect_uri)


class IDToken(OpenIDCode):
    """ID tokens (``scope=openid``) in Keyrock's payload (the user object, plus ``iss``,
    ``sub``, ``aud``, ``exp``, ``iat``), signed the application's way."""

    def __init__(self, session: Session) -> None:
        super().__init__(require_nonce=False)
        self.session = session

    def exists_nonce(self, nonce: str, request: OAuth2Request) -> bool:
        return False  # replay of an ID token is the relying party's check (its nonce, its session)

    def _hmac(self, client: Client) -> bool:
        return client.app.jwt_algorithm == "HS256" and bool(client.app.jwt_secret)

    def get_client_algorithm(self, client: Client) -> str:
        if self._hmac(client):
            return "HS256"
        return self.session.signing_key.alg if self.session.signing_key else "RS256"

    def get_encode_header(self, client: Client) -> dict[str, str]:
        header = {"alg": self.get_client_algorithm(client)}
        if not self._hmac(client) and self.session.signing_key is not None:
            header["kid"] = self.session.signing_key.kid
            self.session.key_uses.append((self.session.signing_key.kid, self.session.now + self.session.config.access_lifetime))
        return header

    def resolve_client_private_key(self, client: Client) -> Any:
        if self._hmac(client):
            return OctKey.import_key(client.app.jwt_secret or "")
        key = self.session.signing_key
        if key is None:
            raise OAuth2Error(description="No signing key", status_code=500)
        return (RSAKey if key.alg == "RS256" else ECKey).import_key(key.private_pem)

    def get_client_claims(self, client: Client) -> dict[str, Any]:
        now = int(self.session.now)
        return {"iss": self.session.config.issuer_url, "aud": [client.get_client_id()], "iat": now,
                "exp": now + self.session.config.access_lifetime}

    def generate_user_info(self, user: User, scope: str) -> dict[str, Any]:
        claims = dict(self.session.user_claims or {})
        claims.update(sub=user.id, preferred_username=user.username, name=user.username, email=user.email)
        return claims


def _target_token(session: Session) -> Issued | None:
    """The access or refresh token the session looked up for revocation or introspection."""
    record = session.target
    if record is None or record.kind not in (ACCESS, REFRESH):
        return None
    return Issued(record, session.now, session.target_user)


class Revocation(RevocationEndpoint):
    CLIENT_AUTH_METHODS = ANY_METHOD

    def query_token(self, token_string: str, token_type_hint: str | None) -> Issued | None:
        return _target_token(self.server.session)

    def revoke_token(self, token: Issued, request: OAuth2Request) -> None:
        self.server.session.revocations.append(token.record)


class Introspection(IntrospectionEndpoint):
    CLIENT_AUTH_METHODS = SECRET_METHODS

    def query_token(self, token_string: str, token_type_hint: str | None) -> Issued | None:
        return _target_token(self.server.session)

    def check_permission(self, token: Issued, client: Client, request: OAuth2Request) -> bool:
        return True  # any confidential client (a resource server, a PEP) may ask about a token it holds

    def introspect_token(self, token: Issued) -> dict[str, Any]:
        record, session = token.record, self.server.session
        body: dict[str, Any] = {
            "active": True, "client_id": record.client_id, "scope": record.scope,
            "token_type": "refresh_token" if record.kind == REFRESH else "access_token",
            "iat": int(record.issued_at), "iss": session.config.issuer_url, "aud": record.client_id,
        }
        if record.expires_at is not None:
            body["exp"] = int(record.expires_at)
        if token.user is not None:
            # admin: the WAZIUP API's admin flag (its callers' rights), which Keyrock's /user lacks
            body.update(sub=token.user.id, username=token.user.username, admin=token.user.admin)
        return body


def build_server(session: Session) -> Server:
    """A fresh authlib server over one request's session."""
    server = Server(session)
    server.register_token_generator("default", session.generate_token)
    server.register_grant(AuthorizationCodeGrant, [PKCE(required=True), IDToken(session)])
    server.register_grant(PasswordGrant, [IDToken(session)])
    server.register_grant(ClientCredentialsGrant)
    server.register_grant(RefreshTokenGrant, [IDToken(session)])
    server.register_endpoint(Revocation)
    server.register_endpoint(Introspection)
    return server


__all__ = ["AccountLocked", "InvalidGrantError", "Request", "Server", "Session", "basic_credentials", "build_server",
           "split_scope"]
