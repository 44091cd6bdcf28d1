"""Privacy policies (issue 18, docs/privacy.md) on the device data the WAZIUP API answers.

The API reads the broker and the history with its own account, which the platform trusts
(``WAZIUP_PRIVACY_TRUSTED``), and answers its users itself: so it applies each caller's
release itself, as the privacy guard does on the broker's and the history's requests.

* one :class:`PrivacyFeed` per API (built at start-up when the API has the identity
  manager and its admin account, ``-idmURL`` and ``-adminUser``; the export is for
  admins), following ``GET /v1/privacy/export``;
* per request, the caller's :class:`ConsumerRelease`: the user (by id) and the API's
  application (``-clientId``: the application its users' tokens are issued to), the
  ``public`` policies for everyone, the guest included. The administrator and the
  trusted ids get data as it is, and so does a device's owner (a policy is about a
  consumer; ``owns``);
* devices: the NGSI entity is released (:meth:`ConsumerRelease.normalized`, the API's
  tenant, service path ``/``) *before* it becomes a WAZIUP device, so a dropped sensor is
  not listed, a generalized ``location`` is the cell's centre, and so on;
* datapoints: the history's answer per device is an :class:`ngsi.release.Block` (the
  index is ``date_received``, which goes through the steps named for ``TimeInstant``), so
  the aggregation rule, the budget and the steps are the history service's own. The
  posted ``timestamp`` (the companion column ``<sensor>#timestamp``) is released as the
  sensor's ``timestamp`` metadatum is in the device: dropped where an attribute
  ``timestamp`` would be, through the steps the policy names for ``timestamp``, else as
  is. A refusal (aggregates only: the WAZIUP API asks none; a spent budget) is a 403.

Fails closed: while the feed has no snapshot (the identity manager cannot be read), a read
that would give a non-owner device data answers 503 rather than raw data.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ngsi.client.http11 import HTTPClient
from ngsi.release import Block, Refused
from security.pep.idm import IdMClient
from security.privacy.engine import DROPPED, Context, transform_value
from security.privacy.feed import PrivacyFeed
from security.privacy.guard import idm_spend
from security.privacy.policy import Policy
from security.privacy.release import ConsumerRelease, Spend, consumers_of, trusted_ids

from .caller import Caller
from .errors import ApiError, forbidden
from .permissions import owns

log = logging.getLogger("waziup.api.privacy")
POLL_SECONDS = 1.0  # as the PEP's -policyPoll
STAMP = "#timestamp"  # history.STAMP (not imported: history imports nothing of this)
_RNG = random.SystemRandom()


class ApiPrivacy:
    def __init__(self, feed: PrivacyFeed, *, tenant: str, service_path: str = "/", app_id: str = "",
                 spend: Spend | None = None, trusted: frozenset[str] = frozenset(), wait: float = 5.0,
                 owns_idm: bool = False) -> None:
        self.feed = feed
        self.tenant = tenant
        self.service_path = service_path
        self.app_id = app_id
        self.spend = spend
        self.trusted = trusted
        self.wait = wait  # how long a read waits for the first snapshot
        self._owns_idm = owns_idm

    @classmethod
    def from_config(cls, config: Any, ssl_context: Any = None) -> ApiPrivacy | None:
        """The API's privacy when it has the identity manager and an admin account; None otherwise."""
        if not config.idm_url or not config.admin_user:
            return None
        idm = IdMClient(config.idm_url, transport=HTTPClient(max_per_host=8, ssl_context=ssl_context), timeout=10.0,
                        username=config.admin_user, password=config.admin_password)
        log.info("privacy policies applied to device data: identity manager %s", config.idm_url)
        return cls(PrivacyFeed(idm, POLL_SECONDS), tenant=config.service, app_id=config.client_id,
                   spend=idm_spend(idm), trusted=trusted_ids(), owns_idm=True)

    def start(self) -> None:
        self.feed.start()

    async def close(self) -> None:
        await self.feed.stop()
        if self._owns_idm:
            await self.feed.idm.aclose()

    # -- one caller ------------------------------------------------------------------------------

    async def release(self, caller: Caller) -> ConsumerRelease | None:
        """The caller's release; None when the caller gets data as it is (the administrator,
        a trusted id, no policy concerns them). 503 while the policies are unknown."""
        if caller.admin or (caller.user_id and caller.user_id in self.trusted):
            return None
        snapshot = await self.feed.current(self.wait)
        if snapshot is None:
            raise ApiError(503, "the privacy policies cannot be read from the identity manager: "
                                "device data is not served until they can")
        if not snapshot.policies:
            return None
        consumers = consumers_of(user_id=caller.user_id, app_id=self.app_id if caller.user_id else "")
        if not snapshot.concerns(consumers):
            return None
        return ConsumerRelease(snapshot, consumers, self.spend)

    async def entities(self, caller: Caller, entities: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Device entities (normalized, as read from the broker) as the caller may see them,
        in the same order; the caller's own devices as they are."""
        out: list[dict[str, Any]] = []
        release: ConsumerRelease | None = None
        asked = False
        for entity in entities:
            if owns(caller, {"owner": _owner(entity)}):
                out.append(entity)
                continue
            if not asked:
                release, asked = await self.release(caller), True
            out.append(entity if release is None else release.normalized(self.tenant, self.service_path, entity))
        return out

    async def entity(self, caller: Caller, entity: dict[str, Any]) -> dict[str, Any]:
        return (await self.entities(caller, [entity]))[0]

    async def history(self, caller: Caller, blocks: Sequence[Block], owned: Iterable[str]) -> list[Block]:
        """History blocks (one per device, raw ids) as the caller may have them, in the same
        order; the blocks of ``owned`` devices as they are. 403 when refused."""
        mine = set(owned)
        theirs = [n for n, block in enumerate(blocks) if block.entity_id not in mine]
        out = list(blocks)
        if not theirs:
            return out
        release = await self.release(caller)
        if release is None:
            return out
        stamps: list[tuple[Policy | None, dict[str, list[Any]]]] = []
        bare: list[Block] = []
        for n in theirs:
            block = blocks[n]
            stamps.append((release.policy(self.tenant, block.service_path or "/", block.entity_type),
                           {k: v for k, v in block.values.items() if k.endswith(STAMP)}))
            bare.append(Block(block.entity_id, block.entity_type, block.service_path, list(block.index),
                              {k: v for k, v in block.values.items() if not k.endswith(STAMP)},
                              {k: t for k, t in block.attr_types.items() if not k.endswith(STAMP)}))
        try:
            released = await release.history(self.tenant, bare, aggr_method=None, aggr_period=None)
        except Refused as exc:
            raise forbidden(str(exc)) from None
        for n, block, (policy, columns) in zip(theirs, released, stamps, strict=True):
            if policy is not None:
                columns = _stamps(policy, columns, release, block.values)
            block.values.update(columns)
            out[n] = block
        return out


def _owner(entity: Mapping[str, Any]) -> Any:
    attr = entity.get("owner")
    return attr.get("value") if isinstance(attr, Mapping) else attr


def _stamps(policy: Policy, columns: dict[str, list[Any]], release: ConsumerRelease,
            kept: Mapping[str, Any]) -> dict[str, list[Any]]:
    """The ``<sensor>#timestamp`` columns released as the ``timestamp`` metadatum of the
    sensor would be (engine: metadata), those of released sensors only."""
    if policy.drops("timestamp"):
        return {}
    steps = policy.named_steps("timestamp")
    out: dict[str, list[Any]] = {}
    ctx = Context(release.snapshot.keys, policy.consumer, release.rng or _RNG)
    for name, column in columns.items():
        if name[: -len(STAMP)] not in kept:
            continue
        if not steps:
            out[name] = column
            continue
        values = (transform_value(steps, value, ctx) for value in column)
        out[name] = [None if value is DROPPED else value for value in values]
    return out
