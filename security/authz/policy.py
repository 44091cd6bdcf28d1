"""NGSI-aware policies: who may do which actions on which tenant, service paths, entities
and attributes. JSON documents in, frozen values out.

A policy grants a *subject* (roles, organizations, users, applications, or anyone
authenticated) a set of *actions* (``security.authz.request.ACTIONS``) on

* one tenant (``"coop"``; ``"*"`` for every tenant, ``""`` for the default one);
* service-path scopes: ``/farm1/#`` (the subtree), ``/farm1`` (that path only);
  ``/#`` by default;
* entities: ``types`` (exact names) and ``idPattern`` (an RE2 search, unanchored as
  Orion's patterns are: anchor it with ``^...$``); any entity by default;
* attributes: ``allow`` (only these) and/or ``deny`` (never these); all by default.

Example (the farmer)::

    {"id": "farmers-fields", "subject": {"roles": ["farmer"]}, "actions": ["read", "update"],
     "tenant": "coop", "servicePaths": ["/farm1/#"],
     "entities": {"types": ["Field"]}, "attrs": {"deny": ["owner"]}}

Within ``subject`` the fields combine with AND (``roles`` and ``organizations`` both
given: a farmer who is a member of one of them), the values of one field with OR.
Every policy needs an authenticated caller; anonymous callers get the public routes only.
Nothing is granted that no policy grants (default deny), and policies only grant: there
is no "deny" policy, so adding one never takes a right away (``attrs.deny`` narrows what
its own policy grants, not what others do).

A policy set adds *tenant bindings*: ``{"coop": "coop-org"}`` closes tenant ``coop`` to
whoever is not a member of organization ``coop-org``, whatever their roles elsewhere.

The JSON Schema is kept here as a Python value, not a data file: the package ships
Python modules only (pyproject declares no package data), and a schema beside the code
that reads it cannot drift from it unnoticed. ``SCHEMA`` is a plain JSON-compatible dict
for anyone who wants it as a file.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

import jsonschema  # type: ignore[import-untyped]
import orjson

from ngsi.context import Identity
from ngsi.errors import NGSIError
from ngsi.regex import search, valid
from ngsi.servicepath import Scope, parse_scopes, parse_tenant

from .request import ACTIONS, Target


class PolicyError(ValueError):
    """A policy document that is not valid (the message says where and why)."""


# -- attribute sets -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AttrSet:
    """A set of attribute names that may be infinite: ``names``, or with ``complement``
    every name except ``names`` (what a deny-list leaves visible)."""

    names: frozenset[str] = frozenset()
    complement: bool = False

    def __contains__(self, name: object) -> bool:
        return (name in self.names) != self.complement

    @property
    def is_all(self) -> bool:
        return self.complement and not self.names

    @property
    def is_empty(self) -> bool:
        return not self.complement and not self.names

    def union(self, other: AttrSet) -> AttrSet:
        if self.complement and other.complement:
            return AttrSet(self.names & other.names, True)
        if self.complement:
            return AttrSet(self.names - other.names, True)
        if other.complement:
            return AttrSet(other.names - self.names, True)
        return AttrSet(self.names | other.names)

    def intersection(self, other: AttrSet) -> AttrSet:
        if self.complement and other.complement:
            return AttrSet(self.names | other.names, True)
        if self.complement:
            return AttrSet(other.names - self.names)
        if other.complement:
            return AttrSet(self.names - other.names)
        return AttrSet(self.names & other.names)

    def covers(self, attrs: frozenset[str] | None) -> bool:
        """Are all of ``attrs`` in the set (None: every attribute)?"""
        if attrs is None:
            return self.is_all
        return all(name in self for name in attrs)

    def restrict(self, attrs: frozenset[str] | None) -> AttrSet:
        """The part of ``attrs`` (None: every attribute) in the set."""
        if attrs is None:
            return self
        return AttrSet(frozenset(name for name in attrs if name in self))

    def outside(self, attrs: frozenset[str] | None) -> list[str]:
        """The names of ``attrs`` not in the set, sorted (for explanations)."""
        if attrs is None:
            return sorted(self.names) if self.complement else ["(every attribute)"]
        return sorted(name for name in attrs if name not in self)

    def label(self) -> str:
        if self.is_all:
            return "every attribute"
        if self.complement:
            return "every attribute but " + ", ".join(sorted(self.names))
        return ", ".join(sorted(self.names)) if self.names else "no attribute"


EVERY_ATTR: Final = AttrSet(complement=True)
NO_ATTR: Final = AttrSet()


# -- who asks ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Subject:
    """The caller, as policies see it: user and application ids, role and organization
    names or ids (whichever the PEP got from the identity manager; both may be listed)."""

    user_id: str = ""
    app_id: str = ""
    roles: frozenset[str] = frozenset()
    organizations: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        object.__setattr__(self, "roles", frozenset(self.roles))
        object.__setattr__(self, "organizations", frozenset(self.organizations))

    @classmethod
    def from_identity(cls, identity: Identity) -> Subject:
        return cls(identity.user_id, identity.app_id, frozenset(identity.roles), frozenset(identity.organizations))

    @property
    def authenticated(self) -> bool:
        return bool(self.user_id or self.app_id)

    def label(self) -> str:
        if self.user_id:
            return f"user {self.user_id}"
        if self.app_id:
            return f"application {self.app_id}"
        return "an anonymous caller"


@dataclass(frozen=True, slots=True)
class SubjectMatch:
    """Whom a policy is for: each non-empty field must match (AND), by any of its values
    (OR); ``authenticated`` alone: anyone authenticated."""

    roles: frozenset[str] = frozenset()
    organizations: frozenset[str] = frozenset()
    users: frozenset[str] = frozenset()
    apps: frozenset[str] = frozenset()
    authenticated: bool = False

    def mismatch(self, subject: Subject) -> str | None:
        """None when ``subject`` is one of the policy's, else why not."""
        if not subject.authenticated:
            return "it needs an authenticated caller"
        if self.users and subject.user_id not in self.users:
            return "it is for users " + ", ".join(sorted(self.users))
        if self.apps and subject.app_id not in self.apps:
            return "it is for applications " + ", ".join(sorted(self.apps))
        if self.roles and self.roles.isdisjoint(subject.roles):
            return "it needs role " + " or ".join(sorted(self.roles))
        if self.organizations and self.organizations.isdisjoint(subject.organizations):
            return "it needs membership of " + " or ".join(sorted(self.organizations))
        return None


