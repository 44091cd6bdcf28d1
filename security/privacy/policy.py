"""Privacy policy documents: validated with jsonschema (``schema.json``), then frozen.

A policy says what one *consumer* (a user, an organization, an application, a
subscription, or ``public``: anyone, signed in or not) sees of the entities of one
tenant, service path and entity type: a list of transforms per attribute, applied in
order, ``"*"`` for every attribute the policy does not name (an empty list: as is).
docs/privacy.md has the format and examples.

:func:`select` picks the policy that applies to a release. Among the policies whose
consumer is one of the caller's, whose tenant (or ``*``) is the entity's, whose service
path covers the entity's and whose entity type (or none) is the entity's, the most
specific wins, compared in this order:

1. the consumer: subscription, then application, then user, then organization, then
   public (the narrower the principal, the more deliberate the policy);
2. an exact entity type over any type;
3. the service path: an exact path over a subtree, a deeper subtree over a shallower one;
4. an exact tenant over ``*``.

Two policies equal on all four are a tie that :func:`conflicts` reports; ``select``
breaks it by the smaller id, so that the answer never depends on storage order.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from types import MappingProxyType
from typing import Any, Final, Literal

import jsonschema  # type: ignore[import-untyped]

from .periods import Period, parse_period

KINDS: Final = ("subscription", "application", "user", "organization", "public")
ANY: Final = "*"

SCHEMA: Final[dict[str, Any]] = json.loads(resources.files(__package__).joinpath("schema.json").read_text())
_VALIDATOR: Final = jsonschema.Draft202012Validator(SCHEMA)


class PolicyError(ValueError):
    """A policy document that is not valid; the message starts with the field at fault."""


# -- values ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Consumer:
    """Who data is released to. ``key`` names it in pseudonyms and the budget ledger."""

    kind: str
    id: str = ""

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.id}"


PUBLIC: Final = Consumer("public")


@dataclass(frozen=True, slots=True)
class Drop:
    transform: Literal["drop"] = "drop"


@dataclass(frozen=True, slots=True)
class Pseudonymize:
    transform: Literal["pseudonymize"] = "pseudonymize"


@dataclass(frozen=True, slots=True)
class Generalize:
    """Exactly one of the four precisions is set."""

    geohash: int | None = None
    grid: float | None = None
    period: Period | None = None
    bucket: float | None = None
    transform: Literal["generalize"] = "generalize"


@dataclass(frozen=True, slots=True)
class Noise:
    epsilon: float
    sensitivity: float
    transform: Literal["noise"] = "noise"

    @property
    def scale(self) -> float:
        """The Laplace scale b = sensitivity / epsilon."""
        return self.sensitivity / self.epsilon


Transform = Drop | Pseudonymize | Generalize | Noise
Steps = tuple[Transform, ...]


@dataclass(frozen=True, slots=True)
class KAnonymity:
    k: int
    quasi_identifiers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Aggregation:
    """History answers must be aggregates: ``aggrMethod`` one of ``methods``, over
    ``aggrPeriod`` ``period`` or a coarser one (any, or none, when ``period`` is None)."""

    methods: frozenset[str]
    period: str | None = None


@dataclass(frozen=True, slots=True)
class BudgetRule:
    epsilon: float
    period: Period


@dataclass(frozen=True, slots=True)
class Policy:
    """One policy; build it with :func:`parse_policy`."""

    id: str
    consumer: Consumer
    attributes: Mapping[str, Steps] = field(default_factory=dict)
    tenant: str = ANY
    service_path: tuple[str, bool] = ("/", True)  # (path, subtree), as ngsi.servicepath
    entity_type: str = ANY
    pseudonymize_ids: bool = False
    budget: BudgetRule | None = None
    k_anonymity: KAnonymity | None = None
    aggregation: Aggregation | None = None
    description: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "attributes", MappingProxyType(dict(self.attributes)))

    def __hash__(self) -> int:  # the mapping field is not hashable; the id and consumer suffice
        return hash((self.id, self.consumer))

    def steps(self, name: str) -> Steps:
        """The transforms of an attribute: its own, else those of ``*``, else none.

        References (type ``Relationship`` or a ``ref*`` name) of a policy that
        pseudonymizes ids are the engine's business: see ``engine``.
        """
        if name in self.attributes:
            return self.attributes[name]
        return self.attributes.get(ANY, ())

    def named_steps(self, name: str) -> Steps | None:
        """The transforms the policy names for ``name`` itself (metadata follow these)."""
        return self.attributes.get(name)

    def drops(self, name: str) -> bool:
        return any(isinstance(s, Drop) for s in self.steps(name))

    def epsilon_of(self, names: Iterable[str]) -> float:
        """What releasing these attributes once costs in epsilon: the sum of their
        ``noise`` steps (sequential composition), 0 when none is noised."""
        return sum(s.epsilon for n in dict.fromkeys(names) for s in self.steps(n) if isinstance(s, Noise))

    # -- matching --------------------------------------------------------------------------

    def covers(self, tenant: str, service_path: str, entity_type: str) -> bool:
        if self.tenant != ANY and self.tenant != tenant.lower():
            return False
        if self.entity_type != ANY and self.entity_type != entity_type:
            return False
        path, subtree = self.service_path
        if service_path == path:
            return True
        return subtree and (path == "/" or service_path.startswith(path + "/"))

    def specificity(self) -> tuple[int, int, int, int, int]:
        path, subtree = self.service_path
        depth = 0 if path == "/" else path.count("/")
        return (len(KINDS) - KINDS.index(self.consumer.kind), int(self.entity_type != ANY),
                int(not subtree), depth, int(self.tenant != ANY))


# -- reading ---------------------------------------------------------------------------------


def _where(path: Iterable[Any]) -> str:
    return "/".join(str(p) for p in path) or "(document)"


def _period(text: str, where: str) -> Period:
    try:
        return parse_period(text)
    except ValueError as exc:
        raise PolicyError(f"{where}: {exc}") from None


def _step(doc: Mapping[str, Any], where: str) -> Transform:
    kind = doc["transform"]
    if kind == "drop":
        return Drop()
    if kind == "pseudonymize":
        return Pseudonymize()
    if kind == "noise":
        return Noise(float(doc["epsilon"]), float(doc["sensitivity"]))
    if "period" in doc:
        return Generalize(period=_period(doc["period"], f"{where}/period"))
    if "geohash" in doc:
        return Generalize(geohash=int(doc["geohash"]))
    if "grid" in doc:
        return Generalize(grid=doc["grid"])
    return Generalize(bucket=doc["bucket"])


def _service_path(text: str) -> tuple[str, bool]:
    # ngsi.servicepath would do, but it raises the broker's BadRequest; the rules are
    # Orion's: absolute, components of [A-Za-z0-9_], "/#" at the end for a subtree.
    body, subtree = (text[:-2] or "/", True) if text.endswith("/#") else (text, False)
    if len(body) > 1 and body.endswith("/"):
        body = body[:-1]
    if body != "/":
        for component in body[1:].split("/"):
            if not component or not all(c.isascii() and (c.isalnum() or c == "_") for c in component):
                raise PolicyError(f"servicePath: {text!r} is not a service path (/a/b, /a/#, /#)")
    return body, subtree


def parse_policy(doc: Any) -> Policy:
    """A policy from its JSON value; PolicyError names the field at fault."""
    errors = list(_VALIDATOR.iter_errors(doc))
    if errors:
        error = jsonschema.exceptions.best_match(errors)
        message = error.message
        if error.validator in ("minProperties", "maxProperties") and error.instance.get("transform") == "generalize":
            message = "generalize takes exactly one of geohash, grid, period and bucket"
        raise PolicyError(f"{_where(error.absolute_path)}: {message}")
    attributes = {
        name: tuple(_step(step, f"attributes/{name}/{i}") for i, step in enumerate(steps))
        for name, steps in doc["attributes"].items()
    }
    budget = doc.get("budget")
    k = doc.get("kAnonymity")
    if isinstance(k, int):
        k = {"k": k}
    noised = any(isinstance(s, Noise) for steps in attributes.values() for s in steps)
    if noised and budget is None:
        raise PolicyError("budget: a policy that adds noise needs a budget, or repeated queries average the noise away")
    consumer = doc["consumer"]
    return Policy(
        id=doc["id"],
        consumer=Consumer(consumer["kind"], consumer.get("id", "")),
        attributes=attributes,
        tenant=doc.get("tenant", ANY).lower() if doc.get("tenant", ANY) != ANY else ANY,
        service_path=_service_path(doc.get("servicePath", "/#")),
        entity_type=doc.get("entityType", ANY),
        pseudonymize_ids="idTransform" in doc,
        budget=None if budget is None else BudgetRule(float(budget["epsilon"]), _period(budget["period"], "budget/period")),
        k_anonymity=None if k is None else KAnonymity(k["k"], tuple(k.get("quasiIdentifiers", ()))),
        aggregation=None if "aggregation" not in doc else Aggregation(
            frozenset(doc["aggregation"]["methods"]), doc["aggregation"].get("period")),
        description=doc.get("description", ""),
    )


def parse_policies(docs: Iterable[Any]) -> tuple[Policy, ...]:
    """Several policies; the error names the index of the one at fault; ids are unique."""
    out: list[Policy] = []
    seen: set[str] = set()
    for index, doc in enumerate(docs):
        try:
            policy = parse_policy(doc)
        except PolicyError as exc:
            raise PolicyError(f"{index}/{exc}") from None
        if policy.id in seen:
            raise PolicyError(f"{index}/id: {policy.id!r} is used twice")
        seen.add(policy.id)
        out.append(policy)
    return tuple(out)


# -- choosing --------------------------------------------------------------------------------


def _consumers(consumer: Consumer | Iterable[Consumer]) -> set[Consumer]:
    return {consumer} if isinstance(consumer, Consumer) else set(consumer)


def candidates(policies: Iterable[Policy], consumer: Consumer | Iterable[Consumer], tenant: str,
               service_path: str, entity_type: str) -> list[Policy]:
    """Every policy that applies, the most specific first (ties by id)."""
    who = _consumers(consumer)
    matching = [p for p in policies
                if (p.consumer in who or p.consumer.kind == "public") and p.covers(tenant, service_path, entity_type)]
    matching.sort(key=lambda p: p.id)
    matching.sort(key=Policy.specificity, reverse=True)
    return matching


def select(policies: Iterable[Policy], consumer: Consumer | Iterable[Consumer], tenant: str,
           service_path: str, entity_type: str) -> Policy | None:
    """The policy for releasing an entity (of ``entity_type`` at ``service_path`` in
    ``tenant``) to ``consumer`` (one, or all the caller is: the user, their
    organizations, the application), by the rule of the module docstring; None when
    no policy applies (the caller decides what that means: raw data for owners)."""
    found = candidates(policies, consumer, tenant, service_path, entity_type)
    return found[0] if found else None


def conflicts(policies: Iterable[Policy]) -> list[tuple[str, str]]:
    """Pairs of policies (ids) with the same consumer, tenant, path and type: only the
    smaller id of each pair ever applies, which an API should refuse to store."""
    seen: dict[tuple[Any, ...], str] = {}
    pairs: list[tuple[str, str]] = []
    for p in sorted(policies, key=lambda p: p.id):
        scope = (p.consumer, p.tenant, p.service_path, p.entity_type)
        if scope in seen:
            pairs.append((seen[scope], p.id))
        else:
            seen[scope] = p.id
    return pairs
