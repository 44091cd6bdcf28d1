"""One consumer's way out: the :class:`ngsi.release.Release` a privacy guard puts on a
request's context, and the notifier's filter uses for a subscription's owner.

It is built per request (or per subscription owner and policy version) from a
:class:`Snapshot` of the policies and keys, and the identities of the caller
(:func:`consumers_of`). For each entity it picks the policy that applies (``select``:
the caller's identities, the entity's tenant, service path and type) and runs the one
engine on it; an entity no policy covers leaves as it is. The policy's own consumer names
the pseudonyms and the budget, so every member of an organization with an organization
policy sees the same pseudonyms and spends the same budget.

History answers are checked first (``history_query_refusal``: a policy may allow
aggregates only), then charged (the noised attributes' epsilon, once per policy and
query, to the budget of the policy's consumer), and only then transformed: an answer
that is refused costs nothing and leaks nothing. CSV rows get k-anonymity per policy:
a *record* is one entity at one instant, its quasi-identifiers are the values of the
named attributes at that instant (``TimeInstant`` is the instant itself), and the rows
of every record whose quasi-identifiers fewer than ``k`` records share are suppressed.
"""

from __future__ import annotations

import random
import os
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ngsi.context import Identity
from ngsi.release import Block, Refused

from .engine import INDEX_ATTRIBUTE, apply, apply_block, history_query_refusal
from .keys import KeyRing
from .policy import Consumer, Policy, select
from .stored import apply_stored

