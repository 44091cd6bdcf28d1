"""The sign-in and consent page of ``/oauth2/authorize``: plain HTML, no JavaScript.

One form does both: the user's login and password, and "Allow" or "Deny" for the
application that asks. The authorization request's parameters travel in hidden fields,
so the POST carries everything authlib validates again (nothing is kept between the two
requests but the CSRF cookie).

CSRF: the GET sets a random value in a cookie (``HttpOnly``, ``SameSite=Strict``, path
``/oauth2``) and puts the same value in a hidden field; the POST is refused unless both
are present and equal (compared in constant time). A page of another site can make the
browser POST the form, but can neither read nor set that cookie.

Every value that reaches the page (the application's name, the scopes, the parameters)
is escaped with ``html.escape``; the page forbids framing (clickjacking) and scripts.
"""

from __future__ import annotations

import html
from urllib.parse import urlsplit
from collections.abc import Iterable

from starlette.responses import HTMLResponse

CSRF_COOKIE = "idm_csrf"
CSRF_FIELD = "csrf_token"
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
}
# the authorization request's parameters carried through the form
CARRIED = ("response_type", "client_id", "redirect_uri", "scope", "state", "nonce", "code_challenge",
           "code_challenge_method", "prompt")
_STYLE = "body{font-family:sans-serif;max-width:28em;margin:3em auto}label,input,button{display:block;margin:.4em 0}"


def form_targets(redirect_uri: str | None) -> str:
    """The CSP ``form-action`` sources of the sign-in page: this site, and the origin of the
    application's (already validated) redirect URI. Chromium checks ``form-action`` on the
    redirects that follow a form's submission too (CSP Level 3), so with ``'self'`` alone the
    answer to "Sign in and allow" (a 302 to the application) would be blocked, and no
    application on another origin could sign its users in."""
    sources = "'self'"
    if redirect_uri:
        parts = urlsplit(redirect_uri)
        if parts.scheme in ("http", "https") and parts.netloc and not set(parts.netloc) & set(" ;,'\"\r\n"):
            sources += f" {parts.scheme}://{parts.netloc}"
    return sources


def _page(title: str, body: str, status: int, cookie: str | None = None, secure: bool = False,
          redirect_uri: str | None = None) -> HTMLResponse:
    text = (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{_STYLE}</style></head><body>{body}</body></html>")
    headers = dict(HEADERS)
    headers["Content-Security-Policy"] = headers["Content-Security-Policy"].replace(
        "form-action 'self'", f"form-action {form_targets(redirect_uri)}")
    response = HTMLResponse(text, status_code=status, headers=headers)
    if cookie is not None:
        response.set_cookie(CSRF_COOKIE, cookie, path="/oauth2", httponly=True, samesite="strict",
                            secure=secure, max_age=3600)
    return response


def sign_in(
    *, app_name: str, scopes: Iterable[str], params: dict[str, str], csrf: str, login: str = "",
    error: str = "", status: int = 200, secure: bool = False, redirect_uri: str | None = None,
) -> HTMLResponse:
    """The form: who asks, for what, the login fields, Allow / Deny. ``redirect_uri``: where
    the answer sends the browser (the form may lead there, ``form_targets``)."""
    hidden = "".join(
        f'<input type="hidden" name="{html.escape(name)}" value="{html.escape(value)}">'
        for name, value in params.items() if name in CARRIED
    )
    wanted = "".join(f"<li>{html.escape(s)}</li>" for s in scopes)
    problem = f'<p role="alert"><strong>{html.escape(error)}</strong></p>' if error else ""
    body = (
        f"<h1>Sign in</h1><p>The application <strong>{html.escape(app_name)}</strong> asks to use your account"
        + (f" with: <ul>{wanted}</ul>" if wanted else ".</p>")
        + problem
        + '<form method="post" action="/oauth2/authorize">'
        + hidden
        + f'<input type="hidden" name="{CSRF_FIELD}" value="{html.escape(csrf)}">'
        + f'<label>E-mail or username <input name="username" autocomplete="username" value="{html.escape(login)}" required></label>'
        + '<label>Password <input name="password" type="password" autocomplete="current-password" required></label>'
        + '<button name="decision" value="allow" type="submit">Sign in and allow</button>'
        + '<button name="decision" value="deny" type="submit" formnovalidate>Deny</button>'
        + "</form>"
    )
    return _page("Sign in", body, status, cookie=csrf, secure=secure, redirect_uri=redirect_uri)


def problem(message: str, status: int = 400) -> HTMLResponse:
    """An authorization request that cannot even be sent back to the application (an
    unknown client, a redirect URI it did not register): said here, never redirected."""
    return _page("Authorization error", f"<h1>Authorization error</h1><p>{html.escape(message)}</p>", status)
