"""Fiware-Service (tenant) and Fiware-ServicePath rules, as Orion checks them."""

from __future__ import annotations

import re
from functools import lru_cache

from .errors import BadRequest

MAX_TENANT_LENGTH = 50
MAX_PATHS = 10
MAX_LEVELS = 10
MAX_COMPONENT_LENGTH = 50

_TENANT_CHARS = re.compile(r"^[A-Za-z0-9_]*$")
_COMPONENT_CHARS = re.compile(r"^[A-Za-z0-9_]+$")

Scope = tuple[str, bool]  # (path, subtree)


def parse_tenant(header: str | None) -> str:
    """The tenant of a request ("" for the default service); Orion folds names to lowercase."""
    if not header:
        return ""
    if len(header) > MAX_TENANT_LENGTH:
        raise BadRequest(f"bad length - a tenant name can be max {MAX_TENANT_LENGTH} characters long")
    if not _TENANT_CHARS.match(header):
        raise BadRequest("bad character in tenant name - only underscore and alphanumeric characters are allowed")
    return header.lower()


def _parse_one(path: str) -> Scope:
    if not path.startswith("/"):
        raise BadRequest("Only /absolute/ Service Paths allowed [a service path must begin with /]")
    # Orion drops one trailing slash ("/a/b/" is "/a/b"); a second one leaves an empty level.
    if len(path) > 1 and path.endswith("/"):
        path = path[:-1]
    if path == "/":
        return ("/", False)
    subtree = False
    body = path
    if body == "/#":
        return ("/", True)
    if body.endswith("/#"):
        subtree = True
        body = body[:-2]
    components = body[1:].split("/")
    if len(components) > MAX_LEVELS:
        raise BadRequest("too many components in ServicePath")
    for component in components:
        if component == "":
            raise BadRequest("empty component in ServicePath")
        if len(component) > MAX_COMPONENT_LENGTH:
            raise BadRequest("component-name too long in ServicePath")
        if not _COMPONENT_CHARS.match(component):
            raise BadRequest("a component of ServicePath contains an illegal character")
    return (body, subtree)


@lru_cache(maxsize=512)
def parse_scopes(header: str | None) -> tuple[Scope, ...]:
    """The service paths a read covers; no header means every path (cached: a header
    is parsed once however many requests carry it; errors are not cached)."""
    if header is None or header.strip() == "":
        return (("/", True),)
    paths = [p.strip() for p in header.split(",")]
    if len(paths) > MAX_PATHS:
        raise BadRequest("too many service paths - a maximum of ten service paths is allowed")
    return tuple(_parse_one(p) for p in paths)


# Orion's messages for a write that names several paths, or a wildcard, by operation.
_WRITE_RULES = {
    "update": (
        "more than one service path in context update request",
        "servicepath with wildcard # is not allowed in patch update request",
    ),
    "patch": (
        "more than one servicepath in patch update request is not allowed",
        "servicepath with wildcard # is not allowed in patch update request",
    ),
    "delete": (
        "more than one servicepath is not allowed in DELETE operation",
        "servicepath with wildcard # is not allowed in DELETE operation",
    ),
    "subscription": ("max one service-path allowed for subscriptions", None),
}


def _one_path(header: str, operation: str) -> Scope:
    scopes = parse_scopes(header)
    several, wildcard = _WRITE_RULES[operation]
    if len(scopes) > 1:
        raise BadRequest(several)
    if wildcard is not None and scopes[0][1]:
        raise BadRequest(wildcard)
    return scopes[0]


def parse_write_path(header: str | None, *, operation: str = "update") -> str:
    """The one service path a write goes to ('/' when none is given): creations and
    batch appends (``update``), PATCH/PUT of attributes (``patch``), deletions (``delete``)."""
    if header is None or header.strip() == "":
        return "/"
    return _one_path(header, operation)[0]


def write_scopes(header: str | None, *, operation: str = "update") -> tuple[Scope, ...]:
    """What an update or delete of existing entities may touch: the one path the header
    names (not its subtree), the root path when there is none."""
    return ((parse_write_path(header, operation=operation), False),)


def parse_subscription_path(header: str | None) -> str | None:
    """The one path a subscription is for, as written (``/a``, ``/a/#``, ``/#``); None
    without a header (every path)."""
    if header is None or header.strip() == "":
        return None
    path, subtree = _one_path(header, "subscription")
    if subtree:
        return "/#" if path == "/" else path + "/#"
    return path


def covers(scopes: tuple[Scope, ...], path: str) -> bool:
    """Does one of the scopes cover an entity (registration, subscription) at ``path``?"""
    for scope, subtree in scopes:
        if path == scope:
            return True
        if subtree and (scope == "/" or path.startswith(scope + "/")):
            return True
    return False
