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


def parse_write_path(header: str | None, *, operation: str = "update") -> str:
    """The one service path a write goes to ('/' when none is given)."""
    scopes = parse_scopes(header)
    if header is None or header.strip() == "":
        return "/"
    if len(scopes) > 1:
        raise BadRequest("more than one service path in context update request")
    path, subtree = scopes[0]
    if subtree:
        raise BadRequest("servicepath with wildcard # is not allowed in patch update request")
    return path
