"""Who a token belongs to: JWTs checked here, other tokens by the identity manager, and both
remembered.

* **A JWT** (``eyJ...``) is checked locally (``jwtcheck``: the identity manager's JWKS, or
  the application's HS256 secret) and its claims, Keyrock's user object, are the caller.
  Kept until its ``exp`` (at most ``cache_time``), whatever the policy version: its claims
  cannot change. No call to the identity manager, but one JWKS fetch on the first JWT and
  after a key rotation. A JWT that cannot be checked here (HS256 without the secret, no
  JWKS) goes the opaque way.
* **Any other token** is validated by ``GET /user`` and the answer kept ``cache_time``
  (Wilma's 300 s) *and* while the policy version holds (``freshness``): roles removed in
  the identity manager take effect within the freshness interval. A revoked token does not
  move the version (docs/security.md): it is refused once its answer leaves the cache.
* **Refusals are remembered too** (60 s at most): a token replayed after a 401 costs a
  dictionary lookup, not a signature check or a call to the identity manager.

The token must be issued to the PEP's application or a trusted one (``app_id``,
``trusted_apps``; none configured: any application of the identity manager). ``/user`` is
asked with ``app_id`` when there are no trusted applications (the identity manager then
refuses other applications' tokens itself), without it otherwise (checked here), as
Keyrock has trusted applications and our identity manager does not.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from ngsi.context import Identity

from .cache import Cache
from .caller import BadUserInfo, Caller, caller_from_user
from .freshness import Freshness
from .idm import IdMClient, UserAnswer
from .jwks import KeySource
from .jwtcheck import Expired, NotLocal, OtherApplication, Refused, UnknownKey, verify
from .replies import Refusal, expired, invalid, other_application, unavailable
from .settings import Settings
from .tokens import looks_like_jwt

log = logging.getLogger("waziup.security.pep")

REFUSAL_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class Authenticated:
    """A caller, and the ``/user`` answer that made it when one was asked now (the idm PDP
    reads its decision)."""

    caller: Caller
    answer: UserAnswer | None = None


class Authenticator:
    def __init__(
        self,
        settings: Settings,
        idm: IdMClient,
        freshness: Freshness,
        keys: KeySource,
        *,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.idm = idm
        self.freshness = freshness
        self.keys = keys
        self.now = now
        # what is read of the settings, taken out once rather than looked up on every token
        self.app_id = settings.app_id
        self.jwt_secret = settings.jwt_secret or None  # the application's HS256 secret, when given
        self.cache_time = float(settings.cache_time)
        self.audiences = frozenset((settings.app_id, *settings.trusted_apps)) if settings.app_id else None
        self.ask_app = bool(settings.app_id) and (not settings.trusted_apps or settings.pdp == "idm")
        self.jwts: Cache[Caller] = Cache(settings.max_entries)
        self.users: Cache[Caller] = Cache(settings.max_entries)
        self.refused: Cache[Refusal] = Cache(settings.max_entries)
        # JWTs this PEP cannot check itself (another app's HS256 secret): /user decides them,
        # and the local attempt (a few hundred µs of base64 and JSON) is not made again
        self.not_local: Cache[bool] = Cache(settings.max_entries)

    async def authenticate(self, token: str, params: dict[str, str] | None = None) -> Authenticated:
        """The caller of ``token``, or Refusal. ``params`` go with a ``/user`` call if one is
        made (the idm PDP's action and resource, the azf PDP's ``authzforce``)."""
        now = self.now()
        known = self.refused.get(token, now, 0)
        if known is not None:
            raise known
        if looks_like_jwt(token) and self.not_local.get(token, now, 0) is None:
            caller = self.jwts.get(token, now, 0)
            if caller is not None:
                return Authenticated(caller)
            try:
                return Authenticated(await self._jwt(token, now))
            except NotLocal:
                self.not_local.put(token, True, now + self.cache_time, None)
            except Refusal as refusal:
                self._refuse(token, refusal, now)
                raise
        epoch = await self.freshness.current()
        caller = self.users.get(token, now, epoch)
        if caller is not None:
            return Authenticated(caller)
        return await self.ask(token, params, now)

    def _refuse(self, token: str, refusal: Refusal, now: float) -> None:
        if refusal.status == 401 and refusal.lasting:
            self.refused.put(token, refusal, now + min(REFUSAL_SECONDS, self.cache_time), None)

    async def _jwt(self, token: str, now: float) -> Caller:
        keys, issuer = await self.keys.current()
        for attempt in (0, 1):
            try:
                claims = verify(token, keys=keys, secret=self.jwt_secret, issuer=issuer,
                                audiences=self.audiences, now=now)
                break
            except UnknownKey:
                if attempt == 0 and await self.keys.refetch():
                    keys, issuer = self.keys.keys, self.keys.issuer
                    continue
                log.info("JWT refused: unknown kid")
                # not remembered: a key the identity manager has just rotated in is known after the next refetch
                raise invalid(lasting=False) from None
            except Expired:
                raise expired() from None
            except OtherApplication:
                raise other_application() from None
            except Refused as exc:
                log.info("JWT refused: %s", exc)
                raise invalid() from None
        try:
            caller = caller_from_user(claims)
        except BadUserInfo as exc:
            log.info("JWT refused: %s", exc)
            raise invalid() from None
        exp = claims.get("exp")
        until = now + self.cache_time
        if isinstance(exp, (int, float)) and not isinstance(exp, bool):
            until = min(until, float(exp))
        self.jwts.put(token, caller, until, None)
        return caller

    async def ask(self, token: str, params: dict[str, str] | None = None, now: float | None = None) -> Authenticated:
        """``GET /user`` now (the cache is refreshed with the answer)."""
        now = self.now() if now is None else now
        query = dict(params or {})
        if self.ask_app:
            query["app_id"] = self.app_id
        answer = await self.idm.user(token, query)
        if answer.info is None:
            self.freshness.observe(answer.version)
            refusal = invalid()
            self._refuse(token, refusal, now)
            raise refusal
        try:
            caller = caller_from_user(answer.info)
        except BadUserInfo as exc:
            log.warning("the identity manager's user information is not Keyrock's: %s", exc)
            raise unavailable("The identity manager") from None
        if caller.identity.anonymous:  # a client's own token: Keyrock says {}
            if not self.ask_app:
                refusal = other_application()
                self._refuse(token, refusal, now)
                raise refusal
            caller = Caller(Identity(app_id=self.app_id), headers=(("X-App-Id", self.app_id),))
        elif self.audiences is not None and caller.identity.app_id not in self.audiences:
            refusal = other_application()
            self._refuse(token, refusal, now)
            raise refusal
        epoch = self.freshness.epoch_for(answer.version)
        if epoch is not None:
            self.users.put(token, caller, now + self.cache_time, epoch)
        return Authenticated(caller, answer)
