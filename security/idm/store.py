"""The identity manager's store, and the backend chosen by URL.

``sqlite:///path`` (the default, ``<data>/idm.db``) or ``postgresql://user:password@host/db``.
Both backends are one SQL implementation (``sqlstore.py``) over a small driver each
(``sqlite.py``, ``postgres.py``), since the identity manager's queries are plain portable
SQL. That implementation is the store's contract too (:data:`IdmStore`): a backend
differs from another only in its driver, so the store's methods are written once, not
once more as an abstract interface that would have to follow every change.

Every change of what decides a PEP question (roles, permissions, their assignments,
organization memberships, users and applications deleted or disabled) bumps the
``policy_version`` counter in the same transaction, so a PEP caching decisions learns
that it must forget them by reading one number (``X-Policy-Version`` on ``/user``,
``GET /v1/policy_version``).
"""

from __future__ import annotations

import importlib

from .sqlstore import SQLStore

BACKENDS = {
    "sqlite": "security.idm.sqlite:SQLiteStore",
    "postgresql": "security.idm.postgres:PostgresStore",
    "postgres": "security.idm.postgres:PostgresStore",
}

# What the rest of the identity manager types a store as: any backend's store.
IdmStore = SQLStore


class StoreError(Exception):
    """The store failed to do what was asked."""


class Conflict(StoreError):
    """A unique key is taken (a username, an e-mail address, an id)."""


def open_store(url: str) -> IdmStore:
    """The store for a URL (``sqlite:///path``, ``postgresql://...``), importing only that backend."""
    scheme = url.split(":", 1)[0].split("+", 1)[0]
    target = BACKENDS.get(scheme)
    if target is None:
        raise StoreError(f"unsupported database URL scheme {scheme!r} (known: {', '.join(BACKENDS)})")
    module, _, name = target.partition(":")
    store: IdmStore = getattr(importlib.import_module(module), name)(url)
    return store
