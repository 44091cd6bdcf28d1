"""What the :8080 service asks of each part it serves (apps, discovery, sources).

A part is built from the service's ``Config`` (``config.py``) and gives its routes; the
service opens every part in its lifespan, in order, and closes them in reverse. Parts do
not know of one another except through what they are handed: the discovery part is given
to the apps part, for the sensors an app's manifest asks for.
"""

from __future__ import annotations

from typing import Protocol

from starlette.routing import BaseRoute


class Component(Protocol):
    async def open(self) -> None:
        """Start background work (pollers, supervised processes, a refresh loop)."""

    async def close(self) -> None:
        """Stop it; what must survive a restart is already persisted."""

    def routes(self) -> list[BaseRoute]:
        """Its HTTP routes, with their full paths (``/apps``, ``/discovery/sensors``, ``/sources``)."""
