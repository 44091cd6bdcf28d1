"""The privacy policies and pseudonym keys a process holds, followed at the identity manager.

``GET /v1/privacy/export`` (security/idm/routes/privacy.py) gives the policies, the key
ring and the policy version; a background task asks for the version every
``policy_poll_ms`` and reads the export again when it moved, as the PEP's notification
filter follows the NGSI policies. One feed per identity manager in a process
(:func:`feed_for`), shared by the privacy guard and the notification filter, so a read and
a notification of the same moment use the same policies.

Until the first export has been read nothing is known: the guard waits for it (a few
milliseconds at start-up) and refuses the request when it cannot be had, and the filter
sends nothing; an export that fails to parse keeps the previous snapshot (the identity
manager validates every policy it stores, so that is a bug, and it is logged as one).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from security.pep.idm import IdMClient, IdMError

from .keys import KeyRing, KeyRingError
from .policy import PolicyError, parse_policies
from .release import Snapshot

log = logging.getLogger("waziup.privacy")


def parse_export(found: dict[str, Any]) -> Snapshot:
    """A snapshot from the export's JSON; PolicyError or KeyRingError when it is not one."""
    version = found.get("policy_version")
    policies_given = found.get("policies") or []
    if not policies_given and found.get("keys") is None:  # an identity manager without privacy (Keyrock)
        return Snapshot(None, (), KeyRing.generate())
    policies = parse_policies(policies_given)
    keys = KeyRing.from_dict(found["keys"])  # no keys: KeyError (each process would make its own)
    return Snapshot(version if isinstance(version, int) and not isinstance(version, bool) else None, policies, keys)


class PrivacyFeed:
    def __init__(self, idm: IdMClient, poll_seconds: float = 1.0) -> None:
        self.idm = idm
        self.poll = max(0.05, poll_seconds)
        self.snapshot: Snapshot | None = None
        self._first = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            try:
                self._task = asyncio.get_running_loop().create_task(self._follow())
            except RuntimeError:  # no loop yet: the next call starts it
                pass

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except BaseException:
                pass
            self._task = None

    async def current(self, wait: float = 5.0) -> Snapshot | None:
        """The snapshot, waiting up to ``wait`` seconds for the first one."""
        self.start()
        if self.snapshot is None:
            try:
                await asyncio.wait_for(self._first.wait(), wait)
            except TimeoutError:
                return None
        return self.snapshot

    async def refresh(self) -> None:
        """Read the export now (tests, and the first read)."""
        try:
            snapshot = parse_export(await self.idm.privacy_export())
        except (PolicyError, KeyRingError, KeyError, TypeError, ValueError) as exc:
            log.error("privacy: the identity manager's export does not parse, the previous one is kept: %s", exc)
            return
        if self.snapshot is None or snapshot.version is None or self.snapshot.version is None \
                or snapshot.version >= self.snapshot.version:
            self.snapshot = snapshot
        self._first.set()

    async def _follow(self) -> None:
        while True:
            try:
                version = await self.idm.policy_version()
                if self.snapshot is None or version is None or version != self.snapshot.version:
                    await self.refresh()
            except (IdMError, OSError) as exc:
                log.warning("privacy: the policies could not be read: %s", exc)
            except Exception:
                log.exception("privacy: the policies could not be read")
            await asyncio.sleep(self.poll)


class GivenFeed(PrivacyFeed):
    """A feed whose snapshot is given, not followed: for benches and tests, where the
    policies come from the caller instead of an identity manager."""

    def __init__(self, snapshot: Snapshot | None) -> None:
        super().__init__(idm=None, poll_seconds=1.0)  # type: ignore[arg-type]
        self.snapshot = snapshot
        if snapshot is not None:
            self._first.set()

    def start(self) -> None:
        return


_FEEDS: dict[str, PrivacyFeed] = {}


def feed_for(idm: IdMClient, poll_seconds: float) -> PrivacyFeed:
    """The process's feed for this identity manager (the first caller's client is used)."""
    key = idm.base_url
    if key not in _FEEDS:
        _FEEDS[key] = PrivacyFeed(idm, poll_seconds)
    return _FEEDS[key]