# -- policies -------------------------------------------------------------------------------


def scope_label(scope: Scope) -> str:
    path, subtree = scope
    if not subtree:
        return path
    return "/#" if path == "/" else path + "/#"


@dataclass(frozen=True, slots=True)
class Policy:
    """One grant; see the module docstring. Build it with :func:`parse_policy`."""

    id: str
    subject: SubjectMatch
    actions: frozenset[str]
    tenant: str = "*"
    service_paths: tuple[Scope, ...] = (("/", True),)
    types: frozenset[str] | None = None
    id_pattern: str | None = None
    allow_attrs: frozenset[str] | None = None
    deny_attrs: frozenset[str] = frozenset()
    description: str = ""
    visible: AttrSet = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.allow_attrs is None:
            visible = AttrSet(self.deny_attrs, True)
        else:
            visible = AttrSet(self.allow_attrs - self.deny_attrs)
        object.__setattr__(self, "visible", visible)

    def covers_tenant(self, tenant: str) -> bool:
        return self.tenant == "*" or self.tenant == tenant

    def covers_scope(self, scope: Scope) -> bool:
        """Is every entity a request scope reaches within one of the policy's scopes?"""
        path, subtree = scope
        for granted, granted_subtree in self.service_paths:
            if granted_subtree:
                if granted == "/" or path == granted or path.startswith(granted + "/"):
                    return True
            elif path == granted and not subtree:
                return True
        return False

    def entity_mismatch(self, target: Target) -> str | None:
        """None when every entity ``target`` may reach is one of the policy's, else why not.

        Patterns in a request are not analysed: a ``typePattern`` is granted only by a
        policy without type restriction, an ``idPattern`` only by one without idPattern or
        with exactly the same one."""
        if target.entityless:
            return None
        if self.types is not None:
            allowed = ", ".join(sorted(self.types)) or "no type"
            if target.type is not None:
                if target.type not in self.types:
                    return f"type {target.type} is not among {allowed}"
            elif target.type_pattern is not None:
                return f"it grants types {allowed} only, not typePattern {target.type_pattern}"
            else:
                return f"it grants types {allowed} only and the request does not name the type"
        if self.id_pattern is not None:
            if target.id is not None:
                if not search(self.id_pattern, target.id):
                    return f"id {target.id} does not match {self.id_pattern}"
            elif target.id_pattern != self.id_pattern:
                if target.id_pattern is None:
                    return f"it grants ids matching {self.id_pattern} only and the request names no id"
                return f"it grants ids matching {self.id_pattern} only, not idPattern {target.id_pattern}"
        return None

    def grants_everything(self, actions: frozenset[str], tenant: str) -> bool:
        """Does it grant ``actions`` on the whole tenant: every path, entity, attribute?"""
        return (
            actions <= self.actions
            and self.covers_tenant(tenant)
            and self.covers_scope(("/", True))
            and self.types is None
            and self.id_pattern is None
            and self.visible.is_all
        )