# (the policy's consumer key, the policy id, epsilon) -> granted
Spend = Callable[[str, str, float], Awaitable[bool]]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The policies and pseudonym keys as read at one policy version."""

    version: int | None
    policies: tuple[Policy, ...]
    keys: KeyRing

    def concerns(self, consumers: Iterable[Consumer]) -> bool:
        """True when some policy could apply to a caller with these identities."""
        mine = set(consumers)
        return any(p.consumer.kind == "public" or p.consumer in mine for p in self.policies)


def trusted_ids(environ: Mapping[str, str] | None = None) -> frozenset[str]:
    """``WAZIUP_PRIVACY_TRUSTED``: user ids (comma-separated) that get data as it is, the
    platform's own service accounts (``waziup run -auth`` sets it): policies are for
    consumers, and the services that serve users (the WAZIUP API) answer them themselves."""
    text = (os.environ if environ is None else environ).get("WAZIUP_PRIVACY_TRUSTED", "")
    return frozenset(item.strip() for item in text.split(",") if item.strip())


def consumers_of(identity: Identity | None = None, *, user_id: str = "", app_id: str = "",
                 organizations: Iterable[str] = ()) -> tuple[Consumer, ...]:
    """A caller's identities as policy consumers: the user (by id), the application and
    the organizations. ``public`` policies apply to everyone without being named here."""
    if identity is not None:
        user_id, app_id, organizations = identity.user_id, identity.app_id, identity.organizations
    found = [Consumer("user", user_id)] if user_id else []
    if app_id:
        found.append(Consumer("application", app_id))
    found.extend(Consumer("organization", o) for o in organizations if o)
    return tuple(found)


@dataclass
class ConsumerRelease:
    """The release of one caller (see the module docstring)."""

    snapshot: Snapshot
    consumers: tuple[Consumer, ...]
    spend: Spend | None = None
    rng: random.Random | None = None
    _chosen: dict[tuple[str, str, str], Policy | None] = field(default_factory=dict, repr=False)
    _released: dict[str, Policy] = field(default_factory=dict, repr=False)  # released entity id -> its policy

    def policy(self, tenant: str, service_path: str, entity_type: str) -> Policy | None:
        key = (tenant, service_path, entity_type)
        if key not in self._chosen:
            self._chosen[key] = select(self.snapshot.policies, self.consumers, tenant, service_path, entity_type)
        return self._chosen[key]

    # -- entities (broker reads, notifications) ------------------------------------------------

    def entity(self, tenant: str, entity: dict[str, Any]) -> dict[str, Any]:
        policy = self.policy(tenant, entity.get("servicePath") or "/", entity.get("type") or "")
        if policy is None:
            return entity
        return apply_stored(policy, entity, keys=self.snapshot.keys, consumer=policy.consumer, rng=self.rng)

    def normalized(self, tenant: str, service_path: str, entity: dict[str, Any], *,
                   key_values: bool = False) -> dict[str, Any]:
        """An NGSI-v2 entity as an API renders it (normalized, or keyValues), for services
        that read the broker with their own account and answer users themselves (the
        WAZIUP API)."""
        policy = self.policy(tenant, service_path or "/", str(entity.get("type") or ""))
        if policy is None:
            return entity
        return apply(policy, entity, keys=self.snapshot.keys, consumer=policy.consumer, rng=self.rng,
                     key_values=key_values)

    # -- history ----------------------------------------------------------------------------

    async def history(self, tenant: str, blocks: list[Block], *, aggr_method: str | None,
                      aggr_period: str | None) -> list[Block]:
        chosen = [(block, self.policy(tenant, block.service_path or "/", block.entity_type)) for block in blocks]
        costs: dict[str, tuple[Policy, set[str]]] = {}
        for block, policy in chosen:
            if policy is None:
                continue
            reason = history_query_refusal(policy, aggr_method, aggr_period)
            if reason is not None:
                raise Refused(reason)
            costs.setdefault(policy.id, (policy, set()))[1].update(block.values)
        await self._charge(costs.values())
        out: list[Block] = []
        for block, policy in chosen:
            if policy is None:
                out.append(block)
                continue
            new_id, index, values = apply_block(policy, block.entity_id, block.index, block.values, block.attr_types,
                                                keys=self.snapshot.keys, consumer=policy.consumer, rng=self.rng)
            self._released[new_id] = policy
            out.append(Block(new_id, block.entity_type, block.service_path, index, values,
                             {n: t for n, t in block.attr_types.items() if n in values}))
        return out

    async def _charge(self, costs: Iterable[tuple[Policy, set[str]]]) -> None:
        for policy, attrs in costs:
            epsilon = policy.epsilon_of(attrs)
            if epsilon <= 0:
                continue
            if self.spend is None or not await self.spend(policy.consumer.key, policy.id, epsilon):
                raise Refused(f"the privacy budget of {policy.consumer.key} under policy {policy.id} is spent "
                              f"for this period (this answer costs epsilon {epsilon:g})")

    def table(self, tenant: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        by_policy: dict[str, tuple[Policy, list[int]]] = {}
        for number, row in enumerate(rows):
            policy = self._released.get(str(row.get("entityId")))
            if policy is not None and policy.k_anonymity is not None:
                by_policy.setdefault(policy.id, (policy, []))[1].append(number)
        suppressed: set[int] = set()
        for policy, numbers in by_policy.values():
            suppressed.update(_small_records(rows, numbers, policy))
        return [row for number, row in enumerate(rows) if number not in suppressed]


def _small_records(rows: list[dict[str, Any]], numbers: list[int], policy: Policy) -> set[int]:
    """The row numbers of the records (entity, instant) whose quasi-identifiers are shared
    by fewer than k records."""
    rule = policy.k_anonymity
    assert rule is not None
    records: dict[tuple[Any, Any], list[int]] = {}
    values: dict[tuple[Any, Any], dict[str, Any]] = {}
    for number in numbers:
        row = rows[number]
        record = (row.get("entityId"), row.get("index"))
        records.setdefault(record, []).append(number)
        values.setdefault(record, {})[str(row.get("attrName"))] = row.get("value")
    groups: dict[tuple[str, ...], list[tuple[Any, Any]]] = {}
    for record, named in values.items():
        key = tuple(repr(record[1] if q == INDEX_ATTRIBUTE else named.get(q)) for q in rule.quasi_identifiers)
        groups.setdefault(key, []).append(record)
    small: set[int] = set()
    for members in groups.values():
        if len(members) < rule.k:
            for record in members:
                small.update(records[record])
    return small
