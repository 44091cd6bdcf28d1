"""The NGSI-aware authorization decision: may this subject do what this request asks?

Pure: the subject, the request's :class:`~security.authz.request.RequestResource`, the
policies and the tenant bindings in, a :class:`Decision` out. The rules, in order:

1. Public requests (``/version``, CORS preflights) are allowed.
2. A tenant bound to an organization is closed to non-members, whatever policies say.
3. A request that could not be fully analysed (``unknown``) is allowed only by a policy
   that grants its actions on everything in the tenant: every path, entity, attribute.
   The broker answers its own 400 afterwards; nobody else gets past a request we could
   not read.
4. Otherwise the request is split into parts, one per action x service-path scope x
   target, and each part must be granted by at least one policy applying to the
   subject and tenant (so a farmer who holds two roles gets the union of both). What a
   part may see of attributes is the union of what its granting policies leave visible.
   Writes must be granted on every attribute they touch (a whole-entity delete or
   replace touches them all); attributes a filter or a subscription condition looks at
   must be readable, since filtering on a hidden attribute reveals it.
5. A read whose parts are granted but whose attributes are partly hidden is allowed
   with a *projection*: ``allowed_attrs`` (or ``denied_attrs`` when what is visible is
   "every attribute but these") tells the PEP what it may return. A read of nothing but
   hidden attributes is denied.
6. Default deny. Policies only grant, so adding one never turns an allow into a deny,
   and removing every policy named in ``granted_by`` turns an allow into a deny.

Every decision says why: the policies that granted it, or for the first part no policy
grants, what each candidate policy lacked.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from ngsi.context import Identity
from ngsi.servicepath import Scope

from .policy import (
    EVERY_ATTR,
    NO_ATTR,
    AttrSet,
    Policy,
    PolicySet,
    Subject,
    policies_of,
    scope_label,
)
from .request import ACTIONS, ADMIN, READ, SUBSCRIBE, RequestResource, Target

MAX_NOTES: Final = 8  # candidate policies explained per denied part; the rest are counted

_UNRENDERABLE: Final = frozenset({"values", "unique"})  # responses without attribute names


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome, with its explanation.

    ``policy_id`` is the (first) policy that granted the request; ``granted_by`` all of
    them. For a read allowed with a projection, the PEP returns only attributes for which
    :meth:`attr_visible` is true: ``allowed_attrs`` is the set of visible attributes when
    it is finite; when what is visible is "every attribute but some", ``allowed_attrs`` is
    None and ``denied_attrs`` names the hidden ones. Both empty/None: nothing to filter.
    """

    allow: bool
    reason: str
    policy_id: str | None = None
    allowed_attrs: frozenset[str] | None = None
    denied_attrs: frozenset[str] = frozenset()
    granted_by: tuple[str, ...] = ()

    @property
    def projected(self) -> bool:
        """Must the PEP filter attributes out of the response?"""
        return self.allowed_attrs is not None or bool(self.denied_attrs)

    def attr_visible(self, name: str) -> bool:
        if self.allowed_attrs is not None and name not in self.allowed_attrs:
            return False
        return name not in self.denied_attrs

    def to_json(self) -> dict[str, Any]:
        return {
            "allow": self.allow,
            "reason": self.reason,
            "policy_id": self.policy_id,
            "granted_by": list(self.granted_by),
            "allowed_attrs": None if self.allowed_attrs is None else sorted(self.allowed_attrs),
            "denied_attrs": sorted(self.denied_attrs),
        }


def _deny(reason: str) -> Decision:
    return Decision(False, reason)


def tenant_label(tenant: str) -> str:
    return f"tenant {tenant}" if tenant else "the default tenant"


def decide(
    subject: Subject | Identity,
    request: RequestResource,
    policies: PolicySet | Iterable[Policy],
    tenant_bindings: Mapping[str, str] | None = None,
) -> Decision:
    """Decide ``request`` for ``subject`` (see the module docstring). ``policies`` may be a
    :class:`PolicySet`, whose bindings are used when ``tenant_bindings`` is None."""
    if isinstance(subject, Identity):
        subject = Subject.from_identity(subject)
    if tenant_bindings is None:
        tenant_bindings = policies.bindings if isinstance(policies, PolicySet) else {}
    candidates = policies_of(policies)
    if request.public:
        return Decision(True, f"{request.route} is public")
    tenant = request.tenant
    where = tenant_label(tenant)

    applying: list[Policy] = []
    elsewhere: list[str] = []
    for policy in candidates:
        if policy.subject.mismatch(subject) is not None:
            continue
        if policy.covers_tenant(tenant):
            applying.append(policy)
        else:
            elsewhere.append(f"policy {policy.id}: it is for tenant {policy.tenant or '(default)'} only")

    organization = _binding(tenant_bindings, tenant)
    if organization is not None and organization not in subject.organizations:
        text = f"{where} is bound to organization {organization} and {subject.label()} is not a member"
        return _deny("; ".join(f"policy {p.id}: {text}" for p in applying) or text)

    if not applying:
        who = subject.label()
        if subject.roles:
            who += " (roles " + ", ".join(sorted(subject.roles)) + ")"
        reason = f"no policy applies to {who} in {where}"
        if not subject.authenticated:
            reason = f"{request.route} needs an authenticated caller"
        return _deny(_with_notes(reason, elsewhere))

    actions = request.actions or frozenset({ADMIN})
    if request.unknown:
        what = "; ".join(request.unknown)
        everything = [p.id for p in applying if p.grants_everything(actions, tenant)]
        if everything:
            return Decision(
                True,
                f"the request could not be fully analysed ({what}); policy {everything[0]} grants "
                f"{_actions(actions)} on everything in {where}",
                everything[0],
                granted_by=tuple(everything),
            )
        return _deny(
            f"the request could not be fully analysed ({what}); no policy grants {_actions(actions)} "
            f"on everything in {where} to {subject.label()}"
        )

    granted: dict[str, None] = {}
    projection: AttrSet | None = None
    for action in (a for a in ACTIONS if a in actions):
        for scope in request.scopes:
            for target in request.targets:
                outcome = _part(action, scope, target, request, applying)
                if isinstance(outcome, str):
                    return _deny(outcome)
                part_granted, visible = outcome
                granted.update(dict.fromkeys(part_granted))
                if visible is not None:
                    projection = visible if projection is None else projection.intersection(visible)

    ids = tuple(granted)
    names = ", ".join(ids)
    reason = (
        f"{'policy' if len(ids) == 1 else 'policies'} {names} grant{'s' if len(ids) == 1 else ''} "
        f"{_actions(actions)} in {where} ({request.route})"
    )
    allowed_attrs, denied_attrs = _projection(projection, request)
    if allowed_attrs is None and not denied_attrs:
        return Decision(True, reason, ids[0], granted_by=ids)
    if request.options & _UNRENDERABLE:
        return _deny(
            f"{reason}, but not every attribute asked for is visible and a response with "
            f"options={','.join(sorted(request.options & _UNRENDERABLE))} carries no attribute names to filter"
        )
    hidden = ", ".join(sorted(denied_attrs)) if allowed_attrs is None else "all but " + (", ".join(sorted(allowed_attrs)))
    return Decision(
        True, f"{reason}, with a projection (hidden: {hidden})", ids[0], allowed_attrs, denied_attrs, ids
    )


