"""Reading a request to a service by its table of routes (the history's, ``history.py``, and
the rules service's, ``rules.py``), for authorization.

Such a service answers ``OPTIONS`` and a few public paths to anyone, takes the broker's
notifications on one path (``POST`` only), and serves a table of (method, path template,
action, ...) rows, in the order of its own router: the first whose template and method
match wins, as in Starlette's ("/v2/attrs/value" before "/v2/attrs/{attr}"). A ``{name}``
is one non-empty path segment; HEAD is served wherever GET is. A path no row has is
unknown (only a policy granting everything in the tenant lets it through, to the
service's own 404); a method its rows do not have is not served (405).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import ClassVar, NamedTuple

from .request import ADMIN, EVERY_PATH, READ, RequestResource, _Analysis

__all__ = ["Route", "RoutedAnalysis", "match", "route_table"]


class Route(NamedTuple):
    """One row of a route table, its template split on "/" for ``match``."""

    method: str
    template: str
    action: str
    extra: tuple[str, ...]  # what the service's rows add to these three (the rules': targets)
    segments: tuple[str, ...]


def route_table(rows: Iterable[Sequence[str]]) -> tuple[Route, ...]:
    """A service's ``ROUTES`` rows, ready for ``RoutedAnalysis``."""
    return tuple(Route(row[0], row[1], row[2], tuple(row[3:]), tuple(row[1].split("/"))) for row in rows)


def match(template: Sequence[str], parts: Sequence[str]) -> dict[str, str] | None:
    """The ``{name}`` segments of ``parts`` when they fit ``template``, else None."""
    if len(template) != len(parts):
        return None
    found: dict[str, str] = {}
    for pattern, part in zip(template, parts):
        if pattern.startswith("{"):
            if not part:
                return None
            found[pattern[1:-1]] = part
        elif pattern != part:
            return None
    return found


class RoutedAnalysis(_Analysis):
    """One request to a service with a route table being read (see the module docstring);
    a service says what a matching row and a notification ask to do."""

    SERVICE: ClassVar[str]  # in messages and route names: "history"
    PUBLIC: ClassVar[tuple[str, ...]]
    NOTIFICATIONS: ClassVar[str]  # the path of the broker's notifications
    TABLE: ClassVar[tuple[Route, ...]]

    def run(self) -> RequestResource:
        path, method = self.path, self.method
        if method == "OPTIONS":
            return self.result({READ}, "", (EVERY_PATH,), public=True)  # no token, reveals nothing
        if path in self.PUBLIC:
            if method not in ("GET", "HEAD"):
                return self.not_served("GET")
            return self.result({READ}, "", (EVERY_PATH,), public=True)
        if path == self.NOTIFICATIONS:
            return self.ingestion(f"POST {path} ({self.SERVICE})") if method == "POST" else self.not_served("POST")
        parts = path.split("/")
        asked = "GET" if method == "HEAD" else method
        served: list[str] = []
        for route in self.TABLE:
            found = match(route.segments, parts)
            if found is None:
                continue
            if route.method != asked:
                served.append(route.method)
                continue
            return self.routed(route, found, f"{method} {route.template} ({self.SERVICE})")
        if served:
            return self.not_served(", ".join(dict.fromkeys(served)))
        self.bad(f"{path} is not a route of the {self.SERVICE} service")
        return self.result({ADMIN}, self.tenant(), (EVERY_PATH,))

    def routed(self, route: Route, path: dict[str, str], name: str) -> RequestResource:
        """What the request asks to do on ``route`` (its ``{name}`` segments in ``path``;
        ``name``, the route's name in the description)."""
        raise NotImplementedError

    def ingestion(self, name: str) -> RequestResource:
        """What a notification on ``NOTIFICATIONS`` asks to do."""
        raise NotImplementedError
