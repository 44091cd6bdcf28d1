"""The one transform engine: a policy applied to every shape data leaves the platform in.

Entities (NGSI-v2 normalized or keyValues), notification bodies, QuantumLeap answers and
CSV rows all go through :func:`transform_value`, so an attribute is treated the same
wherever it goes. The rules, beyond the policy's per-attribute steps:

* an attribute's ``previousValue`` metadatum gets the attribute's own steps, and a
  metadatum named like an attribute the policy names (``TimeInstant``, ``owner``) gets
  that attribute's steps; ``*`` reaches metadata only to drop them (a metadatum goes
  wherever an attribute of its name would be dropped), since a name the policy does not
  know may carry anything;
* a dropped attribute goes everywhere: the entity, the metadata, ``attrs`` name lists;
* when the policy pseudonymizes ids, references (type ``Relationship`` or a name
  ``ref`` + capital, as ``refDevice``) are pseudonymized too unless their steps already
  drop or pseudonymize them, so that a consumer can still join its own entities;
* in history answers the time index follows the steps named for ``TimeInstant``
  (QuantumLeap's default index attribute).

``rng`` is the noise source: tests pass a seeded ``random.Random``; left out, the
operating system's (``random.SystemRandom``), since a predictable source would let a
consumer subtract the noise.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from . import transforms as tf
from .keys import KeyRing
from .policy import Consumer, Drop, Generalize, Noise, Policy, Pseudonymize, Steps

INDEX_ATTRIBUTE = "TimeInstant"
AGGREGATION_PERIODS = ("second", "minute", "hour", "day", "month", "year")  # finest first
SYSTEM_RANDOM = random.SystemRandom()


@dataclass(frozen=True, slots=True)
class Context:
    """What a release needs besides the policy: the keys, the consumer, the noise."""

    keys: KeyRing
    consumer: Consumer
    rng: random.Random


class _Dropped:
    """The marker for a value a step dropped."""


DROPPED = _Dropped()


def pseudonym(value: Any, ctx: Context) -> Any:
    """Ids and lists of ids to pseudonyms; a null stays null (it names no one)."""
    if value is None:
        return None
    if isinstance(value, list):
        return [pseudonym(v, ctx) for v in value]
    return tf.pseudonymize(value, ctx.keys.current_key, ctx.consumer.key)


def _generalize(step: Generalize, value: Any) -> Any:
    if step.geohash is not None:
        return tf.generalize_geohash(value, step.geohash)
    if step.grid is not None:
        return tf.generalize_grid(value, step.grid)
    if step.period is not None:
        return tf.generalize_period(value, step.period)
    assert step.bucket is not None
    return tf.generalize_bucket(value, step.bucket)


def transform_value(steps: Steps, value: Any, ctx: Context) -> Any:
    """One value through the steps in order; ``DROPPED`` when a step drops it."""
    for step in steps:
        if isinstance(step, Drop):
            return DROPPED
        if isinstance(step, Pseudonymize):
            value = pseudonym(value, ctx)
        elif isinstance(step, Generalize):
            value = _generalize(step, value)
        elif isinstance(step, Noise):
            value = tf.noise(value, step.epsilon, step.sensitivity, ctx.rng)
    return value


def is_reference(name: str, attr_type: str | None = None) -> bool:
    """An attribute that holds other entities' ids (NGSI-v2's ``ref*`` convention)."""
    return attr_type == "Relationship" or (name.startswith("ref") and name[3:4].isupper())


def steps_of(policy: Policy, name: str, attr_type: str | None = None) -> Steps:
    """The steps an attribute goes through, references included (module docstring)."""
    steps = policy.steps(name)
    if policy.pseudonymize_ids and is_reference(name, attr_type):
        if not any(isinstance(s, (Drop, Pseudonymize)) for s in steps):
            steps = (*steps, Pseudonymize())
    return steps


def visible_names(policy: Policy, names: Iterable[str]) -> list[str]:
    """A list of attribute names (a notification's or subscription's ``attrs``) without
    the dropped ones."""
    return [n for n in names if not policy.drops(n)]


def _context(keys: KeyRing, consumer: Consumer, rng: random.Random | None) -> Context:
    return Context(keys, consumer, rng if rng is not None else SYSTEM_RANDOM)


# -- entities --------------------------------------------------------------------------------


def _metadata(policy: Policy, steps: Steps, metadata: Mapping[str, Any], ctx: Context) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for md_name, md in metadata.items():
        if policy.drops(md_name):
            continue
        md_steps = steps if md_name == "previousValue" else policy.named_steps(md_name)
        if md_steps is None or not isinstance(md, Mapping):
            out[md_name] = md
            continue
        value = transform_value(md_steps, md.get("value"), ctx)
        if value is not DROPPED:
            out[md_name] = {**md, "value": value}
    return out


def _normalized_attr(policy: Policy, name: str, attr: Any, ctx: Context) -> Any:
    if not isinstance(attr, Mapping):  # not normalized after all: treat as a bare value
        return transform_value(steps_of(policy, name), attr, ctx)
    steps = steps_of(policy, name, attr.get("type"))
    value = transform_value(steps, attr.get("value"), ctx)
    if value is DROPPED:
        return DROPPED
    out = {**attr, "value": value}
    if isinstance(attr.get("value"), list) and isinstance(value, str):
        out["type"] = "geo:point"  # a geo:line, geo:box or geo:polygon generalized to its cell
    if isinstance(attr.get("metadata"), Mapping):
        out["metadata"] = _metadata(policy, steps, attr["metadata"], ctx)
    return out


def _entity(policy: Policy, entity: Mapping[str, Any], ctx: Context, key_values: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, attr in entity.items():
        if name == "id":
            out[name] = pseudonym(attr, ctx) if policy.pseudonymize_ids else attr
        elif name == "type":
            out[name] = attr
        else:
            value = (transform_value(steps_of(policy, name), attr, ctx) if key_values
                     else _normalized_attr(policy, name, attr, ctx))
            if value is not DROPPED:
                out[name] = value
    return out


def apply(policy: Policy, entity: Mapping[str, Any], *, keys: KeyRing, consumer: Consumer,
          rng: random.Random | None = None, key_values: bool = False) -> dict[str, Any]:
    """The entity as ``consumer`` may see it (a new dict; the input is left alone)."""
    return _entity(policy, entity, _context(keys, consumer, rng), key_values)


# -- notifications ---------------------------------------------------------------------------


def apply_notification(policy: Policy, body: Any, *, keys: KeyRing, consumer: Consumer,
                       rng: random.Random | None = None, attrs_format: str = "normalized",
                       attrs: Sequence[str] | None = None) -> Any:
    """A notification body as ``consumer`` may receive it.

    ``attrs_format`` is the subscription's (``Ngsiv2-AttrsFormat``): ``normalized`` and
    ``keyValues`` bodies are ``{"subscriptionId", "data": [entity]}``, the simplified
    ones the bare entity; ``values`` bodies hold lists of values, whose names are the
    subscription's ``attrs`` in order, which must be given (ValueError otherwise: without
    names nothing can be told apart, and sending it raw is not an option). A body's own
    ``attrs`` list loses the dropped names.
    """
    ctx = _context(keys, consumer, rng)
    key_values = attrs_format in ("keyValues", "simplifiedKeyValues")
    if attrs_format in ("simplifiedNormalized", "simplifiedKeyValues"):
        return _entity(policy, body, ctx, key_values)
    out = dict(body)
    if attrs_format == "values":
        if attrs is None:
            raise ValueError("a notification in the values format needs its attribute names")
        out["data"] = [_values_row(policy, list(attrs), row, ctx) for row in body.get("data", [])]
    else:
        out["data"] = [_entity(policy, e, ctx, key_values) for e in body.get("data", [])]
    if isinstance(out.get("attrs"), list):
        out["attrs"] = visible_names(policy, out["attrs"])
    return out


def _values_row(policy: Policy, names: list[str], row: Sequence[Any], ctx: Context) -> list[Any]:
    kept: list[Any] = []
    for name, value in zip(names, row):
        value = transform_value(steps_of(policy, name), value, ctx)
        if value is not DROPPED:
            kept.append(value)
    return kept


# -- history ---------------------------------------------------------------------------------


_LISTS = ("attributes", "attrs", "types", "entities")


def _history(policy: Policy, node: Any, attr: str | None, ctx: Context, top: bool = False) -> Any:
    """One node of a QuantumLeap answer; ``attr`` is the attribute the enclosing node
    is about; ``DROPPED`` for a node about a dropped attribute (but the answer itself)."""
    if isinstance(node, list):
        items = [_history(policy, item, attr, ctx) for item in node]
        return [item for item in items if item is not DROPPED]
    if not isinstance(node, Mapping):
        return node
    name = node.get("attrName", attr)
    dropped = name is not None and policy.drops(name)
    if dropped and not top:
        return DROPPED
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "entityId":
            out[key] = pseudonym(value, ctx) if policy.pseudonymize_ids else value
        elif dropped and key in ("index", "values", *_LISTS):
            out[key] = []  # the answer about a dropped attribute: say nothing
        elif key in ("index", "lastSeen"):
            out[key] = _index(policy, value, ctx) if isinstance(value, list) else _one_instant(policy, value, ctx)
        elif key == "value" and name is not None:  # /v2/last
            out[key] = transform_value(steps_of(policy, name, node.get("attrType")), value, ctx)
        elif key in _LISTS or (key == "values" and _is_series_list(value)):
            out[key] = _history(policy, value, name, ctx)
        elif key == "values" and isinstance(value, list) and value:
            if name is None:
                raise ValueError("this answer does not name its attribute: pass attr=")
            out[key] = [transform_value(steps_of(policy, name), v, ctx) for v in value]
        else:
            out[key] = value
    return out


def _index(policy: Policy, index: list[Any], ctx: Context) -> list[Any]:
    steps = policy.named_steps(INDEX_ATTRIBUTE)
    if not steps:
        return index
    out = [transform_value(steps, t, ctx) for t in index]
    return [None if t is DROPPED else t for t in out]


def _is_series_list(values: Any) -> bool:
    return isinstance(values, list) and bool(values) and all(isinstance(v, Mapping) for v in values)


def _one_instant(policy: Policy, value: Any, ctx: Context) -> Any:
    steps = policy.named_steps(INDEX_ATTRIBUTE)
    if not steps:
        return value
    out = transform_value(steps, value, ctx)
    return None if out is DROPPED else out


def apply_history_series(policy: Policy, answer: Any, *, keys: KeyRing, consumer: Consumer,
                         rng: random.Random | None = None, attr: str | None = None) -> Any:
    """A QuantumLeap answer (analytics/history/render.py: any route's) as ``consumer``
    may see it. ``attr`` names the attribute of the routes whose answer does not
    (``/v2/entities/{id}/attrs/{attr}/value``, ``/v2/types/{type}/attrs/{attr}/value``).

    A dropped attribute disappears from the lists that hold it; the answers about that
    one attribute come back with an empty index and no values (the route should have
    refused first: ``policy.drops(attr)``).
    """
    return _history(policy, answer, attr, _context(keys, consumer, rng), top=True)


def apply_block(policy: Policy, entity_id: str, index: Sequence[Any], values: Mapping[str, Sequence[Any]],
                attr_types: Mapping[str, str] | None = None, *, keys: KeyRing, consumer: Consumer,
                rng: random.Random | None = None) -> tuple[str, list[Any], dict[str, list[Any]]]:
    """One entity's history as the history service holds it before rendering (an index
    of ISO 8601 instants and, per attribute, the values parallel to it: ``ngsi.release.Block``)
    as ``consumer`` may see it: (id, index, values), dropped attributes left out. The same
    steps as every other shape, so JSON and CSV answers of one query agree."""
    ctx = _context(keys, consumer, rng)
    types = attr_types or {}
    new_id = pseudonym(entity_id, ctx) if policy.pseudonymize_ids else entity_id
    out: dict[str, list[Any]] = {}
    for name, column in values.items():
        if policy.drops(name):
            continue
        steps = steps_of(policy, name, types.get(name))
        out[name] = [None if v is DROPPED else v for v in (transform_value(steps, value, ctx) for value in column)]
    return new_id, _index(policy, list(index), ctx), out


def history_query_refusal(policy: Policy, aggr_method: str | None, aggr_period: str | None) -> str | None:
    """Why a history query may not be answered to this consumer, None when it may:
    the policy's ``aggregation`` wants an aggregate of one of its methods, over its
    period or a coarser one."""
    rule = policy.aggregation
    if rule is None:
        return None
    if aggr_method not in rule.methods:
        return "this consumer gets aggregates only: aggrMethod " + " or ".join(sorted(rule.methods))
    if rule.period is not None:
        finest = AGGREGATION_PERIODS.index(rule.period)
        if aggr_period not in AGGREGATION_PERIODS or AGGREGATION_PERIODS.index(aggr_period) < finest:
            return f"this consumer gets aggregates over aggrPeriod {rule.period} or coarser"
    return None


# -- exports ---------------------------------------------------------------------------------


def apply_rows(policy: Policy, rows: Iterable[Mapping[str, Any]], *, keys: KeyRing, consumer: Consumer,
               rng: random.Random | None = None) -> list[dict[str, Any]]:
    """Long-format CSV rows (``analytics/history/csvout.history`` and ``export``: one
    value a row, ``entityId``, ``attrName``, ``value`` and ``index`` or ``timeIndex``) as
    ``consumer`` may see them: the rows of dropped attributes go, the others have their
    value through the attribute's steps (``attrType`` tells references), the id through
    ``idTransform`` and the instant through ``TimeInstant``'s steps. Then ``k_anonymize``."""
    ctx = _context(keys, consumer, rng)
    out: list[dict[str, Any]] = []
    for row in rows:
        name = row.get("attrName")
        if name is not None and policy.drops(name):
            continue
        new = dict(row)
        if "entityId" in new and policy.pseudonymize_ids:
            new["entityId"] = pseudonym(new["entityId"], ctx)
        if "value" in new and name is not None:
            new["value"] = transform_value(steps_of(policy, name, row.get("attrType")), new["value"], ctx)
        for key in ("index", "timeIndex"):
            if key in new:
                new[key] = _one_instant(policy, new[key], ctx)
        out.append(new)
    return out


def _group_key(row: Mapping[str, Any], columns: Sequence[str]) -> tuple[str, ...]:
    return tuple(json.dumps(row.get(c), sort_keys=True, default=str) for c in columns)


def k_anonymize(rows: Iterable[Mapping[str, Any]], quasi_identifiers: Sequence[str], k: int) -> list[Mapping[str, Any]]:
    """The rows whose quasi-identifiers (the same values in those columns) are shared by
    at least ``k`` rows; the others are suppressed. Order is kept. Generalize first
    (locations to cells, times to periods) or most groups will be too small."""
    if k < 1:
        raise ValueError("k is at least 1")
    rows = list(rows)
    keys = [_group_key(r, quasi_identifiers) for r in rows]
    sizes: dict[tuple[str, ...], int] = {}
    for key in keys:
        sizes[key] = sizes.get(key, 0) + 1
    return [r for r, key in zip(rows, keys) if sizes[key] >= k]