@dataclass(frozen=True, slots=True)
class PolicySet:
    """What a decision is taken against: the policies and the tenant bindings
    (tenant -> the organization whose members alone may use it)."""

    policies: tuple[Policy, ...] = ()
    bindings: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        object.__setattr__(self, "policies", tuple(self.policies))
        object.__setattr__(self, "bindings", MappingProxyType({k.lower(): v for k, v in dict(self.bindings).items()}))


# -- JSON -----------------------------------------------------------------------------------

_NAMES: Final = {"type": "array", "items": {"type": "string", "minLength": 1}, "uniqueItems": True}

SCHEMA: Final[dict[str, Any]] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://waziup.io/schemas/authz/policy-set.json",
    "title": "NGSI-aware authorization policies",
    "description": "A policy, a list of policies, or a policy set with tenant bindings.",
    "oneOf": [
        {"$ref": "#/$defs/policy"},
        {"type": "array", "items": {"$ref": "#/$defs/policy"}},
        {"$ref": "#/$defs/policySet"},
    ],
    "$defs": {
        "policySet": {
            "type": "object",
            "required": ["policies"],
            "additionalProperties": False,
            "properties": {
                "policies": {"type": "array", "items": {"$ref": "#/$defs/policy"}},
                "tenantBindings": {
                    "description": "tenant -> the organization (id or name) whose members alone may use it",
                    "type": "object",
                    "additionalProperties": {"type": "string", "minLength": 1},
                },
            },
        },
        "policy": {
            "type": "object",
            "required": ["id", "subject", "actions", "tenant"],
            "additionalProperties": False,
            "properties": {
                "id": {"type": "string", "minLength": 1},
                "description": {"type": "string"},
                "subject": {
                    "type": "object",
                    "minProperties": 1,
                    "additionalProperties": False,
                    "properties": {
                        "roles": {**_NAMES, "minItems": 1},
                        "organizations": {**_NAMES, "minItems": 1},
                        "users": {**_NAMES, "minItems": 1},
                        "apps": {**_NAMES, "minItems": 1},
                        "authenticated": {"const": True},
                    },
                },
                "actions": {
                    "type": "array",
                    "minItems": 1,
                    "uniqueItems": True,
                    "items": {"enum": [*ACTIONS, "*"]},
                },
                "tenant": {"type": "string", "pattern": r"^(\*|[A-Za-z0-9_]{0,50})$"},
                "servicePaths": {"type": "array", "minItems": 1, "items": {"type": "string", "pattern": "^/"}},
                "entities": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "types": _NAMES,
                        "idPattern": {"type": "string", "minLength": 1},
                    },
                },
                "attrs": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"allow": _NAMES, "deny": _NAMES},
                },
            },
        },
    },
}

_VALIDATOR: Final = jsonschema.Draft202012Validator(SCHEMA)
# The same schema entered at the shape the document has, so that errors name the field
# at fault rather than "not valid under any of the given schemas".
_SHAPES: Final = {
    shape: jsonschema.Draft202012Validator({"$ref": f"#/$defs/{shape}", "$defs": SCHEMA["$defs"]})
    for shape in ("policy", "policySet")
}


def _check(doc: Any) -> None:
    if isinstance(doc, list):
        errors: list[jsonschema.ValidationError] = []
        for index, item in enumerate(doc):
            for error in _SHAPES["policy"].iter_errors(item):
                error.path.appendleft(index)  # where it is in the list
                errors.append(error)
    elif isinstance(doc, dict) and "policies" in doc:
        errors = list(_SHAPES["policySet"].iter_errors(doc))
    else:
        errors = list(_SHAPES["policy"].iter_errors(doc))
    if errors:
        error = jsonschema.exceptions.best_match(errors)
        where = "/".join(str(p) for p in error.absolute_path) or "(document)"
        raise PolicyError(f"{where}: {error.message}")


