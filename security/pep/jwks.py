"""The identity manager's signing keys and issuer, as local JWT checks need them.

Fetched on the first JWT (not at start-up: the guard factory runs before any event loop,
and the identity manager may start after the service), kept, and fetched again only when a
token names a ``kid`` not among them (the identity manager rotated its key), at most once
per ``refetch`` seconds: a flood of tokens with made-up kids costs the identity manager one
call per period, not one per token. A failed fetch is retried no sooner either.

The issuer is the configured one (``WAZIUP_PEP_ISSUER``), else the ``issuer`` of the
identity manager's discovery document. Without a JWKS or an issuer (Keyrock publishes
neither) asymmetric JWTs are checked by the identity manager (``jwtcheck.NotLocal``).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Mapping

from .idm import IdMClient, IdMError
from .jwtcheck import Key, keys_from_jwks

log = logging.getLogger("waziup.security.pep")


class KeySource:
    def __init__(
        self,
        idm: IdMClient,
        *,
        issuer: str = "",
        refetch: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.idm = idm
        self.configured_issuer = issuer or None
        self.issuer: str | None = self.configured_issuer
        self.keys: Mapping[str, Key] | None = None
        self.refetch_interval = refetch
        self.clock = clock
        self.fetched = -math.inf  # clock() of the last attempt
        self.loaded = False
        self._lock = asyncio.Lock()

    async def current(self) -> tuple[Mapping[str, Key] | None, str | None]:
        """(keys, issuer), fetched on first use."""
        if not self.loaded:
            await self._fetch(force=False)
        return self.keys, self.issuer

    async def refetch(self) -> bool:
        """Fetch again if the last attempt is old enough; True if the keys were fetched."""
        return await self._fetch(force=True)

    async def _fetch(self, *, force: bool) -> bool:
        async with self._lock:
            if self.loaded and not force:
                return False
            if self.clock() - self.fetched < self.refetch_interval:
                if not self.loaded:
                    raise IdMError("jwks: the identity manager's keys could not be fetched recently")
                return False
            self.fetched = self.clock()
            if self.configured_issuer is None:
                self.issuer = await self.idm.issuer()
            document = await self.idm.jwks()
            self.keys = None if document is None else keys_from_jwks(document)
            self.loaded = True
            shown = "none published" if self.keys is None else ", ".join(sorted(self.keys))
            log.info("identity manager keys: %s", shown)
            return True