def _binding(bindings: Mapping[str, str], tenant: str) -> str | None:
    """The organization ``tenant`` is bound to. Keys are tenant names as requests carry
    them (lowercase; PolicySet folds them); a mapping given by hand may not be folded, and
    a binding missed for its case would leave the tenant open, so other keys are compared
    folded too."""
    found = bindings.get(tenant)
    if found is None and bindings:
        found = next((org for name, org in bindings.items() if name.lower() == tenant), None)
    return found


def _actions(actions: frozenset[str]) -> str:
    return ", ".join(a for a in ACTIONS if a in actions)


def _with_notes(reason: str, notes: list[str]) -> str:
    if not notes:
        return reason
    shown = notes[:MAX_NOTES]
    more = len(notes) - len(shown)
    return reason + "; " + "; ".join(shown) + (f"; and {more} more" if more else "")


def _part(
    action: str, scope: Scope, target: Target, request: RequestResource, applying: list[Policy]
) -> tuple[list[str], AttrSet | None] | str:
    """One action on one target in one scope: (the policies granting it, what a read may
    see, None for other actions), or why it is denied."""
    what = f"{action} on {target.label()} under {scope_label(scope)} in {tenant_label(request.tenant)}"
    notes: list[str] = []
    matching: list[Policy] = []
    for policy in applying:
        if action not in policy.actions:
            notes.append(f"policy {policy.id}: it does not grant {action}")
            continue
        if not policy.covers_scope(scope):
            granted = ", ".join(scope_label(s) for s in policy.service_paths)
            notes.append(f"policy {policy.id}: {scope_label(scope)} is not within {granted}")
            continue
        why = policy.entity_mismatch(target)
        if why is not None:
            notes.append(f"policy {policy.id}: {why}")
            continue
        matching.append(policy)
    if not matching:
        return _with_notes(f"no policy grants {what}", notes)

    visible = NO_ATTR
    for policy in matching:
        visible = visible.union(policy.visible)

    def refused(problem: str, attrs: frozenset[str] | None) -> str:
        details = [f"policy {p.id}: it grants {p.visible.label()}" for p in matching if not p.visible.covers(attrs)]
        return _with_notes(f"{what} is denied: {problem}", details)

    ids = [p.id for p in matching]
    if action in (READ, SUBSCRIBE):
        filters = request.filter_attrs
        if not visible.covers(filters):
            if filters is None:
                return refused("a geographical filter may look at hidden attributes", None)
            hidden = ", ".join(visible.outside(filters))
            return refused(f"the filter or condition looks at attribute(s) {hidden}, which may not be read", filters)
        if action == SUBSCRIBE:
            if target.attrs is not None and not visible.covers(target.attrs):
                hidden = ", ".join(visible.outside(target.attrs))
                return refused(f"the subscription would notify attribute(s) {hidden}, which may not be read", target.attrs)
            if visible.is_empty:
                return refused("no attribute may be read", None)
            return ids, None  # what a notification shows is reduced by visibility.visible()
        shown = visible.restrict(target.attrs)
        if shown.is_empty and not target.entityless:
            asked = "no attribute" if visible.is_empty else ", ".join(sorted(target.attrs or ()))
            return refused(f"none of the attributes asked for may be read ({asked})", target.attrs)
        return ids, (EVERY_ATTR if target.entityless else shown)
    if not visible.covers(target.attrs):
        hidden = ", ".join(visible.outside(target.attrs))
        return refused(f"the request touches attribute(s) {hidden}, which may not be written", target.attrs)
    return ids, None


def _projection(projection: AttrSet | None, request: RequestResource) -> tuple[frozenset[str] | None, frozenset[str]]:
    """(allowed_attrs, denied_attrs) of a read; (None, empty) when nothing is hidden from
    what the request asked for."""
    if projection is None or projection.is_all:
        return None, frozenset()
    asked = [t.attrs for t in request.targets if not t.entityless]
    if asked and all(a is not None and projection.covers(a) for a in asked):
        return None, frozenset()  # every attribute asked for is visible
    if projection.complement:
        return None, projection.names
    return projection.names, frozenset()