def _scope(text: str, where: str) -> Scope:
    try:
        scopes = parse_scopes(text)
    except NGSIError as exc:
        raise PolicyError(f"{where}: {text}: {exc.description}") from None
    if len(scopes) != 1:
        raise PolicyError(f"{where}: one service path per item, not {text}")
    return scopes[0]


def _policy(doc: Mapping[str, Any], where: str) -> Policy:
    subject = doc["subject"]
    actions = frozenset(ACTIONS) if "*" in doc["actions"] else frozenset(doc["actions"])
    tenant = doc["tenant"]
    if tenant != "*":
        tenant = parse_tenant(tenant)  # lowercase, as requests' tenants are
    paths = tuple(dict.fromkeys(_scope(p, f"{where}/servicePaths") for p in doc.get("servicePaths", ["/#"])))
    entities = doc.get("entities", {})
    pattern = entities.get("idPattern")
    if pattern is not None and not valid(pattern):
        raise PolicyError(f"{where}/entities/idPattern: not a valid (RE2) regular expression: {pattern}")
    attrs = doc.get("attrs", {})
    return Policy(
        id=doc["id"],
        subject=SubjectMatch(
            roles=frozenset(subject.get("roles", ())),
            organizations=frozenset(subject.get("organizations", ())),
            users=frozenset(subject.get("users", ())),
            apps=frozenset(subject.get("apps", ())),
            authenticated=bool(subject.get("authenticated", False)),
        ),
        actions=actions,
        tenant=tenant,
        service_paths=paths,
        types=frozenset(entities["types"]) if "types" in entities else None,
        id_pattern=pattern,
        allow_attrs=frozenset(attrs["allow"]) if "allow" in attrs else None,
        deny_attrs=frozenset(attrs.get("deny", ())),
        description=doc.get("description", ""),
    )


def parse_policy_set(doc: Any) -> PolicySet:
    """A policy set from its JSON value (one policy, a list, or ``{"policies",
    "tenantBindings"}``), validated; PolicyError says what is wrong."""
    _check(doc)
    if isinstance(doc, dict) and "policies" in doc:
        items, bindings = doc["policies"], doc.get("tenantBindings", {})
    else:
        items, bindings = (doc if isinstance(doc, list) else [doc]), {}
    policies = tuple(_policy(item, f"policies/{i}") for i, item in enumerate(items))
    seen: set[str] = set()
    for policy in policies:
        if policy.id in seen:
            raise PolicyError(f"policy id {policy.id} is used twice")
        seen.add(policy.id)
    return PolicySet(policies, bindings)


def parse_policy(doc: Any) -> Policy:
    """One policy from its JSON value."""
    if not isinstance(doc, dict) or "policies" in doc:
        raise PolicyError("(document): expected one policy object")
    return parse_policy_set(doc).policies[0]


def load_policy_set(text: str | bytes) -> PolicySet:
    """A policy set from JSON text."""
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise PolicyError(f"(document): not JSON: {exc}") from None
    return parse_policy_set(doc)


def policy_json(policy: Policy) -> dict[str, Any]:
    """The JSON value of a policy (parses back to an equal one)."""
    subject: dict[str, Any] = {}
    for key in ("roles", "organizations", "users", "apps"):
        values = getattr(policy.subject, key)
        if values:
            subject[key] = sorted(values)
    if policy.subject.authenticated:
        subject["authenticated"] = True
    doc: dict[str, Any] = {
        "id": policy.id,
        "subject": subject,
        "actions": [a for a in ACTIONS if a in policy.actions],
        "tenant": policy.tenant,
        "servicePaths": [scope_label(s) for s in policy.service_paths],
    }
    if policy.description:
        doc["description"] = policy.description
    entities: dict[str, Any] = {}
    if policy.types is not None:
        entities["types"] = sorted(policy.types)
    if policy.id_pattern is not None:
        entities["idPattern"] = policy.id_pattern
    if entities:
        doc["entities"] = entities
    attrs: dict[str, Any] = {}
    if policy.allow_attrs is not None:
        attrs["allow"] = sorted(policy.allow_attrs)
    if policy.deny_attrs:
        attrs["deny"] = sorted(policy.deny_attrs)
    if attrs:
        doc["attrs"] = attrs
    return doc


def policies_of(source: PolicySet | Iterable[Policy]) -> tuple[Policy, ...]:
    return source.policies if isinstance(source, PolicySet) else tuple(source)
