"""OpenID Connect discovery, keys and user info: ``/.well-known/openid-configuration``,
``/.well-known/jwks.json``, ``/userinfo``.

Reference: ``reference/keyrock/oidc_documentation.md`` (ID tokens of the authorization code
flow, their claims); OpenID Connect Discovery 1.0 §3 and Core 1.0 §5.3 for the documents
themselves (Keyrock documents none of the three). The JWKS holds every key whose tokens
may still be alive (``keys.py``: rotation); ID tokens and JWT access tokens of
applications that sign with a secret (HS256, Keyrock's way) are checked with that secret
instead.
"""

from __future__ import annotations

from authlib.oidc.core import UserInfo
from starlette.requests import Request
from starlette.responses import Response

from ..http import json, service
from ..oauth import KNOWN_SCOPES
from . import route_table


async def openid_configuration(request: Request) -> Response:
    the_service = service(request)
    base = the_service.config.issuer_url
    body = {
        "issuer": base,
        "authorization_endpoint": f"{base}/oauth2/authorize",
        "token_endpoint": f"{base}/oauth2/token",
        "revocation_endpoint": f"{base}/oauth2/revoke",
        "introspection_endpoint": f"{base}/oauth2/introspect",
        "userinfo_endpoint": f"{base}/userinfo",
        "jwks_uri": f"{base}/.well-known/jwks.json",
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "password", "client_credentials", "refresh_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [the_service.config.signing_algorithm, "HS256"],
        "scopes_supported": list(KNOWN_SCOPES),
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "name", "preferred_username", "email"],
    }
    return json(body, headers={"Cache-Control": "public, max-age=300"})


async def jwks(request: Request) -> Response:
    the_service = service(request)
    await the_service.signing_key()  # on a fresh start, or when the key is due for rotation
    return json(the_service.jwks(), headers={"Cache-Control": "public, max-age=300"})


async def userinfo(request: Request) -> Response:
    """OIDC Core §5.3: the claims of the user a bearer access token belongs to."""
    auth = request.headers.get("authorization", "")
    value = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
    the_service = service(request)
    resolved = await the_service.resolve_access(value) if value else None
    if resolved is None or resolved.user is None:
        return json({"error": "invalid_token"}, 401, {"WWW-Authenticate": 'Bearer error="invalid_token"'})
    user = resolved.user
    claims = UserInfo(sub=user.id, preferred_username=user.username, name=user.username, email=user.email)
    return json(dict(claims), headers={"Cache-Control": "no-store"})


ROUTES = route_table({
    "/.well-known/openid-configuration": {"GET": openid_configuration},
    "/.well-known/jwks.json": {"GET": jwks},
    "/userinfo": {"GET": userinfo, "POST": userinfo},
})
