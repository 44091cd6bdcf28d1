"""The identity manager's domain layer: logins, tokens, signing keys, roles of a user.

Routes call this (and the store) and render; the OAuth2 protocol itself is authlib's
(``oauth.py``). Time comes from the injected ``clock`` only, so that expiry, lockout
and key rotation are tested without sleeping.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import jwt as pyjwt

from security.audit.log import AuditLog

from .config import Config
from .credentials import digest, hash_password, needs_upgrade, new_token, verify_password
from .keys import InvalidJWT, KeyRing, looks_like_jwt, new_key
from .lockout import Lockout
from .model import (
    ACCESS,
    API,
    PERMANENT,
    Application,
    Permission,
    SigningKey,
    Token,
    User,
)
from .store import IdmStore
from .userinfo import Grants, grants, user_object

log = logging.getLogger("waziup.idm")

Clock = Callable[[], float]


@dataclass(frozen=True)
class LoginResult:
    """``user`` when the password is right (and the account enabled); ``locked``: seconds
    the login stays locked (the password was not checked)."""

    user: User | None
    locked: float = 0.0


@dataclass(frozen=True)
class Resolved:
    """An access token found live, with its user (None for a client's own token)."""

    token: Token
    user: User | None
    claims: dict[str, Any] | None = None  # a JWT's


class IdentityService:
    def __init__(self, store: IdmStore, config: Config, clock: Clock) -> None:
        self.audit: AuditLog | None = None  # the audit trail, given by the app
        self.store = store
        self.config = config
        self.clock = clock
        self.keyring = KeyRing()
        seconds = float(config.lockout_seconds)
        self.accounts = Lockout(config.lockout_attempts, seconds, seconds)
        self.addresses = Lockout(config.lockout_address_attempts, seconds, seconds)
        self._key_lock = asyncio.Lock()

    def now(self) -> float:
        return self.clock()

    # -- signing keys -----------------------------------------------------------------------
    async def load_keys(self) -> None:
        self.keyring.replace(await self.store.list_keys())

    async def signing_key(self) -> SigningKey:
        """The key that signs now: a new one when there is none or the active one is older
        than the rotation period (the old one retired, published while its tokens live)."""
        active = self.keyring.active()
        if active is not None and self.now() - active.created_at < self.config.key_rotation:
            return active
        async with self._key_lock:
            await self.load_keys()  # another process may have rotated
            active = self.keyring.active()
            if active is None or self.now() - active.created_at >= self.config.key_rotation:
                active = await self.rotate_key()
            return active

    async def rotate_key(self) -> SigningKey:
        now = self.now()
        key = await asyncio.to_thread(new_key, self.config.signing_algorithm, now)
        old = self.keyring.active()
        await self.store.save_key(key)
        if old is not None:
            await self.store.retire_key(old.kid, now)
        for expired in self.keyring.expired(now):
            await self.store.delete_key(expired.kid)
        await self.load_keys()
        log.info("signing key %s (%s) replaces %s", key.kid, key.alg, old.kid if old else "none")
        return key

    async def key_signed(self, kid: str, until: float | None) -> None:
        """Record that ``kid`` signed a token living until ``until`` (None: forever)."""
        until = PERMANENT if until is None else until
        key = next((k for k in self.keyring.keys if k.kid == kid), None)
        if key is not None and key.signed_until >= until:
            return
        await self.store.extend_key(kid, until)
        await self.load_keys()

    def jwks(self) -> dict[str, Any]:
        return self.keyring.jwks(self.now())

    # -- logins -----------------------------------------------------------------------------
    async def login(self, login: str, password: str, address: str) -> LoginResult:
        """Check a login and password, counting failures per account and per address."""
        now = self.now()
        user = await self.store.find_user(login) if login else None
        account = "user:" + (user.id if user is not None else login.lower())
        where = "addr:" + address
        locked = max(self.accounts.locked(account, now), self.addresses.locked(where, now))
        who = user.id if user is not None else login
        if locked:
            log.warning("login refused: locked for %.0f s (account or address %s)", locked, address)
            await self._audit(who, "signin.failed", address, f"locked for {locked:.0f} s")
            return LoginResult(None, locked)
        ok = await asyncio.to_thread(verify_password, user.password_hash if user is not None else None, password)
        if ok and user is not None and user.enabled:
            self.accounts.succeed(account)
            await self._audit(who, "signin", address, "password")
            return LoginResult(await self._upgraded(user, password))
        if ok and user is not None:  # the right password of a disabled account: not a guess
            await self._audit(who, "signin.failed", address, "the account is disabled")
            return LoginResult(None)
        locks = [self.accounts.fail(account, now), self.addresses.fail(where, now)]
        log.warning("failed login from %s%s", address, ": now locked" if any(locks) else "")
        await self._audit(who, "signin.failed", address,
                          ("no such account" if user is None else "wrong password") + (", now locked" if any(locks) else ""))
        return LoginResult(None)

    async def _audit(self, actor: str, action: str, address: str, reason: str) -> None:
        """A sign-in's event; the password is never part of it."""
        await self.audit_event(actor, action, source=address, reason=reason,
                               decision="permit" if action == "signin" else "deny")

    async def audit_event(self, actor: str, action: str, *, actor_kind: str = "user", source: str = "",
                          target: str = "", decision: str = "", reason: str = "",
                          details: Mapping[str, Any] | None = None) -> None:
        """One event of the audit trail (``security/audit``), when the service has one.

        Fail-open (``AuditLog.record`` logs and counts a lost record): a change is never
        refused because its record could not be written. Never pass a secret (a token, a
        password, a key): the trail is read by every admin."""
        if self.audit is not None:
            await self.audit.record(actor=actor, action=action, actor_kind=actor_kind, source=source, target=target,
                                    decision=decision, reason=reason, details=details)

    async def _upgraded(self, user: User, password: str) -> User:
        """The user, their password re-hashed with argon2id when the hash kept is an imported
        (Keycloak PBKDF2) or outdated one: the right password is known only now."""
        if not needs_upgrade(user.password_hash):
            return user
        upgraded = user.replace(password_hash=await asyncio.to_thread(hash_password, password))
        if not await self.store.upgrade_password_hash(user.id, user.password_hash, upgraded.password_hash):
            return user  # changed meanwhile (a new password): that one stands
        log.info("password hash of user %s upgraded to argon2id", user.id)
        return upgraded

    # -- what a user holds in an application ----------------------------------------------
    async def grants_of(self, user_id: str, app_id: str) -> Grants:
        memberships = await self.store.memberships(user_id=user_id)
        org_ids = {m.organization_id for m in memberships}
        org_roles = [a for a in await self.store.organization_roles(app_id=app_id) if a.organization_id in org_ids]
        return grants(await self.store.user_roles(app_id=app_id, user_id=user_id), memberships, org_roles)

    async def user_object(self, user: User, app_id: str, *, held: Grants | None = None, decision: str = "") -> dict[str, Any]:
        held = held if held is not None else await self.grants_of(user.id, app_id)
        roles = {r.id: r for r in await self.store.roles.in_app(app_id)}
        organizations = {}
        for org_id, _ in held.organizations:
            org = await self.store.get_organization(org_id)
            if org is not None:
                organizations[org_id] = org
        return user_object(user, app_id, held, roles, organizations, decision=decision)

    async def permissions(self, app_id: str, role_ids: list[str]) -> list[Permission]:
        """The application's own permissions of the roles (internal ones left out)."""
        return [p for p in await self.store.permissions_of_roles(role_ids) if p.app_id == app_id and not p.is_internal]

    async def internal_permissions(self, user: User, app_id: str) -> set[str]:
        """Keyrock's internal permission ids the user holds in the application (all for an admin)."""
        if user.admin:
            return {"1", "2", "3", "4", "5", "6"}
        held = await self.grants_of(user.id, app_id)
        return {p.id for p in await self.store.permissions_of_roles(held.all_role_ids()) if p.is_internal}

    # -- tokens -----------------------------------------------------------------------------
    async def resolve_access(self, value: str) -> Resolved | None:
        """A live access token (opaque or JWT) and its user, or None. A JWT must also be
        one this identity manager recorded and has not revoked."""
        if not value or len(value) > 16 * 1024:
            return None
        claims = None
        if looks_like_jwt(value):
            claims = await self.verify_jwt(value)
            if claims is None:
                return None
        token = await self.store.get_token(digest(value))
        if token is None or token.kind != ACCESS or not token.live(self.now()):
            return None
        if claims is not None and claims.get("aud") != token.client_id:
            return None
        user = None
        if token.user_id is not None:
            user = await self.store.get_user(token.user_id)
            if user is None or not user.enabled:
                return None
        if token.client_id is not None and await self.store.get_application(token.client_id) is None:
            return None
        return Resolved(token, user, claims)

    async def verify_jwt(self, value: str, audience: str | None = None) -> dict[str, Any] | None:
        app: Application | None = None
        try:
            unverified = pyjwt.decode(value, options={"verify_signature": False})
            named = unverified.get("app_id") or unverified.get("aud")
            if isinstance(named, str):
                app = await self.store.get_application(named)
        except (pyjwt.PyJWTError, ValueError, TypeError):
            return None

        def secret(app_id: str) -> str | None:
            if app is not None and app.id == app_id and app.jwt_algorithm == "HS256":
                return app.jwt_secret
            return None

        try:
            return self.keyring.verify(value, now=self.now(), issuer=self.config.issuer_url, audience=audience,
                                       app_secret=secret)
        except InvalidJWT as exc:
            log.info("JWT refused: %s", exc)
            return None

    async def issue_api_token(self, user: User) -> tuple[str, float]:
        value = new_token()
        now = self.now()
        expires = now + self.config.api_lifetime
        await self.store.save_token(Token(digest(value), API, None, user.id, "", now, expires))
        return value, expires

    async def api_token(self, value: str | None) -> tuple[Token, User] | None:
        """The live /v1 token ``value`` and its (enabled) user."""
        if not value or len(value) > 1024:
            return None
        token = await self.store.get_token(digest(value))
        if token is None or token.kind != API or not token.live(self.now()) or token.user_id is None:
            return None
        user = await self.store.get_user(token.user_id)
        if user is None or not user.enabled:
            return None
        return token, user
