"""What a subject may see of one entity, now: for notifications and forwarded answers.

A subscription outlives the request that created it: its creator's roles may change, a
tenant may be bound to an organization later, and a notification carries whatever the
entity holds when it fires. So the notifier (and the forwarding of provider answers)
asks, for each entity about to go out, what the subscription's *creator* may read of it
at that moment: :func:`visible` gives the entity reduced to the readable attributes, or
None when nothing of it may be shown. It is the same decision as a read of the whole
entity (``decide`` on a ``read`` of that id and type at that service path), so a
subscription never notifies an entity or attribute its creator could not GET.

Apply it *before* building the notification: custom payloads (``httpCustom`` templates,
``${attr}`` macros, JEXL expressions) must be built from the reduced entity, or a macro
would print a hidden attribute.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ngsi.context import Identity

from .decide import decide
from .policy import Policy, PolicySet, Subject
from .request import READ, RequestResource, Target


def visible(
    subject: Subject | Identity,
    entity: Mapping[str, Any],
    tenant: str,
    policies: PolicySet | Iterable[Policy],
    bindings: Mapping[str, str] | None = None,
) -> dict[str, Any] | None:
    """``entity`` (the broker's internal form: ``{"id", "type", "servicePath", "attrs":
    {name: {...}}}``) with only the attributes ``subject`` may read in ``tenant``; None
    when the entity may not be read at all, or when it has attributes and none of them
    is visible (there is nothing to tell). Other keys (dates...) are kept. Never raises:
    an entity not in that form is None."""
    if not isinstance(entity, Mapping):
        return None
    entity_id, entity_type = entity.get("id"), entity.get("type")
    attrs = entity.get("attrs", {})
    path = entity.get("servicePath") or "/"
    if not isinstance(entity_id, str) or not isinstance(attrs, Mapping) or not isinstance(path, str):
        return None
    if entity_type is not None and not isinstance(entity_type, str):
        return None
    request = RequestResource(
        actions=frozenset({READ}),
        tenant=tenant.lower(),
        scopes=((path, False),),
        targets=(Target(id=entity_id, type=entity_type or None),),
        route="a notification",
    )
    decision = decide(subject, request, policies, bindings)
    if not decision.allow:
        return None
    shown = {name: value for name, value in attrs.items() if decision.attr_visible(name)}
    if attrs and not shown:
        return None
    return {**entity, "attrs": shown}
